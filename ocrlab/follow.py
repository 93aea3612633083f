"""Following a run from its ``trace.json`` while it is written: the live view's data.

Why the trace and not callbacks from the pipeline: the main process already
appends every event to ``trace.json`` the moment it happens, one JSON object a
line (page spans, the monitor's memory / descriptor / Tesseract counters,
``worker_died``, ``pool_restarted``, ``run_start`` and ``run_end``). Reading
that file is the one way to watch a run that works the same for a run blocking
this kernel (a watcher thread), a run in a background process
(:mod:`ocrlab.background`) and a run on another machine's shared disk, and it
adds no coupling, no lock and no cost to the pipeline's hot path.

:class:`TraceFollower` reads only what was appended since the last poll and
keeps a torn last line (a write in progress) until it is complete.
:class:`RunState` folds the events into the figures the view shows. Neither
imports ipywidgets, pandas or matplotlib.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any


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
    The file stays open between polls and each poll reads on from where the last
    one stopped: the recorder only ever appends to the trace (event by event, then
    the closing ``]``), never rewrites or sorts it, so nothing read is read again.
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


@dataclass
class RunState:
    """What a run has done so far, folded from its trace events."""

    total: int | None = None
    documents: int | None = None
    pages_done: int = 0
    pages_failed: int = 0
    t_s: float = 0.0  # latest moment the trace speaks of, seconds from the run start
    rss_mb: float | None = None
    rss_peak_mb: float | None = None
    pss_mb: float | None = None
    pss_peak_mb: float | None = None
    fds: int | None = None
    tesseract: int | None = None
    tesseract_peak: int = 0
    worker_deaths: int = 0
    restarts: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    status: str = "waiting"  # waiting, running, complete, interrupted, failed
    summary: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    updated: float = field(default_factory=time.monotonic)

    @property
    def finished(self) -> bool:
        return self.status in {"complete", "interrupted", "failed"}

    @property
    def pages_per_s(self) -> float | None:
        if self.summary.get("pages_per_s") is not None and self.finished:
            return float(self.summary["pages_per_s"])
        return self.pages_done / self.t_s if self.t_s > 0 and self.pages_done else None

    @property
    def eta_s(self) -> float | None:
        rate = self.pages_per_s
        if self.finished or self.total is None or not rate:
            return None
        return max(0, self.total - self.pages_done) / rate

    def apply(self, events: list[dict[str, Any]]) -> None:
        for e in events:
            self._apply(e)
        self.updated = time.monotonic()

    def _apply(self, e: dict[str, Any]) -> None:
        ph, name, args = e.get("ph"), e.get("name"), e.get("args") or {}
        ts = float(e.get("ts") or 0) / 1e6
        if ph == "X" and "page" in str(e.get("cat", "")):
            self.pages_done += 1
            self.t_s = max(self.t_s, ts + float(e.get("dur") or 0) / 1e6)
            if not args.get("ok", True):
                self.pages_failed += 1
                self.failures.append(
                    {
                        "doc_id": args.get("doc_id"),
                        "page": args.get("page"),
                        "error_type": args.get("error_type"),
                        "error": args.get("error"),
                    }
                )
        elif ph == "C":
            self.t_s = max(self.t_s, ts)
            if name == "memory (MB)":
                self.rss_mb = args.get("tree RSS", self.rss_mb)
                self.pss_mb = args.get("tree PSS", self.pss_mb)
                self.rss_peak_mb = _max(self.rss_peak_mb, self.rss_mb)
                self.pss_peak_mb = _max(self.pss_peak_mb, self.pss_mb)
            elif name == "file descriptors":
                self.fds = args.get("tree", self.fds)
            elif name == "live tesseract processes":
                self.tesseract = int(args.get("tesseract", 0))
                self.tesseract_peak = max(self.tesseract_peak, self.tesseract)
        elif ph == "i":
            if name == "run_metadata":
                self.meta = dict(args)
                self.status = "running"
            elif name == "run_start":
                self.status = "running"
                if args.get("pages") is not None:
                    self.total = args.get("pages")
            elif name == "pages_found":  # discovery is lazy: the total grows
                self.total = int(args.get("pages", 0))
            elif name == "document_failed":
                self.failures.append({**args, "page": None})
            elif name == "worker_died":
                self.worker_deaths += 1
            elif name == "pool_restarted":
                self.restarts += 1
            elif name == "run_end":
                self.status = str(args.get("status", "complete"))
                self.summary = dict(args)
                self.restarts = int(args.get("restarts", self.restarts))
                self.t_s = max(self.t_s, ts)


def _max(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else max(a, b)
