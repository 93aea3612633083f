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
"""

from __future__ import annotations

import concurrent.futures as cf
import ipaddress
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit


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

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        future: cf.Future[Any] = self._executor.submit(fn, *args, **kwargs)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        try:
            self._executor.shutdown(wait=wait)
        finally:
            self.client.close()  # type: ignore[no-untyped-call]


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
