"""How the host samplers' rows reach the client: pulled (``client.run``) or pushed (events).

The measurement behind :mod:`ocrlab.measure.dask_sampler`'s choice, run on a local
cluster of worker processes (loopback only)::

    python -m ocrlab.lab.transport --seconds 20

For each way, the same sampler (:class:`~ocrlab.measure.dask_sampler.TreeSampler`)
runs on every worker at ``--interval``; the rows that arrive are counted against
the rows sampled, with the delay from a row's sample to its arrival, the client's
CPU, and two faults: the client subscribing (or first draining) ``--late`` seconds
after the plugin starts, and the client leaving without removing the plugin (do
the workers go on sampling?).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from typing import Any

from distributed import Client, LocalCluster, WorkerPlugin

from ..measure.dask_sampler import HostSamplerPlugin, TreeSampler, drain


class PushPlugin(WorkerPlugin):
    """The other way: the worker pushes its rows with ``log_event`` every ``push_s``."""

    def __init__(self, interval_s: float, topic: str, push_s: float = 1.0) -> None:
        self.interval_s, self.topic, self.push_s = interval_s, topic, push_s
        self.sampler: TreeSampler | None = None
        self._stop: threading.Event | None = None  # made on the worker (locks do not pickle)

    def setup(self, worker: Any) -> None:
        self._stop = threading.Event()
        # No lease: nothing drains a pushing sampler, so nothing can tell it the client left.
        self.sampler = TreeSampler(self.interval_s, lease_s=float("inf")).start()
        threading.Thread(target=self._push, args=(worker,), daemon=True).start()

    def _push(self, worker: Any) -> None:
        assert self._stop is not None
        while not self._stop.wait(self.push_s):
            assert self.sampler is not None
            worker.log_event(self.topic, self.sampler.drain())

    def teardown(self, worker: Any) -> None:
        if self._stop is not None:
            self._stop.set()
        if self.sampler is not None:
            self.sampler.stop()


def _samples(dask_worker: Any) -> dict[str, int]:
    """Rows each plugin's sampler has taken so far on this worker."""
    return {
        name: int(p.sampler.samples)
        for name, p in dask_worker.plugins.items()
        if isinstance(getattr(p, "sampler", None), TreeSampler)
    }


def _measure(
    address: str, how: str, seconds: float, interval: float, late: float
) -> dict[str, Any]:
    client = Client(address, set_as_default=False)  # type: ignore[no-untyped-call]
    name = f"transport-{how}"
    arrived: list[tuple[int, int]] = []  # (sampled at, delay to arrival) per row, ns
    lock = threading.Lock()

    def take(reply: dict[str, Any]) -> None:
        if reply and reply["rows"]:
            with lock:
                arrived.extend((row[0], reply["now_ns"] - row[0]) for row in reply["rows"])

    def deliver() -> None:
        for reply in client.run(drain, name, on_error="return").values():
            if isinstance(reply, dict):
                take(reply)

    cpu0 = time.thread_time()
    if how == "push":
        client.register_plugin(PushPlugin(interval, name), name=name)
        time.sleep(late)
        client.subscribe_topic(name, lambda event: take(event[1]))  # type: ignore[no-untyped-call]
        time.sleep(seconds)
    else:
        client.register_plugin(HostSamplerPlugin(interval, lease_s=5.0), name=name)
        time.sleep(late)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            deliver()
            time.sleep(1.0)
    counted_ns = time.monotonic_ns()  # the rows sampled up to here, and how many arrived
    taken = sum(c.get(name, 0) for c in client.run(_samples).values())
    if how == "pull":
        deliver()
    else:
        time.sleep(1.5)  # the pushes in flight
    cpu = time.thread_time() - cpu0
    rows = sum(1 for t, _ in arrived if t <= counted_ns)
    client.close()  # type: ignore[no-untyped-call]  # leaves without removing the plugin
    time.sleep(7.0)  # past the pull sampler's 5 s lease
    with Client(address, set_as_default=False) as other:  # type: ignore[no-untyped-call]
        before = sum(c.get(name, 0) for c in other.run(_samples).values())
        time.sleep(2.0)
        after = sum(c.get(name, 0) for c in other.run(_samples).values())
        other.unregister_worker_plugin(name)
    return {
        "how": how,
        "rows_sampled": taken,
        "rows_arrived": rows,
        "lost_pct": round(100 * (1 - rows / taken), 1) if taken else None,
        "worst_delay_s": round(max((d for _, d in arrived), default=0) / 1e9, 3),
        "median_delay_s": round(sorted(d for _, d in arrived)[len(arrived) // 2] / 1e9, 3)
        if arrived
        else None,
        "client_thread_cpu_s": round(cpu, 4),
        "samples_per_s_after_client_left": round((after - before) / 2.0, 1),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--late", type=float, default=2.0)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    with LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=args.workers,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=40,
    ) as cluster:
        for how in ("pull", "push"):
            result = _measure(
                cluster.scheduler_address, how, args.seconds, args.interval, args.late
            )
            print(json.dumps(result))


if __name__ == "__main__":
    main()
