"""The main-process side of a run: page results in, artifacts, trace, manifest and log out.

Workers only return small :class:`~ocrlab.records.PageResult` records; everything
that is written is written here, in the main process, so log lines never
interleave, trace events are never lost with a worker, and artifacts are
assembled in page order however the pages completed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import PipelineError
from .output import trace_schema as ts
from .output.atomic import atomic_write_bytes, deferred_interrupts
from .output.journal import StreamingManifest
from .output.layout import OutputLayout, assemble_text
from .output.manifest import sha256_file
from .output.stops import run_wide_reason, stopped_error
from .output.trace import TraceRecorder
from .records import (
    DocumentRecord,
    DocumentStatus,
    ErrorEntry,
    Failure,
    PageResult,
    RunSummary,
    document_status,
)
from .sources import Document

log = logging.getLogger("ocrlab")

_HOST = socket.gethostname()


class _RunLogFilter(logging.Filter):
    """Every line of the run log names a document and a page ('-' for run-level lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "doc"):
            record.doc = "-"
        if not hasattr(record, "page"):
            record.page = "-"
        return True


@contextlib.contextmanager
def run_log(path: Path) -> Iterator[logging.Handler]:
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s doc=%(doc)s page=%(page)s %(message)s")
    )
    handler.addFilter(_RunLogFilter())
    handler.setLevel(logging.INFO)
    log.addHandler(handler)
    previous = log.level
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        log.removeHandler(handler)
        log.setLevel(previous)
        handler.close()


@dataclass
class _DocState:
    doc: Document
    lane: int
    first_submit_ns: int = 0
    results: dict[int, PageResult] = field(default_factory=dict)


class Collector:
    """Main-process side of a run: turns page results into artifacts, trace and manifest.

    Pages arrive in completion order; a document is assembled, in page order,
    once all its pages are in, then its state is dropped (memory stays
    proportional to the documents in flight, not the batch).
    """

    def __init__(
        self,
        layout: OutputLayout,
        trace: TraceRecorder,
        manifest: StreamingManifest,
        summary: RunSummary,
        progress: Any,
        settings_key: str = "",
    ):
        self.settings_key = settings_key
        #: another host's clock offset for a result (ns to subtract; None: not known)
        self.clock: Callable[[PageResult], int | None] | None = None
        self.layout = layout
        self.trace = trace
        self.manifest = manifest
        self.summary = summary
        self.progress = progress
        self.open: dict[str, _DocState] = {}
        self._free_lanes: list[int] = []
        self._next_lane = 0
        self._announced = 0.0  # when live views last learnt the page total (monotonic s)

    def _lane(self) -> int:
        if self._free_lanes:
            return self._free_lanes.pop(0)
        self._next_lane += 1
        return self._next_lane - 1

    def found(self, pages: int, *, final: bool = False) -> None:
        """Discovery's running page total (discovery is lazy, so the total grows): the
        bar's total at once, the live views' through the trace twice a second and at the end."""
        self.progress.total = pages
        now = time.monotonic()
        if final or now - self._announced >= 0.5:
            self._announced = now
            args: dict[str, Any] = {"pages": pages, "final": True} if final else {"pages": pages}
            self.trace.instant(ts.PAGES_FOUND, time.monotonic_ns(), args)

    def submitted(self, doc: Document, submit_ns: int) -> None:
        if doc.doc_id not in self.open:
            self.open[doc.doc_id] = _DocState(doc, self._lane(), submit_ns)

    def kept(self, record: DocumentRecord) -> None:
        """A document a previous run finished with the same input and settings (resume)."""
        self.summary.count("ok")
        self.summary.documents_kept += 1
        self._record(dataclasses.replace(record, kept_from_previous_run=True))
        log.info(
            "kept from the previous run (same input and settings)",
            extra={"doc": record.doc_id, "page": "-"},
        )

    def failed_document(self, doc: Document) -> None:
        """A document that never reached a worker (unreadable, corrupt header, empty)."""
        self.summary.count("failed")
        self.summary.add_failure(Failure(doc.doc_id, None, doc.error_type, doc.error))
        log.error("%s: %s", doc.error_type, doc.error, extra={"doc": doc.doc_id, "page": "-"})
        self.trace.instant(
            ts.DOCUMENT_FAILED,
            time.monotonic_ns(),
            {"doc_id": doc.doc_id, "error_type": doc.error_type, "error": doc.error},
        )
        self._record(
            DocumentRecord(
                doc_id=doc.doc_id,
                source=doc.path,
                format=doc.fmt,
                size_bytes=doc.size,
                status="failed",
                pages=doc.n_pages,
                pages_ok=0,
                errors=(ErrorEntry(None, doc.error_type, doc.error),),
                input_sha256=sha256_file(doc.path),
                settings_key=self.settings_key,
            )
        )

    def _record(self, record: DocumentRecord, written: Path | None = None) -> None:
        """Add ``record`` to the manifest; a full or vanished output filesystem stops the run.

        ``written`` is the artifact just written for ``record``: when the record cannot
        be kept, the artifact goes too, so ``text/`` still holds exactly what the
        manifest lists (:func:`ocrlab.output.audit.audit_output`) and ``--resume`` redoes it.
        """
        try:
            self.manifest.add(record)
        except OSError as exc:
            reason = run_wide_reason(exc)
            if written is not None:
                written.unlink(missing_ok=True)
            if reason is None:
                raise
            raise stopped_error(reason, self.summary.documents) from exc

    def _check_run_wide(self, result: PageResult) -> None:
        """Stop on what no later page can escape: the trace or the temporary folder failing."""
        if self.trace.failed is not None:
            reason = run_wide_reason(self.trace.failed)
            raise stopped_error(
                reason or f"the trace could not be written ({self.trace.failed})",
                self.summary.documents,
            )
        if result.os_errno is not None:
            reason = run_wide_reason(OSError(result.os_errno, ""), fs="temporary")
            if reason is not None:
                raise stopped_error(reason, self.summary.documents)

    def page_done(
        self, result: PageResult, submit_ns: int, attempt: int, cost: float | None = None
    ) -> None:
        self._check_run_wide(result)
        if result.host and result.host != _HOST:
            result = self._on_our_clock(result)
        self.trace.page(result, submit_ns, attempt, cost)
        started = (result.start_ns - self.trace.t0_ns) / 1e9
        if self.summary.first_page_s is None or started < self.summary.first_page_s:
            self.summary.first_page_s = started
        self.summary.pages += 1
        self.summary.engine_maxrss = max(self.summary.engine_maxrss, result.child_maxrss)
        if not result.ok:
            self.summary.pages_failed += 1
        self.progress.update(1)
        if not result.ok:
            self.progress.set_postfix(failed=self.summary.pages_failed, refresh=False)
        state = self.open[result.doc_id]
        state.results[result.page] = result
        if len(state.results) == state.doc.n_pages:
            self._finish(state)

    def _on_our_clock(self, result: PageResult) -> PageResult:
        """Another host's stamps moved onto this process's clock: by the worker's measured
        offset, or (none known) so that the page ends where its result arrived."""
        offset = self.clock(result) if self.clock is not None else None
        if offset is None:
            shift = time.monotonic_ns() - result.end_ns
            extra = {**result.extra, "clock": "arrival"}
        else:
            shift = -offset
            extra = {**result.extra, "clock_offset_us": round(offset / 1000, 3)}
        return dataclasses.replace(
            result, start_ns=result.start_ns + shift, end_ns=result.end_ns + shift, extra=extra
        )

    def _write_artifact(self, doc_id: str, data: bytes) -> Path:
        """Write a document's text to ``text/`` atomically; a full disk stops the run."""
        target = self.layout.artifact_path(doc_id)
        try:
            atomic_write_bytes(target, data)
        except OSError as exc:
            reason = run_wide_reason(exc)
            if reason is not None:
                raise stopped_error(reason, self.summary.documents) from exc
            raise PipelineError(
                f"cannot write the artifact of {doc_id!r} to {target} "
                f"({exc.strerror or exc}); check the output folder and free space."
            ) from exc
        return target

    def _document_record(
        self,
        state: _DocState,
        status: DocumentStatus,
        errors: tuple[ErrorEntry, ...],
        text: str,
        digest: str | None,
        written: Path | None,
        input_sha256: str | None,
    ) -> DocumentRecord:
        doc = state.doc
        pages = [state.results[p] for p in range(1, doc.n_pages + 1)]
        return DocumentRecord(
            doc_id=doc.doc_id,
            source=doc.path,
            format=doc.fmt,
            size_bytes=doc.size,
            status=status,
            pages=doc.n_pages,
            pages_ok=doc.n_pages - len(errors),
            errors=errors,
            chars=len(text),
            sha256=digest,
            artifact=self.layout.relative(written) if written is not None else None,
            input_sha256=input_sha256,
            settings_key=self.settings_key,
            seconds={
                "wall": round((max(r.end_ns for r in pages) - state.first_submit_ns) / 1e9, 4),
                "ocr": round(sum(r.ocr_ns for r in pages) / 1e9, 4),
                "prepare": round(sum(r.prepare_ns for r in pages) / 1e9, 4),
            },
            workers=tuple(sorted({r.pid for r in pages})),
        )

    def _finish(self, state: _DocState) -> None:
        doc = state.doc
        del self.open[doc.doc_id]
        self._free_lanes.append(state.lane)
        self._free_lanes.sort()
        pages = [state.results[p] for p in range(1, doc.n_pages + 1)]
        errors = tuple(ErrorEntry(r.page, r.error_type, r.error) for r in pages if not r.ok)
        n_ok = len(pages) - len(errors)
        status = document_status(len(pages), n_ok)
        for r in pages:
            extra = {"doc": doc.doc_id, "page": r.page}
            if r.ok:
                log.info(
                    "ok %d chars in %.3f s (worker %d)",
                    len(r.text or ""),
                    (r.end_ns - r.start_ns) / 1e9,
                    r.pid,
                    extra=extra,
                )
            else:
                log.error("%s: %s", r.error_type, r.error, extra=extra)
                self.summary.add_failure(Failure(doc.doc_id, r.page, r.error_type, r.error))
        text = assemble_text([r.text or "" for r in pages]) if n_ok else ""
        data = text.encode("utf-8")
        digest = hashlib.sha256(data).hexdigest() if n_ok else None
        input_sha256 = sha256_file(doc.path)
        end_ns = max(r.end_ns for r in pages)
        # The artifact and its record land together: a Ctrl-C / SIGTERM waits for both
        # (found: a cancel between the two left an artifact the manifest did not list).
        with deferred_interrupts():
            written = self._write_artifact(doc.doc_id, data) if n_ok else None
            self._record(
                self._document_record(state, status, errors, text, digest, written, input_sha256),
                written=written,
            )
        self.summary.count(status)  # counted once kept: a stop says how many are on disk
        self.trace.document(
            doc.doc_id,
            state.lane,
            state.first_submit_ns,
            end_ns,
            {"status": status, "pages": doc.n_pages, "pages_ok": n_ok},
        )
        log.log(
            logging.INFO if status == "ok" else logging.WARNING,
            "document %s: %d/%d pages, %d chars",
            status,
            n_ok,
            doc.n_pages,
            len(text),
            extra={"doc": doc.doc_id, "page": "-"},
        )
