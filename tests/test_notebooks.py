"""The notebooks: committed clean, executed headless by papermill, exported to HTML that renders.

Rendering is checked in headless Chromium: a copy of each report gets a small
script that records, after load, every image's natural size and any error
output; ``--dump-dom`` returns the page with that record in it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from ocrlab.lab.accuracy import score_run
from ocrlab.lab.report import NOTEBOOKS_DIR, build_reports
from tests.helpers import copy_data

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]-*.ipynb"))

PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images).map(i => [i.naturalWidth, i.naturalHeight]);
  const errors = document.querySelectorAll(
    '[data-mime-type="application/vnd.jupyter.stderr"], .jp-OutputArea-output .ansi-red-fg'
  ).length;
  document.body.setAttribute("data-probe", JSON.stringify({imgs, errors}));
});
</script></body>"""


def test_notebooks_committed_clean_with_one_parameters_cell() -> None:
    assert [p.stem for p in NOTEBOOKS] == [
        "01-worker-sweep",
        "02-output-identity",
        "03-trace-explorer",
        "04-speed-accuracy",
    ]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: exactly one cell tagged 'parameters'"
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name
                assert len(cell.source.splitlines()) <= 15, f"{path.name}: keep cells short"


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every notebook run through papermill on a few pages, workers 1 and 2; three of them
    degraded scans (a clean one, a blurred one, a noisy one) so that error rates vary."""
    root = tmp_path_factory.mktemp("reports")
    corpus = copy_data(
        root / "corpus",
        (
            "letters/note.png",
            "forms/note.png",
            "forms/card.webp",
            "broken/empty.png",
            "scans/clean-0-01.png",
            "scans/blur-1-01.png",
            "scans/noise-0.85-01.png",
        ),
    )
    out = root / "reports"
    results = build_reports(out, corpus=str(corpus), workers=[1, 2], repeats=1)
    failures = {r.name: r.error for r in results if r.error}
    assert not failures, failures
    return out


@pytest.mark.slow
def test_papermill_runs_write_results(reports: Path) -> None:
    for stem in ("01-worker-sweep", "02-output-identity", "03-trace-explorer", "04-speed-accuracy"):
        assert (reports / f"{stem}.ipynb").is_file() and (reports / f"{stem}.html").is_file()
        nb = nbformat.read(reports / f"{stem}.ipynb", as_version=4)
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        assert not [o for o in outputs if o.output_type == "error"], stem
        stderr = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
        assert "page/s" not in stderr and "OCR:" not in stderr, "progress bars must be quiet"
    bench = json.loads((reports / "work" / "sweep" / "bench.json").read_text())
    assert [row["workers"] for row in bench["table"]] == [1, 2]
    assert all(row["identical"] for row in bench["table"])
    assert (reports / "work" / "identity" / "parallel" / "results.json").is_file()
    assert (reports / "work" / "explorer" / "run" / "trace.json").is_file()
    index = (reports / "index.html").read_text()
    assert index.count("<li>") == 4 and "FAILED" not in index


@pytest.mark.slow
def test_reports_show_varied_error_rates_on_degraded_pages(reports: Path) -> None:
    """02's accuracy table and 04's sweep: the clean page reads, the degraded ones do not."""
    scores = {s["doc_id"]: s["cer"] for s in score_run(reports / "work/identity/parallel")}
    assert scores["scans/blur-1-01.png"] > 0.05 and scores["scans/noise-0.85-01.png"] > 0
    assert scores["scans/clean-0-01.png"] < 0.02
    sweep = json.loads((reports / "work/speed-accuracy/sweep.json").read_text())
    assert [(r["psm"], r["identical"]) for r in sweep["table"]] == [(3, True), (6, True)]
    cers = {(p["label"], p["kind"]): p["cer"] for p in sweep["pages"]}
    assert len(set(cers.values())) >= 3, cers  # varied, not all 0 or all 1
    assert all(
        cers[(label, "blur")] > cers[(label, "clean")] for label in {label for label, _ in cers}
    )
    assert "fastest setting within 1 point" in sweep["recommendation"]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
def test_html_reports_render_in_headless_chromium(reports: Path, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not installed (make test installs it)")
    expected_images = {
        "01-worker-sweep": 3,
        "02-output-identity": 0,
        "03-trace-explorer": 3,
        "04-speed-accuracy": 2,
    }
    for stem, minimum in expected_images.items():
        page = (reports / f"{stem}.html").read_text(encoding="utf-8")
        assert not re.search(r'<img[^>]+src="(?!data:)', page), "images must be inline"
        probe = tmp_path / f"{stem}.html"
        probe.write_text(page.replace("</body>", PROBE, 1), encoding="utf-8")
        dom = subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={tmp_path / 'profile'}",
                "--virtual-time-budget=10000",
                "--dump-dom",
                probe.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        match = re.search(r'data-probe="([^"]+)"', dom)
        assert match, f"{stem}: the probe did not run"
        result = json.loads(match.group(1).replace("&quot;", '"'))
        assert len(result["imgs"]) >= minimum, f"{stem}: {result}"
        assert all(w > 0 and h > 0 for w, h in result["imgs"]), f"{stem}: broken image"
        assert result["errors"] == 0, f"{stem}: error output in the report"
        assert "Traceback" not in page
