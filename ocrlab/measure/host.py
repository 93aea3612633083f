"""Figures about the host the run is on: the cgroup's memory limit and peak, available
memory, the descriptor limit, the machine's CPU time by state and the cgroup's CPU
throttling.

The start-up memory check (:mod:`ocrlab.runinfo`) sizes the worker count against
the container's limit, and the monitor records the cgroup's peak at the end of a
run; both must read *this process's* cgroup, not the machine's (see
:func:`_cgroup_dirs`).
"""

from __future__ import annotations

import os
import re
import resource

import psutil


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


def _cgroup_dirs(controller: str = "memory") -> dict[str, tuple[str, str]]:
    """{"v2" / "v1": (this process's cgroup directory, mount point)}, for what is mounted
    (v1: the hierarchy holding ``controller``).

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
        elif tail[0] == "cgroup" and controller in tail[2].split(","):
            mounts.setdefault("v1", (root, point))
    paths: dict[str, str] = {}
    for line in (_read_text("/proc/self/cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            paths.setdefault("v2", parts[2])
        elif controller in parts[1].split(","):
            paths.setdefault("v1", parts[2])

    out: dict[str, tuple[str, str]] = {}
    for kind, (root, point) in mounts.items():
        path = paths.get(kind, "/")
        if root != "/" and (path == root or path.startswith(root.rstrip("/") + "/")):
            path = path[len(root) :]
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


#: The states of a ``cpu`` line of ``/proc/stat``, in order (``guest`` time is already in
#: ``user``, so it is not added again).
_STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def cpu_times() -> tuple[dict[str, float], int] | None:
    """The machine's CPU seconds by state since boot (``/proc/stat``), and its CPU count.

    In a VM these are its vCPUs (``steal``: time the hypervisor gave to another guest);
    in a container without lxcfs, the host's CPUs. None without ``/proc``.
    """
    text = _read_text("/proc/stat")
    if text is None:
        return None
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total: dict[str, float] = {}
    cpus = 0
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if name == "cpu":
            values = [int(v) for v in rest.split()[: len(_STAT_FIELDS)]]
            total = {k: v / tick for k, v in zip(_STAT_FIELDS, values, strict=False)}
        elif name.startswith("cpu") and name[3:].isdigit():
            cpus += 1
    return (total, cpus) if total else None


def runnable_tasks() -> int | None:
    """Tasks running or ready to run on the machine right now (``procs_running`` of
    ``/proc/stat``; the caller itself is one of them). None without ``/proc``."""
    for line in (_read_text("/proc/stat") or "").splitlines():
        if line.startswith("procs_running "):
            try:
                return int(line.split()[1])
            except (IndexError, ValueError):
                return None
    return None


def cpu_pressure_s() -> float | None:
    """Seconds in which some runnable task waited for a CPU, since boot (PSI,
    ``/proc/pressure/cpu``, Linux 4.20+); None where the kernel does not report it."""
    text = _read_text("/proc/pressure/cpu") or ""
    found = re.search(r"^some .*total=(\d+)", text, re.MULTILINE)
    return int(found[1]) / 1e6 if found else None


def cgroup_cpu_throttling() -> tuple[int, float] | None:
    """(periods throttled, seconds throttled) of this process's cgroup since it was created.

    A container with a CPU quota (``cpu.max`` / ``cpu.cfs_quota_us``) is stopped for the
    rest of a period once its quota is used: the run waits without any other process
    being busy, which ``/proc/stat`` cannot show. None when unknown.
    """
    dirs = _cgroup_dirs("cpu")
    for kind in ("v2", "v1"):
        if kind not in dirs:
            continue
        stat = _read_text(os.path.join(dirs[kind][0], "cpu.stat"))
        if not stat:
            continue
        fields = dict(line.split()[:2] for line in stat.splitlines() if len(line.split()) >= 2)
        try:
            periods = int(fields.get("nr_throttled", "0"))
            if "throttled_usec" in fields:
                return periods, int(fields["throttled_usec"]) / 1e6
            if "throttled_time" in fields:  # v1: nanoseconds
                return periods, int(fields["throttled_time"]) / 1e9
        except ValueError:
            return None
    return None
