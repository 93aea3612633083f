"""Reading ``trace.json``: whole, streamed, or followed while a run appends to it.

The one reader of the format :mod:`ocrlab.output.trace` writes: the live views
(:mod:`ocrlab.follow`), the analysis and plots (:mod:`ocrlab.lab`) and the tests
all read through it. It reads ocrlab's one-event-per-line form complete, torn by
a killed run (missing ``]``, half a last line) or just created (empty), and any
other Chrome trace (the object form with ``traceEvents``, a one-line array) whole.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def iter_trace(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The events of a trace one by one, in file order, without loading the file whole.

    Reads ocrlab's one-event-per-line form, complete, torn by a killed run
    (missing ``]``, half a last line) or just created by a live run (empty). A
    trace in another layout (the object form with ``traceEvents``, or a one-line
    array) is parsed whole.
    """
    with open(path, encoding="utf-8") as fh:
        head = fh.read(2)
        fh.seek(0)
        if not head.strip():  # a live run's trace just created: no event yet
            return
        if head.lstrip()[:1] == "{" or not fh.readline().rstrip().endswith("["):
            fh.seek(0)
            yield from _parse_whole(fh.read())
            return
        seen = False
        for line in fh:
            line = line.strip().strip(",")
            if line in {"", "[", "]"}:
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                if not seen:  # not one event per line (pretty-printed): parse it whole
                    fh.seek(0)
                    yield from _parse_whole(fh.read())
                return  # else: the torn last line of a killed run
            seen = True
            if isinstance(event, dict):
                yield event


def _parse_whole(text: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = json.loads(text.rstrip().rstrip(",") + "]")
    if isinstance(data, dict):
        events: list[dict[str, Any]] = data.get("traceEvents", [])
        return events
    return list(data)


def load_trace(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every event of a trace as a list (see :func:`iter_trace` to stream a large one)."""
    return list(iter_trace(path))


def stat_key(path: str | os.PathLike[str]) -> tuple[int, int, int] | None:
    """(inode, mtime ns, size) of ``path``, or None: tells a stale trace from a fresh one."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class TraceFollower:
    """Incremental reader of a trace being appended (torn last line tolerated).

    ``stale`` is the :func:`stat_key` of a trace left by an earlier run in the same
    folder: it is not read; the follower waits for the new run to replace it.
    The file stays open between polls, so a folder reused by a new run (which
    creates a new trace under the same name) does not mix two runs' events.
    """

    def __init__(
        self, path: str | os.PathLike[str], stale: tuple[int, int, int] | None = None
    ) -> None:
        self.path = Path(path)
        self.stale = stale
        self._fh: IO[bytes] | None = None
        self._buffer = b""
        self.skipped = 0  # lines that were not JSON (should stay 0)

    def poll(self) -> list[dict[str, Any]]:
        """Events appended since the last call (complete lines only)."""
        if self._fh is None:
            key = stat_key(self.path)
            if key is None or (self.stale is not None and key == self.stale):
                return []
            try:
                self._fh = open(self.path, "rb")  # noqa: SIM115 - closed in close()
            except OSError:
                return []
        chunk = self._fh.read()
        if not chunk:
            return []
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        events = []
        for raw in lines:
            line = raw.strip().rstrip(b",")
            if line in {b"", b"[", b"]"}:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                self.skipped += 1
                continue
            if isinstance(event, dict):
                events.append(event)
        return events

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
