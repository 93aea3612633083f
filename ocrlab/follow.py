"""Following a run from its ``trace.json`` while it is written: the live view's data.

Why the trace and not callbacks from the pipeline: the main process already
appends every event to ``trace.json`` the moment it happens, one JSON object a
line (page spans, the monitor's memory / descriptor / Tesseract counters,
``worker_died``, ``pool_restarted``, ``run_start`` and ``run_end``). Reading
that file is the one way to watch a run that works the same for a run blocking
this kernel (a watcher thread), a run in a background process
(:mod:`ocrlab.background`) and a run on another machine's shared disk, and it
adds no coupling, no lock and no cost to the pipeline's hot path.

:class:`~ocrlab.output.trace_reader.TraceFollower` reads only what was appended
since the last poll and keeps a torn last line (a write in progress) until it is
complete. :class:`RunState` folds the events into the figures the view shows.
Neither imports ipywidgets, pandas or matplotlib.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .output import trace_schema as ts
from .output.trace_reader import TraceFollower, stat_key
from .records import Failure, WatchedStatus, ended_status
from .timeleft import Estimate, SizeCount, WorkClock

__all__ = ["HostState", "RunState", "TraceFollower", "stat_key"]


@dataclass
class HostState:
    """One Dask host as its counter track shows it (its workers' trees, summed)."""

    rss_mb: float | None = None
    rss_peak_mb: float | None = None
    pss_mb: float | None = None
    tesseract: int | None = None
    tesseract_peak: int = 0
    workers_lost: int = 0


@dataclass
class RunState:
    """What a run has done so far, folded from its trace events."""

    total: int | None = None
    documents: int | None = None
    pages_done: int = 0
    pages_failed: int = 0
    t_s: float = 0.0  # latest moment the trace speaks of, seconds from the run start
    #: the latest memory sample: its tree RSS, its own PSS (``None`` when that sample read
    #: none: the monitor reads PSS every few samples), and when it was taken
    rss_mb: float | None = None
    pss_mb: float | None = None
    memory_at_s: float | None = None
    #: the latest PSS read, and when (may be an earlier sample than ``rss_mb``'s)
    pss_read_mb: float | None = None
    pss_read_at_s: float | None = None
    #: the largest tree RSS, and the PSS of that same sample (the monitor reads PSS at
    #: every new RSS peak; ``None`` in traces written before it did)
    rss_peak_mb: float | None = None
    pss_at_peak_mb: float | None = None
    #: the largest PSS read, at whatever moment
    pss_peak_mb: float | None = None
    fds: int | None = None
    tesseract: int | None = None
    tesseract_peak: int = 0
    worker_deaths: int = 0
    restarts: int = 0
    #: Dask runs: each host's figures, and the cluster's sum at one moment
    hosts: dict[str, HostState] = field(default_factory=dict)
    cluster_rss_mb: float | None = None
    cluster_rss_peak_mb: float | None = None
    cluster_tesseract: int | None = None
    failures: list[Failure] = field(default_factory=list)
    status: WatchedStatus = "waiting"
    summary: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    updated: float = field(default_factory=time.monotonic)
    _host_tracks: dict[int, str] = field(default_factory=dict, repr=False)
    #: progress in estimated work and the time left (:mod:`ocrlab.timeleft`)
    clock: WorkClock = field(default_factory=WorkClock)

    @property
    def finished(self) -> bool:
        return self.status in {"complete", "interrupted", "failed"}

    @property
    def pages_per_s(self) -> float | None:
        if self.summary.get("pages_per_s") is not None and self.finished:
            return float(self.summary["pages_per_s"])
        return self.pages_done / self.t_s if self.t_s > 0 and self.pages_done else None

    def now_s(self) -> float:
        """Seconds since the run started, now: by this machine's monotonic clock when the
        run recorded its start on it (a run on this host), else the latest the trace says."""
        t0 = self.meta.get("t0_monotonic_ns")
        if isinstance(t0, int) and not self.finished:
            now = (time.monotonic_ns() - t0) / 1e9
            if self.t_s - 1.0 <= now <= self.t_s + 120.0:  # another host's clock is not
                return max(now, self.t_s)
        return self.t_s

    @property
    def fraction(self) -> float | None:
        """The share of the estimated work done (of pages, without estimates), 0..1."""
        return 1.0 if self.status == "complete" else self.clock.fraction()

    def time_left(self) -> Estimate | None:
        """Time left with its range, or None (finished, or no page finished yet)."""
        return None if self.finished else self.clock.time_left(self.now_s())

    def apply(self, events: list[dict[str, Any]]) -> None:
        for e in events:
            self._apply(e)
        self.updated = time.monotonic()

    def _apply(self, e: dict[str, Any]) -> None:
        ph, name, args = e.get("ph"), e.get("name"), e.get("args") or {}
        at_s = float(e.get("ts") or 0) / 1e6
        if ts.is_page(e):
            self.pages_done += 1
            dur = float(e.get("dur") or 0) / 1e6
            self.t_s = max(self.t_s, at_s + dur)
            self.clock.page_done(
                args.get("cost_estimate"), at_s, dur, e.get("pid"), args.get("bundle")
            )
            if not args.get("ok", True):
                self.pages_failed += 1
                self.failures.append(_failure(args, args.get("page")))
        elif ph == "C":
            self.t_s = max(self.t_s, at_s)
            if name in ts.HOST_COUNTERS or name in (ts.CLUSTER_MEMORY, ts.CLUSTER_TESSERACTS):
                self._apply_host(e, str(name), args)
            elif name == ts.MEMORY:
                self._memory(args, at_s)
            elif name == ts.FDS:
                self.fds = args.get(ts.FDS_TREE, self.fds)
            elif name == ts.TESSERACTS:
                self.tesseract = int(args.get(ts.TESSERACT_COUNT, 0))
                self.tesseract_peak = max(self.tesseract_peak, self.tesseract)
        elif ph == "i":
            if name == ts.RUN_METADATA:
                self.meta = dict(args)
                self.status = "running"
                config = args.get("config") or {}
                workers = config.get("effective_workers")
                self.clock.workers = workers if isinstance(workers, int) else None
                self.clock.largest_first = config.get("order") == "cost" and not config.get(
                    "sequential"
                )
            elif name == ts.RUN_START:
                self.status = "running"
                if args.get("pages") is not None:
                    self.total = args.get("pages")
            elif name == ts.PAGES_FOUND:  # discovery is lazy: the total grows
                self.total = int(args.get("pages", 0))
                sizes = args.get("sizes")
                self.clock.found(
                    self.total,
                    args.get("work"),
                    bool(args.get("final")),
                    SizeCount.from_json(sizes) if isinstance(sizes, dict) else None,
                )
            elif name == ts.DOCUMENT_FAILED:
                self.failures.append(_failure(args, None))
            elif name == ts.WORKER_DIED:
                self.worker_deaths += 1
            elif name == ts.HOST_JOINED:
                self._host_tracks[int(args.get("track", 0))] = str(args.get("host"))
                self.hosts.setdefault(str(args.get("host")), HostState())
            elif name == ts.WORKER_LOST and str(args.get("host")) in self.hosts:
                self.hosts[str(args.get("host"))].workers_lost += 1
            elif name == ts.POOL_RESTARTED:
                self.restarts += 1
            elif name == ts.RUN_END:
                self.status = ended_status(args.get("status"))
                self.summary = dict(args)
                self.restarts = int(args.get("restarts", self.restarts))
                self.t_s = max(self.t_s, at_s)

    def _apply_host(self, e: dict[str, Any], name: str, args: dict[str, Any]) -> None:
        """A per-host counter (on the host's track) or the cluster's same-moment sum."""
        if name == ts.CLUSTER_MEMORY:
            self.cluster_rss_mb = args.get(ts.TREE_RSS, self.cluster_rss_mb)
            self.cluster_rss_peak_mb = _max(self.cluster_rss_peak_mb, self.cluster_rss_mb)
            return
        if name == ts.CLUSTER_TESSERACTS:
            self.cluster_tesseract = int(args.get(ts.TESSERACT_COUNT, 0))
            return
        host = self._host_tracks.get(int(e.get("pid") or 0))
        if host is None:
            return
        state = self.hosts.setdefault(host, HostState())
        if name == ts.HOST_MEMORY:
            state.rss_mb = args.get(ts.TREE_RSS, state.rss_mb)
            state.pss_mb = args.get(ts.TREE_PSS, state.pss_mb)
            state.rss_peak_mb = _max(state.rss_peak_mb, state.rss_mb)
        elif name == ts.HOST_TESSERACTS:
            state.tesseract = int(args.get(ts.TESSERACT_COUNT, 0))
            state.tesseract_peak = max(state.tesseract_peak, state.tesseract)

    def _memory(self, args: dict[str, Any], at_s: float) -> None:
        """One memory sample: "now" figures all from it, the peak's PSS from the peak's."""
        rss, pss = args.get(ts.TREE_RSS), args.get(ts.TREE_PSS)
        if rss is not None:
            self.rss_mb, self.pss_mb, self.memory_at_s = rss, pss, at_s
            if self.rss_peak_mb is None or rss > self.rss_peak_mb:
                self.rss_peak_mb, self.pss_at_peak_mb = rss, pss
        if pss is not None:
            self.pss_read_mb, self.pss_read_at_s = pss, at_s
            self.pss_peak_mb = _max(self.pss_peak_mb, pss)


def _failure(args: dict[str, Any], page: object) -> Failure:
    error_type, error = args.get("error_type"), args.get("error")
    return Failure(
        str(args.get("doc_id")),
        None if page is None else int(str(page)),
        None if error_type is None else str(error_type),
        None if error is None else str(error),
    )


def _max(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else max(a, b)
