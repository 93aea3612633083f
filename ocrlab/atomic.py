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
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], mode: int = 0o644) -> Iterator[IO[bytes]]:
    """Yield a binary file; on clean exit it replaces ``path``, on error it vanishes.

    ``mode``: ``mkstemp`` creates files readable by their owner only; artifacts and
    reports are for sharing, hence 0644 by default.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w+b") as fh:  # readable too: Pillow re-reads multi-page TIFFs
            yield fh
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path) as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
