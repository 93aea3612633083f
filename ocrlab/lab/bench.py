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

Every run (ocrlab's and the CLI's) records how busy the machine was while it ran
(:mod:`ocrlab.lab.noise`); the table carries each figure's interval over the repeats
(:mod:`ocrlab.lab.bench_table`), and ``bench.json`` each engine's output digests, which
``--compare`` checks exactly (:mod:`ocrlab.lab.regress`).
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
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..config import load_config
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
from .bench_table import RunRow, aggregate, format_table, page_key
from .noise import NoiseProbe, summarize

__all__ = ["RunRow", "aggregate", "bench", "format_table", "prepare_cli_pages"]


def _order(counts: Sequence[int], repeat: int) -> list[int]:
    """Ascending on even repeats, descending on odd ones."""
    return list(counts) if repeat % 2 == 0 else list(reversed(counts))


def prepare_cli_pages(corpus: str, dest: Path, dpi: int) -> list[tuple[str, str]]:
    """(``doc_id#page``, a file the Tesseract CLI can read) for every good page, in
    document/page order."""
    settings = load_config(dpi=dpi).engine_settings()
    files: list[tuple[str, str]] = []
    for doc in discover([corpus]):
        for task in doc.tasks:
            key = page_key(task.doc_id, task.page)
            try:
                with page_source(task, settings) as (src, _, _):
                    if src == task.path:
                        files.append((key, src))
                    else:
                        name = f"{len(files):04d}{Path(src).suffix}"
                        shutil.copy(src, dest / name)
                        files.append((key, str(dest / name)))
            except Exception:
                continue  # broken pages are not part of the reference
    return files


def run_cli_reference(
    files: Sequence[tuple[str, str]], processes: int, monitor_interval: float
) -> RunRow:
    """``xargs -P N tesseract FILE stdout``: N single-threaded Tesseract processes at a time."""
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    exe = tesseract_cmd()
    durations: dict[str, float] = {}
    lock = threading.Lock()
    failed = 0

    def one(item: tuple[str, str]) -> None:
        nonlocal failed
        key, path = item
        t = time.perf_counter()
        proc = subprocess.run([exe, path, "stdout"], env=env, capture_output=True, check=False)
        with lock:
            durations[key] = time.perf_counter() - t
            failed += proc.returncode != 0

    monitor = ProcessTreeMonitor(interval_s=monitor_interval)
    t0 = time.perf_counter()
    with NoiseProbe() as probe, monitor, ThreadPoolExecutor(max_workers=processes) as pool:
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
        list(durations.values()),
        peaks.rss_total,
        peaks.hwm_total,
        peaks.pss_total,
        peaks.uss_total,
        peaks.fds_total,
        peaks.n_tesseract,
        page_times=durations,
        noise=probe.reading.as_dict() if probe.reading else None,
    )


def _ocrlab_row(
    out: Path, workers: int, repeat: int, engine: str, options: Mapping[str, Any]
) -> RunRow:
    with NoiseProbe() as probe:
        summary = run(
            options["corpus"],
            out,
            workers=workers,
            engine=engine,
            live_view=False,
            **{k: v for k, v in options.items() if k != "corpus"},
        )
    page_times: dict[str, float] = {}
    cpu_s = 0.0
    for e in iter_trace(out / "trace.json"):
        if e.get("ph") == "X" and e.get("cat") == ts.CAT_PAGE:
            key = page_key(e["args"]["doc_id"], e["args"]["page"])
            page_times[key] = page_times.get(key, 0.0) + e["dur"] / 1e6  # a retry adds
            cpu_s += e["args"].get("engine_cpu_us", 0) / 1e6
    peaks = summary.peaks
    scores = score_run(out)
    return RunRow(
        "ocrlab",
        workers,
        repeat,
        summary.wall_s,
        summary.pages,
        summary.pages_failed,
        list(page_times.values()),
        int(peaks.get("rss_total") or 0),
        int(peaks.get("hwm_total") or 0),
        int(peaks.get("pss_total") or 0),
        int(peaks.get("uss_total") or 0),
        int(peaks.get("fds_total") or 0),
        int(peaks.get("n_tesseract") or 0),
        summary.startup_s,
        engine=engine,
        cer=statistics.mean(s["cer"] for s in scores) if scores else None,
        page_times=page_times,
        engine_cpu_s=round(cpu_s, 4),
        noise=probe.reading.as_dict() if probe.reading else None,
    )


def run_folder(out_dir: str | os.PathLike[str], engine: str, workers: int, repeat: int) -> Path:
    """Where :func:`bench` keeps the output folder of one of its runs."""
    return Path(out_dir) / "runs" / f"{engine}-w{workers}-r{repeat}"


def run_folders(
    out_dir: str | os.PathLike[str], result: Mapping[str, Any], repeat: int = 0
) -> list[Path]:
    """The output folders of a sweep's runs of one repeat, in the table's order (engine,
    then workers): what :func:`ocrlab.lab.widgets.show_comparison` compares."""
    return [
        run_folder(out_dir, row["engine"], row["workers"], repeat)
        for row in result["table"]
        if run_folder(out_dir, row["engine"], row["workers"], repeat).is_dir()
    ]


def _digests(out: Path) -> dict[str, str | None]:
    return {d["doc_id"]: d["sha256"] for d in load_manifest(out)["documents"]}


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
                    run_dir = run_folder(out, engine, n, r)
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
                if rows[-1].noise:
                    msg += f" (other processes: {rows[-1].noise['other_share']:.0%} of the CPUs)"
                log(msg)
        for row in rows:
            if row.kind == "ocrlab" and row.engine in reference:
                row.identical = (
                    _digests(run_folder(out, row.engine, row.workers, row.repeat))
                    == reference[row.engine]
                )
    table = aggregate(rows)
    noise = summarize(r.noise for r in rows if r.noise)  # its warning: noise["warning"]
    result = {
        "meta": run_metadata(cfg),
        "corpus": os.fspath(corpus),
        "repeats": repeats,
        "engines": list(engines),
        "table": table,
        "noise": noise.as_dict() if noise else None,
        #: each engine's output digests (its first 1-worker run): what --compare checks
        "digests": reference,
        "runs": [asdict(r) for r in rows],
    }
    (out / "bench.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    with open(out / "bench.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    with open(out / "runs.csv", "w", newline="", encoding="utf-8") as fh:
        fields = [k for k in asdict(rows[0]) if k not in ("page_s", "page_times", "noise")]
        writer = csv.DictWriter(fh, fieldnames=[*fields, "other_share"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(
            {**asdict(r), "other_share": r.noise["other_share"] if r.noise else None} for r in rows
        )
    return result
