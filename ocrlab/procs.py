"""Process hygiene: no orphaned or zombie Tesseract survives a run.

When a worker dies (OOM killer, the hang watchdog, Ctrl-C), the Tesseract it
was running loses its parent. Linux would hand it to init, where it runs on
unseen, burning a core. During a run the main process declares itself a
*child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``), so such orphans are
re-parented to it instead; :func:`reap_orphans` kills and reaps them once the
run's pool is shut down (:meth:`ocrlab.pool.Pool.close`): an orphan
lives on until then, not past the run.

The workers themselves never outlive the main process: a pool worker's first
act (:func:`watch_parent`, loky's ``initializer``) and every page's set-up
(:func:`die_with_parent`) ask the kernel to kill it when its parent dies
(``PR_SET_PDEATHSIG``). :func:`kill_workers` kills a pool's workers at once
(Ctrl-C, the hang watchdog).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import functools
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence

import psutil

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    """The C library's symbols, as already loaded in this process.

    Not ``ctypes.util.find_library("c")``: it runs ``ldconfig -p`` (a process per
    call), and in a worker that is killed or exits before reaping it, that child
    was re-parented to the run (a child subreaper) and lingered as a zombie.
    """
    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        return int(_libc().prctl(option, value, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def is_subreaper() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = _libc()
        flag = ctypes.c_int(0)
        return int(libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0)) == 0 and bool(
            flag.value
        )
    except (OSError, AttributeError):
        return False


_PARENT_WATCHED = False


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this (worker) process when the process that started it dies.

    Without it, ``kill -9`` of the main process leaves its loky workers (and so
    loky's resource trackers, which wait for their pipes to close) idle forever,
    ~60 MB each. Linux only; once per process.
    """
    global _PARENT_WATCHED
    if _PARENT_WATCHED:
        return
    _PARENT_WATCHED = True
    parent = os.getppid()
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def watch_parent(parent: int) -> None:
    """A pool worker's first act (loky's ``initializer``): die with the process that made it.

    :func:`die_with_parent` alone reads the parent's pid when it is called; a main
    process killed (``kill -9``) while its workers were still booting has by then
    been replaced by init, and the worker, which has not had a task yet, would wait
    for one forever (found: idle workers and a resource tracker left by an
    interrupted test run). ``parent`` is the pid that created the pool.
    """
    die_with_parent()
    if os.getppid() != parent:
        os._exit(1)


@contextlib.contextmanager
def child_subreaper() -> Iterator[bool]:
    """Make this process the subreaper of its descendants for the duration (Linux only)."""
    already = is_subreaper()
    enabled = already or _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    try:
        yield enabled
    finally:
        if enabled and not already:
            _prctl(_PR_SET_CHILD_SUBREAPER, 0)


def reap_orphans(names: Sequence[str] = ("tesseract",)) -> list[int]:
    """Kill and reap direct children of this process called ``names``; return their pids.

    In parallel mode the main process never starts Tesseract itself, so any
    Tesseract child it has is an orphan re-parented to it. Call it only when no
    in-process (sequential) page is running.
    """
    killed = []
    for child in psutil.Process().children(recursive=False):
        try:
            if child.name() not in names:
                continue
            if child.status() != psutil.STATUS_ZOMBIE:
                child.kill()
            child.wait(timeout=10)  # reaps it: no zombie left behind
            killed.append(child.pid)
        except (psutil.NoSuchProcess, psutil.TimeoutExpired, ChildProcessError):
            continue
    if killed:
        log.warning("killed %d orphaned Tesseract process(es): %s", len(killed), killed)
    return killed


def worker_pids(executor: cf.Executor) -> list[int]:
    """PIDs of a loky pool's worker processes ([] for executors without local workers)."""
    processes = getattr(executor, "_processes", None)
    if not isinstance(processes, dict):
        return []
    return [int(pid) for pid in processes]


def kill_workers(executor: cf.Executor, sig: int = signal.SIGKILL) -> bool:
    """Kill a loky pool's workers (it becomes broken); False if there are none to kill.

    The only way to stop a page that hangs inside a worker: a running call cannot
    be cancelled. The scheduler restarts the pool afterwards.
    """
    pids = worker_pids(executor)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    return bool(pids)
