"""A background sampler of the whole process tree: memory, descriptors, live Tesseracts.

Why the tree and not the process: the verification plan's naive loop samples
``psutil.Process().memory_info()`` of the parent, which sees none of the memory
that matters. OCR runs in loky worker processes, and each worker starts a
``tesseract`` process per page; their memory, descriptors and number are exactly
what a worker count must be sized against, and none of it shows in the parent's
RSS. Here every sample walks the tree from the root (main process -> loky
workers and resource tracker -> tesseract children) and sums over it.

Why high-water marks too: a Tesseract process can live 300 ms and peak between
two samples. The kernel keeps each process's peak RSS (``VmHWM`` in
``/proc/PID/status``), workers report their largest reaped child's
``ru_maxrss``, and a cgroup records its own peak (v2 ``memory.peak``, v1
``memory.max_usage_in_bytes``); the sampler reads the first and the last, the
pipeline the second. ``hwm_total`` is the largest sum, over one sample's live
processes, of their high-water marks: an upper bound of the tree's true peak
that a spike between samples of a *sampled* process cannot hide (it overstates
when the processes peaked at different times). It is deliberately not the sum
over every pid ever seen: with one short-lived Tesseract per page that sum grows
with the page count (100 pages x 100 MB = 10 GB) and bounds nothing.

Why zombies are excluded: a child that exited but was not yet reaped holds no
memory, no descriptors and no Tesseract work; ``psutil`` still lists it, and
counting it would overstate concurrency (the very figure that shows whether
the pool keeps Tesseracts bounded).

Why ``/proc`` and not ``psutil`` for the walk: ``Process.children(recursive=True)``
builds a parent map by reading ``/proc/PID/stat`` of *every* process on the
machine: ~3 ms of CPU per sample on a host with ~90 processes, 3 % of a core at
10 Hz, growing with whatever else runs. Reading only the tree's own entries
(``/proc/PID/task/TID/children``, one ``status`` read, one ``stat`` of the ``fd``
directory per process) costs ~0.2 ms for five processes. psutil is the fallback
when the kernel lacks ``CONFIG_PROC_CHILDREN`` or there is no ``/proc`` at all
(no ``VmHWM`` there: ``hwm_total`` stays 0). ``overhead_s`` measures the sampler
thread's own CPU time, so the cost is a figure of every run, not a claim.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import resource
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, NamedTuple

import psutil

log = logging.getLogger(__name__)

#: Linux truncates a process's name (``comm``) to 15 bytes.
_COMM_LEN = 15


@dataclass(frozen=True, slots=True)
class Sample:
    """One look at the tree (bytes and counts; zombies left out)."""

    t_ns: int  # time.monotonic_ns() when the walk started
    rss_total: int  # sum of RSS over the tree
    rss_main: int  # RSS of the root process
    fds_total: int  # open descriptors summed over the tree
    fds_main: int
    n_procs: int  # live processes in the tree, root included
    n_tesseract: int  # live processes named like Tesseract
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
    #: largest per-sample sum of the live processes' kernel high-water marks (VmHWM);
    #: 0 when unavailable (no /proc)
    hwm_total: int = 0
    #: largest single process's high-water mark seen
    hwm_max: int = 0
    #: the cgroup's recorded peak, read at stop(); covers the cgroup's whole life
    cgroup_peak: int | None = None
    fd_limit: int = 0
    samples: int = 0
    #: CPU seconds the sampler thread spent sampling (its cost to the run)
    overhead_s: float = 0.0
    #: (pid, name, rss, fds) of every process in the sample with the largest tree RSS:
    #: where the memory went
    at_peak: tuple[tuple[int, str, int, int], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: numbers (``cgroup_peak`` may be None), ``at_peak`` as a list of dicts."""
        out = asdict(self)
        out["at_peak"] = [{"pid": p, "name": n, "rss": r, "fds": f} for p, n, r, f in self.at_peak]
        return out


# --------------------------------------------------------------------------- cgroups


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def _read_int(path: str) -> int | None:
    """An integer file (``max`` and junk read as None)."""
    text = _read_text(path)
    if text is None:
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


_UNESCAPE = re.compile(r"\\([0-7]{3})")
_V1_UNLIMITED = 1 << 60  # v1 reports "no limit" as PAGE_COUNTER_MAX pages, ~2**63


def _cgroup_dirs() -> dict[str, tuple[str, str]]:
    """{"v2" / "v1": (this process's cgroup directory, mount point)}, for what is mounted.

    Maps the path in ``/proc/self/cgroup`` onto the mount found in
    ``/proc/self/mountinfo``, relative to the mount's own root: reading the
    mount point itself, as a fixed ``/sys/fs/cgroup/...`` path does, gives the
    whole machine's figures whenever the process sits in a sub-cgroup without a
    cgroup namespace (a v1 host's ``memory.max_usage_in_bytes`` is then every
    process's peak, not this run's).
    """
    mounts: dict[str, tuple[str, str]] = {}
    for line in (_read_text("/proc/self/mountinfo") or "").splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, point = (_UNESCAPE.sub(lambda m: chr(int(m[1], 8)), f) for f in fields[3:5])
        if tail[0] == "cgroup2":
            mounts.setdefault("v2", (root, point))
        elif tail[0] == "cgroup" and "memory" in tail[2].split(","):
            mounts.setdefault("v1", (root, point))
    paths: dict[str, str] = {}
    for line in (_read_text("/proc/self/cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            paths.setdefault("v2", parts[2])
        elif "memory" in parts[1].split(","):
            paths.setdefault("v1", parts[2])

    out: dict[str, tuple[str, str]] = {}
    for kind, (root, point) in mounts.items():
        path = paths.get(kind, "/")
        if root != "/" and (path == root or path.startswith(root.rstrip("/") + "/")):
            path = path[len(root):]
        elif root != "/":
            path = "/"  # outside the mount's view (cgroup namespace): the mount is ours
        point = os.path.normpath(point)
        full = os.path.normpath(os.path.join(point, path.lstrip("/")))
        out[kind] = (full if os.path.isdir(full) else point, point)
    return out


def cgroup_memory_limit() -> int | None:
    """The memory limit this process runs under, in bytes, or ``None`` (unlimited/unknown).

    cgroup v2: the smallest ``memory.max`` from this process's cgroup up to the
    mount's root (a limit set on a parent applies to every child). v1: the
    ``hierarchical_memory_limit`` of ``memory.stat``, else ``memory.limit_in_bytes``.
    """
    dirs = _cgroup_dirs()
    limits: list[int] = []
    if "v2" in dirs:
        d, top = dirs["v2"]
        while True:
            limit = _read_int(os.path.join(d, "memory.max"))
            if limit is not None:
                limits.append(limit)
            if d == top or len(d) <= len(top):
                break
            d = os.path.dirname(d)
    if not limits and "v1" in dirs:
        d = dirs["v1"][0]
        stat = _read_text(os.path.join(d, "memory.stat")) or ""
        found = re.search(r"^hierarchical_memory_limit (\d+)$", stat, re.MULTILINE)
        limit = int(found[1]) if found else _read_int(os.path.join(d, "memory.limit_in_bytes"))
        if limit is not None and limit < _V1_UNLIMITED:
            limits.append(limit)
    return min(limits) if limits else None


def cgroup_memory_peak() -> int | None:
    """This process's cgroup's recorded peak memory in bytes, or ``None``.

    cgroup v2 ``memory.peak`` (kernel 5.19+), else v1 ``memory.max_usage_in_bytes``.
    It covers everything charged to the cgroup since it was created (page cache
    included, other processes of the cgroup too), so it bounds the run's peak
    from above rather than measuring it.
    """
    dirs = _cgroup_dirs()
    peak = _read_int(os.path.join(dirs["v2"][0], "memory.peak")) if "v2" in dirs else None
    if peak is None and "v1" in dirs:
        peak = _read_int(os.path.join(dirs["v1"][0], "memory.max_usage_in_bytes"))
    return peak


def available_memory() -> int:
    """Memory the machine can give without swapping (``psutil.virtual_memory().available``)."""
    return int(psutil.virtual_memory().available)


def fd_limit() -> int:
    """This process's soft ``RLIMIT_NOFILE`` (children inherit it)."""
    return int(resource.getrlimit(resource.RLIMIT_NOFILE)[0])


# --------------------------------------------------------------------------- the walk


class _Row(NamedTuple):
    pid: int
    name: str
    rss: int
    hwm: int  # 0 when unknown
    fds: int


_READ_SIZE = 1 << 16


def _read_proc(path: str) -> bytes | None:
    """The whole of a small ``/proc`` file, with raw syscalls (3x cheaper than ``open()``).

    One ``read``: procfs's seq files fill the buffer with every record that
    fits, so a short read is the end (no second, empty read per file).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, _READ_SIZE)
        if len(data) == _READ_SIZE:  # a huge children list: read the rest
            chunks = [data]
            while chunk := os.read(fd, _READ_SIZE):
                chunks.append(chunk)
            data = b"".join(chunks)
        return data
    except OSError:
        return None
    finally:
        os.close(fd)


def _field(status: bytes, key: bytes) -> bytes:
    """The value of ``key:`` in a ``/proc/PID/status`` text (b"" when absent)."""
    i = status.find(b"\n" + key + b":")
    if i < 0:
        return b""
    start = i + len(key) + 2
    end = status.find(b"\n", start)
    return status[start:] if end < 0 else status[start:end]


def _kb(value: bytes) -> int:
    try:
        return int(value.split()[0]) * 1024
    except (ValueError, IndexError):
        return 0


class _Status(NamedTuple):
    name: str
    live: bool  # not a zombie (Z) nor dead (X)
    rss: int
    hwm: int
    threads: int


def _proc_status(pid: int) -> _Status | None:
    """Name, liveness, VmRSS, VmHWM and thread count from one ``/proc/PID/status`` read."""
    data = _read_proc(f"/proc/{pid}/status")
    if not data or not data.startswith(b"Name:"):
        return None
    end = data.find(b"\n")
    name = sys.intern(data[5:end].strip().decode("utf-8", "replace"))
    state = _field(data, b"State").strip()[:1]
    try:
        threads = int(_field(data, b"Threads"))
    except ValueError:
        threads = 0
    return _Status(name, state not in (b"Z", b"X"), _kb(_field(data, b"VmRSS")),
                   _kb(_field(data, b"VmHWM")), threads)


_FD_SIZE_COUNTS: bool | None = None


def _fd_size_counts() -> bool:
    """Whether ``stat(/proc/PID/fd).st_size`` is the number of open fds (Linux 6.2+)."""
    global _FD_SIZE_COUNTS
    if _FD_SIZE_COUNTS is None:
        try:
            size = os.stat("/proc/self/fd").st_size
            listed = len(os.listdir("/proc/self/fd"))  # counts its own descriptor too
            _FD_SIZE_COUNTS = size > 0 and abs(size - listed) <= 1
        except OSError:
            _FD_SIZE_COUNTS = False
    return _FD_SIZE_COUNTS


def _count_fds(pid: int) -> int | None:
    """Open descriptors of ``pid``; None if it is gone, 0 if we may not look."""
    path = f"/proc/{pid}/fd"
    try:
        if _fd_size_counts():
            return os.stat(path).st_size
        return len(os.listdir(path))
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:  # PermissionError: another user's process; its memory still counts
        return 0


def _proc_children(pid: int, threads: int) -> list[int]:
    """Direct children, from ``/proc/PID/task/TID/children`` of each thread.

    A child is listed under the thread that forked it (loky's and the pool's
    threads fork too), so every thread's file is read; a single-threaded
    process (most Tesseracts, fresh workers) costs one read, no listing. The
    kernel calls the list best-effort while the process runs: a child forked
    during the read can be missed by that one sample, never by the next.
    """
    if threads == 1:
        tids: Iterable[str] = (str(pid),)
    else:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return []
    out: list[int] = []
    for tid in tids:
        data = _read_proc(f"/proc/{pid}/task/{tid}/children")
        if data:
            out.extend(int(c) for c in data.split())
    return out


_HAVE_PROC = os.path.isfile("/proc/self/status")
_HAVE_CHILDREN = os.path.isfile(f"/proc/self/task/{os.getpid()}/children")


def _walk_proc(root_pid: int, pids: Sequence[int] | None = None) -> list[_Row]:
    """Every live process of the tree from ``/proc`` (breadth first), zombies left out.

    With ``pids`` given (the psutil fallback's list) only those are read, no
    ``children`` files. A process that exits mid-walk simply drops out.
    """
    queue = [root_pid] if pids is None else list(pids)
    seen: set[int] = set()
    rows: list[_Row] = []
    i = 0
    while i < len(queue):
        pid = queue[i]
        i += 1
        if pid in seen:  # pid reuse mid-walk cannot loop us
            continue
        seen.add(pid)
        status = _proc_status(pid)
        if status is None or not status.live:
            continue  # exited between the walk and the read, or a zombie
        fds = _count_fds(pid)
        if fds is None:
            continue
        rows.append(_Row(pid, status.name, status.rss, status.hwm, fds))
        if pids is None:
            queue.extend(_proc_children(pid, status.threads))
    return rows


def _walk_psutil(root: psutil.Process) -> list[_Row]:
    """The same rows through psutil (no ``/proc``: macOS and friends); no VmHWM."""
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        procs = [root]
    rows: list[_Row] = []
    for proc in procs:
        try:
            with proc.oneshot():
                if proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                    continue
                name = sys.intern(proc.name())
                rss = int(proc.memory_info().rss)
                try:
                    fds = int(proc.num_fds() if psutil.POSIX else proc.num_handles())
                except psutil.AccessDenied:
                    fds = 0
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
        rows.append(_Row(proc.pid, name, rss, 0, fds))
    return rows


def _walk_tree(root: psutil.Process) -> list[_Row]:
    """(pid, name, rss, hwm, fds) of every live process in the tree, by the cheapest way."""
    if _HAVE_PROC and _HAVE_CHILDREN:
        return _walk_proc(root.pid)
    if _HAVE_PROC:  # no CONFIG_PROC_CHILDREN: psutil's machine-wide scan for the pids only
        try:
            pids = [root.pid, *(p.pid for p in root.children(recursive=True))]
        except psutil.Error:
            pids = [root.pid]
        return _walk_proc(root.pid, pids)
    return _walk_psutil(root)


# --------------------------------------------------------------------------- the monitor


class ProcessTreeMonitor:
    """Samples the tree under ``root_pid`` every ``interval_s`` in a daemon thread.

    Peaks are kept as samples arrive, so they never need the sample list;
    ``max_samples`` (default: keep all, about 1 KB per sample with five
    processes) bounds that list for long runs. ``on_sample`` is called on the
    sampler thread for every sample (on the caller's thread for ``sample()``
    and the final sample of ``stop()``); it should be cheap, and its exceptions
    are logged once and otherwise ignored. Nothing the tree does (processes
    vanishing, turning zombie, denying access) raises from the thread.
    """

    def __init__(
        self,
        root_pid: int | None = None,
        interval_s: float = 0.1,
        tesseract_names: Sequence[str] = ("tesseract",),
        on_sample: Callable[[Sample], None] | None = None,
        *,
        max_samples: int | None = None,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, not {interval_s!r}")
        self.root_pid = os.getpid() if root_pid is None else root_pid
        self.interval_s = float(interval_s)
        # Matched against the kernel's 15-byte ``comm`` as well as the full name.
        names = {os.path.basename(n) for n in tesseract_names}
        self.tesseract_names = frozenset(names | {n[:_COMM_LEN] for n in names})
        self.on_sample = on_sample
        self._root = psutil.Process(self.root_pid)  # raises NoSuchProcess for a bad pid
        self._samples: deque[Sample] = deque(maxlen=max_samples)
        self._peaks = Peaks(fd_limit=fd_limit())
        self._lock = threading.Lock()
        self._stop_lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._callback_failed = False
        self._sample_failed = False
        self._overhead_ns = 0
        self._thread_samples = 0

    @property
    def overhead_s(self) -> float:
        """CPU seconds the sampler thread has spent sampling (its own thread time)."""
        return self._overhead_ns / 1e9

    @property
    def overhead_per_sample_s(self) -> float:
        """Mean sampler-thread CPU seconds per sample (0.0 before the first)."""
        return self._overhead_ns / 1e9 / self._thread_samples if self._thread_samples else 0.0

    def sample(self) -> Sample:
        """Take one sample now (also what the thread does); never raises for vanished pids."""
        t_ns = time.monotonic_ns()
        rows = _walk_tree(self._root)
        n_tess = rss_total = fds_total = hwm_live = hwm_max = 0
        rss_main = fds_main = 0
        for row in rows:
            rss_total += row.rss
            fds_total += row.fds
            if row.name in self.tesseract_names:
                n_tess += 1
            if row.pid == self.root_pid:
                rss_main, fds_main = row.rss, row.fds
            if row.hwm:
                hwm = max(row.hwm, row.rss)
                hwm_live += hwm
                hwm_max = max(hwm_max, hwm)
        s = Sample(
            t_ns=t_ns,
            rss_total=rss_total,
            rss_main=rss_main,
            fds_total=fds_total,
            fds_main=fds_main,
            n_procs=len(rows),
            n_tesseract=n_tess,
            per_process=tuple((r.pid, r.name, r.rss, r.fds) for r in rows),
        )
        with self._lock:
            self._samples.append(s)
            p = self._peaks
            if s.rss_total > p.rss_total:
                p.rss_total = s.rss_total
                p.at_peak = s.per_process
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
        """Sample on a fixed grid (no drift by the sample's own cost) until stopped."""
        due = time.monotonic()
        while not self._stop_event.is_set():
            t0 = time.thread_time_ns()
            try:
                self.sample()
            except Exception:  # never let the thread die: the run must not notice us
                if not self._sample_failed:
                    self._sample_failed = True
                    log.exception("monitor sample failed (reported once)")
            self._overhead_ns += time.thread_time_ns() - t0
            self._thread_samples += 1
            due += self.interval_s
            now = time.monotonic()
            if due <= now:  # fell behind (a stalled machine): skip the missed slots, no burst
                due = now + self.interval_s
            self._stop_event.wait(due - now)

    def start(self) -> ProcessTreeMonitor:
        """Start the daemon sampler thread (a no-op when started or stopped already)."""
        with self._stop_lock:
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._loop, name="ocrlab-monitor",
                                                daemon=True)
                self._thread.start()
        return self

    def stop(self) -> Peaks:
        """Stop the thread, take a last sample, read the cgroup's peak; idempotent."""
        with self._stop_lock:
            if not self._stopped:
                self._stopped = True
                self._stop_event.set()
                if self._thread is not None:
                    # Bounded: a callback stuck forever must not hang the run's shutdown.
                    self._thread.join(timeout=max(10.0, 10 * self.interval_s))
                with contextlib.suppress(Exception):
                    self.sample()
                with contextlib.suppress(Exception):
                    peak = cgroup_memory_peak()
                    with self._lock:
                        self._peaks.cgroup_peak = peak
        return self.peaks

    @property
    def samples(self) -> list[Sample]:
        """The samples so far, oldest first (a copy)."""
        with self._lock:
            return list(self._samples)

    @property
    def peaks(self) -> Peaks:
        """The maxima so far (a copy), with the sampler's CPU cost."""
        with self._lock:
            peaks = replace(self._peaks)
        peaks.overhead_s = round(self.overhead_s, 6)
        return peaks

    def __enter__(self) -> ProcessTreeMonitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
