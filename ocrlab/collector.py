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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import PipelineError
from .output.atomic import atomic_write_bytes, deferred_interrupts
from .output.confidence import document_confidence, span_confidence
from .output.documents import OutputsPlan, Written, drop_parts, remove_files, write_formats
from .output.formats import structured
from .output.journal import StreamingManifest
from .output.layout import OutputLayout, assemble_text
from .output.manifest import sha256_file
from .output.stops import run_wide_reason, stopped_error
from .output.trace import TraceRecorder
from .records import DocumentRecord, ErrorEntry, PageResult, RunSummary
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
        outputs: OutputsPlan | None = None,
    ):
        self.settings_key = settings_key
        self.outputs = outputs or OutputsPlan()
        self.layout = layout
        self.trace = trace
        self.manifest = manifest
        self.summary = summary
        self.progress = progress
        self.open: dict[str, _DocState] = {}
        self._free_lanes: list[int] = []
        self._next_lane = 0

    def _lane(self) -> int:
        if self._free_lanes:
            return self._free_lanes.pop(0)
        self._next_lane += 1
        return self._next_lane - 1

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
        self.summary.add_failure(
            {"doc_id": doc.doc_id, "page": None, "error_type": doc.error_type, "error": doc.error}
        )
        log.error("%s: %s", doc.error_type, doc.error, extra={"doc": doc.doc_id, "page": "-"})
        self.trace.instant(
            "document_failed",
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

    def _record(self, record: DocumentRecord, written: Sequence[Path] = ()) -> None:
        """Add ``record`` to the manifest; a full or vanished output filesystem stops the run.

        ``written`` are the files just written for ``record``: when the record cannot
        be kept, they go too, so every folder still holds exactly what the manifest
        lists (:func:`ocrlab.output.audit.audit_output`) and ``--resume`` redoes it.
        """
        try:
            self.manifest.add(record)
        except OSError as exc:
            reason = run_wide_reason(exc)
            for path in written:
                path.unlink(missing_ok=True)
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
            # Another host's monotonic clock: place the span where its result arrived.
            shift = time.monotonic_ns() - result.end_ns
            result = dataclasses.replace(
                result, start_ns=result.start_ns + shift, end_ns=result.end_ns + shift
            )
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

    def _write_files(self, state: _DocState, ok: list[PageResult], data: bytes) -> Written:
        """Write a document's text to ``text/`` and its other formats beside it, atomically;
        a full disk stops the run."""
        doc = state.doc
        target = self.layout.artifact_path(doc.doc_id)
        try:
            more = write_formats(
                self.layout,
                doc.doc_id,
                ok,
                self.outputs.formats,
                self.outputs.version,
                source_pdf=doc.path if doc.fmt == "pdf" else None,
            )
            atomic_write_bytes(target, data)
        except OSError as exc:
            reason = run_wide_reason(exc)
            if reason is not None:
                raise stopped_error(reason, self.summary.documents) from exc
            raise PipelineError(
                f"cannot write the artifact of {doc.doc_id!r} to {target} "
                f"({exc.strerror or exc}); check the output folder and free space."
            ) from exc
        finally:
            if self.outputs.tmp_dir is not None:
                drop_parts(self.outputs.tmp_dir, doc.doc_id)
        return Written(target, more)

    def _document_record(
        self,
        state: _DocState,
        status: str,
        errors: tuple[ErrorEntry, ...],
        text: str,
        digest: str | None,
        written: Written | None,
        input_sha256: str | None,
    ) -> DocumentRecord:
        doc = state.doc
        pages = [state.results[p] for p in range(1, doc.n_pages + 1)]
        formats = written.manifest_formats(self.layout, digest) if written else None
        if formats is None and structured(self.outputs.formats):
            formats = {}  # asked, but no page was read: none exists
        confidence = document_confidence(
            ((r.page, r.confidence) for r in pages if r.ok and r.confidence is not None),
            self.outputs.conf_low,
        )
        return DocumentRecord(
            doc_id=doc.doc_id,
            source=doc.path,
            format=doc.fmt,
            size_bytes=doc.size,
            status=status,
            pages=doc.n_pages,
            pages_ok=doc.n_pages - sum(1 for e in errors if e.page is not None),
            errors=errors,
            chars=len(text),
            sha256=digest,
            artifact=self.layout.relative(written.text) if written is not None else None,
            input_sha256=input_sha256,
            settings_key=self.settings_key,
            seconds={
                "wall": round((max(r.end_ns for r in pages) - state.first_submit_ns) / 1e9, 4),
                "ocr": round(sum(r.ocr_ns for r in pages) / 1e9, 4),
                "prepare": round(sum(r.prepare_ns for r in pages) / 1e9, 4),
            },
            workers=tuple(sorted({r.pid for r in pages})),
            formats=formats,
            confidence=confidence,
        )

    def _finish(self, state: _DocState) -> None:
        doc = state.doc
        del self.open[doc.doc_id]
        self._free_lanes.append(state.lane)
        self._free_lanes.sort()
        pages = [state.results[p] for p in range(1, doc.n_pages + 1)]
        errors = tuple(ErrorEntry(r.page, r.error_type, r.error) for r in pages if not r.ok)
        n_ok = len(pages) - len(errors)
        status = "ok" if not errors else ("partial" if n_ok else "failed")
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
                self.summary.add_failure(
                    {
                        "doc_id": doc.doc_id,
                        "page": r.page,
                        "error_type": r.error_type,
                        "error": r.error,
                    }
                )
        text = assemble_text([r.text or "" for r in pages]) if n_ok else ""
        data = text.encode("utf-8")
        digest = hashlib.sha256(data).hexdigest() if n_ok else None
        input_sha256 = sha256_file(doc.path)
        end_ns = max(r.end_ns for r in pages)
        # The artifact and its record land together: a Ctrl-C / SIGTERM waits for both
        # (found: a cancel between the two left an artifact the manifest did not list).
        with deferred_interrupts():
            ok = [r for r in pages if r.ok]
            written = self._write_files(state, ok, data) if n_ok else None
            if written is None:  # nothing read: a previous run's files of it are not listed
                remove_files(self.layout, doc.doc_id, keep=())
            if written is not None and written.more.errors:
                errors = (*errors, *written.more.errors)
                status = "partial"
            self._record(
                self._document_record(state, status, errors, text, digest, written, input_sha256),
                written=written.paths if written is not None else (),
            )
        self.summary.count(status)  # counted once kept: a stop says how many are on disk
        self.trace.document(
            doc.doc_id,
            state.lane,
            state.first_submit_ns,
            end_ns,
            {"status": status, "pages": doc.n_pages, "pages_ok": n_ok, **span_confidence(pages)},
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
