"""A background sampler of the whole process tree: memory, descriptors, live Tesseracts.

Why the tree and not the process: the verification plan's naive loop samples
``psutil.Process().memory_info()`` of the parent, which sees none of the memory
that matters: the loky workers and, below them, the Tesseract processes they
start. Here every sample walks the tree from the root (main process -> loky
workers and resource tracker -> tesseract children).

Why high-water marks too: a Tesseract process can live 300 ms and peak between
two samples. The kernel keeps each process's peak RSS (``VmHWM`` in
``/proc/PID/status``), workers report their largest reaped child's
``ru_maxrss``, and a cgroup v2 container records ``memory.peak``; the sampler
reads the first and the last, the pipeline the second. ``hwm_total`` is the
largest sum, over one sample's live processes, of their high-water marks: an
upper bound of the tree's true peak that a spike between samples cannot hide
(it overstates when the processes peaked at different times).

Why zombies are excluded: a child that exited but was not yet reaped holds no
memory and no Tesseract work; counting it would overstate concurrency.

Cost: one ``/proc`` walk per sample, a few hundred microseconds for a tree of
five processes (``overhead_s`` measures the sampler thread's own CPU time).
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    """One look at the tree."""

    t_ns: int
    rss_total: int
    rss_main: int
    fds_total: int
    fds_main: int
    n_procs: int
    n_tesseract: int
    per_process: tuple[tuple[int, str, int, int], ...]  # (pid, name, rss, fds)


@dataclass
class Peaks:
    """Maxima over a monitored interval (bytes / counts)."""

    rss_total: int = 0
    rss_main: int = 0
    fds_total: int = 0
    fds_main: int = 0
    n_tesseract: int = 0
    n_procs: int = 0
    hwm_total: int = 0
    hwm_max: int = 0
    cgroup_peak: int | None = None
    fd_limit: int = 0
    samples: int = 0
    #: CPU seconds the sampler thread spent sampling (its cost to the run)
    overhead_s: float = 0.0
    #: (pid, name, rss, fds) of every process in the sample with the largest tree RSS:
    #: where the memory went
    at_peak: tuple[tuple[int, str, int, int], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["at_peak"] = [{"pid": p, "name": n, "rss": r, "fds": f} for p, n, r, f in self.at_peak]
        return out


def _cgroup_dir() -> Path | None:
    """This process's cgroup v2 directory, if the unified hierarchy is mounted."""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                path = Path("/sys/fs/cgroup") / line[3:].lstrip("/")
                return path if path.is_dir() else None
    except OSError:
        return None
    return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return None if text in {"", "max"} else int(text)


def cgroup_memory_limit() -> int | None:
    """The container's memory limit (cgroup v2 ``memory.max``, v1 fallback), or ``None``."""
    cg = _cgroup_dir()
    if cg is not None:
        limit = _read_int(cg / "memory.max")
        if limit is not None:
            return limit
    v1 = _read_int(Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
    if v1 is not None and v1 < 1 << 60:  # v1 reports "unlimited" as a huge number
        return v1
    return None


def cgroup_memory_peak() -> int | None:
    """The container's recorded peak memory, or ``None``.

    cgroup v2 ``memory.peak`` (kernel 5.19+), else v1 ``memory.max_usage_in_bytes``.
    It covers everything in the container since it started (page cache included),
    so it bounds the run's peak from above rather than measuring it.
    """
    cg = _cgroup_dir()
    peak = _read_int(cg / "memory.peak") if cg is not None else None
    if peak is None:
        peak = _read_int(Path("/sys/fs/cgroup/memory/memory.max_usage_in_bytes"))
    return peak


def available_memory() -> int:
    return int(psutil.virtual_memory().available)


def fd_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _proc_status(pid: int) -> tuple[str, str, int, int] | None:
    """(name, state, VmRSS, VmHWM) from one read of ``/proc/PID/status``; None if gone."""
    name = state = ""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key == "Name":
                    name = value.strip()
                elif key == "State":
                    state = value.strip()[:1]
                elif key == "VmRSS":
                    rss = int(value.split()[0]) * 1024
                elif key == "VmHWM":
                    hwm = int(value.split()[0]) * 1024
    except (OSError, ValueError):
        return None
    return name, state, rss, hwm


def _proc_children(pid: int) -> list[int] | None:
    """Direct children from ``/proc/PID/task/*/children`` (None if the kernel lacks it)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    out: list[int] = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as fh:
                out.extend(int(c) for c in fh.read().split())
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}/children") and \
                    os.path.exists(f"/proc/{pid}/task/{tid}"):
                return None  # no CONFIG_PROC_CHILDREN: use psutil
        except OSError:
            continue
    return out


def _walk_tree(root: psutil.Process) -> list[tuple[int, str, int, int, int]]:
    """(pid, name, rss, hwm, fds) of every live process in the tree, zombies left out.

    Reads only the tree's own ``/proc`` entries (one ``status`` file and one
    ``fd`` listing per process): psutil's ``children(recursive=True)`` scans
    every process on the machine to build its parent map, which made a sample
    cost ~6 ms of CPU on a busy host.
    """
    pids = [root.pid]
    if _proc_children(root.pid) is None:  # fallback: psutil's machine-wide scan
        with contextlib.suppress(psutil.Error):
            pids += [p.pid for p in root.children(recursive=True)]
    else:
        i = 0
        while i < len(pids):
            pids.extend(_proc_children(pids[i]) or [])
            i += 1
    rows = []
    for pid in pids:
        status = _proc_status(pid)
        if status is None or status[1] == "Z":
            continue  # exited between the walk and the read, or a zombie
        try:
            fds = len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            continue
        rows.append((pid, status[0], status[2], status[3], fds))
    return rows


class ProcessTreeMonitor:
    """Samples the tree under ``root_pid`` every ``interval_s`` in a daemon thread."""

    def __init__(
        self,
        root_pid: int | None = None,
        interval_s: float = 0.1,
        tesseract_names: Sequence[str] = ("tesseract",),
        on_sample: Callable[[Sample], None] | None = None,
    ) -> None:
        self.root_pid = root_pid or os.getpid()
        self.interval_s = interval_s
        self.tesseract_names = frozenset(tesseract_names)
        self.on_sample = on_sample
        self.overhead_s = 0.0
        self._root = psutil.Process(self.root_pid)
        self._samples: list[Sample] = []
        self._peaks = Peaks(fd_limit=fd_limit())
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._callback_failed = False
        self._stopped = False

    def sample(self) -> Sample:
        """Take one sample now (also what the thread does); never raises for vanished pids."""
        n_tess = 0
        hwm_live = hwm_max = 0
        rows: list[tuple[int, str, int, int]] = []
        for pid, name, rss, hwm, fds in _walk_tree(self._root):
            rows.append((pid, name, rss, fds))
            if name in self.tesseract_names:
                n_tess += 1
            hwm = max(hwm, rss)
            hwm_live += hwm
            hwm_max = max(hwm_max, hwm)
        main = next((r for r in rows if r[0] == self.root_pid), (0, "", 0, 0))
        s = Sample(
            t_ns=time.monotonic_ns(),
            rss_total=sum(r[2] for r in rows),
            rss_main=main[2],
            fds_total=sum(r[3] for r in rows),
            fds_main=main[3],
            n_procs=len(rows),
            n_tesseract=n_tess,
            per_process=tuple(rows),
        )
        with self._lock:
            self._samples.append(s)
            p = self._peaks
            if s.rss_total > p.rss_total:
                p.at_peak = s.per_process
            p.rss_total = max(p.rss_total, s.rss_total)
            p.rss_main = max(p.rss_main, s.rss_main)
            p.fds_total = max(p.fds_total, s.fds_total)
            p.fds_main = max(p.fds_main, s.fds_main)
            p.n_tesseract = max(p.n_tesseract, s.n_tesseract)
            p.n_procs = max(p.n_procs, s.n_procs)
            p.hwm_total = max(p.hwm_total, hwm_live)
            p.hwm_max = max(p.hwm_max, hwm_max)
            p.samples += 1
        if self.on_sample is not None:
            try:
                self.on_sample(s)
            except Exception:
                if not self._callback_failed:
                    self._callback_failed = True
                    log.exception("monitor on_sample callback failed (reported once)")
        return s

    def _loop(self) -> None:
        while not self._stop.is_set():
            t = time.thread_time_ns()
            self.sample()
            self.overhead_s += (time.thread_time_ns() - t) / 1e9
            self._stop.wait(self.interval_s)

    def start(self) -> ProcessTreeMonitor:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="ocrlab-monitor",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self) -> Peaks:
        """Stop the thread (idempotent), take a last sample, read the cgroup's peak."""
        if not self._stopped:
            self._stopped = True
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            self.sample()
            with contextlib.suppress(OSError, ValueError):
                self._peaks.cgroup_peak = cgroup_memory_peak()
        return self.peaks

    @property
    def samples(self) -> list[Sample]:
        with self._lock:
            return list(self._samples)

    @property
    def peaks(self) -> Peaks:
        with self._lock:
            peaks = Peaks(**asdict(self._peaks))
        peaks.overhead_s = round(self.overhead_s, 4)
        return peaks

    def __enter__(self) -> ProcessTreeMonitor:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
