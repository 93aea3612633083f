"""Run-wide stops: the output filesystem cannot take more, so the whole run stops.

A full, read-only or vanished output filesystem is not one page's fault: every
later write would fail the same way. The run stops once, says why (exit code 4),
keeps what it finished, and a ``--resume`` carries on. The reserve file
(:class:`Ballast`) keeps room for the manifest that says so.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from ..errors import OutputStoppedError
from .layout import RESERVE_NAME

#: errno values that say the output filesystem cannot take more, not that one page is bad.
RUN_WIDE_ERRNOS = {
    errno.ENOSPC: "no space left on the {fs} filesystem",
    errno.EDQUOT: "disk quota exceeded on the {fs} filesystem",
    errno.EROFS: "the {fs} filesystem became read-only",
    errno.ENOENT: "the {fs} folder was removed",
    errno.EACCES: "the {fs} folder is no longer writable",
    errno.EPERM: "the {fs} folder is no longer writable",
    errno.EIO: "the {fs} filesystem reports I/O errors",
}


def run_wide_reason(exc: BaseException, fs: str = "output") -> str | None:
    """The run-wide condition behind ``exc`` in a few words, or ``None`` for other errors."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in RUN_WIDE_ERRNOS:
            return RUN_WIDE_ERRNOS[exc.errno].format(fs=fs)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return None


def stopped_error(reason: str, documents: int) -> OutputStoppedError:
    """The one-line message a run-wide stop ends with (README, exit code 4)."""
    return OutputStoppedError(
        f"{reason} after {documents} documents; fix it (free space) and run again with --resume",
        documents,
    )


class Ballast:
    """A small file reserved at start and released at a run-wide stop.

    When the output filesystem is full, the manifest that says so and lists what
    was finished still needs room; removing the ballast gives it that room.
    Its size follows the filesystem (1% of it, between 64 KiB and 16 MiB).
    """

    def __init__(self, root: Path) -> None:
        self.path = root / RESERVE_NAME
        st = os.statvfs(root)
        size = st.f_frsize * st.f_blocks
        self.size = max(64 * 1024, min(16 * 2**20, size // 100))
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.posix_fallocate(fd, 0, self.size)
        except OSError:
            os.close(fd)
            self.release()
            raise
        os.close(fd)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()
