"""Lighter workers, a fast start and honest memory: what runs where, and what it costs."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from unittest import mock

import psutil
import pytest

import ocrlab
from ocrlab.executor import ProcessPoolExecutor
from ocrlab.measure.monitor import ProcessTreeMonitor
from ocrlab.measure.pss import read_rollup, tree_rollup
from ocrlab.output.trace_reader import load_trace
from ocrlab.records import EngineSettings, PageTask
from ocrlab.warmup import page_bound
from ocrlab.worker import ocr_page
from tests.conftest import make_page

#: Imported by nothing a worker needs; each costs every worker 10-30 MB.
HEAVY = ("numpy", "pandas", "joblib", "matplotlib", "tqdm", "ocrlab.pipeline", "ocrlab.lab")


def _modules() -> list[str]:
    return sorted(sys.modules)


def test_worker_imports_no_heavy_modules(tmp_path: Path) -> None:
    """A real loky worker after a real page: no NumPy, pandas, joblib; nor its tracker."""
    page = make_page(tmp_path / "p.png", "light workers")
    pool = ProcessPoolExecutor(max_workers=1)
    try:
        result = pool.submit(
            ocr_page, PageTask("p.png", str(page), 1, 1, "png"), EngineSettings()
        ).result(timeout=120)
        assert result.ok and "light" in (result.text or "")
        modules = pool.submit(_modules).result(timeout=60)
        trackers = [
            " ".join(p.cmdline())
            for p in psutil.Process().children(recursive=True)
            if "resource_tracker" in " ".join(p.cmdline())
        ]
    finally:
        pool.shutdown(wait=True)
    assert "pytesseract" in modules and "PIL.Image" in modules  # the page really ran here
    loaded = [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert loaded == [], f"heavy modules in a worker: {loaded[:10]}"
    assert trackers and not any("joblib" in t for t in trackers), trackers


def test_page_bound_stops_at_the_limit(tmp_path: Path) -> None:
    for i in range(5):
        make_page(tmp_path / "in" / f"p{i}.png", str(i))
    (tmp_path / "in" / "notes.txt").write_text("not a page")
    assert page_bound([str(tmp_path / "in")], 2) == 2
    assert page_bound([str(tmp_path / "in")], 64) == 5
    assert page_bound([str(tmp_path / "in" / "p0.png"), str(tmp_path / "missing")], 8) == 1


def test_no_more_workers_than_pages(tmp_path: Path) -> None:
    make_page(tmp_path / "one.png", "one page")
    with mock.patch("ocrlab.executor.ProcessPoolExecutor", side_effect=ProcessPoolExecutor) as spy:
        summary = ocrlab.run(
            tmp_path / "one.png",
            tmp_path / "out",
            workers=3,
            engine="ocrlab.engines.fakes:echo",
            progress=False,
            monitor_interval=0,
        )
    spy.assert_called_once_with(max_workers=1)
    assert summary.workers == 1 and summary.documents_ok == 1


def test_pool_is_warm_before_the_first_page(tmp_path: Path) -> None:
    """The warm-up starts the workers at pool creation: the first page does not wait for
    a worker to start (generous bound: the machine may be loaded)."""
    for i in range(2):
        make_page(tmp_path / "in" / f"p{i}.png", str(i))
    summary = ocrlab.run(
        tmp_path / "in",
        tmp_path / "out",
        workers=2,
        engine="ocrlab.engines.fakes:echo",
        progress=False,
        monitor_interval=0,
    )
    events = load_trace(tmp_path / "out" / "trace.json")
    pages = [e for e in events if e.get("cat") == "page"]
    assert len(pages) == 2 and summary.startup_s is not None
    assert summary.first_page_s is not None and 0 < summary.first_page_s < 10
    meta = next(e for e in events if e.get("name") == "run_metadata")["args"]
    assert isinstance(meta["t0_monotonic_ns"], int)
    # Both pages started within a few seconds of the run's start (no per-page spawn).
    assert max(e["ts"] for e in pages) < 10e6


def test_rollup_of_this_process() -> None:
    rollup = read_rollup(os.getpid())
    if rollup is None:
        pytest.skip("no /proc/PID/smaps_rollup on this kernel")
    assert 0 < rollup.uss <= rollup.pss <= rollup.rss
    assert read_rollup(2**22 + 7) is None  # no such process
    assert tree_rollup([2**22 + 7]) is None


def test_monitor_reports_pss_beside_rss() -> None:
    monitor = ProcessTreeMonitor(interval_s=0.05, pss_every=2)
    if monitor.pss_every == 0:
        pytest.skip("no smaps_rollup")
    first, second = monitor.sample(), monitor.sample()
    assert first.pss_total is not None and second.pss_total is None  # every 2nd sample
    assert first.uss_total is not None and 0 < first.uss_total <= first.pss_total
    assert first.pss_total <= first.rss_total
    now = monitor.tree_pss_now()
    assert now is not None and monitor.latest_pss == now
    peaks = monitor.stop()
    assert peaks.pss_total > 0 and peaks.pss_samples >= 2 and peaks.pss_overhead_s >= 0
    assert ProcessTreeMonitor(pss_every=0).sample().pss_total is None


def test_run_summary_and_trace_show_pss(tmp_path: Path) -> None:
    for i in range(3):
        make_page(tmp_path / "in" / f"p{i}.png", str(i))
    summary = ocrlab.run(
        tmp_path / "in",
        tmp_path / "out",
        workers=2,
        progress=False,
        engine="ocrlab.engines.fakes:sleepy",
        engine_options={"sleep": 0.2},
        monitor_interval=0.02,
    )
    if not summary.peaks.get("pss_total"):
        pytest.skip("no smaps_rollup")
    assert summary.peaks["pss_total"] <= summary.peaks["rss_total"]
    assert "MB PSS" in summary.memory_line() and "MB RSS" in summary.memory_line()
    counters = [
        e
        for e in load_trace(tmp_path / "out" / "trace.json")
        if e.get("ph") == "C" and e["name"] == "memory (MB)"
    ]
    assert any("tree PSS" in e["args"] and "tree USS" in e["args"] for e in counters)


def test_pool_keeps_light_workers_when_joblib_is_imported_too() -> None:
    """joblib's copy of loky registers the same context name; the pool must not use it."""
    import joblib.externals.loky  # noqa: F401 - imported after ocrlab's pool: takes the name

    pool = ProcessPoolExecutor(max_workers=1)
    try:
        modules = pool.submit(eval, "sorted(__import__('sys').modules)").result(timeout=60)
    finally:
        pool.shutdown(wait=True)
    assert "joblib" not in modules and "numpy" not in modules


def test_one_page_runs_in_process_without_a_pool(tmp_path: Path) -> None:
    """One page with the default engine: no worker to start, Tesseract is its own process."""
    page = make_page(tmp_path / "one.png", "Hello one page")
    with mock.patch("ocrlab.executor.ProcessPoolExecutor") as pool:
        summary = ocrlab.run(page, tmp_path / "out", workers=2, progress=False)
    pool.assert_not_called()
    assert summary.workers == 1 and summary.sequential and summary.documents_ok == 1
    assert "Hello" in (tmp_path / "out" / "text" / "one.png.txt").read_text()
    pages = [e for e in load_trace(tmp_path / "out" / "trace.json") if e.get("cat") == "page"]
    assert pages[0]["args"]["engine_cpu_us"] > 0  # Tesseract's own CPU time, per page
