"""Opening an input file: a regular file only, and never a wait.

Why a module of its own: three places read inputs (discovery's header sniff and
page count in the main process, page preparation in a worker, the input hash
of the manifest) and each met the same traps. ``open()`` of a FIFO blocks until
a writer comes, which in a batch is never; a device may act on open (a tape
rewinds) or never end (``/dev/zero``); a socket cannot be opened at all; and a
path checked with ``stat()`` may be replaced before it is opened (other
programs touch inputs while a run goes on). So a path is opened with
``O_NONBLOCK`` (a FIFO opens at once, a regular file ignores the flag) and
``O_NOCTTY``, and it is the *open file* whose type is checked: only a regular
file is read, and what was checked is what is read.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

from .errors import PageError

__all__ = ["InputFileError", "file_kind", "open_input", "read_input"]

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISLNK, "a symbolic link"),
)


class InputFileError(PageError):
    """An input could not be opened as a regular file (gone, replaced, not readable).

    Not an :class:`OSError` on purpose: a worker reports the errno of an OSError so
    the main process can tell a full or vanished *temporary* folder (run-wide) from
    a page's own trouble; an input that vanished is the page's own trouble.
    """


def file_kind(mode: int) -> str:
    """What a ``st_mode`` is, in words: "a FIFO (named pipe)", "a socket", ..."""
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def open_input(path: str | os.PathLike[str]) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file; never blocks.

    Raises :class:`InputFileError` naming the path and why (missing, not
    readable, a FIFO or device put there since discovery looked).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        gone = " (removed during the run?)" if exc.errno == errno.ENOENT else ""
        raise InputFileError(
            f"cannot open {os.fspath(path)!r}: {exc.strerror or exc}{gone}"
        ) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise InputFileError(
                f"{os.fspath(path)!r} is {file_kind(mode)}, not a regular file (was it "
                "replaced during the run?); only regular files are read"
            )
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_input(path: str | os.PathLike[str]) -> bytes | None:
    """The whole input, to ship with its task to a remote worker; ``None`` when it is gone
    or no longer a regular file (the worker then opens the path and reports why)."""
    try:
        with open_input(path) as fh:
            return fh.read()
    except InputFileError:
        return None
