"""Several hosts on this one machine, for tests: each a set of Linux namespaces of its own.

A simulated host is what the run cannot tell from a real one where it matters:

* its own hostname (a UTS namespace): its pages and samples say which host they are from;
* its own PID namespace: its processes have their own pids (the same pid on two hosts),
  and killing the namespace's init ends every process of the host at once, as a power
  cut would;
* optionally its own monotonic clock (a time namespace, ``--monotonic SECONDS``): its
  stamps are off by that much, as another machine's boot time would make them;
* its own address: its ``dask worker`` (nanny and worker) listens on 127.0.0.N. Linux
  routes all of 127.0.0.0/8 to ``lo``, so every byte stays on this machine's loopback.

The scheduler runs on 127.0.0.1 as a plain subprocess; the client is the test's own
process. Everything is torn down at the end: each namespace's init is killed and the
test checks that no process of the namespace is left. Namespaces need privileges
(root, or unprivileged user namespaces); :func:`namespaces_unavailable` says why they
cannot be made, and the tests skip with that reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

UNSHARE = shutil.which("unshare")


def namespaces_unavailable() -> str | None:
    """Why a simulated host cannot be made here (None: it can)."""
    if not sys.platform.startswith("linux"):
        return f"simulated hosts need Linux namespaces; this is {sys.platform}"
    if UNSHARE is None:
        return "simulated hosts need unshare(1) from util-linux, not found on PATH"
    probe = [UNSHARE, "--uts", "--pid", "--fork", "--mount-proc", "--time", "--monotonic", "1"]
    try:
        done = subprocess.run(
            [*probe, "true"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare could not run: {exc}"
    if done.returncode != 0:
        return (
            "this machine does not permit UTS, PID and time namespaces "
            f"({' '.join(probe)} true: {done.stderr.strip() or done.returncode}); "
            "run as root or allow unprivileged user namespaces"
        )
    return None


def pid_namespace(pid: int) -> str | None:
    """The PID namespace of ``pid`` (``pid:[inode]``), None when it is gone."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


@dataclass
class SimHost:
    """One simulated host: a ``dask worker`` in namespaces of its own."""

    name: str
    address: str
    monotonic_offset_s: int
    proc: subprocess.Popen[bytes]  # the ``unshare`` process, outside the namespaces
    log: Path
    init_pid: int = 0  # the namespace's init, as this (outer) namespace numbers it
    namespace: str = ""

    def find_init(self, timeout_s: float = 30.0) -> None:
        """The namespace's init: ``unshare --fork``'s child, in a PID namespace not ours."""
        deadline = time.monotonic() + timeout_s
        ours = pid_namespace(os.getpid())
        while time.monotonic() < deadline:
            try:
                children = psutil.Process(self.proc.pid).children()
            except psutil.NoSuchProcess:
                break
            for child in children:
                ns = pid_namespace(child.pid)
                if ns is not None and ns != ours:
                    self.init_pid, self.namespace = child.pid, ns
                    return
            time.sleep(0.05)
        raise RuntimeError(f"host {self.name} did not start: {self.log.read_text()[-2000:]}")

    def processes(self) -> list[int]:
        """Every live process of this host (its PID namespace), as we number them."""
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and pid_namespace(int(entry)) == self.namespace:
                try:
                    if psutil.Process(int(entry)).status() != psutil.STATUS_ZOMBIE:
                        found.append(int(entry))
                except psutil.NoSuchProcess:
                    continue
        return found

    def kill(self) -> None:
        """The whole host at once: its init killed, so the kernel kills all the rest."""
        if self.init_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.init_pid, signal.SIGKILL)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)


@dataclass
class SimCluster:
    """A scheduler on 127.0.0.1 and simulated hosts; :meth:`close` ends every process."""

    scheduler: subprocess.Popen[bytes]
    address: str
    hosts: list[SimHost] = field(default_factory=list)

    def host(self, name: str) -> SimHost:
        return next(h for h in self.hosts if h.name == name)

    def workers(self) -> dict[str, str]:
        """{worker address: host name} as the scheduler sees them now."""
        from distributed import Client

        with Client(self.address, timeout=30, set_as_default=False) as client:
            info = client.scheduler_info(n_workers=-1)["workers"]
        return {addr: str(w.get("host", "")) for addr, w in info.items()}

    def wait_for_workers(self, n: int, timeout_s: float = 120.0) -> None:
        from distributed import Client

        with Client(self.address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(n, timeout=timeout_s)

    def leftovers(self) -> dict[str, list[int]]:
        """Processes still alive in each host's namespace (after :meth:`close`: none)."""
        return {h.name: h.processes() for h in self.hosts if h.namespace}

    def close(self) -> None:
        for host in self.hosts:
            host.kill()
        self.scheduler.terminate()
        try:
            self.scheduler.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.scheduler.kill()
            self.scheduler.wait(timeout=30)


def _scheduler(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    info = tmp / "scheduler.json"
    log = open(tmp / "scheduler.log", "wb")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(info),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if info.exists():
            try:
                return proc, str(json.loads(info.read_text())["address"])
            except (ValueError, KeyError):
                pass
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"the scheduler did not start: {(tmp / 'scheduler.log').read_text()}")


def _host(tmp: Path, scheduler: str, name: str, address: str, offset_s: int) -> SimHost:
    assert address.startswith("127.") and address != "127.0.0.1", address  # loopback only
    assert UNSHARE is not None
    log = tmp / f"{name}.log"
    clock = ["--time", "--monotonic", str(offset_s)] if offset_s else []
    worker = [
        sys.executable,
        "-m",
        "distributed.cli.dask_worker",
        scheduler,
        "--host",
        address,
        "--nworkers",
        "1",
        "--nthreads",
        "1",
        "--no-dashboard",
        "--local-directory",
        str(tmp / name),
    ]
    # sh stays the namespace's init (the worker runs in the background, sh waits for it),
    # so the nanny is an ordinary process and killing init ends the whole host.
    script = 'hostname "$0" && "$@" & wait'
    namespaces = [UNSHARE, "--uts", "--pid", "--fork", "--mount-proc", *clock]
    proc = subprocess.Popen(
        [*namespaces, "sh", "-c", script, name, *worker],
        stdout=open(log, "wb"),  # noqa: SIM115 - the child keeps it
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    host = SimHost(name, address, offset_s, proc, log)
    host.find_init()
    return host


def start_cluster(tmp: Path, hosts: Sequence[tuple[str, str, int]]) -> SimCluster:
    """A scheduler and ``hosts`` (name, 127.0.0.N address, monotonic offset in seconds),
    every worker registered; the caller closes it (or uses :func:`sim_cluster`)."""
    tmp.mkdir(parents=True, exist_ok=True)
    proc, address = _scheduler(tmp)
    cluster = SimCluster(proc, address)
    try:
        for name, addr, offset in hosts:
            cluster.hosts.append(_host(tmp, address, name, addr, offset))
        cluster.wait_for_workers(len(hosts))
    except BaseException:
        cluster.close()
        raise
    return cluster


def sim_cluster(tmp: Path, hosts: Sequence[tuple[str, str, int]]) -> Iterator[SimCluster]:
    """:func:`start_cluster` as a fixture body: closed, and checked empty, at the end."""
    cluster = start_cluster(tmp, hosts)
    try:
        yield cluster
    finally:
        cluster.close()
        deadline = time.monotonic() + 30  # the kernel ends a dead init's namespace promptly
        while any((left := cluster.leftovers()).values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(left.values()), f"processes left in the simulated hosts: {left}"


_CLIENT = """
import json, sys
import ocrlab
args = json.loads(sys.argv[1])
summary = ocrlab.run(args.pop("inputs"), args.pop("out"), **args)
print(json.dumps({"exit_code": int(summary.exit_code), **summary.as_dict()}))
"""


def run_client(
    inputs: Path | Sequence[str] | str, out: Path, **options: object
) -> dict[str, object]:
    """``ocrlab.run`` in a process of its own, the cluster's client: on a real cluster the
    hosts are other machines, never in the client's process tree, and here they are the
    test's children, so a client in the test's own process would count their memory as
    its own. Returns the summary (``as_dict``, with ``exit_code``)."""
    given = [str(i) for i in inputs] if isinstance(inputs, (list, tuple)) else str(inputs)
    args = {"inputs": given, "out": str(out), "progress": False, **options}
    done = subprocess.run(
        [sys.executable, "-c", _CLIENT, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"the client failed ({done.returncode}): {done.stderr[-4000:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _dask_memory_peaks(address: str, stop: threading.Event, peaks: dict[str, int]) -> None:
    """What Dask itself reports of each worker's memory (its SystemMonitor: the worker
    process alone), polled from the scheduler until ``stop``; the largest per host."""
    from distributed import Client

    with Client(address, timeout=30, set_as_default=False) as client:
        names = client.run(socket.gethostname)
        while not stop.wait(0.1):
            for addr, info in client.scheduler_info(n_workers=-1)["workers"].items():
                host = names.get(addr, addr)
                memory = int(info.get("metrics", {}).get("memory", 0))
                peaks[host] = max(peaks.get(host, 0), memory)


def main(argv: Sequence[str] | None = None) -> None:
    """One run over two simulated hosts (sim-b's clock an hour ahead); prints the per-host
    figures, the clock offsets, and what Dask's own monitor reported of the same workers::

        python -m tests.multihost OUT INPUT... [--option KEY=JSON ...]
    """
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__.splitlines()[0] if main.__doc__ else "")
    p.add_argument("out", type=Path)
    p.add_argument("inputs", nargs="+")
    p.add_argument("--option", action="append", default=[], metavar="KEY=JSON")
    args = p.parse_args(argv)
    options = {k: json.loads(v) for k, _, v in (o.partition("=") for o in args.option)}
    shutil.rmtree(args.out, ignore_errors=True)
    hosts = [("sim-a", "127.0.0.2", 0), ("sim-b", "127.0.0.3", 3600)]
    gen = sim_cluster(args.out / "hosts", hosts)
    cluster = next(gen)
    stop, dask_peaks = threading.Event(), {}  # type: ignore[var-annotated]
    watcher = threading.Thread(target=_dask_memory_peaks, args=(cluster.address, stop, dask_peaks))
    watcher.start()
    try:
        inputs = args.inputs[0] if len(args.inputs) == 1 else args.inputs
        summary = run_client(inputs, args.out / "run", executor=cluster.address, **options)
    finally:
        stop.set()
        watcher.join()
        gen.close()
    figures = {
        host: {
            k: v[k]
            for k in (
                "rss_peak",
                "pss_at_rss_peak",
                "tesseract_rss_at_rss_peak",
                "tesseract_peak",
                "samples",
                "dropped",
                "sampler_cpu_s",
                "sampler_cpu_pct",
                "clock",
            )
        }
        | {"dask_reported_peak": dask_peaks.get(host)}
        for host, v in summary["peaks"]["hosts"].items()  # type: ignore[index]
    }
    cluster = summary["peaks"]["cluster"]  # type: ignore[index]
    print(json.dumps({"pages": summary["pages"], "cluster": cluster, "hosts": figures}, indent=1))


if __name__ == "__main__":
    main()
