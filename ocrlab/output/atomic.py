"""Atomic file writes: a reader, or a run killed with ``kill -9``, sees a whole file or none.

Every whole file ocrlab writes (artifacts, results.json, generated corpus,
reports) goes through :func:`atomic_writer`; the two streams written as the run
goes, ``journal.jsonl`` and ``trace.json``, are appended line by line instead
and their readers skip a torn last line. The bytes go to a temporary name in the
target's own folder (same filesystem, so the rename is atomic) and are renamed
over the target only once complete; on any failure the temporary file is
removed. No fsync: the guarantee is against killed processes, not power loss.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import IO

from .names import truncate_bytes

#: bytes of the target's name kept in its temporary name: with the dot, the random
#: part and ``.tmp`` the temporary name stays far below ``NAME_MAX`` (255) whatever
#: the target's length (a 250-byte target name used to make it too long to create)
TEMP_NAME_BYTES = 100


@contextlib.contextmanager
def atomic_writer(
    path: str | os.PathLike[str], mode: int = 0o644, *, replace: bool = True
) -> Iterator[IO[bytes]]:
    """Yield a binary file; on clean exit it replaces ``path``, on error it vanishes.

    ``mode``: ``mkstemp`` creates files readable by their owner only; artifacts and
    reports are for sharing, hence 0644 by default. ``replace=False``: raise
    :class:`FileExistsError` instead of replacing anything already at ``path`` (the
    artifact writer: a filesystem that folds case can make two documents' artifacts
    one name). It checks just before the rename, which holds against this process's
    own writes; the output folder's lock keeps other runs out.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{truncate_bytes(target.name, TEMP_NAME_BYTES)}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w+b") as fh:  # readable too: Pillow re-reads multi-page TIFFs
            yield fh
        os.chmod(tmp, mode)
        if not replace and os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "another file already has this name", str(target))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, replace: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path, replace=replace) as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends: for writes that must land together.

    The collector writes a document's artifact and then its manifest record; an
    interrupt between the two left an artifact the manifest did not list (found by
    cancelling a run of small pages, which finish many at a time). Inside the block
    a signal is noted; at its end the previous handlers are back and a noted signal
    is handed to them, so Ctrl-C raises ``KeyboardInterrupt`` a few milliseconds
    later, after the pair. Only the main thread can set handlers; elsewhere (a run
    in a thread) the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[tuple[int, FrameType | None]] = []

    def note(signum: int, frame: FrameType | None) -> None:
        noted.append((signum, frame))

    previous = {int(s): signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum, frame in noted[:1]:  # one interrupt is enough to stop
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)
