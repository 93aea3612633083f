"""The process-tree monitor against real processes, and the start-up memory bound."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ocrlab
from ocrlab import ConfigError
from ocrlab.artifacts import load_manifest
from ocrlab.config import load_config
from ocrlab.monitor import ProcessTreeMonitor, fd_limit
from ocrlab.runinfo import check_memory
from tests.conftest import make_page

ALLOCATE = """
import sys
block = bytearray(200 * 2**20)
block[::4096] = b"x" * len(block[::4096])
print("ready", flush=True)
sys.stdin.readline()
"""


def test_child_allocation_is_seen() -> None:
    monitor = ProcessTreeMonitor(interval_s=0.05)
    baseline = monitor.sample().rss_total
    child = subprocess.Popen([sys.executable, "-c", ALLOCATE], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        seen = monitor.sample()
        assert seen.rss_total - baseline > 150 * 2**20
        mine = [row for row in seen.per_process if row[0] == child.pid]
        assert mine and mine[0][2] > 150 * 2**20
        assert monitor.peaks.hwm_total >= seen.rss_total
    finally:
        child.communicate("\n", timeout=30)
    after = monitor.sample()
    assert after.rss_total - baseline < 50 * 2**20, "the child's memory is gone once it exits"
    assert monitor.peaks.rss_total >= seen.rss_total


def test_descriptor_counts_follow_open_files(tmp_path: Path) -> None:
    monitor = ProcessTreeMonitor()
    before = monitor.sample().fds_main
    files = [open(tmp_path / f"f{i}", "w") for i in range(50)]  # noqa: SIM115
    try:
        assert monitor.sample().fds_main >= before + 50
    finally:
        for fh in files:
            fh.close()
    assert monitor.sample().fds_main <= before + 2
    assert monitor.peaks.fd_limit == fd_limit() > 0


def _tesseract_waiting() -> subprocess.Popen[bytes]:
    """A real Tesseract process blocked reading its image from stdin."""
    return subprocess.Popen(["tesseract", "stdin", "stdout"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_counts_live_tesseract_processes_not_zombies() -> None:
    monitor = ProcessTreeMonitor()
    procs = [_tesseract_waiting(), _tesseract_waiting()]
    try:
        deadline = time.monotonic() + 10
        while monitor.sample().n_tesseract < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert monitor.sample().n_tesseract == 2
        procs[0].send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while monitor.sample().n_tesseract != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        # procs[0] is now a zombie (exited, not reaped): it must not count as live.
        with open(f"/proc/{procs[0].pid}/stat") as fh:
            assert fh.read().split(") ")[1][0] == "Z"
        assert monitor.sample().n_tesseract == 1
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    assert monitor.sample().n_tesseract == 0
    assert monitor.peaks.n_tesseract == 2


def test_thread_samples_periodically_and_cheaply() -> None:
    monitor = ProcessTreeMonitor(interval_s=0.05)
    with monitor:
        time.sleep(1.0)
    n = len(monitor.samples)
    assert n >= 5
    assert monitor.stop().samples == n  # idempotent: no new sample, same peaks
    assert monitor.overhead_s < 0.05 * 1.0 * 2  # < 10% of one core: generous on a busy box
    stamps = [s.t_ns for s in monitor.samples]
    assert stamps == sorted(stamps)


def test_callback_errors_do_not_stop_sampling() -> None:
    calls = []

    def bad(sample: object) -> None:
        calls.append(sample)
        raise RuntimeError("boom")

    with ProcessTreeMonitor(interval_s=0.02, on_sample=bad) as monitor:
        time.sleep(0.3)
    assert len(calls) >= 3 and len(monitor.samples) == len(calls)


@pytest.mark.slow
def test_live_tesseract_bounded_under_many_groups(tmp_path: Path) -> None:
    """The plan's known risk: 10 groups x 2 workers must not mean 20 Tesseracts."""
    groups = []
    for g in range(10):
        for p in range(2):
            make_page(tmp_path / f"g{g}" / f"p{p}.png", f"Group {g} page {p} text", (900, 200))
        groups.append(ocrlab.Group(f"g{g}", (str(tmp_path / f"g{g}"),)))
    context = ocrlab.RunContext(tuple(groups), str(tmp_path / "out"))
    summary = ocrlab.run_groups(context, {"ocr_workers": 2, "monitor_interval": 0.01,
                                          "progress": False})
    assert summary.documents_ok == 20
    assert 1 <= summary.peaks["n_tesseract"] <= 2
    # The counters in the trace say the same, sample by sample.
    from ocrlab.trace import load_trace

    counts = [e["args"]["tesseract"] for e in load_trace(tmp_path / "out" / "trace.json")
              if e["ph"] == "C" and e["name"] == "live tesseract processes"]
    assert counts and max(counts) <= 2


def test_memory_bound_refuses_too_many_workers(tmp_path: Path) -> None:
    cfg = load_config({"workers": 4, "memory_budget_mb": 600, "memory_per_worker_mb": 200},
                      env={})
    with pytest.raises(ConfigError, match=r"workers=4 need about 950 MB .* at most 2 worker"):
        check_memory(cfg)
    check_memory(load_config({"workers": 2, "memory_budget_mb": 600,
                              "memory_per_worker_mb": 200}, env={}))
    check_memory(load_config({"workers": 8, "memory_budget_mb": 100},
                             env={"OCR_MAX_WORKERS": "1"}))  # sequential: no pool to size
    (tmp_path / "in").mkdir()
    with pytest.raises(ConfigError):
        ocrlab.run(tmp_path / "in", tmp_path / "out", workers=4, memory_budget_mb=600,
                   memory_per_worker_mb=200)
    assert not (tmp_path / "out").exists()


def test_run_records_peaks(small_pages: list[Path], tmp_path: Path) -> None:
    summary = ocrlab.run(small_pages[0].parent.parent, tmp_path / "o", workers=2,
                         engine="ocrlab.fakes:sleepy", engine_options={"sleep": 0.1},
                         monitor_interval=0.02, progress=False)
    peaks = summary.peaks
    assert peaks["samples"] >= 3
    assert peaks["rss_total"] > peaks["rss_main"] > 0  # the workers are counted
    assert peaks["n_procs"] >= 3  # main + 2 workers at least
    pids = {p["pid"] for p in peaks["at_peak"]}
    assert os.getpid() in pids and len(pids) >= 3  # where the memory went, process by process
    manifest = load_manifest(tmp_path / "o")
    assert manifest["summary"]["peaks"]["rss_total"] == peaks["rss_total"]
    assert os.getpid() == manifest["run"]["pid"]
