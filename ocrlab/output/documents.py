"""A document's files in every asked format, written by the main process from its pages' parts.

The workers leave each page's TSV, hOCR, ALTO and PDF in the run's temporary folder
(:func:`ocrlab.output.formats.page_outputs`); once a document's last page is in, the
collector calls :func:`write_formats`, which streams each format's file into place
through the one atomic writer (a reader, or a killed run, sees a whole file or
none), the pages that were read in page order. The searchable PDF is read back
before it is renamed into place: a layer that does not read back is an error entry
of the document, and no PDF is written. Each file is named like the text artifact
(:meth:`~ocrlab.output.layout.OutputLayout.format_path`); a document redone by
``--resume`` loses its previous files with its previous text
(:meth:`~ocrlab.output.layout.OutputLayout.discard`), so every folder holds exactly
what the manifest lists (:func:`ocrlab.output.audit.audit_output`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .. import __version__
from ..parts import PagePart
from ..records import ErrorEntry, PageResult
from .atomic import atomic_writer
from .confidence import document_confidence
from .formats import MARKUP, document_text, structured
from .layout import OutputLayout
from .scratch import PARTS, part_path
from .stops import run_wide_reason


@dataclass(frozen=True)
class OutputsPlan:
    """What the collector writes beside the text: the asked formats, the engine version
    their heads name, the threshold of a low confidence, where the workers leave parts."""

    formats: tuple[str, ...] = ("txt",)
    version: str | None = None
    conf_low: float = 60.0
    tmp_dir: str | None = None

    @classmethod
    def of(cls, cfg: Any, tmp_dir: str | os.PathLike[str]) -> OutputsPlan:
        """The plan of a run of configuration ``cfg`` (an :class:`ocrlab.config.OcrConfig`)
        whose workers leave their parts in ``tmp_dir``."""
        from ..engines.registry import engine_version

        version = engine_version(cfg.engine) if structured(cfg.formats) else None
        return cls(cfg.formats, version, cfg.conf_low, os.fspath(tmp_dir))


@dataclass
class WrittenFormats:
    """What :func:`write_formats` wrote for one document."""

    #: the manifest's ``formats`` beyond txt: ``{fmt: {"path", "sha256", ...}}``
    formats: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the files now in place (removed again when the document's record cannot be kept)
    paths: list[Path] = field(default_factory=list)
    #: formats that could not be made (the searchable PDF's layer not reading back)
    errors: list[ErrorEntry] = field(default_factory=list)
    #: the record's ``confidence`` (:func:`ocrlab.output.confidence.document_confidence`)
    confidence: dict[str, Any] | None = None
    #: the record's ``formats``: every file written by format, the text among them; ``{}``
    #: when formats were asked and none was written; ``None`` with the text alone
    record: dict[str, dict[str, Any]] | None = None


class _Hashing:
    """A binary file that hashes what is written to it."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.fh.write(data)


def _part(page: PageResult, fmt: str) -> PagePart:
    for part in page.parts:
        if part.fmt == fmt:
            return part
    raise ValueError(f"page {page.page} of {page.doc_id} came back without its {fmt} output")


def _write_markup(
    fh: _Hashing, fmt: str, pages: Sequence[PageResult], doc_id: str, version: str | None
) -> None:
    """Head, each read page's fragment, tail: streamed, one page in memory at a time."""
    head, _, tail = document_text(fmt, ["\0"], doc_id, version).partition("\0")
    fh.write(head.encode("utf-8"))
    for page in pages:
        fh.write(_part(page, fmt).read())
    fh.write(tail.encode("utf-8"))


def _write_pdf(
    fh: _Hashing,
    pages: Sequence[PageResult],
    doc_id: str,
    version: str | None,
    source_pdf: str | None,
    texts: Sequence[tuple[int, str]],
) -> float:
    """The searchable PDF into ``fh``, read back: its layer's CER against ``texts``."""
    from .pdf import assemble_pdf, layer_cer

    parts = []
    for page in pages:
        part = _part(page, "pdf")
        parts.append((page.page, part.data if part.data is not None else str(part.path)))
    data = assemble_pdf(parts, doc_id, f"ocrlab {__version__}, tesseract {version}", source_pdf)
    cer = layer_cer(data, texts, doc_id, source_pdf)
    fh.write(data)
    return cer


def write_formats(
    layout: OutputLayout,
    artifact: Path,
    pages: Sequence[PageResult],
    formats: Sequence[str],
    version: str | None,
    source_pdf: str | None = None,
) -> WrittenFormats:
    """Write the file of every asked format but the text of the document whose text
    artifact is ``artifact``, from its read ``pages`` (page order, text already stripped of
    Tesseract's form feed). ``source_pdf``: the document is a PDF, whose pages get the
    text layers. A format that cannot be made is an error entry; an OSError that stops
    the run (:func:`ocrlab.output.stops.run_wide_reason`) is raised."""
    done = WrittenFormats()
    doc_id = pages[0].doc_id if pages else ""
    for fmt in (f for f in formats if f != "txt") if pages else ():
        target = layout.format_path(artifact, fmt)
        entry: dict[str, Any] = {"path": layout.relative(target)}
        try:
            with atomic_writer(target) as raw:
                fh = _Hashing(raw)
                if fmt in MARKUP:
                    _write_markup(fh, fmt, pages, doc_id, version)
                else:
                    texts = [(page.page, page.text or "") for page in pages]
                    entry["layer_cer"] = _write_pdf(fh, pages, doc_id, version, source_pdf, texts)
        except (ValueError, RuntimeError, OSError) as exc:  # a part missing, a layer unread
            if isinstance(exc, OSError) and run_wide_reason(exc) is not None:
                raise
            done.errors.append(ErrorEntry(None, type(exc).__name__, str(exc)))
            continue
        entry["sha256"] = fh.digest.hexdigest()
        done.formats[fmt] = entry
        done.paths.append(target)
    return done


def document_formats(
    plan: OutputsPlan,
    layout: OutputLayout,
    doc: Any,
    pages: Sequence[PageResult],
    artifact: Path | None,
    digest: str | None,
) -> WrittenFormats:
    """Everything a finished document ``doc`` (a :class:`ocrlab.sources.Document`) gets
    beside its text artifact: its other formats' files (when a text artifact was written),
    its manifest ``formats`` and ``confidence``; its page parts are dropped."""
    ok = [r for r in pages if r.ok]
    try:
        if artifact is None or not structured(plan.formats):
            done = WrittenFormats()
        else:
            source_pdf = doc.path if doc.fmt == "pdf" else None
            done = write_formats(layout, artifact, ok, plan.formats, plan.version, source_pdf)
    finally:
        if plan.tmp_dir is not None:
            drop_parts(plan.tmp_dir, doc.doc_id)
    if structured(plan.formats):
        text = {"txt": {"path": layout.relative(artifact), "sha256": digest}} if artifact else {}
        done.record = {**text, **done.formats}
    done.confidence = document_confidence(
        ((r.page, r.confidence) for r in ok if r.confidence is not None), plan.conf_low
    )
    return done


def drop_parts(tmp_dir: str | Path, doc_id: str) -> None:
    """Remove a finished document's page parts from the run's temporary folder."""
    folder = part_path(tmp_dir, doc_id, 0, "").parent
    if folder.parent.name == PARTS:
        shutil.rmtree(folder, ignore_errors=True)
