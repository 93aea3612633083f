"""The main-process side of a run: page results in, artifacts, trace, manifest and log out.

Workers only return small :class:`~ocrlab.records.PageResult` records; everything
that is written is written here, in the main process, so log lines never
interleave, trace events are never lost with a worker, and artifacts are
assembled in page order however the pages completed.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .output import trace_schema as ts
from .output.atomic import atomic_write_bytes, deferred_interrupts
from .output.confidence import span_confidence
from .output.documents import OutputsPlan, WrittenFormats, document_formats
from .output.journal import StreamingManifest
from .output.journal_lines import Stamps
from .output.layout import OutputLayout, assemble_text
from .output.manifest import input_digest
from .output.stamps import Stamp, file_stamp
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
from .timeleft import SizeCount

log = logging.getLogger("ocrlab")


@dataclass
class _DocState:
    doc: Document
    lane: int
    #: the earliest real submission of the document's pages (0 until a page is back)
    first_submit_ns: int = 0
    results: dict[int, PageResult] = field(default_factory=dict)


class _ArtifactError(Exception):
    """A document's artifact could not be written under any of its names (an error entry)."""


#: errno values that say a name cannot be used here, so the next candidate is tried
_NAME_ERRNOS = frozenset(
    {errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL, errno.EEXIST, errno.ENOTDIR, errno.EISDIR}
)


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
        self.outputs = outputs or OutputsPlan()  # the formats beyond the text
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

    def found(self, sizes: SizeCount, *, final: bool = False) -> None:
        """Discovery's running total (discovery is lazy, so it grows): pages and their
        estimated work by size class. The bar's at once, the live views' through the trace
        twice a second and at the end."""
        self.progress.found(sizes, final)
        now = time.monotonic()
        if final or now - self._announced >= 0.5:
            self._announced = now
            self.trace.instant(ts.PAGES_FOUND, time.monotonic_ns(), sizes.event(final))

    def submitted(self, doc: Document, submit_ns: int) -> None:
        """``doc``'s pages are on their way (pulled for submission; its clock starts at
        its pages' first real submission, which :meth:`page_done` learns)."""
        if doc.doc_id not in self.open:
            self.open[doc.doc_id] = _DocState(doc, self._lane())

    def skipped(self, doc: Document) -> None:
        """An entry that is not a document (:data:`ocrlab.sources.SKIP_KINDS`): counted, logged."""
        kind = doc.skip or "not_a_document"
        self.summary.skipped[kind] = self.summary.skipped.get(kind, 0) + 1
        log.info("skipped: %s", doc.skip_reason or doc.skip, extra={"doc": doc.doc_id, "page": "-"})

    def kept(self, doc_id: str, line: bytes) -> None:
        """A document a previous run finished with the same input and settings (resume),
        recorded by its journal line (:meth:`ocrlab.output.resume.Resume.keep`); logged at
        DEBUG only (a line for each of a million was 187 MB of log: the run counts them)."""
        self._record(line)
        self.summary.count("ok")
        self.summary.documents_kept += 1
        log.debug(
            "kept from the previous run (same input and settings)",
            extra={"doc": doc_id, "page": "-"},
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
                input_sha256=None,  # a failed document is redone anyway: not read again
                settings_key=self.settings_key,
            )
        )

    def _record(
        self,
        record: DocumentRecord | bytes,
        written: Sequence[Path] = (),
        stamps: Stamps = None,
    ) -> None:
        """Add ``record`` to the manifest; a full or vanished output filesystem stops the run.

        ``written`` are the files just written for ``record`` (its artifact, its other
        formats): when the record cannot be kept, they go too, so every folder still holds
        exactly what the manifest lists (:func:`ocrlab.output.audit.audit_output`) and
        ``--resume`` redoes it.
        """
        try:
            if isinstance(record, bytes):
                self.manifest.add_kept(record)
            else:
                self.manifest.add(record, stamps)
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
        self,
        result: PageResult,
        submit_ns: int,
        attempt: int,
        cost: float | None = None,
        first_submit_ns: int = 0,
    ) -> None:
        self._check_run_wide(result)
        result = self.trace.on_our_clock(result)  # another host's stamps: onto our clock
        self.trace.page(result, submit_ns, attempt, cost)
        started = (result.start_ns - self.trace.t0_ns) / 1e9
        if self.summary.first_page_s is None or started < self.summary.first_page_s:
            self.summary.first_page_s = started
        self.summary.pages += 1
        self.summary.engine_maxrss = max(self.summary.engine_maxrss, result.child_maxrss)
        if not result.ok:
            self.summary.pages_failed += 1
        self.progress.page_done(result, cost, self.trace.t0_ns)
        state = self.open[result.doc_id]
        first = first_submit_ns or submit_ns
        if not state.first_submit_ns or first < state.first_submit_ns:
            state.first_submit_ns = first
        state.results[result.page] = result
        if len(state.results) == state.doc.n_pages:
            self._finish(state)

    def _write_artifact(self, doc_id: str, data: bytes) -> Path:
        """Write a document's text to ``text/`` atomically, under the first of its names
        (:meth:`~ocrlab.output.layout.OutputLayout.artifact_candidates`) the filesystem
        takes without replacing another file; a full disk stops the run, any other
        failure is this document's (:class:`_ArtifactError`)."""
        tried: list[str] = []
        for target in self.layout.artifact_candidates(doc_id):
            self._journal_writing(doc_id, target)
            try:
                atomic_write_bytes(target, data, replace=False)
            except OSError as exc:
                reason = run_wide_reason(exc)
                if reason is not None:
                    raise stopped_error(reason, self.summary.documents) from exc
                tried.append(f"{self.layout.relative(target)!r}: {exc.strerror or exc}")
                if exc.errno in _NAME_ERRNOS:
                    continue
                break
            return target
        raise _ArtifactError(
            f"cannot write the artifact of {doc_id!r} ({'; '.join(tried)}); check the "
            "output folder's filesystem"
        )

    def _journal_writing(self, doc_id: str, target: Path) -> None:
        """Say in the journal which file is about to land (a resumed run removes it if
        this one is killed before the record: :data:`ocrlab.output.journal.WRITING`)."""
        try:
            self.manifest.writing(doc_id, self.layout.relative(target))
        except OSError as exc:
            reason = run_wide_reason(exc)
            if reason is None:
                raise
            raise stopped_error(reason, self.summary.documents) from exc

    def _document_record(
        self,
        state: _DocState,
        status: DocumentStatus,
        errors: tuple[ErrorEntry, ...],
        text: str,
        digest: str | None,
        written: Path | None,
        input_sha256: str | None,
        pages_ok: int,
        more: WrittenFormats,
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
            pages_ok=pages_ok,
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
            formats=more.record,
            confidence=more.confidence,
        )

    def _more(
        self, state: _DocState, pages: list[PageResult], written: Path | None, digest: str | None
    ) -> WrittenFormats:
        """The document's other formats beside its text; a full disk stops the run."""
        try:
            return document_formats(self.outputs, self.layout, state.doc, pages, written, digest)
        except OSError as exc:
            reason = run_wide_reason(exc) or f"the output folder failed ({exc})"
            raise stopped_error(reason, self.summary.documents) from exc

    def _stamps(
        self, status: str, input_stamp: Stamp | None, written: Path | None, more: WrittenFormats
    ) -> Stamps:
        """What ``--resume`` compares instead of hashing (:mod:`ocrlab.output.stamps`), for
        an ok document: its input's, its artifact's and each other format's file's."""
        if status != "ok":
            return None
        root = self.layout.root
        marks = {fmt: file_stamp(root / str(e["path"])) for fmt, e in more.formats.items()}
        artifact = file_stamp(written) if written is not None else None
        return (input_stamp, artifact, marks) if marks else (input_stamp, artifact)

    def _artifact_failed(self, doc_id: str, message: str) -> None:
        log.error("ArtifactNotWritten: %s", message, extra={"doc": doc_id, "page": "-"})
        self.summary.add_failure(Failure(doc_id, None, "ArtifactNotWritten", message))

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
        # UTF-8 always; an engine's text that holds a lone surrogate (a fake engine echoing a
        # file name that is not UTF-8) is written with the surrogate escaped, not lost.
        data = text.encode("utf-8", "backslashreplace")
        digest = hashlib.sha256(data).hexdigest() if n_ok else None
        input_stamp = file_stamp(doc.path, racy=True) if status == "ok" else None  # before
        input_sha256 = input_digest(doc.path) if status == "ok" else None  # it is read
        end_ns = max(r.end_ns for r in pages)
        # The artifact and its record land together: a Ctrl-C / SIGTERM waits for both
        # (found: a cancel between the two left an artifact the manifest did not list).
        with deferred_interrupts():
            written = None
            if n_ok:
                try:
                    written = self._write_artifact(doc.doc_id, data)
                except _ArtifactError as exc:
                    status, text, digest, input_sha256 = "failed", "", None, None
                    errors += (ErrorEntry(None, "ArtifactNotWritten", str(exc)),)
                    self._artifact_failed(doc.doc_id, str(exc))
            more = self._more(state, pages, written, digest)
            if more.errors:  # e.g. a searchable PDF whose layer does not read back
                status, input_sha256, errors = "partial", None, errors + tuple(more.errors)
            self._record(
                self._document_record(
                    state, status, errors, text, digest, written, input_sha256, n_ok, more
                ),
                written=[*more.paths, *([written] if written is not None else [])],
                stamps=self._stamps(status, input_stamp, written, more),
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
