"""Per-host measurement of a Dask run, in the client: the workers' samples into the trace.

::

    client (this process)                        every Dask worker
      register HostSamplerPlugin  ------------>  setup: a TreeSampler thread walks the
                                                 worker's process tree (Tesseracts too)
      every poll_s: client.run(drain) -------->  rows since the last drain + totals
        <-------------------------------------   (and the worker's clock: a round trip)
      rows onto our clock (ClockOffsets)
      SameMoment: per-host sums, cluster sum at one moment
        -> trace: a counter track per host, the cluster's sum; peaks for the summary
      stop: a last drain, unregister (each worker's teardown stops its thread)

Why a thread here: the drains must go on while the main thread waits for pages;
they cost this process ~0.2 ms of CPU each (the client's event loop does the
I/O), measured in every run as ``client_cpu_s``. A worker that does not answer
a drain (its host died) is retired from the sums at its last report and traced
as ``worker_lost``; its replacement, a new address, is a new worker.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

from .measure.dask_sampler import HostSamplerPlugin, drain
from .measure.hosts import Level, Reading, SameMoment
from .output import trace_schema as ts
from .output.trace import TraceRecorder
from .scaleout import ClockOffsets

log = logging.getLogger("ocrlab")


class _Worker:
    """What the client knows of one worker's sampler."""

    def __init__(self, host: str, pid: int) -> None:
        self.host = host
        self.pid = pid
        self.samples = 0
        self.dropped = 0
        self.cpu_s = 0.0
        self.sampling_s = 0.0
        self.peak: dict[str, Any] | None = None
        self.lost = False


class ClusterWatch:
    """The host samplers of one run: started with the run, stopped at its end."""

    def __init__(
        self,
        client: Any,
        clocks: ClockOffsets,
        trace: TraceRecorder,
        interval_s: float,
        poll_s: float = 1.0,
    ) -> None:
        self.client = client
        self.clocks = clocks
        self.trace = trace
        self.interval_s = interval_s
        self.poll_s = poll_s
        self.name = f"ocrlab-host-sampler-{uuid.uuid4().hex[:8]}"
        self.series = SameMoment(self._level)
        self.workers: dict[str, _Worker] = {}
        self._stop = threading.Event()
        self._poll_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._cpu_ns = 0
        self._polls = 0

    def start(self) -> ClusterWatch:
        """Register the plugin on every worker, measure the clocks, start draining."""
        t0 = time.thread_time_ns()
        self.client.register_plugin(HostSamplerPlugin(self.interval_s), name=self.name)
        self.clocks.measure()
        self._cpu_ns += time.thread_time_ns() - t0
        self.poll()  # every worker known (host, pid) before the first page, however short
        self._thread = threading.Thread(target=self._loop, name="ocrlab-cluster-watch", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll()
            except Exception as exc:  # the run must not notice a failed drain
                log.debug("host sampler drain failed: %s", exc)

    def poll(self) -> None:
        """Drain every worker once; merge what is complete into the sums and the trace."""
        with self._poll_lock:
            t0 = time.thread_time_ns()
            sent = time.monotonic_ns()
            replies = self.client.run(drain, self.name, on_error="return")
            received = time.monotonic_ns()
            for worker, reply in replies.items():
                if isinstance(reply, BaseException) or not reply:
                    if isinstance(reply, BaseException):
                        self._lost(str(worker), f"{type(reply).__name__}: {reply}")
                    continue
                self._take(str(worker), reply, sent, received)
            for worker in set(self.workers) - {str(w) for w in replies}:
                self._lost(worker, "no longer in the cluster")
            self.series.flush()
            self._polls += 1
            self._cpu_ns += time.thread_time_ns() - t0

    def _take(self, worker: str, reply: dict[str, Any], sent: int, received: int) -> None:
        self.clocks.observe(worker, int(reply["now_ns"]), sent, received)
        clock = self.clocks.get(worker, measure=False)
        offset = clock.offset_ns if clock is not None else 0
        state = self.workers.get(worker)
        if state is None:
            state = self.workers[worker] = _Worker(str(reply["host"]), int(reply["pid"]))
            self.trace.instant(
                ts.HOST_JOINED,
                time.monotonic_ns(),
                {
                    "host": state.host,
                    "track": self.trace.host_track(state.host),
                    "worker": worker,
                    "worker_pid": state.pid,
                    "clock_offset_ms": None if clock is None else round(offset / 1e6, 3),
                    "clock_rtt_ms": None if clock is None else round(clock.rtt_ns / 1e6, 3),
                },
            )
        if state.lost:
            return
        state.samples = int(reply["samples"])
        state.dropped = int(reply["dropped"])
        state.cpu_s = float(reply["cpu_s"])
        state.sampling_s = float(reply["sampling_s"])
        state.peak = reply.get("peak") or state.peak
        readings = [Reading.from_row(row, offset) for row in reply["rows"]]
        self.series.add(worker, state.host, readings, int(reply["now_ns"]) - offset)

    def _lost(self, worker: str, why: str) -> None:
        state = self.workers.get(worker)
        if state is None or state.lost:
            return
        state.lost = True
        self.series.retire(worker)
        self.trace.instant(
            ts.WORKER_LOST,
            time.monotonic_ns(),
            {"worker": worker, "host": state.host, "reason": why},
        )
        log.warning("host sampler: worker %s on %s lost (%s)", worker, state.host, why)

    def _level(self, host: str | None, level: Level) -> None:
        """A new per-host or cluster-wide level: a counter sample in the trace."""
        memory = {ts.TREE_RSS: round(level.rss / 2**20, 2)}
        if level.pss is not None:
            memory[ts.TREE_PSS] = round(level.pss / 2**20, 2)
        if host is None:
            self.trace.counter(ts.CLUSTER_MEMORY, level.t_ns, memory)
            self.trace.counter(
                ts.CLUSTER_TESSERACTS, level.t_ns, {ts.TESSERACT_COUNT: level.tesseracts}
            )
            return
        memory[ts.TESSERACT_RSS] = round(level.tesseract_rss / 2**20, 2)
        self.trace.host_counter(host, ts.HOST_MEMORY, level.t_ns, memory)
        self.trace.host_counter(host, ts.HOST_FDS, level.t_ns, {ts.FDS_TREE: level.fds})
        self.trace.host_counter(
            host, ts.HOST_TESSERACTS, level.t_ns, {ts.TESSERACT_COUNT: level.tesseracts}
        )

    def stop(self, wall_s: float) -> tuple[dict[str, Any], dict[str, Any]]:
        """A last drain, the plugin removed; (per-host figures, cluster-wide figures)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        try:
            self.poll()
        except Exception as exc:
            log.debug("last host sampler drain failed: %s", exc)
        self.series.flush(final=True)
        try:
            self.client.unregister_worker_plugin(self.name)
        except Exception as exc:  # workers gone: their samplers went with them
            log.debug("could not remove the host sampler: %s", exc)
        return self._hosts(wall_s), self._cluster(wall_s)

    def _hosts(self, wall_s: float) -> dict[str, Any]:
        t0 = self.trace.t0_ns
        clocks = self.clocks.as_dict()
        out: dict[str, Any] = {}
        for host, peak in sorted(self.series.hosts.items()):
            mine = {w: s for w, s in self.workers.items() if s.host == host}
            cpu = sum(s.cpu_s for s in mine.values())
            figures = peak.as_dict(t0)
            figures.update(
                workers=sorted(mine),
                samples=sum(s.samples for s in mine.values()),
                dropped=sum(s.dropped for s in mine.values()),
                sampler_cpu_s=round(cpu, 4),
                sampler_cpu_pct=round(100 * cpu / wall_s, 3) if wall_s > 0 else None,
                clock={w: clocks[w] for w in sorted(mine) if w in clocks},
                lost=sorted(w for w, s in mine.items() if s.lost),
                at_rss_peak=[
                    {"worker": w, "pid": pid, "name": name, "rss": rss}
                    for w, s in sorted(mine.items())
                    if s.peak
                    for pid, name, rss in s.peak["procs"]
                ],
            )
            out[host] = figures
        return out

    def _cluster(self, wall_s: float) -> dict[str, Any]:
        figures = self.series.cluster.as_dict(self.trace.t0_ns)
        figures.update(
            hosts=len(self.series.hosts),
            workers=len(self.workers),
            sample_interval_s=self.interval_s,
            drains=self._polls,
            client_cpu_s=round(self._cpu_ns / 1e9, 4),
            client_cpu_pct=round(100 * self._cpu_ns / 1e9 / wall_s, 3) if wall_s > 0 else None,
        )
        return figures
