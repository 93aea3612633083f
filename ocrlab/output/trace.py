"""The run's ``trace.json``: written by the main process only, readable by Perfetto.

Format: Chrome Trace Event Format, JSON array form. Page spans are ``X``
events on one track per worker process (a worker runs one page at a time, so
spans never overlap on a track); document spans are ``X`` events on lanes of
the main process, a lane per concurrently open document; the monitor's samples
are ``C`` counter events; ``M`` events name processes and tracks; an ``i``
event at time 0 carries the run metadata (config, versions, host).

Timestamps are microseconds from the run start, converted here from the
``time.monotonic_ns()`` stamps workers return (CLOCK_MONOTONIC is system-wide on
Linux, so worker and main-process stamps share one clock; remote Dask workers
do not, see README).

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
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..records import PageResult
from . import trace_schema as ts

MAIN_TID_RUN = 0
DOC_LANE_TID_BASE = 1


class TraceRecorder:
    """Collects trace events in the main process (thread-safe: the monitor adds counters)."""

    def __init__(self, path: str | os.PathLike[str], t0_ns: int, main_pid: int | None = None):
        self.path = Path(path)
        self.t0_ns = t0_ns
        self.main_pid = main_pid or os.getpid()
        self._lock = threading.Lock()
        self._named: set[tuple[int, int]] = set()
        self._fh = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._fh.write("[")
        self._fh.flush()
        self._sep = "\n"
        self._closed = False
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
        line = json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=str)
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
            self._sep = ",\n"

    def _process_name(self, pid: int, name: str, sort_index: int | None = None) -> None:
        self.emit(
            {
                "ph": "M",
                "name": "process_name",
                "pid": pid,
                "tid": 0,
                "ts": 0,
                "args": {"name": name},
            }
        )
        if sort_index is not None:
            self.emit(
                {
                    "ph": "M",
                    "name": "process_sort_index",
                    "pid": pid,
                    "tid": 0,
                    "ts": 0,
                    "args": {"sort_index": sort_index},
                }
            )

    def _thread_name(self, pid: int, tid: int, name: str) -> None:
        if (pid, tid) in self._named:
            return
        self._named.add((pid, tid))
        self.emit(
            {
                "ph": "M",
                "name": "thread_name",
                "pid": pid,
                "tid": tid,
                "ts": 0,
                "args": {"name": name},
            }
        )

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
        pid = result.pid or self.main_pid
        if (pid, pid) not in self._named:
            label = "ocrlab (main process)" if pid == self.main_pid else f"worker {pid}"
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
