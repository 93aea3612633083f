"""A fast start: a pool no larger than the batch, started while the main process gets ready.

Why: a loky worker takes 0.3-0.8 s to start (a fresh interpreter, imports).
Started after discovery and the start-up checks, that delay is added to every
run; started first, it overlaps them, and a one-page run costs little more than
the ``tesseract`` command itself. And a batch of one page gains nothing from a
second worker but its start-up (CPU taken from the first page) and memory, so
the pool is sized by :func:`page_bound`, which stops looking once it has found
``limit`` pages (a few header reads, however large the folder).
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from .sources import _walk_files, inspect_file
from .worker import warm_up


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
            paths = (path for path, error in _walk_files(root, skip) if error is None)
        elif root.exists():
            paths = iter([root])
        else:
            continue
        for path in paths:
            doc = inspect_file(path, path.name)
            found += doc.n_pages if doc is not None else 0
            if found >= limit:
                return limit
    return found


def warm(executor: cf.Executor, workers: int, engine: str) -> list[cf.Future[int]]:
    """Start the pool's workers now: one warm-up call each (imports Pillow and the engine).

    loky starts every worker on the first submit; each idle worker takes one call.
    The futures are returned for tests and ignored by the run: a warm-up that fails
    costs nothing, the first page reports the real problem.
    """
    return [executor.submit(warm_up, engine) for _ in range(max(0, workers))]
