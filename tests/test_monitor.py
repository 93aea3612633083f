"""The process-tree monitor against real processes (no mocks), and the start-up memory bound.

Bounds are generous on purpose (a loaded 2-core CI box): memory is asserted
with 50 MB of slack on a 200 MB allocation, waits poll against 10-30 s
deadlines, and the sampler's cost against 5 % of wall time when it measures
well under 1 %.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

import ocrlab
from ocrlab import ConfigError
from ocrlab.config import load_config
from ocrlab.measure.host import (
    available_memory,
    cgroup_memory_limit,
    cgroup_memory_peak,
    fd_limit,
)
from ocrlab.measure.monitor import Peaks, ProcessTreeMonitor, Sample
from ocrlab.measure.proctree import _walk_proc, _walk_psutil
from ocrlab.output.manifest import load_manifest
from ocrlab.runinfo import check_memory
from tests.conftest import make_page

MB = 2**20

# Allocates and touches 200 MB, says so, holds it until a line arrives on stdin.
HOLD = """
import sys
block = bytearray(200 * 2**20)
block[::4096] = b"x" * len(block[::4096])
print("ready", flush=True)
sys.stdin.readline()
"""

# Allocates and touches 200 MB, frees it (munmap: RSS falls back), then says so and waits:
# a spike no sample can see, which only the kernel's VmHWM remembers.
SPIKE = """
import sys
block = bytearray(200 * 2**20)
block[::4096] = b"x" * len(block[::4096])
del block
print("ready", flush=True)
sys.stdin.readline()
"""

# Starts two Tesseracts of its own (grandchildren of the test), prints their pids, waits.
PARENT_OF_TESSERACTS = """
import subprocess, sys
ps = [subprocess.Popen(["tesseract", "stdin", "stdout"], stdin=subprocess.PIPE,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
print(" ".join(str(p.pid) for p in ps), flush=True)
sys.stdin.readline()
for p in ps:
    p.kill()
    p.wait()
"""


def _python(script: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def _tesseract_waiting() -> subprocess.Popen[bytes]:
    """A real Tesseract process blocked reading its image from stdin."""
    return subprocess.Popen(
        ["tesseract", "stdin", "stdout"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _finish(proc: subprocess.Popen[str]) -> None:
    if proc.returncode is not None:
        return
    try:
        proc.communicate("\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _until(
    monitor: ProcessTreeMonitor, ok: Callable[[Sample], bool], timeout: float = 15.0
) -> Sample:
    """Sample until ``ok`` holds (or the deadline passes); the last sample."""
    deadline = time.monotonic() + timeout
    s = monitor.sample()
    while not ok(s) and time.monotonic() < deadline:
        time.sleep(0.05)
        s = monitor.sample()
    return s


@pytest.fixture
def child_holding_200mb() -> Iterator[subprocess.Popen[str]]:
    child = _python(HOLD)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        yield child
    finally:
        _finish(child)


# ---------------------------------------------------------------------------- memory


def test_child_allocation_is_seen_by_the_thread_and_the_peaks() -> None:
    baseline = ProcessTreeMonitor().sample().rss_total
    monitor = ProcessTreeMonitor(interval_s=0.05).start()
    child = _python(HOLD)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        seen = _until(monitor, lambda s: s.rss_total - baseline > 150 * MB)
        assert seen.rss_total - baseline > 150 * MB, "the child's 200 MB is in the tree's RSS"
        mine = [row for row in seen.per_process if row[0] == child.pid]
        assert mine and mine[0][1].startswith("python")
        assert mine[0][2] > 150 * MB and mine[0][3] >= 3  # rss, fds (stdin/out/err at least)
        deadline = time.monotonic() + 15  # the thread itself catches it too
        while monitor.peaks.samples < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        _finish(child)
    after = monitor.sample()
    assert after.rss_total - baseline < 50 * MB, "the child's memory is gone once it exits"
    assert child.pid not in {row[0] for row in after.per_process}
    peaks = monitor.stop()
    assert peaks.rss_total - baseline > 150 * MB
    assert peaks.rss_total >= seen.rss_total and peaks.rss_main > 0
    assert peaks.hwm_total >= peaks.rss_total - 10 * MB  # VmHWM bounds RSS from above
    assert peaks.hwm_max > 150 * MB
    assert child.pid in {row[0] for row in peaks.at_peak}
    if peaks.cgroup_peak is not None:  # the child is charged to our cgroup
        assert peaks.cgroup_peak > 150 * MB


def test_high_water_mark_catches_a_spike_between_samples() -> None:
    """The child peaks at 200 MB and frees it before any sample: only VmHWM knows."""
    monitor = ProcessTreeMonitor()
    baseline = monitor.sample().rss_total
    child = _python(SPIKE)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        s = monitor.sample()
        assert child.pid in {row[0] for row in s.per_process}
        assert s.rss_total - baseline < 100 * MB, "the sampler never saw the 200 MB"
        peaks = monitor.peaks
        assert peaks.rss_total - baseline < 100 * MB
        assert peaks.hwm_max > 150 * MB, "but the kernel's high-water mark did"
        assert peaks.hwm_total - baseline > 150 * MB
    finally:
        _finish(child)


# ---------------------------------------------------------------------------- descriptors


def test_descriptor_counts_follow_open_files(tmp_path: Path) -> None:
    monitor = ProcessTreeMonitor()
    before = monitor.sample()
    files = [open(tmp_path / f"f{i}", "w") for i in range(50)]  # noqa: SIM115
    try:
        during = monitor.sample()
        assert during.fds_main >= before.fds_main + 50
        assert during.fds_total >= before.fds_total + 50
    finally:
        for fh in files:
            fh.close()
    after = monitor.sample()
    assert after.fds_main <= before.fds_main + 2
    assert monitor.peaks.fds_main >= before.fds_main + 50
    assert monitor.peaks.fd_limit == fd_limit() > 0


def test_child_descriptors_count_in_the_tree(child_holding_200mb: subprocess.Popen[str]) -> None:
    s = ProcessTreeMonitor().sample()
    row = next(r for r in s.per_process if r[0] == child_holding_200mb.pid)
    assert row[3] == len(os.listdir(f"/proc/{child_holding_200mb.pid}/fd"))
    assert s.fds_total >= s.fds_main + row[3]


# ---------------------------------------------------------------------------- tesseract


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


def test_counts_live_tesseract_processes_not_zombies() -> None:
    monitor = ProcessTreeMonitor()
    assert monitor.sample().n_tesseract == 0
    procs = [_tesseract_waiting(), _tesseract_waiting()]
    try:
        s = _until(monitor, lambda s: s.n_tesseract >= 2)
        assert s.n_tesseract == 2
        assert {p.pid for p in procs} <= {row[0] for row in s.per_process if row[1] == "tesseract"}
        procs[0].send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 15
        while _state(procs[0].pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.05)
        # procs[0] exited and is not reaped: a zombie, listed by psutil, not live.
        assert _state(procs[0].pid) == "Z"
        assert procs[0].pid in {p.pid for p in psutil.Process().children()}
        s = monitor.sample()
        assert s.n_tesseract == 1
        assert procs[0].pid not in {row[0] for row in s.per_process}
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    assert monitor.sample().n_tesseract == 0
    assert monitor.peaks.n_tesseract == 2


def test_grandchildren_and_a_chosen_root() -> None:
    """Tesseracts started by a child (as loky workers do) count; root_pid picks a subtree."""
    parent = _python(PARENT_OF_TESSERACTS)
    try:
        assert parent.stdout is not None
        tess = {int(p) for p in parent.stdout.readline().split()}
        assert len(tess) == 2
        whole = _until(ProcessTreeMonitor(), lambda s: s.n_tesseract >= 2)
        assert whole.n_tesseract == 2 and whole.n_procs >= 4
        assert tess <= {row[0] for row in whole.per_process}

        sub = ProcessTreeMonitor(root_pid=parent.pid)
        s = _until(sub, lambda s: s.n_tesseract >= 2)
        assert (s.n_procs, s.n_tesseract) == (3, 2)
        assert s.per_process[0][0] == parent.pid and s.rss_main == s.per_process[0][2] > 0
        assert os.getpid() not in {row[0] for row in s.per_process}
    finally:
        _finish(parent)
    gone = sub.sample()  # the root itself vanished: an empty sample, not an exception
    assert (gone.n_procs, gone.rss_total, gone.n_tesseract) == (0, 0, 0)
    assert sub.stop().n_tesseract == 2


def test_children_started_by_other_threads_are_seen() -> None:
    """A child is listed under the thread that forked it (pool threads start Tesseracts)."""
    started, done = threading.Event(), threading.Event()
    box: list[subprocess.Popen[bytes]] = []

    def spawn() -> None:
        box.append(_tesseract_waiting())
        started.set()
        done.wait(60)

    thread = threading.Thread(target=spawn, daemon=True)
    thread.start()
    try:
        assert started.wait(30)
        children = Path(f"/proc/{os.getpid()}/task/{thread.native_id}/children")
        if children.exists():  # the case this test is about: not under the main thread
            assert str(box[0].pid) in children.read_text().split()
        s = _until(ProcessTreeMonitor(), lambda s: s.n_tesseract >= 1)
        assert s.n_tesseract == 1 and box[0].pid in {row[0] for row in s.per_process}
    finally:
        done.set()
        thread.join(30)
        for proc in box:
            proc.kill()
            proc.wait()


def test_tesseract_names_are_configurable() -> None:
    proc = _tesseract_waiting()
    try:
        assert _until(ProcessTreeMonitor(), lambda s: s.n_tesseract >= 1).n_tesseract == 1
        other = ProcessTreeMonitor(tesseract_names=("python", "/usr/local/bin/no-such-ocr"))
        s = other.sample()
        assert s.n_tesseract == sum(1 for row in s.per_process if row[1] == "python") >= 1
        long_name = ProcessTreeMonitor(tesseract_names=("tesseract-with-a-long-name",))
        assert "tesseract-with-" in long_name.tesseract_names  # the kernel's 15-byte comm
    finally:
        proc.kill()
        proc.wait()


def test_proc_walk_agrees_with_psutil(child_holding_200mb: subprocess.Popen[str]) -> None:
    """The fast /proc walk and the portable psutil fallback see the same live tree."""
    tess = _tesseract_waiting()
    try:
        root = psutil.Process()
        fast = {r.pid: r for r in _walk_proc(root.pid)}
        slow = {r.pid: r for r in _walk_psutil(root)}
        assert fast.keys() == slow.keys() >= {os.getpid(), child_holding_200mb.pid, tess.pid}
        big = child_holding_200mb.pid
        assert abs(fast[big].rss - slow[big].rss) < 20 * MB
        assert fast[big].fds == slow[big].fds and fast[big].name == slow[big].name
        assert fast[big].hwm >= fast[big].rss > 150 * MB and slow[big].hwm == 0
    finally:
        tess.kill()
        tess.wait()


# ---------------------------------------------------------------------------- the thread


def test_thread_samples_periodically_and_cheaply() -> None:
    monitor = ProcessTreeMonitor(interval_s=0.1)
    t0 = time.monotonic()
    with monitor:
        assert monitor.start() is monitor  # idempotent: no second thread
        time.sleep(1.0)
    wall = time.monotonic() - t0
    samples = monitor.samples
    n = len(samples)
    assert n >= 5  # ~11 expected: 10 from the thread + the one stop() takes
    assert [t.name for t in threading.enumerate()].count("ocrlab-monitor") == 0
    peaks = monitor.stop()  # idempotent: no new sample, same peaks
    assert peaks.samples == n == len(monitor.samples)
    assert isinstance(peaks, Peaks) and peaks.rss_total > 0 and peaks.n_procs >= 1
    stamps = [s.t_ns for s in samples]
    assert stamps == sorted(stamps)
    gaps = [(b - a) / 1e9 for a, b in itertools.pairwise(stamps[:-1])]  # the last: stop()'s
    assert statistics.median(gaps) >= 0.05  # on the 0.1 s grid, not a busy loop
    assert 0 < monitor.overhead_s < 0.05 * wall  # < 5 % of one core; measured ~0.5 %
    assert 0 < monitor.overhead_per_sample_s < 0.05
    assert peaks.overhead_s == pytest.approx(monitor.overhead_s, abs=1e-5)
    monitor.start()  # a stopped monitor stays stopped
    time.sleep(0.25)
    assert len(monitor.samples) == n


def test_stop_without_start_takes_one_sample() -> None:
    monitor = ProcessTreeMonitor()
    peaks = monitor.stop()
    assert peaks.samples == 1 and monitor.overhead_s == 0.0
    assert monitor.stop() == peaks


def test_callback_gets_every_sample_and_its_errors_do_not_stop_sampling() -> None:
    calls: list[Sample] = []

    def bad(sample: Sample) -> None:
        calls.append(sample)
        raise RuntimeError("boom")

    with ProcessTreeMonitor(interval_s=0.02, on_sample=bad) as monitor:
        time.sleep(0.3)
    assert len(calls) >= 3 and monitor.samples == calls


def test_max_samples_bounds_the_history_not_the_peaks(
    child_holding_200mb: subprocess.Popen[str],
) -> None:
    monitor = ProcessTreeMonitor(max_samples=3)
    first = monitor.sample()
    _finish(child_holding_200mb)
    for _ in range(5):
        monitor.sample()
    assert len(monitor.samples) == 3 and first not in monitor.samples
    assert monitor.peaks.samples == 6 and monitor.peaks.rss_total == first.rss_total


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        ProcessTreeMonitor(interval_s=0)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with pytest.raises(psutil.NoSuchProcess):
        ProcessTreeMonitor(root_pid=dead.pid)


def test_as_dict_is_json_ready() -> None:
    with ProcessTreeMonitor(interval_s=0.02) as monitor:
        time.sleep(0.1)
    out = json.loads(json.dumps(monitor.stop().as_dict()))
    assert out["samples"] >= 1 and out["fd_limit"] == fd_limit()
    assert {
        "rss_total",
        "rss_main",
        "fds_total",
        "fds_main",
        "n_tesseract",
        "n_procs",
        "hwm_total",
        "cgroup_peak",
        "fd_limit",
        "samples",
        "overhead_s",
    } <= out.keys()
    assert os.getpid() in {p["pid"] for p in out["at_peak"]}


def test_host_figures() -> None:
    assert available_memory() > 0
    limit = cgroup_memory_limit()
    assert limit is None or limit > 0
    peak = cgroup_memory_peak()
    assert peak is None or peak > 0
    assert fd_limit() > 0


# ---------------------------------------------------------------------------- in the pipeline


@pytest.mark.slow
def test_live_tesseract_bounded_under_many_groups(tmp_path: Path) -> None:
    """Groups share one bound: 10 groups x 2 workers must not mean 20 Tesseracts."""
    groups = []
    for g in range(10):
        for p in range(2):
            make_page(tmp_path / f"g{g}" / f"p{p}.png", f"Group {g} page {p} text", (900, 200))
        groups.append(ocrlab.Group(f"g{g}", (str(tmp_path / f"g{g}"),)))
    context = ocrlab.RunContext(tuple(groups), str(tmp_path / "out"))
    summary = ocrlab.run_groups(
        context, {"ocr_workers": 2, "monitor_interval": 0.01, "progress": False}
    )
    assert summary.documents_ok == 20
    assert 1 <= summary.peaks["n_tesseract"] <= 2
    # The counters in the trace say the same, sample by sample.
    from ocrlab.output.trace_reader import load_trace

    counts = [
        e["args"]["tesseract"]
        for e in load_trace(tmp_path / "out" / "trace.json")
        if e["ph"] == "C" and e["name"] == "live tesseract processes"
    ]
    assert counts and max(counts) <= 2


def test_memory_bound_refuses_too_many_workers(tmp_path: Path) -> None:
    cfg = load_config({"workers": 4, "memory_budget_mb": 600, "memory_per_worker_mb": 200}, env={})
    from ocrlab.runinfo import BASE_MEMORY_MB

    need = BASE_MEMORY_MB + 4 * 200
    with pytest.raises(ConfigError, match=rf"workers=4 need about {need:.0f} MB .* at most 2 w"):
        check_memory(cfg)
    check_memory(
        load_config({"workers": 2, "memory_budget_mb": 600, "memory_per_worker_mb": 200}, env={})
    )
    check_memory(
        load_config({"workers": 8, "memory_budget_mb": 100}, env={"OCR_MAX_WORKERS": "1"})
    )  # sequential: no pool to size
    (tmp_path / "in").mkdir()
    with pytest.raises(ConfigError):
        ocrlab.run(
            tmp_path / "in",
            tmp_path / "out",
            workers=4,
            memory_budget_mb=600,
            memory_per_worker_mb=200,
        )
    assert not (tmp_path / "out").exists()


def test_run_records_peaks(small_pages: list[Path], tmp_path: Path) -> None:
    summary = ocrlab.run(
        small_pages[0].parent.parent,
        tmp_path / "o",
        workers=2,
        engine="ocrlab.engines.fakes:sleepy",
        engine_options={"sleep": 0.1},
        monitor_interval=0.02,
        progress=False,
    )
    peaks = summary.peaks
    assert peaks["samples"] >= 3
    assert peaks["rss_total"] > peaks["rss_main"] > 0  # the workers are counted
    assert peaks["n_procs"] >= 3  # main + 2 workers at least
    pids = {p["pid"] for p in peaks["at_peak"]}
    assert os.getpid() in pids and len(pids) >= 3  # where the memory went, process by process
    manifest = load_manifest(tmp_path / "o")
    assert manifest["summary"]["peaks"]["rss_total"] == peaks["rss_total"]
    assert os.getpid() == manifest["run"]["pid"]


def test_a_short_spike_in_a_workers_child_is_caught_by_both_peaks(tmp_path: Path) -> None:
    """A worker's child holds 300 MB for 0.3 s, shorter than the monitor's PSS period
    (every 10th sample at 0.1 s): the RSS peak and the PSS of that same moment both
    show it, within 10 % (PSS was once read only every tenth sample, so a spike like
    this was in the PSS "peak" about one run in three).

    The figures are rises over the tree as it was before the child started (trace
    counters between the page's start and the spike), so the interpreter and the
    workers' shared pages cancel out.
    """
    from ocrlab.output import trace_schema as ts
    from ocrlab.output.trace_reader import load_trace

    make_page(tmp_path / "in" / "a.png", "a", size=(40, 20))
    spike_mb = 300
    summary = ocrlab.run(
        tmp_path / "in",
        tmp_path / "out",
        workers=2,
        engine="ocrlab.engines.fakes:spike",
        engine_options={"spike_mb": spike_mb, "spike_s": 0.3, "spike_after_s": 2.5},
        monitor_interval=0.1,
        progress=False,
    )
    assert summary.documents_ok == 1
    events = load_trace(tmp_path / "out" / "trace.json")
    page = next(e for e in events if ts.is_page(e))
    times = json.loads((tmp_path / "out" / "text" / "a.png.txt").read_text().rstrip("\f"))
    t0 = next(e for e in events if e.get("name") == ts.RUN_METADATA)["args"]["t0_monotonic_ns"]
    before = (page["ts"] + 0.5e6, (times["started_ns"] - t0) / 1e3)  # microseconds
    quiet = [
        e["args"] for e in events if e.get("name") == ts.MEMORY and before[0] <= e["ts"] < before[1]
    ]
    rss_base = max(a[ts.TREE_RSS] for a in quiet)
    pss_base = max(a[ts.TREE_PSS] for a in quiet if ts.TREE_PSS in a)
    peaks = summary.peaks
    rss_rise = peaks["rss_total"] / 2**20 - rss_base
    pss_rise = peaks["pss_at_peak"] / 2**20 - pss_base
    print(f"spike {spike_mb} MB: RSS peak +{rss_rise:.0f} MB, PSS at that moment +{pss_rise:.0f}")
    assert abs(rss_rise - spike_mb) <= 0.1 * spike_mb, f"RSS peak rose {rss_rise:.0f} MB"
    assert abs(pss_rise - spike_mb) <= 0.1 * spike_mb, f"PSS at the RSS peak rose {pss_rise:.0f}"
    assert (
        times["held_ns"] <= peaks["peak_t_ns"] + 0.2e9
        and peaks["peak_t_ns"] <= (times["released_ns"])
    ), "the peak is the spike's moment"
    line = summary.memory_line()
    assert f"{peaks['pss_at_peak'] / 2**20:.0f} MB PSS" in line and "at that moment" in line


def test_child_maxrss_is_each_pages_own_tesseract(tmp_path: Path) -> None:
    """One worker, a large page then a small one: the small page's ``child_maxrss`` is its
    own Tesseract's peak, not the worker's maximum so far (which every later page of a
    worker showed after one large page)."""
    from ocrlab.executor import ProcessPoolExecutor
    from ocrlab.records import EngineSettings, PageTask
    from ocrlab.worker import ocr_page

    big = make_page(tmp_path / "big.png", "large page " * 8, size=(3000, 4000))
    small = make_page(tmp_path / "small.png", "small", size=(200, 60))
    settings = EngineSettings(main_pid=os.getpid())
    pool = ProcessPoolExecutor(max_workers=1)
    try:
        first, second, third = (
            pool.submit(ocr_page, PageTask(p.name, str(p), 1, 1, "png"), settings).result()
            for p in (big, small, big)
        )
    finally:
        pool.shutdown(wait=True)
    assert first.ok and second.ok and third.ok
    assert first.pid == second.pid == third.pid, "one worker ran all three"
    mb = 2**20
    print(f"child_maxrss: {first.child_maxrss / mb:.0f}, {second.child_maxrss / mb:.0f} MB")
    assert 0 < second.child_maxrss < 0.8 * first.child_maxrss
    assert abs(third.child_maxrss - first.child_maxrss) < 0.2 * first.child_maxrss
