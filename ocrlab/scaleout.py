"""Scale out on an existing ``dask.distributed`` cluster, through the Executor protocol.

``executor="dask://HOST:PORT"`` (or ``tcp://HOST:PORT``) connects a client and
takes ``Client.get_executor()`` where loky's pool would be; everything else
(bounded scheduling, artifacts, manifest, trace, logs written by this client
process, failure isolation) is unchanged. In-flight pages are bounded by the
cluster's worker threads (times ``inflight_per_worker``), or by ``workers`` when
it is set explicitly.

Files: Dask workers on other hosts may not see this machine's paths. With
``ship_pages`` set (or left on ``auto`` with a scheduler that is not on
loopback) each task carries its file's bytes and the worker writes them to a
private temporary file. With a local cluster, paths are passed as they are.

A Dask worker that dies is Dask's business: the scheduler re-runs its tasks
elsewhere (up to ``distributed.scheduler.allowed-failures`` times, after which
the page becomes a ``KilledWorker`` error record).

Clocks: a page's start and end are the worker's ``time.monotonic_ns()``, which on
another host counts from that host's boot. :class:`ClockOffsets` measures each
worker's offset against this process with round trips (the worker's stamp taken
between our send and our receive: offset = remote - (send + receive) / 2, within
half the round trip), keeps the measurement with the smallest round trip, and
the collector places the worker's spans with it.
"""

from __future__ import annotations

import concurrent.futures as cf
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("ocrlab")


def scheduler_address(spec: str) -> str:
    """``dask://host:port`` -> ``tcp://host:port`` (other schemes pass through)."""
    return "tcp://" + spec[len("dask://") :] if spec.startswith("dask://") else spec


def is_loopback(spec: str) -> bool:
    """True when the scheduler runs on this machine's loopback (workers share our files)."""
    host = urlsplit(scheduler_address(spec)).hostname or ""
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


class DaskExecutor(cf.Executor):
    """``Client.get_executor()`` plus the client's lifetime and the cluster's capacity."""

    def __init__(self, address: str, timeout_s: float = 30.0) -> None:
        from distributed import Client

        self.address = scheduler_address(address)
        self.client = Client(
            self.address,
            timeout=timeout_s,  # type: ignore[no-untyped-call]
            set_as_default=False,
        )
        self._executor = self.client.get_executor(pure=False)  # type: ignore[no-untyped-call]
        threads = self.client.nthreads()  # type: ignore[no-untyped-call]
        self.capacity = max(1, sum(threads.values()))
        #: each worker's monotonic clock against ours (measured on first use)
        self.clocks = ClockOffsets(self.client)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        future: cf.Future[Any] = self._executor.submit(fn, *args, **kwargs)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        try:
            self._executor.shutdown(wait=wait)
        finally:
            self.client.close()  # type: ignore[no-untyped-call]


def worker_clock() -> int:
    """Run on a worker: its monotonic clock now (one side of a round trip)."""
    return time.monotonic_ns()


@dataclass(frozen=True)
class ClockOffset:
    """A worker's monotonic clock minus ours, and how well it is known."""

    offset_ns: int
    #: round trip of the measurement kept: the offset is right within half of it
    rtt_ns: int


class ClockOffsets:
    """Each Dask worker's clock offset, from the round trip with the smallest delay.

    Why the smallest round trip: the worker's stamp is taken somewhere between our
    send and our receive, so the midpoint is wrong by at most half the round trip,
    whatever the two directions' delays; a loaded machine or a busy scheduler
    makes some trips slow, never one shorter than it is. :meth:`measure` makes
    ``rounds`` trips at once to every worker (or those named); every drain of the
    host sampler is a trip too (:meth:`observe`), so the estimate keeps improving.
    Thread-safe: the sampler's thread and the collector ask at the same time.
    """

    def __init__(self, client: Any, rounds: int = 8) -> None:
        self.client = client
        self.rounds = rounds
        self._best: dict[str, ClockOffset] = {}
        self._lock = threading.Lock()

    def observe(self, worker: str, remote_ns: int, sent_ns: int, received_ns: int) -> None:
        """One round trip: keep it if it is shorter than the best so far."""
        rtt = received_ns - sent_ns
        offset = ClockOffset(remote_ns - (sent_ns + received_ns) // 2, rtt)
        with self._lock:
            best = self._best.get(worker)
            if best is None or rtt < best.rtt_ns:
                self._best[worker] = offset

    def measure(self, workers: Iterable[str] | None = None) -> None:
        """``rounds`` round trips to each worker (every worker of the cluster by default)."""
        names = None if workers is None else list(workers)
        for _ in range(self.rounds):
            sent = time.monotonic_ns()
            try:
                stamps = self.client.run(worker_clock, workers=names, on_error="return")
            except Exception as exc:  # the cluster is going away: no offset, spans as they are
                log.debug("clock round trip failed: %s", exc)
                return
            received = time.monotonic_ns()
            for worker, stamp in stamps.items():
                if isinstance(stamp, int):
                    self.observe(str(worker), stamp, sent, received)

    def get(self, worker: str, *, measure: bool = True) -> ClockOffset | None:
        """The worker's offset; a worker not seen yet is measured now (``measure``)."""
        with self._lock:
            known = self._best.get(worker)
        if known is None and measure:
            self.measure([worker])
            with self._lock:
                known = self._best.get(worker)
        return known

    def as_dict(self) -> dict[str, dict[str, float]]:
        """Milliseconds, for the summary: ``{worker: {offset_ms, rtt_ms}}``."""
        with self._lock:
            return {
                w: {"offset_ms": round(o.offset_ns / 1e6, 3), "rtt_ms": round(o.rtt_ns / 1e6, 3)}
                for w, o in sorted(self._best.items())
            }


def dask_executor(spec: str) -> cf.Executor:
    return DaskExecutor(spec)


def worker_identity() -> dict[str, str]:
    """The Dask worker running this call, if any (for the trace)."""
    import sys

    if "distributed" not in sys.modules:
        return {}
    try:
        from distributed import get_worker

        return {"dask_worker": str(get_worker().address)}
    except (ValueError, ImportError):
        return {}
