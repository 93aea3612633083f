"""The process tree under a root pid, read from ``/proc``: name, RSS, VmHWM, descriptors.

Zombies are left out: a child that exited but was not yet reaped holds no
memory, no descriptors and no Tesseract work; ``psutil`` still lists it, and
counting it would overstate concurrency (the very figure that shows whether
the pool keeps Tesseracts bounded).

Why ``/proc`` and not ``psutil`` for the walk: ``Process.children(recursive=True)``
builds a parent map by reading ``/proc/PID/stat`` of *every* process on the
machine: ~3 ms of CPU per sample on a host with ~90 processes, 3 % of a core at
10 Hz, growing with whatever else runs. Reading only the tree's own entries
(``/proc/PID/task/TID/children``, one ``status`` read, one ``stat`` of the ``fd``
directory per process) costs ~0.2 ms for five processes. psutil is the fallback
when the kernel lacks ``CONFIG_PROC_CHILDREN`` or there is no ``/proc`` at all
(no ``VmHWM`` there: ``hwm_total`` stays 0). ``overhead_s`` measures the sampler
thread's own CPU time, so the cost is a figure of every run, not a claim.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import psutil


class _Row(NamedTuple):
    pid: int
    name: str
    rss: int
    hwm: int  # 0 when unknown
    fds: int


_READ_SIZE = 1 << 16


def _read_proc(path: str) -> bytes | None:
    """The whole of a small ``/proc`` file, with raw syscalls (3x cheaper than ``open()``).

    One ``read``: procfs's seq files fill the buffer with every record that
    fits, so a short read is the end (no second, empty read per file).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, _READ_SIZE)
        if len(data) == _READ_SIZE:  # a huge children list: read the rest
            chunks = [data]
            while chunk := os.read(fd, _READ_SIZE):
                chunks.append(chunk)
            data = b"".join(chunks)
        return data
    except OSError:
        return None
    finally:
        os.close(fd)


def _field(status: bytes, key: bytes) -> bytes:
    """The value of ``key:`` in a ``/proc/PID/status`` text (b"" when absent)."""
    i = status.find(b"\n" + key + b":")
    if i < 0:
        return b""
    start = i + len(key) + 2
    end = status.find(b"\n", start)
    return status[start:] if end < 0 else status[start:end]


def _kb(value: bytes) -> int:
    try:
        return int(value.split()[0]) * 1024
    except (ValueError, IndexError):
        return 0


class _Status(NamedTuple):
    name: str
    live: bool  # not a zombie (Z) nor dead (X)
    rss: int
    hwm: int
    threads: int


def _proc_status(pid: int) -> _Status | None:
    """Name, liveness, VmRSS, VmHWM and thread count from one ``/proc/PID/status`` read."""
    data = _read_proc(f"/proc/{pid}/status")
    if not data or not data.startswith(b"Name:"):
        return None
    end = data.find(b"\n")
    name = sys.intern(data[5:end].strip().decode("utf-8", "replace"))
    state = _field(data, b"State").strip()[:1]
    try:
        threads = int(_field(data, b"Threads"))
    except ValueError:
        threads = 0
    return _Status(
        name,
        state not in (b"Z", b"X"),
        _kb(_field(data, b"VmRSS")),
        _kb(_field(data, b"VmHWM")),
        threads,
    )


_FD_SIZE_COUNTS: bool | None = None


def _fd_size_counts() -> bool:
    """Whether ``stat(/proc/PID/fd).st_size`` is the number of open fds (Linux 6.2+)."""
    global _FD_SIZE_COUNTS
    if _FD_SIZE_COUNTS is None:
        try:
            size = os.stat("/proc/self/fd").st_size
            listed = len(os.listdir("/proc/self/fd"))  # counts its own descriptor too
            _FD_SIZE_COUNTS = size > 0 and abs(size - listed) <= 1
        except OSError:
            _FD_SIZE_COUNTS = False
    return _FD_SIZE_COUNTS


def _count_fds(pid: int) -> int | None:
    """Open descriptors of ``pid``; None if it is gone, 0 if we may not look."""
    path = f"/proc/{pid}/fd"
    try:
        if _fd_size_counts():
            return os.stat(path).st_size
        return len(os.listdir(path))
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:  # PermissionError: another user's process; its memory still counts
        return 0


def _proc_children(pid: int, threads: int) -> list[int]:
    """Direct children, from ``/proc/PID/task/TID/children`` of each thread.

    A child is listed under the thread that forked it (loky's and the pool's
    threads fork too), so every thread's file is read; a single-threaded
    process (most Tesseracts, fresh workers) costs one read, no listing. The
    kernel calls the list best-effort while the process runs: a child forked
    during the read can be missed by that one sample, never by the next.
    """
    if threads == 1:
        tids: Iterable[str] = (str(pid),)
    else:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return []
    out: list[int] = []
    for tid in tids:
        data = _read_proc(f"/proc/{pid}/task/{tid}/children")
        if data:
            out.extend(int(c) for c in data.split())
    return out


_HAVE_PROC = os.path.isfile("/proc/self/status")
_HAVE_CHILDREN = os.path.isfile(f"/proc/self/task/{os.getpid()}/children")


def _walk_proc(root_pid: int, pids: Sequence[int] | None = None) -> list[_Row]:
    """Every live process of the tree from ``/proc`` (breadth first), zombies left out.

    With ``pids`` given (the psutil fallback's list) only those are read, no
    ``children`` files. A process that exits mid-walk simply drops out.
    """
    queue = [root_pid] if pids is None else list(pids)
    seen: set[int] = set()
    rows: list[_Row] = []
    i = 0
    while i < len(queue):
        pid = queue[i]
        i += 1
        if pid in seen:  # pid reuse mid-walk cannot loop us
            continue
        seen.add(pid)
        status = _proc_status(pid)
        if status is None or not status.live:
            continue  # exited between the walk and the read, or a zombie
        fds = _count_fds(pid)
        if fds is None:
            continue
        rows.append(_Row(pid, status.name, status.rss, status.hwm, fds))
        if pids is None:
            queue.extend(_proc_children(pid, status.threads))
    return rows


def _walk_psutil(root: psutil.Process) -> list[_Row]:
    """The same rows through psutil (no ``/proc``: macOS and friends); no VmHWM."""
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        procs = [root]
    rows: list[_Row] = []
    for proc in procs:
        try:
            with proc.oneshot():
                if proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                    continue
                name = sys.intern(proc.name())
                rss = int(proc.memory_info().rss)
                try:
                    fds = int(proc.num_fds() if psutil.POSIX else proc.num_handles())
                except psutil.AccessDenied:
                    fds = 0
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
        rows.append(_Row(proc.pid, name, rss, 0, fds))
    return rows


def walk_tree(root: psutil.Process) -> list[_Row]:
    """(pid, name, rss, hwm, fds) of every live process in the tree, by the cheapest way."""
    if _HAVE_PROC and _HAVE_CHILDREN:
        return _walk_proc(root.pid)
    if _HAVE_PROC:  # no CONFIG_PROC_CHILDREN: psutil's machine-wide scan for the pids only
        try:
            pids = [root.pid, *(p.pid for p in root.children(recursive=True))]
        except psutil.Error:
            pids = [root.pid]
        return _walk_proc(root.pid, pids)
    return _walk_psutil(root)
