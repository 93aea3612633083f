"""A fast start: a pool no larger than the batch, started while the main process gets ready.

Why: a loky worker takes 0.3-0.8 s to start (a fresh interpreter, imports).
Started after discovery and the start-up checks, that delay is added to every
run; started first, it overlaps them, and a one-page run costs little more than
the ``tesseract`` command itself (:class:`ocrlab.pool.Pool` starts it). Each worker
takes one warm-up call, and the calls end as soon as every worker has taken its
own (:func:`warm_up_together`), not after a fixed delay. And a batch of one page
gains nothing from a second worker but its start-up (CPU taken from the first
page) and memory, so the pool is sized by :func:`page_bound`, which stops looking
once it has found ``limit`` pages (a few header reads, however large the folder).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .sources import _walk_files, inspect_file
from .worker import warm_up

#: The longest a warm-up waits for its sibling workers to start (seconds from its start).
WARM_UP_HOLD_S = 0.15
#: Meeting folders are ``<tmp>/ocrlab-warm-<pid of the run>-<random>``.
_PREFIX = "ocrlab-warm-"
#: The file in a meeting folder that says pages are coming (not a pid: never counted as one).
_GO = "go"


@dataclass
class Meeting:
    """One pool's warm-up rendezvous: its folder and the warm-up calls that meet there.

    Owned by the pool's handle (:class:`ocrlab.pool.Pool`), which says when pages
    are coming (:meth:`go`) and removes the folder when the pool is shut down
    (:meth:`end`; usually the last warm-up to finish has removed it already).
    """

    folder: str
    #: one warm-up call per worker; each resolves to the pid of the worker that took it
    futures: list[cf.Future[int]]

    def go(self) -> None:
        """Pages are about to be submitted: the warm-ups stop waiting for slower siblings.

        From then on a worker that waits for a slower sibling holds a page back
        (measured: 60 ms at 2 workers, the skew between their starts), while the
        sibling's own imports cost its first page ~20 ms; before then the wait
        costs nothing and keeps every worker warm.
        """
        with contextlib.suppress(OSError):  # the meeting is over already
            open(os.path.join(self.folder, _GO), "x").close()

    def end(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def page_bound(inputs: Iterable[str], limit: int, exclude: Sequence[str] = ()) -> int:
    """Pages found in ``inputs``, counting no further than ``limit``.

    Reads headers only, in discovery's order; unreadable files count 0 (they never
    reach a worker). Missing inputs count 0 too: discovery reports them.
    """
    found = 0
    skip = [Path(p) for p in exclude]
    for raw in inputs:
        root = Path(raw)
        paths: Iterator[Path]
        if root.is_dir():
            paths = (
                Path(f.path) for f in _walk_files(root, skip) if f.error is None and f.skip is None
            )
        elif root.exists():
            paths = iter([root])
        else:
            continue
        for path in paths:
            found += inspect_file(path, path.name).n_pages
            if found >= limit:
                return limit
    return found


def warm(executor: cf.Executor, workers: int, engine: str) -> Meeting | None:
    """Start the pool's workers now: one warm-up call each (imports Pillow and the engine).

    loky starts every worker on the first submit; each idle worker takes one call.
    The calls meet at a rendezvous (:func:`warm_up_together`): a worker that
    finished its warm-up at once would otherwise take its siblings' calls too
    (measured: both of 2 warm-ups ran in the first worker), leaving them cold.
    The run ignores the calls' outcomes: a warm-up that fails costs nothing, the
    first page reports the real problem.
    """
    if workers < 1:
        return None
    _remove_stale_meetings()
    folder = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-")
    futures = [
        executor.submit(warm_up_together, engine, folder, workers, WARM_UP_HOLD_S)
        for _ in range(workers)
    ]
    meeting = Meeting(folder, futures)

    def _tidy(_: cf.Future[int]) -> None:  # the last warm-up to end removes the folder
        if all(f.done() for f in futures):
            meeting.end()

    for future in futures:
        future.add_done_callback(_tidy)
    return meeting


def _remove_stale_meetings() -> None:
    """Remove the meeting folders of processes that are gone (killed before their pool's
    warm-ups ended): one listing of the temporary folder per pool started."""
    base = tempfile.gettempdir()
    with contextlib.suppress(OSError):
        for name in os.listdir(base):
            if not name.startswith(_PREFIX):
                continue
            pid = name[len(_PREFIX) :].partition("-")[0]
            if not pid.isdigit():
                continue
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                shutil.rmtree(os.path.join(base, name), ignore_errors=True)
            except OSError:  # alive, another user's: not ours to judge
                continue


def warm_up_together(
    engine: str, meeting: str, workers: int, hold_s: float = WARM_UP_HOLD_S
) -> int:
    """A worker's warm-up (:func:`ocrlab.worker.warm_up`), then wait for the siblings; the pid.

    Runs in a worker. Each call leaves a file named after its process in the
    ``meeting`` folder and returns once ``workers`` processes have left theirs,
    so every worker takes exactly one call, with no fixed delay: the wait ends
    as soon as the last worker has started (measured: 10-60 ms after the first at
    2 workers), where a fixed hold kept every worker from its first page for
    0.15 s; or as soon as pages are coming (:meth:`Meeting.go`). It gives up
    ``hold_s`` after the call began (a worker that is slow to start then warms up
    with its first page), and a second call in the same process returns at once:
    it means the others gave up, or the meeting is over. (A worker whose run died
    while it booted has already exited: :func:`ocrlab.procs.watch_parent`, the pool's
    initializer, runs before any call.)
    """
    start = time.monotonic()
    pid = warm_up(engine)
    mark = os.path.join(meeting, str(pid))
    if os.path.exists(mark):
        return pid
    try:
        with open(mark, "x"):
            pass
        while time.monotonic() - start < hold_s:
            names = os.listdir(meeting)
            if _GO in names or len(names) >= workers:
                break
            time.sleep(0.002)
    except OSError:  # the folder is gone (the run ended): nothing to wait for
        pass
    return pid
