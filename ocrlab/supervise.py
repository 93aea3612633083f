"""What watches a run's resources while it goes on, in the main process.

* the process-tree monitor (:mod:`ocrlab.measure.monitor`): its samples become
  trace counters (memory, descriptors, live Tesseracts) and the run's peaks;
* the memory guard (:mod:`ocrlab.guard`): it sees every sample and holds back
  submission while the tree nears the memory budget;
* worker recycling (:mod:`ocrlab.recycle`): a page's result says when its worker
  retired after it; that is counted and traced here;
* on a Dask cluster, the hosts: a sampler on every worker (:mod:`ocrlab.cluster_watch`)
  gives each host's memory, descriptors and live Tesseracts and the cluster's sum,
  and each worker's clock offset places its pages on this process's timeline.

One object for the three, so the pipeline asks it (``admit``, ``page_done``,
``memory_note``, ``stop``) without knowing which of them is switched on.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from typing import Any

from .config import OcrConfig
from .guard import MemoryGuard
from .output import trace_schema as ts
from .output.trace import TraceRecorder
from .plan import ExecutionPlan
from .records import PageResult, RunSummary
from .runinfo import memory_budget

log = logging.getLogger("ocrlab")


class Supervisor:
    """The monitor, the memory guard and recycling notes of one run (see module doc)."""

    def __init__(
        self,
        cfg: OcrConfig,
        plan: ExecutionPlan,
        trace: TraceRecorder,
        executor: cf.Executor | None = None,
    ) -> None:
        self.cfg = cfg
        self.trace = trace
        #: times the guard held submission back, and workers retired (for the summary)
        self.backpressure = 0
        self.workers_recycled = 0
        self.guard = self._make_guard(plan)
        self.monitor = self._start_monitor()
        #: a Dask cluster's clock offsets (:class:`ocrlab.scaleout.ClockOffsets`) and hosts
        self.clocks = getattr(executor, "clocks", None) if plan.kind == "cluster" else None
        if self.clocks is not None:  # other hosts' pages placed by their measured offsets
            trace.clock_offset = self.clock_offset
        self.cluster = self._start_cluster_watch(executor)

    def _start_cluster_watch(self, executor: cf.Executor | None) -> Any:
        """The per-host samplers of a Dask run (none without the monitor or a cluster)."""
        client = getattr(executor, "client", None)
        if self.clocks is None or client is None or self.cfg.monitor_interval <= 0:
            return None
        from .cluster_watch import ClusterWatch

        try:
            return ClusterWatch(client, self.clocks, self.trace, self.cfg.monitor_interval).start()
        except Exception as exc:  # an old or locked-down cluster: run on, without host figures
            log.warning("no per-host figures: the host sampler could not start (%s)", exc)
            return None

    def clock_offset(self, result: PageResult) -> int | None:
        """Nanoseconds to subtract from ``result``'s stamps to put them on this process's
        clock (its Dask worker's measured offset); None when it is not known."""
        worker = result.extra.get("dask_worker")
        if self.clocks is None or not worker:
            return None
        offset = self.clocks.get(str(worker))
        return None if offset is None else int(offset.offset_ns)

    def _make_guard(self, plan: ExecutionPlan) -> MemoryGuard | None:
        """The memory guard for a local pool with the monitor on (else nothing to measure)."""
        if not plan.pool_worker or self.cfg.monitor_interval <= 0:
            return None
        budget = memory_budget(self.cfg)[0] * 2**20
        margin = max(64 * 2**20, 0.1 * budget)

        def on_event(kind: str, info: dict[str, Any]) -> None:
            self.trace.instant(kind, time.monotonic_ns(), info)
            if kind == "backpressure":
                self.backpressure += 1
            log.info("%s: %s", kind, info)

        return MemoryGuard(budget, margin, self.cfg.memory_per_worker_mb * 2**20, on_event)

    def _start_monitor(self) -> Any:
        if self.cfg.monitor_interval <= 0:
            return None
        from .measure.monitor import ProcessTreeMonitor, Sample

        trace = self.trace
        guard = self.guard

        def on_sample(s: Sample) -> None:
            if guard is not None:
                guard.observe(s)
            memory = {
                ts.TREE_RSS: round(s.rss_total / 2**20, 2),
                ts.MAIN_RSS: round(s.rss_main / 2**20, 2),
            }
            if s.pss_total is not None and s.uss_total is not None:  # every few samples
                memory.update(
                    {
                        ts.TREE_PSS: round(s.pss_total / 2**20, 2),
                        ts.TREE_USS: round(s.uss_total / 2**20, 2),
                    }
                )
            trace.counter(ts.MEMORY, s.t_ns, memory)
            trace.counter(ts.FDS, s.t_ns, {ts.FDS_TREE: s.fds_total, ts.FDS_MAIN: s.fds_main})
            trace.counter(ts.TESSERACTS, s.t_ns, {ts.TESSERACT_COUNT: s.n_tesseract})

        # Samples go to the trace as they come; keeping them all would grow with the run.
        return ProcessTreeMonitor(
            interval_s=self.cfg.monitor_interval, on_sample=on_sample, max_samples=1
        ).start()

    @property
    def admit(self) -> Any:
        """The scheduler's admission test (``None``: submit freely)."""
        return None if self.guard is None else self.guard.admit

    def page_done(self, result: PageResult) -> None:
        """Learn from a finished page: its memory (the guard), its worker's retirement."""
        if self.guard is not None:
            self.guard.learn(result)
        if result.extra:
            self._note_recycling(result)

    def _note_recycling(self, result: PageResult) -> None:
        """A worker retired after this page (see :mod:`ocrlab.recycle`): trace and count it."""
        for key in ("recycled", "recycle_failed"):
            if key in result.extra:
                info = {
                    "pid": result.pid,
                    "reason": result.extra[key],
                    "after": f"{result.doc_id}#{result.page}",
                }
                if key == "recycled":
                    self.workers_recycled += 1
                    self.trace.instant(ts.WORKER_RECYCLED, result.end_ns, info)
                    log.info("worker %d recycled: %s", result.pid, result.extra[key])
                else:
                    self.trace.instant(ts.WORKER_RECYCLE_FAILED, time.monotonic_ns(), info)
                    log.warning("worker_recycle_failed: %s", info)

    def memory_note(self) -> str:
        """The peak memory so far, for the error of a page that killed its worker."""
        if self.monitor is None:
            return ""
        peaks = self.monitor.peaks
        return (
            f"peak process-tree memory so far {peaks.rss_total / 2**20:.0f} MB RSS, "
            f"{peaks.pss_at_peak / 2**20:.0f} MB PSS at that moment"
        )

    def stop(self, summary: RunSummary) -> None:
        """Stop the monitor; put the run's peaks and this supervisor's counts in ``summary``."""
        summary.backpressure = self.backpressure
        summary.workers_recycled = self.workers_recycled
        if self.monitor is not None:
            summary.peaks = self.monitor.stop().as_dict()
        if self.cluster is not None:  # beside this tree's: each host's peaks, the cluster's
            hosts, cluster = self.cluster.stop(summary.wall_s)
            summary.peaks = {**summary.peaks, "hosts": hosts, "cluster": cluster}
