"""Honest memory: PSS and USS of processes, from ``/proc/PID/smaps_rollup``.

Why not RSS alone: RSS counts every page a process maps, so pages shared
between processes (the Python interpreter and libraries a loky worker shares
with its siblings after start-up, Tesseract's libraries and its traineddata
mapped by every Tesseract) are counted once per process. Summed over a tree,
RSS overstates what the tree costs the machine. PSS (proportional set size)
charges a shared page 1/N to each of the N processes mapping it, so the sum
over a tree is what it costs; USS (unique set size: private pages) is what
killing one process would free.

Why not every sample: the kernel walks a process's page tables to fill
``smaps_rollup``, so a read costs ~10x a ``status`` read (measured here: 54 us
against 6 us of CPU for a 10 MB Python process, more for a 100 MB Tesseract).
The monitor reads it every tenth sample (``pss_every``) and reports its own
cost (``pss_overhead_s``: 0.49 s of CPU over a 51 s run when read every fifth).
Without ``smaps_rollup`` (kernels before 4.14, non-Linux) every figure is ``None``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import NamedTuple

_READ_SIZE = 1 << 12


class Rollup(NamedTuple):
    """One process's memory in bytes: resident, proportional, unique."""

    rss: int
    pss: int
    uss: int


def _kb_after(data: bytes, key: bytes) -> int:
    i = data.find(b"\n" + key)
    if i < 0:
        return 0
    start = i + len(key) + 1
    end = data.find(b"\n", start)
    try:
        return int(data[start:end].split()[0]) * 1024
    except (ValueError, IndexError):
        return 0


def read_rollup(pid: int) -> Rollup | None:
    """``pid``'s RSS, PSS and USS (Private_Clean + Private_Dirty), or None if unreadable."""
    try:
        fd = os.open(f"/proc/{pid}/smaps_rollup", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, _READ_SIZE)
    except OSError:  # the process exited between open and read, or we may not look
        return None
    finally:
        os.close(fd)
    if b"Pss:" not in data:
        return None
    return Rollup(
        _kb_after(data, b"Rss:"),
        _kb_after(data, b"Pss:"),
        _kb_after(data, b"Private_Clean:") + _kb_after(data, b"Private_Dirty:"),
    )


def tree_rollup(pids: Iterable[int]) -> tuple[int, int] | None:
    """(sum of PSS, sum of USS) over ``pids``; None when no process could be read.

    A process that exits mid-way drops out (its memory is gone too).
    """
    pss = uss = 0
    seen = False
    for pid in pids:
        rollup = read_rollup(pid)
        if rollup is None:
            continue
        seen = True
        pss += rollup.pss
        uss += rollup.uss
    return (pss, uss) if seen else None


HAVE_ROLLUP = os.path.isfile("/proc/self/smaps_rollup")
