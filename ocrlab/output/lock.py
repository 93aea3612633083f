"""The output folder belongs to one run: an OS lock held for the run's whole life.

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
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutputBusyError, PipelineError
from .layout import LOCK_NAME, OutputLayout, not_empty_error


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
