"""The output folder belongs to one run: an OS lock, and what a run may find in it.

**The lock.** A run holds ``fcntl.flock(LOCK_EX)`` on ``OUT/.ocrlab.lock`` for its
whole life. The kernel drops the lock when the process dies, however it dies,
so a ``kill -9`` never leaves a stale lock behind, and there is no PID file to
second-guess. The lock file's content (pid, host, start time, command) is only
for the message a second run prints; the lock itself is what decides. ``flock``
locks belong to an open file description, so two runs in one process (two
``ocrlab.start`` handles in a notebook) exclude each other too.

**A used folder.** A new run into a folder that holds another run's manifest,
trace, log or artifacts would leave a mixture no run produced. The default is
to refuse, naming ``--resume`` and ``--overwrite``: refusing costs one re-typed
command, while mixing (or silently deleting a previous result) can cost a
batch's worth of work or a wrong conclusion. ``overwrite`` removes ocrlab's own
files only (``text/``, the manifest, journal, trace and log), never anything else
a user keeps there, and only once the lock is held.

Also here, since they decide what a run may do to the folder and its filesystem:
the run's own temporary folder on the local temporary filesystem
(:class:`RunTempDir`), the errno values that make a failure run-wide rather than a
page's (:func:`run_wide_reason`), and the reserve file that leaves room for the
final manifest after a disk-full stop (:class:`Ballast`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from .artifacts import OutputLayout
from .errors import OutputBusyError, OutputNotEmptyError, OutputStoppedError, PipelineError

LOCK_NAME = ".ocrlab.lock"


def _holder(path: Path) -> str:
    """Who holds the lock, in words, from what it wrote into the lock file."""
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another ocrlab run"
    return (
        f"the run with PID {info.get('pid')} on {info.get('host')}, started "
        f"{info.get('started_at')} ({info.get('command')})"
    )


@contextlib.contextmanager
def hold_output(root: Path) -> Iterator[Path]:
    """Create ``root`` if needed and hold its lock for the ``with`` block.

    Raises :class:`OutputBusyError` at once (never waits) when another run holds it.
    """
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise PipelineError(
            f"output folder {str(root)!r} is not writable ({exc.strerror or exc}); choose "
            "another --out folder or fix its permissions."
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)  # the holder's details stay: they are what the message names
        raise OutputBusyError(
            f"output folder {str(root)!r} is in use by {_holder(root / LOCK_NAME)}; wait "
            "for it to finish or choose another --out folder."
        ) from None
    try:
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join(sys.argv[:1] + sys.argv[1:4])[:200],
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)
        yield root / LOCK_NAME
    finally:
        with contextlib.suppress(OSError):  # while still held: no stale holder's details
            os.ftruncate(fd, 0)
        os.close(fd)  # releases the lock (the file stays: deleting it would race)


def check_output(root: Path, *, resume: bool, overwrite: bool) -> None:
    """Raise now what a run on ``root`` would raise at its start: the folder is busy, or it
    holds a previous run's files and neither ``resume`` nor ``overwrite`` was asked.

    For callers that start the run elsewhere (``ocrlab.start``'s background process),
    so that the notebook cell fails at once with the reason; the run itself checks
    again under its lock.
    """
    with hold_output(root):
        found = [] if resume or overwrite else OutputLayout(root).previous_outputs()
    if found:
        raise not_empty_error(root, found)


def not_empty_error(root: Path, found: list[str]) -> OutputNotEmptyError:
    """The refusal of a used folder, naming what is there and the two ways on."""
    return OutputNotEmptyError(
        f"output folder {str(root)!r} holds a previous run's {', '.join(found)}; run again "
        "with --resume to keep its finished documents and do the rest, or with --overwrite "
        "to start from an empty folder (ocrlab.run(..., resume=True) / overwrite=True), or "
        "choose another --out."
    )


# --------------------------------------------------------------------------- temporary files

TMP_PREFIX = "ocrlab-run-"


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
        import tempfile

        self.base = Path(base or tempfile.gettempdir())
        self.path = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", dir=self.base))
        self._fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    @staticmethod
    def remove_stale(base: str | None = None) -> list[Path]:
        """Remove temporary folders of runs that are gone (their lock can be taken)."""
        import tempfile

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


# --------------------------------------------------------------------------- run-wide stops

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
        self.path = root / ".ocrlab-reserve"
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
