"""A run's private temporary folder (Tesseract's page output, rendered PDF pages).

Why not in the output folder: output folders are often network or bind mounts,
and a full output filesystem should show as one clear run-wide stop in the main
process (:mod:`ocrlab.output.stops`), not as a failure of every page in the workers.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

TMP_PREFIX = "ocrlab-run-"
#: where workers leave each page's structured outputs for the main process
PARTS = "parts"


def part_path(tmp_dir: str | os.PathLike[str], doc_id: str, page: int, suffix: str) -> Path:
    """Where a page's output of one format waits in the run's temporary folder until its
    document is assembled: a folder per document (named by a digest of its id, which
    may hold any character), a file per page and format."""
    folder = hashlib.sha256(doc_id.encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return Path(tmp_dir, PARTS, folder, f"{page:06d}{suffix}")


class RunTempDir:
    """A run's private temporary folder on the local temporary filesystem.

    Tesseract's page output and rendered PDF pages go there. Its name is unique
    (``ocrlab-run-<pid>-<random>``) and it holds a lock of its own while the run
    lives, so cleaning up after killed runs removes only folders whose lock can
    be taken: a folder of a live run, in this process or another, is never
    touched. On the local temporary filesystem rather than in the output folder
    because output folders are often network or bind mounts, and because a full
    output filesystem should show as one clear run-wide stop in the main process,
    not as a failure of every page in the workers.
    """

    def __init__(self, base: str | None = None) -> None:
        self.base = Path(base or tempfile.gettempdir())
        self.path = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", dir=self.base))
        self._fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    @staticmethod
    def remove_stale(base: str | None = None) -> list[Path]:
        """Remove temporary folders of runs that are gone (their lock can be taken)."""
        removed = []
        for folder in Path(base or tempfile.gettempdir()).glob(TMP_PREFIX + "*"):
            try:
                fd = os.open(folder / ".lock", os.O_RDWR | os.O_CLOEXEC)
            except OSError:
                continue  # not ours or being created: leave it
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live run owns it
            finally:
                os.close(fd)
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        return removed

    def close(self) -> None:
        """Remove the folder (then release its lock)."""
        shutil.rmtree(self.path, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.close(self._fd)
