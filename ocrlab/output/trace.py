"""The run's ``trace.json``: written by the main process only, readable by Perfetto.

Format: Chrome Trace Event Format, JSON array form. Page spans are ``X``
events on one track per worker process (a worker runs one page at a time, so
spans never overlap on a track); document spans are ``X`` events on lanes of
the main process, a lane per concurrently open document; the monitor's samples
are ``C`` counter events; ``M`` events name processes and tracks; an ``i``
event at time 0 carries the run metadata (config, versions, host).

Timestamps are microseconds from the run start, converted here from the
``time.monotonic_ns()`` stamps workers return (CLOCK_MONOTONIC is system-wide on
Linux, so worker and main-process stamps share one clock; a Dask worker on
another host has its own, and :meth:`TraceRecorder.on_our_clock` moves its stamps
onto ours with the measured offset, :class:`ocrlab.scaleout.ClockOffsets`).

Other hosts: two hosts may have workers with the same pid, so a worker of another
host gets a track of its own (a pid above any real one, :data:`REMOTE_PID_BASE`,
its real pid in the span's ``worker_pid``), and each host a track for its counters
(:meth:`TraceRecorder.host_counter`, named ``host NAME``).

Events are written one per line as they happen and nothing is kept in memory
(but the names of the tracks already named), so a run of a million pages costs
the main process no more than a run of ten. The file is not sorted: the format
does not ask for it and Perfetto sorts on load; events of one track (a worker's
pages, a document lane) are in time order, since a track's spans are recorded
as they end and never overlap. A run killed half way still leaves a loadable
trace (the format allows the closing ``]`` to be missing, and
:func:`ocrlab.output.trace_reader.iter_trace` skips a torn last line); :meth:`close`
appends the ``]``.
Each event but the first starts with the comma that separates it from the
previous one, so the file is valid JSON at every line boundary but the ``]``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..records import PageResult
from . import trace_schema as ts
from .names import json_dumps

MAIN_TID_RUN = 0
DOC_LANE_TID_BASE = 1
#: trace pids of other hosts' workers and of the hosts' counter tracks start above this
#: (Linux's pid_max is at most 2**22, so no real pid of this host can be one of them)
REMOTE_PID_BASE = 1 << 22


def event_line(event: Mapping[str, Any]) -> str:
    """One event as the trace's one line of JSON."""
    return json_dumps(event, separators=(",", ":"), default=str)


def naming(
    pid: int, name: str, *, tid: int | None = None, sort_index: int | None = None
) -> list[dict[str, Any]]:
    """The ``M`` events that name process ``pid`` (and place it by ``sort_index``), or its
    thread ``tid``: the names Perfetto shows on the tracks."""

    def meta(kind: str, on: int, args: dict[str, Any]) -> dict[str, Any]:
        return {"ph": "M", "name": kind, "pid": pid, "tid": on, "ts": 0, "args": args}

    if tid is not None:
        return [meta("thread_name", tid, {"name": name})]
    events = [meta("process_name", 0, {"name": name})]
    if sort_index is not None:
        events.append(meta("process_sort_index", 0, {"sort_index": sort_index}))
    return events


class TraceRecorder:
    """Writes trace events as they happen, in the main process, and keeps none of them
    (thread-safe: the monitor's thread adds counters)."""

    def __init__(self, path: str | os.PathLike[str], t0_ns: int, main_pid: int | None = None):
        self.path = Path(path)
        self.t0_ns = t0_ns
        self.main_pid = main_pid or os.getpid()
        self._lock = threading.Lock()
        self._named: set[tuple[int, int]] = set()
        #: this host's name: a span from any other host is on a track of its own
        self.host = socket.gethostname()
        self._tracks: dict[tuple[str, int], int] = {}
        self._tracks_lock = threading.Lock()
        #: another host's clock offset for a page result, ns (None: not known); set by what
        #: measures it, the supervisor of a Dask run (:class:`ocrlab.scaleout.ClockOffsets`)
        self.clock_offset: Callable[[PageResult], int | None] | None = None
        self._fh = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._fh.write("[")
        self._fh.flush()
        self._sep = "\n"
        self._closed = False
        #: seconds spent encoding and writing events: the trace's cost to the main process
        self.write_s = 0.0
        #: the error that stopped writes (disk full, folder removed); the run stops on it
        self.failed: OSError | None = None
        self._process_name(self.main_pid, "ocrlab (main process)", sort_index=0)
        self._thread_name(self.main_pid, MAIN_TID_RUN, "run")

    # -- low level -------------------------------------------------------------------------
    def us(self, t_ns: int) -> float:
        """A monotonic_ns stamp as microseconds since the run start."""
        return round((t_ns - self.t0_ns) / 1000.0, 3)

    def emit(self, event: dict[str, Any]) -> None:
        """Append one event (written at once, one line, so a crash tears at most one line)."""
        t = time.perf_counter()
        line = event_line(event)
        with self._lock:
            if self._closed:
                return
            if self.failed is not None:
                return
            try:
                self._fh.write(self._sep + line)
                self._fh.flush()
            except OSError as exc:  # the monitor's thread writes too: the run checks this
                self.failed = exc
                return
            finally:
                self.write_s += time.perf_counter() - t
            self._sep = ",\n"

    def _process_name(self, pid: int, name: str, sort_index: int | None = None) -> None:
        for event in naming(pid, name, sort_index=sort_index):
            self.emit(event)

    def _thread_name(self, pid: int, tid: int, name: str) -> None:
        if (pid, tid) in self._named:
            return
        self._named.add((pid, tid))
        for event in naming(pid, name, tid=tid):
            self.emit(event)

    def _track(self, host: str, pid: int) -> tuple[int, bool]:
        """The trace pid of (host, pid), and whether it is new."""
        with self._tracks_lock:
            track = self._tracks.get((host, pid))
            if track is not None:
                return track, False
            track = self._tracks[(host, pid)] = REMOTE_PID_BASE + len(self._tracks) + 1
            return track, True

    def on_our_clock(self, result: PageResult) -> PageResult:
        """``result`` with another host's stamps moved onto this process's clock: by its
        worker's measured offset, or (none known) so that it ends where it arrived."""
        if not result.host or result.host == self.host:
            return result
        offset = self.clock_offset(result) if self.clock_offset is not None else None
        if offset is None:
            shift = time.monotonic_ns() - result.end_ns
            extra = {**result.extra, "clock": "arrival"}
        else:
            shift = -offset
            extra = {**result.extra, "clock_offset_us": round(offset / 1000, 3)}
        return dataclasses.replace(
            result, start_ns=result.start_ns + shift, end_ns=result.end_ns + shift, extra=extra
        )

    def track_pid(self, host: str, pid: int) -> int:
        """The trace pid of worker ``pid`` on ``host``: its own pid on this host, else a
        track of its own (the same pid may run on two hosts)."""
        if not host or host == self.host:
            return pid
        return self._track(host, pid)[0]

    def host_track(self, host: str) -> int:
        """The pid of ``host``'s counter track, named ``host NAME`` when first asked."""
        track, new = self._track(host, 0)  # pid 0 is never a worker's
        if new:
            self._process_name(track, ts.HOST_TRACK_PREFIX + host, sort_index=2)
        return track

    # -- what the pipeline records ---------------------------------------------------------
    def metadata(self, meta: Mapping[str, Any]) -> None:
        """Run metadata (config, versions, host, CPUs) as an instant event at time 0."""
        self.emit(
            {
                "ph": "i",
                "s": "g",
                "name": ts.RUN_METADATA,
                "cat": "run",
                "pid": self.main_pid,
                "tid": MAIN_TID_RUN,
                "ts": 0,
                "args": dict(meta),
            }
        )

    def page(
        self, result: PageResult, submit_ns: int, attempt: int = 1, cost: float | None = None
    ) -> None:
        """A page span on its worker's track, with the numbers the notebooks plot.

        ``cost`` is the estimate the page was ordered by (:mod:`ocrlab.ordering`), kept
        beside the measured ``ocr_us`` so the trace explorer can show how good it is.
        """
        pid = self.track_pid(result.host, result.pid) if result.pid else self.main_pid
        if (pid, pid) not in self._named:
            label = "ocrlab (main process)" if pid == self.main_pid else f"worker {result.pid}"
            if result.host and pid != self.main_pid:
                label += f" @ {result.host}"
            if pid != self.main_pid:
                self._process_name(pid, label, sort_index=1)
            self._thread_name(pid, pid, "pages")
        args: dict[str, Any] = {
            "doc_id": result.doc_id,
            "page": result.page,
            "ok": result.ok,
            "queue_wait_us": max(0.0, round((result.start_ns - submit_ns) / 1000.0, 3)),
            "prepare_us": round(result.prepare_ns / 1000.0, 3),
            "ocr_us": round(result.ocr_ns / 1000.0, 3),
            "engine_cpu_us": round(result.engine_cpu_ns / 1000.0, 3),
            "chars": len(result.text or ""),
            "width": result.width,
            "height": result.height,
            "worker_rss": result.worker_rss,
            "worker_hwm": result.worker_hwm,
            "child_maxrss": result.child_maxrss,
            "host": result.host,
            "attempt": attempt,
        }
        if pid != result.pid and result.pid:
            args["worker_pid"] = result.pid
        if cost is not None:
            args["cost_estimate"] = cost
        if not result.ok:
            args["error_type"] = result.error_type
            args["error"] = result.error
        if result.confidence is not None:  # the page's word confidences, beside its span
            args.update(result.confidence.as_dict())
        args.update(result.extra)
        self.emit(
            {
                "ph": "X",
                "cat": ts.CAT_PAGE if result.ok else ts.CAT_PAGE_ERROR,
                "name": f"{result.doc_id} p{result.page}",
                "pid": pid,
                "tid": pid,
                "ts": self.us(result.start_ns),
                "dur": max(0.0, round((result.end_ns - result.start_ns) / 1000.0, 3)),
                "args": args,
            }
        )

    def document(
        self, doc_id: str, lane: int, start_ns: int, end_ns: int, args: Mapping[str, Any]
    ) -> None:
        """A document span on lane ``lane`` of the main process."""
        tid = DOC_LANE_TID_BASE + lane
        self._thread_name(self.main_pid, tid, f"documents {lane + 1}")
        self.emit(
            {
                "ph": "X",
                "cat": ts.CAT_DOCUMENT,
                "name": doc_id,
                "pid": self.main_pid,
                "tid": tid,
                "ts": self.us(start_ns),
                "dur": max(0.0, round((end_ns - start_ns) / 1000.0, 3)),
                "args": {"doc_id": doc_id, **args},
            }
        )

    def counter(self, name: str, t_ns: int, values: Mapping[str, float]) -> None:
        """A counter sample (memory, descriptors, live Tesseract processes)."""
        self.emit(
            {
                "ph": "C",
                "name": name,
                "pid": self.main_pid,
                "tid": MAIN_TID_RUN,
                "ts": self.us(t_ns),
                "args": dict(values),
            }
        )

    def host_counter(self, host: str, name: str, t_ns: int, values: Mapping[str, float]) -> None:
        """A counter sample on ``host``'s own track (a Dask host's tree, summed)."""
        self.emit(
            {
                "ph": "C",
                "name": name,
                "pid": self.host_track(host),
                "tid": 0,
                "ts": self.us(t_ns),
                "args": dict(values),
            }
        )

    def instant(self, name: str, t_ns: int, args: Mapping[str, Any]) -> None:
        """A point event: worker death, pool restart, run end."""
        self.emit(
            {
                "ph": "i",
                "s": "p",
                "name": name,
                "cat": "run",
                "pid": self.main_pid,
                "tid": MAIN_TID_RUN,
                "ts": self.us(t_ns),
                "args": dict(args),
            }
        )

    def run_start(self, t_ns: int) -> None:
        """The start of OCR; live views (:mod:`ocrlab.follow`) learn the page total from the
        ``pages_found`` events that follow as documents are discovered."""
        self.instant(ts.RUN_START, t_ns, {"pages": None})

    def close(self) -> None:
        """End the JSON array (events were written as they happened, in place)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self.failed is None:
                    self._fh.write("\n]\n")
            except OSError as exc:
                self.failed = exc
            finally:
                with contextlib.suppress(OSError):  # a failed flush is in `failed` already
                    self._fh.close()
