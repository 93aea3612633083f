"""``ocrlab bench``: worker-count sweeps measured against 1 worker and the Tesseract CLI.

For each repeat, every worker count runs once on a fresh pool; the order of the
counts alternates between repeats (ascending, then descending...) so that drift
of the machine (thermal, page cache, a neighbour's load) spreads evenly over
the counts instead of favouring the first. Figures are ratios measured in the
same invocation: speedup against 1 worker, throughput against the Tesseract
command line driven the way ``xargs -P N tesseract`` would (N processes at a
time, ``OMP_THREAD_LIMIT=1``), on the same page files.

The CLI reference reads pages that are already files (multi-page TIFF and PDF
pages are extracted once, untimed, before the sweep); ocrlab's figures include
its own page extraction and PDF rendering, so the comparison does not flatter
ocrlab.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import load_config
from ..engines.registry import engine_version
from ..engines.tesseract import tesseract_cmd
from ..measure.monitor import ProcessTreeMonitor
from ..output import trace_schema as ts
from ..output.manifest import load_manifest
from ..output.trace_reader import iter_trace
from ..pages import page_source
from ..pipeline import run
from ..progress import progress_enabled, sweep_progress
from ..runinfo import run_metadata
from ..sources import discover
from .accuracy import score_run


@dataclass
class RunRow:
    """One measured run (ocrlab at N workers, or the CLI reference at N processes)."""

    kind: str  # "ocrlab" or "cli"
    workers: int
    repeat: int
    wall_s: float
    pages: int
    pages_failed: int = 0
    page_s: list[float] = field(default_factory=list)
    peak_rss: int = 0
    peak_hwm: int = 0
    #: tree PSS / USS peaks (what the run costs the machine; RSS counts shared pages per process)
    peak_pss: int = 0
    peak_uss: int = 0
    peak_fds: int = 0
    peak_tesseract: int = 0
    startup_s: float | None = None
    identical: bool | None = None
    engine: str = "tesseract CLI"
    cer: float | None = None


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[idx]


def _order(counts: Sequence[int], repeat: int) -> list[int]:
    """Ascending on even repeats, descending on odd ones."""
    return list(counts) if repeat % 2 == 0 else list(reversed(counts))


def prepare_cli_pages(corpus: str, dest: Path, dpi: int) -> list[str]:
    """Files the Tesseract CLI can read, one per good page, in document/page order."""
    settings = load_config(dpi=dpi).engine_settings()
    files: list[str] = []
    for doc in discover([corpus]):
        for task in doc.tasks:
            try:
                with page_source(task, settings) as (src, _, _):
                    if src == task.path:
                        files.append(src)
                    else:
                        name = f"{len(files):04d}{Path(src).suffix}"
                        shutil.copy(src, dest / name)
                        files.append(str(dest / name))
            except Exception:
                continue  # broken pages are not part of the reference
    return files


def run_cli_reference(files: Sequence[str], processes: int, monitor_interval: float) -> RunRow:
    """``xargs -P N tesseract FILE stdout``: N single-threaded Tesseract processes at a time."""
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    exe = tesseract_cmd()
    durations: list[float] = []
    lock = threading.Lock()
    failed = 0

    def one(path: str) -> None:
        nonlocal failed
        t = time.perf_counter()
        proc = subprocess.run([exe, path, "stdout"], env=env, capture_output=True, check=False)
        with lock:
            durations.append(time.perf_counter() - t)
            failed += proc.returncode != 0

    monitor = ProcessTreeMonitor(interval_s=monitor_interval)
    t0 = time.perf_counter()
    with monitor, ThreadPoolExecutor(max_workers=processes) as pool:
        list(pool.map(one, files))
    wall = time.perf_counter() - t0
    peaks = monitor.peaks
    return RunRow(
        "cli",
        processes,
        0,
        wall,
        len(files),
        failed,
        durations,
        peaks.rss_total,
        peaks.hwm_total,
        peaks.pss_total,
        peaks.uss_total,
        peaks.fds_total,
        peaks.n_tesseract,
    )


def _ocrlab_row(
    out: Path, workers: int, repeat: int, engine: str, options: Mapping[str, Any]
) -> RunRow:
    summary = run(
        options["corpus"],
        out,
        workers=workers,
        engine=engine,
        live_view=False,
        **{k: v for k, v in options.items() if k != "corpus"},
    )
    page_s = [
        e["dur"] / 1e6
        for e in iter_trace(out / "trace.json")
        if e.get("ph") == "X" and e.get("cat") == ts.CAT_PAGE
    ]
    peaks = summary.peaks
    scores = score_run(out)
    return RunRow(
        "ocrlab",
        workers,
        repeat,
        summary.wall_s,
        summary.pages,
        summary.pages_failed,
        page_s,
        int(peaks.get("rss_total") or 0),
        int(peaks.get("hwm_total") or 0),
        int(peaks.get("pss_total") or 0),
        int(peaks.get("uss_total") or 0),
        int(peaks.get("fds_total") or 0),
        int(peaks.get("n_tesseract") or 0),
        summary.startup_s,
        engine=engine,
        cer=statistics.mean(s["cer"] for s in scores) if scores else None,
    )


def _digests(out: Path) -> dict[str, str | None]:
    return {d["doc_id"]: d["sha256"] for d in load_manifest(out)["documents"]}


def aggregate(rows: Sequence[RunRow]) -> list[dict[str, Any]]:
    """One line per (engine, worker count): medians over repeats, ratios against the same
    engine at 1 worker and against the Tesseract CLI at the same N."""
    ocr = [r for r in rows if r.kind == "ocrlab"]
    cli_rows = [r for r in rows if r.kind == "cli"]
    table = []
    for engine in dict.fromkeys(r.engine for r in ocr):
        mine_all = [r for r in ocr if r.engine == engine]
        counts = sorted({r.workers for r in mine_all})
        wall = {n: statistics.median(r.wall_s for r in mine_all if r.workers == n) for n in counts}
        base = wall.get(1)
        for n in counts:
            mine = [r for r in mine_all if r.workers == n]
            pages = mine[0].pages
            per_page = [s for r in mine for s in r.page_s]
            refs = [r for r in cli_rows if r.workers == n]
            cli_wall = statistics.median(r.wall_s for r in refs) if refs else None
            speedup = base / wall[n] if base else None
            cers = [r.cer for r in mine if r.cer is not None]
            table.append(
                {
                    "engine": engine,
                    "engine_version": engine_version(engine),
                    "workers": n,
                    "runs": len(mine),
                    "pages": pages,
                    "wall_s": round(wall[n], 3),
                    "wall_spread_s": round(
                        max(r.wall_s for r in mine) - min(r.wall_s for r in mine), 3
                    ),
                    "pages_per_s": round(pages / wall[n], 3),
                    "speedup": round(speedup, 3) if speedup else None,
                    "efficiency": round(speedup / n, 3) if speedup else None,
                    "page_median_s": round(statistics.median(per_page), 3) if per_page else None,
                    "page_p10_s": round(_percentile(per_page, 0.1), 3) if per_page else None,
                    "page_p90_s": round(_percentile(per_page, 0.9), 3) if per_page else None,
                    "peak_rss_mb": round(max(r.peak_rss for r in mine) / 2**20, 1),
                    "peak_hwm_mb": round(max(r.peak_hwm for r in mine) / 2**20, 1),
                    "peak_pss_mb": round(max(r.peak_pss for r in mine) / 2**20, 1),
                    "peak_uss_mb": round(max(r.peak_uss for r in mine) / 2**20, 1),
                    "peak_fds": max(r.peak_fds for r in mine),
                    "peak_tesseract": max(r.peak_tesseract for r in mine),
                    "startup_s": round(max(r.startup_s or 0 for r in mine), 3),
                    "identical": all(r.identical for r in mine if r.identical is not None),
                    "cer": round(statistics.mean(cers), 5) if cers else None,
                    "cli_wall_s": round(cli_wall, 3) if cli_wall else None,
                    "cli_peak_rss_mb": round(max(r.peak_rss for r in refs) / 2**20, 1)
                    if refs
                    else None,
                    "cli_peak_pss_mb": round(max(r.peak_pss for r in refs) / 2**20, 1)
                    if refs
                    else None,
                    "vs_cli": round(cli_wall / wall[n], 3) if cli_wall else None,
                }
            )
    return table


def format_table(table: Sequence[Mapping[str, Any]]) -> str:
    """A fixed-width table for the terminal."""
    cols = [
        ("engine", "engine"),
        ("workers", "N"),
        ("wall_s", "wall s"),
        ("pages_per_s", "pages/s"),
        ("speedup", "speedup"),
        ("efficiency", "effic."),
        ("page_median_s", "page med s"),
        ("page_p90_s", "page p90 s"),
        ("peak_rss_mb", "RSS MB"),
        ("peak_pss_mb", "PSS MB"),
        ("peak_fds", "fds"),
        ("peak_tesseract", "tess"),
        ("identical", "same"),
        ("cer", "CER"),
        ("cli_wall_s", "CLI s"),
        ("vs_cli", "vs CLI"),
    ]
    head = " ".join(f"{label:>10}" for _, label in cols)
    lines = [head, "-" * len(head)]
    for row in table:
        lines.append(" ".join(f"{_fmt(row.get(key)):>10}" for key, _ in cols))
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    return f"{value:g}" if isinstance(value, float) else str(value)


def bench(
    corpus: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    workers: Sequence[int] = (1, 2),
    repeats: int = 3,
    engines: Sequence[str] = ("pytesseract",),
    cli_reference: bool = True,
    log: Callable[[str], None] = print,
    **options: Any,
) -> dict[str, Any]:
    """Run the sweep; write ``bench.json``, ``bench.csv`` and ``runs.csv`` into ``out_dir``.

    Each engine's output is compared with the same engine's 1-worker run (two
    engines on different libtesseract versions may read a character differently;
    the ``cer`` column shows it against ground truth where there is some).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = sorted(set(workers))
    if counts[0] != 1:
        counts = [1, *counts]  # speedup and identity need the 1-worker baseline
    options.pop("engine", None)  # engines are swept, not configured
    cfg = load_config(**options)
    # One bar over the runs ("run 3/8: ..."), each run's own bar beneath it.
    shown = progress_enabled(cfg)
    opts = {"corpus": os.fspath(corpus), **options, "progress": shown}
    rows: list[RunRow] = []
    reference: dict[str, dict[str, str | None]] = {}
    total = repeats * len(counts) * len(engines)
    with (
        tempfile.TemporaryDirectory(prefix="ocrlab-bench-") as tmp,
        sweep_progress(total, shown) as step,
    ):
        cli_files = (
            prepare_cli_pages(os.fspath(corpus), Path(tmp), cfg.dpi) if cli_reference else []
        )
        for r in range(repeats):
            for n in _order(counts, r):
                msg = f"repeat {r + 1}/{repeats}, {n} worker(s):"
                for engine in engines:
                    step(f"{engine}, {n} worker(s), repeat {r + 1}/{repeats}")
                    run_dir = out / "runs" / f"{engine}-w{n}-r{r}"
                    shutil.rmtree(run_dir, ignore_errors=True)
                    row = _ocrlab_row(run_dir, n, r, engine, opts)
                    if n == 1 and engine not in reference:
                        reference[engine] = _digests(run_dir)
                    rows.append(row)
                    msg += (
                        f" {engine} {row.wall_s:.2f} s ({row.pages / row.wall_s:.2f} "
                        f"pages/s, peak {row.peak_rss / 2**20:.0f} MB);"
                    )
                if cli_reference:  # right after, so both see the same machine state
                    ref = run_cli_reference(cli_files, n, cfg.monitor_interval or 0.1)
                    ref.repeat = r
                    rows.append(ref)
                    msg += f" CLI x{n} {ref.wall_s:.2f} s"
                log(msg)
        for row in rows:
            if row.kind == "ocrlab" and row.engine in reference:
                row.identical = (
                    _digests(out / "runs" / f"{row.engine}-w{row.workers}-r{row.repeat}")
                    == reference[row.engine]
                )
    table = aggregate(rows)
    result = {
        "meta": run_metadata(cfg),
        "corpus": os.fspath(corpus),
        "repeats": repeats,
        "engines": list(engines),
        "table": table,
        "runs": [asdict(r) for r in rows],
    }
    (out / "bench.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    with open(out / "bench.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    with open(out / "runs.csv", "w", newline="", encoding="utf-8") as fh:
        fields = [k for k in asdict(rows[0]) if k != "page_s"]
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    return result
