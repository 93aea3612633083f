"""Run the notebooks headless (papermill) and export self-contained HTML reports (nbconvert).

``ocrlab report --out reports`` writes, for each notebook, the executed
``NN-name.ipynb`` and ``NN-name.html`` (code cells hidden, plots inline as data
URIs, so one file is the whole report) and an ``index.html`` linking them.
A notebook that fails still gets its executed ``.ipynb`` and HTML (papermill
saves the error in place), and the failure is reported, not swallowed: the
index names it at the top and beside its link, and ``ocrlab report`` exits 1.

Reports regenerate any number of times: each notebook's previous executed copy,
HTML page and work folder (``work/<topic>``, the runs it made) are removed
before it runs again, so a second ``make report`` neither meets a used output
folder nor links a stale page from an earlier success.
"""

from __future__ import annotations

import html
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PipelineError
from ..output.atomic import atomic_write_text


def _locate_notebooks() -> Path:
    """Where the notebooks ``ocrlab report`` runs are: the copy in ``ocrlab/lab/notebooks/``
    that a built wheel ships (setup.py puts it there), else the checkout's top-level
    ``notebooks/`` (an editable install, or the source tree on ``PYTHONPATH``).

    ``notebooks/`` is the one copy in the repository, the one people open in JupyterLab;
    the packaged copy exists only in a build.
    """
    here = Path(__file__).resolve().parent
    packaged = here / "notebooks"
    if any(packaged.glob("[0-9][0-9]-*.ipynb")):
        return packaged
    return here.parents[1] / "notebooks"


NOTEBOOKS_DIR = _locate_notebooks()

#: What ``ocrlab report`` imports, and the extra that installs it.
REPORT_MODULES = ("papermill", "nbconvert", "nbformat", "ipykernel", "matplotlib", "pandas")


def require_notebook_extra() -> None:
    """Raise a :class:`PipelineError` naming the extra when a report dependency is missing."""
    import importlib.util

    missing = [m for m in REPORT_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise PipelineError(
            f"ocrlab report needs the notebooks extra (missing: {', '.join(missing)}); "
            "install it with: pip install 'ocrlab[notebooks]'"
        )


@dataclass(frozen=True)
class NotebookReport:
    name: str
    notebook: Path
    html: Path
    seconds: float
    error: str | None = None


def default_parameters(
    corpus: str, workers: Sequence[int], repeats: int, out_dir: Path
) -> dict[str, dict[str, Any]]:
    """Parameters for each bundled notebook, keyed by notebook stem."""
    corpus = os.path.abspath(corpus)
    work = out_dir / "work"
    scans = os.path.join(corpus, "scans")
    return {
        "01-worker-sweep": {
            "corpus": corpus,
            "workers": list(workers),
            "repeats": repeats,
            "out_dir": str(work / "sweep"),
        },
        "02-output-identity": {
            "corpus": corpus,
            "workers": max(workers),
            "out_dir": str(work / "identity"),
        },
        "03-trace-explorer": {
            "corpus": corpus,
            "workers": max(workers),
            "out_dir": str(work / "explorer"),
        },
        # The degraded scans when the corpus has them (data/scans/): small pages, so the
        # default grid (2 settings, each sequential and parallel) stays well under a minute.
        "04-speed-accuracy": {
            "corpus": scans if os.path.isdir(scans) else corpus,
            "workers": max(workers),
            "out_dir": str(work / "speed-accuracy"),
        },
    }


def export_html(notebook: Path, target: Path) -> None:
    """nbconvert to HTML without input cells; images are embedded as data URIs."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(  # type: ignore[no-untyped-call]
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True
    )
    node = nbformat.read(notebook, as_version=4)  # type: ignore[no-untyped-call]
    body, _ = exporter.from_notebook_node(node)
    atomic_write_text(target, body)


def run_notebook(
    source: Path, out_dir: Path, parameters: Mapping[str, Any], timeout_s: int = 3600
) -> NotebookReport:
    """Execute one notebook with papermill, then export it; errors are returned, not raised."""
    import papermill

    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / source.name
    page = out_dir / (source.stem + ".html")
    for stale in (executed, page):  # an earlier run's: never shown as this run's
        stale.unlink(missing_ok=True)
    work = parameters.get("out_dir")
    if work and Path(work).resolve().is_relative_to(out_dir.resolve() / "work"):
        shutil.rmtree(work, ignore_errors=True)  # the runs this notebook made last time
    t0 = time.perf_counter()
    error = None
    try:
        papermill.execute_notebook(
            str(source),
            str(executed),
            parameters=dict(parameters),
            cwd=str(out_dir),
            progress_bar=False,
            request_save_on_cell_execute=False,
            execution_timeout=timeout_s,
            kernel_name="python3",
        )
    except Exception as exc:  # PapermillExecutionError carries the cell's traceback
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc) else ''}"
    if executed.exists():
        try:
            export_html(executed, page)
        except Exception as exc:  # a notebook nbconvert cannot render is a failed report too
            error = error or f"HTML export failed: {type(exc).__name__}: {exc}"
    elif error is None:
        error = "papermill wrote no executed notebook"
    return NotebookReport(source.stem, executed, page, time.perf_counter() - t0, error)


def write_index(out_dir: Path, reports: Sequence[NotebookReport]) -> Path:
    def item(r: NotebookReport) -> str:
        failed = f" <strong>FAILED: {html.escape(r.error)}</strong>" if r.error else ""
        return (
            f'<li><a href="{html.escape(r.html.name)}">{html.escape(r.name)}</a> '
            f"({r.seconds:.0f} s){failed}</li>"
        )

    items = "\n".join(item(r) for r in reports)
    failed = [r.name for r in reports if r.error]
    verdict = (
        f"<p class='failed'><strong>{len(failed)} of {len(reports)} report(s) FAILED: "
        f"{html.escape(', '.join(failed))}</strong> (their pages show the error).</p>"
        if failed
        else f"<p class='ok'>All {len(reports)} report(s) ran without error.</p>"
    )
    page = out_dir / "index.html"
    atomic_write_text(
        page,
        "<!doctype html><html><head><meta charset='utf-8'><title>ocrlab reports</title></head>"
        f"<body><h1>ocrlab reports</h1><p>Generated {time.strftime('%Y-%m-%d %H:%M')}.</p>"
        f"{verdict}<ul>\n{items}\n</ul></body></html>\n",
    )
    return page


def build_reports(
    out_dir: str | os.PathLike[str],
    *,
    corpus: str = "data",
    workers: Sequence[int] = (1, 2),
    repeats: int = 3,
    only: Sequence[str] | None = None,
    notebooks_dir: Path | None = None,
) -> list[NotebookReport]:
    """Execute and export every bundled notebook (or those named in ``only``).

    Raises :class:`PipelineError` before running anything when the notebooks extra
    is not installed, the notebooks are missing, or ``only`` names an unknown one:
    an empty index with exit code 0 would look like success.
    """
    require_notebook_extra()
    notebooks_dir = notebooks_dir or NOTEBOOKS_DIR
    sources = sorted(notebooks_dir.glob("[0-9][0-9]-*.ipynb"))
    if not sources:
        raise PipelineError(
            f"no notebooks found in {notebooks_dir}; reinstall ocrlab from a wheel or sdist "
            "(a build copies them into ocrlab/lab/notebooks/), or run from a full checkout "
            "(which has them in notebooks/)."
        )
    unknown = sorted(set(only or ()) - {s.stem for s in sources})
    if unknown:
        raise PipelineError(
            f"--only {', '.join(unknown)}: no such notebook; choose from "
            f"{', '.join(s.stem for s in sources)}."
        )
    out = Path(out_dir).resolve()
    params = default_parameters(corpus, workers, repeats, out)
    reports = []
    for source in sources:
        if only and source.stem not in only:
            continue
        reports.append(run_notebook(source, out, params.get(source.stem, {})))
    write_index(out, reports)
    return reports
