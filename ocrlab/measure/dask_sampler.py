"""The sampler that runs on every Dask worker: the worker's whole process tree, in batches.

Why a plugin of our own: Dask's ``SystemMonitor`` measures the worker process
alone, never its children, so the Tesseract processes a worker starts (the
memory an OCR run is sized by) appear nowhere on the cluster's dashboard. The
:class:`HostSamplerPlugin` starts, on each worker it is registered on (workers
that join later included: the scheduler keeps registered plugins), a thread that
walks the worker's tree with the main process's sampler
(:class:`~ocrlab.measure.monitor.ProcessTreeMonitor`, the same ``/proc`` walk) and
keeps compact rows in a bounded buffer.

Why pulled, not pushed: the client drains the buffer with ``client.run(drain, name)``
about once a second (:mod:`ocrlab.cluster_watch`). Pulling gives three things the
event stream (``log_event`` / ``subscribe_topic``) does not: a row is lost only
when the buffer overflows and every loss is counted (``dropped``); each drain is a
round trip that also measures the worker's clock against the client's; and a
lease: a worker not drained for ``lease_s`` (its client gone without unregistering
the plugin) stops sampling until it is drained again, so a forgotten plugin costs
the cluster nothing. docs/scale.md has the measurements behind
this choice.

PSS at the RSS peak: the tree's PSS is read every ``pss_every`` samples (it costs
~10x an RSS walk), and also at once whenever the tree's RSS reaches a new high,
so the peak's PSS is the peak's, not a neighbour's.

Each row is a tuple of ints (:data:`ROW_FIELDS`); the worker's own clock
(``time.monotonic_ns``), which the client converts with the measured offset.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections import deque
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from .monitor import ProcessTreeMonitor
from .pss import tree_rollup

#: what each row of a drain holds, in order (PSS and USS are -1 when not read)
ROW_FIELDS = ("t_ns", "rss", "pss", "uss", "fds", "procs", "tesseracts", "tesseract_rss")


class TreeSampler:
    """One worker's sampling thread and its buffer of rows (see the module doc)."""

    def __init__(
        self,
        interval_s: float,
        *,
        pss_every: int = 10,
        lease_s: float = 60.0,
        max_rows: int = 10_000,
        root_pid: int | None = None,
    ) -> None:
        self.interval_s = interval_s
        self.lease_s = lease_s
        self.monitor = ProcessTreeMonitor(root_pid, interval_s, max_samples=1, pss_every=pss_every)
        self._rows: deque[tuple[int, ...]] = deque(maxlen=max_rows)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._drained = time.monotonic()
        self.dropped = 0
        self.samples = 0
        self.cpu_ns = 0
        self.started_ns = time.monotonic_ns()
        self._peak_rss = 0
        self._peak: dict[str, Any] | None = None
        self._thread = threading.Thread(target=self._loop, name="ocrlab-host-sampler", daemon=True)

    def start(self) -> TreeSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=max(5.0, 5 * self.interval_s))

    def _loop(self) -> None:
        """Sample on a fixed grid while the lease holds; never let an error end the thread."""
        due = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - self._drained <= self.lease_s:
                t0 = time.thread_time_ns()
                with contextlib.suppress(Exception):  # a vanished /proc entry: sample again
                    self.take()
                self.cpu_ns += time.thread_time_ns() - t0
            due += self.interval_s
            now = time.monotonic()
            if due <= now:
                due = now + self.interval_s
            self._stop.wait(due - now)

    def take(self) -> tuple[int, ...]:
        """One sample of the tree, as a row (also read PSS now if this is a new RSS high)."""
        s = self.monitor.sample()
        pss, uss = s.pss_total, s.uss_total
        names = self.monitor.tesseract_names
        tess_rss = sum(rss for _pid, name, rss, _fds in s.per_process if name in names)
        if s.rss_total > self._peak_rss:
            if pss is None:
                rollup = tree_rollup(pid for pid, _n, _r, _f in s.per_process)
                if rollup is not None:
                    pss, uss = rollup
            self._peak_rss = s.rss_total
            self._peak = {
                "t_ns": s.t_ns,
                "rss": s.rss_total,
                "pss": pss,
                "tesseract_rss": tess_rss,
                "procs": [(pid, name, rss) for pid, name, rss, _fds in s.per_process],
            }
        row = (
            s.t_ns,
            s.rss_total,
            -1 if pss is None else pss,
            -1 if uss is None else uss,
            s.fds_total,
            s.n_procs,
            s.n_tesseract,
            tess_rss,
        )
        with self._lock:
            if len(self._rows) == self._rows.maxlen:
                self.dropped += 1
            self._rows.append(row)
            self.samples += 1
        return row

    def drain(self) -> dict[str, Any]:
        """The rows since the last drain and the sampler's totals; renews the lease."""
        with self._lock:
            rows = list(self._rows)
            self._rows.clear()
            dropped = self.dropped
        self._drained = time.monotonic()
        return {
            "now_ns": time.monotonic_ns(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "rows": rows,
            "dropped": dropped,
            "samples": self.samples,
            "cpu_s": self.cpu_ns / 1e9,
            "sampling_s": (time.monotonic_ns() - self.started_ns) / 1e9,
            "peak": self._peak,
        }


class HostSamplerPlugin(WorkerPlugin):
    """Starts a :class:`TreeSampler` on each worker it is registered on; stops it at teardown."""

    def __init__(self, interval_s: float, pss_every: int = 10, lease_s: float = 60.0) -> None:
        self.interval_s = interval_s
        self.pss_every = pss_every
        self.lease_s = lease_s
        self.sampler: TreeSampler | None = None

    def setup(self, worker: Any) -> None:
        self.sampler = TreeSampler(
            self.interval_s, pss_every=self.pss_every, lease_s=self.lease_s
        ).start()

    def teardown(self, worker: Any) -> None:
        if self.sampler is not None:
            self.sampler.stop()


def drain(name: str, dask_worker: Any) -> dict[str, Any]:
    """Run on a worker by ``client.run``: the rows of the plugin registered as ``name``
    (``{}`` when this worker has none, e.g. it joined while the plugin was removed)."""
    plugin = dask_worker.plugins.get(name)
    sampler = getattr(plugin, "sampler", None)
    if not isinstance(sampler, TreeSampler):
        return {}
    return sampler.drain()
