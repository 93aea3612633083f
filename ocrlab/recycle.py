"""Recycled workers: a loky worker retires itself after N pages or past an RSS bound.

Why: a worker that lives for the whole run accumulates whatever its engine
leaks (tesserocr's long-lived API has been reported to grow to gigabytes over a
long batch), allocator fragmentation, caches. Replacing it every
``max_pages_per_worker`` pages, or as soon as its memory passes
``max_worker_rss_mb``, bounds that at the cost of one worker start-up.

How, without losing or repeating a page: loky's own worker loop
(``_process_worker`` in ``loky/process_executor.py``) already retires a worker
that leaks: *after* a call has returned and its result has been sent back, it
compares the process's memory with a reference taken after the first call and,
past ``_MAX_MEMORY_LEAK_SIZE``, puts its pid on the result queue and returns.
The executor's manager thread treats that pid as a clean exit (not a crash: the
pool is not broken), and the next ``submit`` starts a replacement
(``_ensure_executor_running``). Pages already queued for the pool stay in the
call queue for the other workers and the replacement. ocrlab takes that path:
when the worker decides to retire, it sets, in its own process only, the two
module globals that check reads (threshold below any figure, no delay), so
loky's loop retires it right after it returns the current page. The alternative,
draining the pool and starting a new one, idles every worker for the drain and
pays a whole pool start (both measured in ``docs/scale.md``, "Recycled workers").

Limits: the check needs psutil (an ocrlab dependency) and runs from the second
call on (loky takes its reference after the first), so a worker OCRs at least
two pages (``max_pages_per_worker`` is at least 2); the globals are private to
loky, so :func:`retire` says whether it found them, and the page reports
``recycle_failed`` instead of ``recycled`` when it did not.
"""

from __future__ import annotations

import os
import sys
import warnings

from .records import EngineSettings

#: loky's worker loop: the standalone package ocrlab's pool uses, or joblib's vendored copy
_LOKY_MODULES = ("loky.process_executor", "joblib.externals.loky.process_executor")

_pages_done = 0


def retire() -> bool:
    """Make loky's worker loop end this worker after the current call; False if it cannot."""
    found = False
    for name in _LOKY_MODULES:
        module = sys.modules.get(name)
        if module is None or not getattr(module, "_USE_PSUTIL", False):
            continue
        if hasattr(module, "_MAX_MEMORY_LEAK_SIZE") and hasattr(module, "_MEMORY_LEAK_CHECK_DELAY"):
            # any memory figure counts as a leak; check right after this call
            setattr(module, "_MAX_MEMORY_LEAK_SIZE", -(1 << 62))  # noqa: B010
            setattr(module, "_MEMORY_LEAK_CHECK_DELAY", -1.0)  # noqa: B010
            found = True
    return found


def _children_rss() -> int:
    """RSS of this process's live children (a Tesseract still running), in bytes.

    From ``/proc/self/task/*/children`` and each child's ``statm``: a few reads when
    there are no children (the usual case between pages), where psutil's recursive
    walk would scan every process of the host after every page.
    """
    total = 0
    page = os.sysconf("SC_PAGE_SIZE")
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 0
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/children", encoding="ascii") as fh:
                pids = fh.read().split()
        except OSError:
            continue
        for pid in pids:
            try:
                with open(f"/proc/{pid}/statm", encoding="ascii") as fh:
                    total += int(fh.read().split()[1]) * page
            except (OSError, ValueError, IndexError):
                continue
    return total


def after_page(settings: EngineSettings, worker_rss: int, pages: int = 1) -> dict[str, str]:
    """Count ``pages`` done in this worker (a bundle counts its pages); retire it when a
    bound is reached.

    Returns what goes into the page's ``extra`` (and its trace span): ``{}`` when
    the worker goes on, ``{"recycled": why}`` when it retires after this page,
    ``{"recycle_failed": why}`` when it should but loky's check was not found.
    Called in loky pool workers only (``settings.pool_worker``).
    """
    global _pages_done
    _pages_done += pages
    reason: str | None = None
    if settings.max_pages_per_worker and _pages_done >= settings.max_pages_per_worker:
        reason = f"{_pages_done} pages (max_pages_per_worker={settings.max_pages_per_worker})"
    elif settings.max_worker_rss_mb:
        rss = worker_rss + _children_rss()
        if rss > settings.max_worker_rss_mb * 2**20:
            reason = (
                f"RSS {rss / 2**20:.0f} MB after {_pages_done} pages "
                f"(max_worker_rss_mb={settings.max_worker_rss_mb:g})"
            )
    if reason is None:
        return {}
    return {"recycled": reason} if retire() else {"recycle_failed": reason}


def quiet_recycling_warning() -> None:
    """loky warns when a worker stops while pages are queued; for a recycled worker it is
    intended, not a problem (the replacement starts at the next submit)."""
    warnings.filterwarnings(
        "ignore", message="A worker stopped while some jobs were given", category=UserWarning
    )
