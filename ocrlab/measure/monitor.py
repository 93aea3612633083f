"""A background sampler of the whole process tree: memory, descriptors, live Tesseracts.

Why the tree and not the process: the obvious loop, sampling
``psutil.Process().memory_info().rss`` of the parent every 0.1 s, sees none of
the memory that matters. OCR runs in loky worker processes, and each worker starts a
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

Why PSS and USS beside RSS: summed over a tree, RSS counts every shared page
(the interpreter, libraries, Tesseract's model files) once per process that
maps it; PSS charges it once in all, so the tree's PSS is what the run costs the
machine (:mod:`ocrlab.measure.pss`). Reading it costs ~10x a ``status`` read
(measured in a 2-worker run on A4 pages: 4.9 ms of CPU per PSS read of the tree
against 0.6 ms per walk), so it is read every ``pss_every`` samples (default 10:
once a second at the default 0.1 s, still several times per Tesseract, which
lives 1-4 s per page), and its cost is reported apart (``pss_overhead_s``).

Why PSS is also read whenever RSS reaches a new peak: a peak is one moment, and
a figure read at another moment is not its PSS. Read only every tenth sample,
the "peak PSS" of a run whose Tesseract spiked to 793 MB for a few hundred
milliseconds was the PSS of some quieter second (1034 MB RSS beside 409 MB
PSS), and a live view showed PSS above RSS, the two "now" values being from
different samples. So the sample with the largest RSS always carries its own
PSS and USS (``pss_at_peak``, ``uss_at_peak``: the same walk, a few ms later);
``pss_total`` stays the largest PSS any sample read, which may be another moment.
New peaks are frequent only while the tree grows (the first seconds of a run).

The walk itself is :mod:`ocrlab.measure.proctree`; host and cgroup figures are
:mod:`ocrlab.measure.host`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import psutil

from .host import cgroup_memory_peak, fd_limit
from .proctree import walk_tree
from .pss import HAVE_ROLLUP, tree_rollup

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
    pss_total: int | None = None  # sum of PSS over the tree; None when not read this sample
    uss_total: int | None = None  # sum of USS (private pages) over the tree


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
    #: largest tree PSS / USS among the samples that read them (0: never read); not
    #: necessarily the moment of ``rss_total``
    pss_total: int = 0
    uss_total: int = 0
    #: tree PSS / USS in the sample with the largest tree RSS (read in that sample)
    pss_at_peak: int = 0
    uss_at_peak: int = 0
    #: when that sample was taken (``time.monotonic_ns()``; 0: no sample yet)
    peak_t_ns: int = 0
    #: samples that read PSS, and the sampler's CPU seconds spent on those reads alone
    pss_samples: int = 0
    pss_overhead_s: float = 0.0
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
        pss_every: int = 10,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, not {interval_s!r}")
        self.root_pid = os.getpid() if root_pid is None else root_pid
        self.interval_s = float(interval_s)
        # Matched against the kernel's 15-byte ``comm`` as well as the full name.
        names = {os.path.basename(n) for n in tesseract_names}
        self.tesseract_names = frozenset(names | {n[:_COMM_LEN] for n in names})
        self.on_sample = on_sample
        #: read PSS / USS every this many samples (0: never); see the module doc
        self.pss_every = pss_every if HAVE_ROLLUP else 0
        self._latest_pss: tuple[int, int] | None = None
        self._pss_ns = 0
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

    @property
    def latest_pss(self) -> tuple[int, int] | None:
        """(tree PSS, tree USS) in bytes from the latest sample that read them (free)."""
        return self._latest_pss

    def tree_pss_now(self) -> tuple[int, int] | None:
        """(tree PSS, tree USS) in bytes, read now: one walk and one ``smaps_rollup`` per
        process (~0.1-1 ms each). For a memory guard that must not wait for a sample."""
        rollup = tree_rollup(row.pid for row in walk_tree(self._root))
        if rollup is not None:
            self._latest_pss = rollup
        return rollup

    def sample(self, pss: bool | None = None) -> Sample:
        """Take one sample now (also what the thread does); never raises for vanished pids.

        ``pss``: read PSS / USS too (default: every ``pss_every``-th sample, and in
        every sample whose tree RSS is a new peak).
        """
        t_ns = time.monotonic_ns()
        rows = walk_tree(self._root)
        if pss is None:
            pss = self.pss_every > 0 and (
                self._peaks.samples % self.pss_every == 0
                or sum(row.rss for row in rows) > self._peaks.rss_total
            )
        rollup: tuple[int, int] | None = None
        if pss:
            t_pss = time.thread_time_ns()
            rollup = tree_rollup(row.pid for row in rows)
            self._pss_ns += time.thread_time_ns() - t_pss
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
            pss_total=None if rollup is None else rollup[0],
            uss_total=None if rollup is None else rollup[1],
        )
        with self._lock:
            self._samples.append(s)
            p = self._peaks
            if s.rss_total > p.rss_total:
                p.rss_total = s.rss_total
                p.at_peak = s.per_process
                p.peak_t_ns = s.t_ns
                p.pss_at_peak = s.pss_total or 0
                p.uss_at_peak = s.uss_total or 0
            p.rss_main = max(p.rss_main, s.rss_main)
            p.fds_total = max(p.fds_total, s.fds_total)
            p.fds_main = max(p.fds_main, s.fds_main)
            p.n_tesseract = max(p.n_tesseract, s.n_tesseract)
            p.n_procs = max(p.n_procs, s.n_procs)
            p.hwm_total = max(p.hwm_total, hwm_live)
            p.hwm_max = max(p.hwm_max, hwm_max)
            p.samples += 1
            if rollup is not None:
                self._latest_pss = rollup
                p.pss_total = max(p.pss_total, rollup[0])
                p.uss_total = max(p.uss_total, rollup[1])
                p.pss_samples += 1
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
                self._thread = threading.Thread(
                    target=self._loop, name="ocrlab-monitor", daemon=True
                )
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
                    self.sample(pss=self.pss_every > 0)
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
        peaks.pss_overhead_s = round(self._pss_ns / 1e9, 6)
        return peaks

    def __enter__(self) -> ProcessTreeMonitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
