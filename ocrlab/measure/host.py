"""Figures about the host the run is on: the cgroup's memory limit and peak, available
memory, the descriptor limit.

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


def _cgroup_dirs() -> dict[str, tuple[str, str]]:
    """{"v2" / "v1": (this process's cgroup directory, mount point)}, for what is mounted.

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
        elif tail[0] == "cgroup" and "memory" in tail[2].split(","):
            mounts.setdefault("v1", (root, point))
    paths: dict[str, str] = {}
    for line in (_read_text("/proc/self/cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            paths.setdefault("v2", parts[2])
        elif "memory" in parts[1].split(","):
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
