"""A document's files in every asked format, written by the main process from its pages' parts.

The workers leave each page's TSV, hOCR, ALTO and PDF in the run's temporary folder
(:func:`ocrlab.output.formats.page_outputs`); once a document's last page is in, the
collector calls :func:`write_formats`, which streams each format's file into place
through the one atomic writer (a reader, or a killed run, sees a whole file or
none), the pages that were read in page order. The searchable PDF is read back
before it is renamed into place: a layer that does not read back is an error entry
of the document, and no PDF is written. Files a previous run left for this document
in formats this run did not write are removed, so every folder holds exactly what
the manifest lists (:func:`ocrlab.output.audit.audit_output`).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .. import __version__
from ..records import ErrorEntry, PagePart, PageResult
from .atomic import atomic_writer
from .formats import FORMATS, MARKUP, document_text
from .layout import OutputLayout
from .scratch import PARTS, part_path


@dataclass(frozen=True)
class OutputsPlan:
    """What the collector writes beside the text: the asked formats, the engine version
    their heads name, the threshold of a low confidence, where the workers leave parts."""

    formats: tuple[str, ...] = ("txt",)
    version: str | None = None
    conf_low: float = 60.0
    tmp_dir: str | None = None


@dataclass(frozen=True)
class Written:
    """A document's files in place: its text artifact and its other formats."""

    text: Path
    more: WrittenFormats

    @property
    def paths(self) -> list[Path]:
        return [*self.more.paths, self.text]

    def manifest_formats(
        self, layout: OutputLayout, digest: str | None
    ) -> dict[str, dict[str, Any]] | None:
        """The record's ``formats`` (the text among them), or None with the text alone."""
        if not self.more.formats and not self.more.errors:
            return None
        return {"txt": {"path": layout.relative(self.text), "sha256": digest}, **self.more.formats}


@dataclass
class WrittenFormats:
    """What :func:`write_formats` wrote for one document."""

    #: the manifest's ``formats`` beyond txt: ``{fmt: {"path", "sha256", ...}}``
    formats: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the files now in place (removed again when the document's record cannot be kept)
    paths: list[Path] = field(default_factory=list)
    #: formats that could not be made (the searchable PDF's layer not reading back)
    errors: list[ErrorEntry] = field(default_factory=list)


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
    doc_id: str,
    pages: Sequence[PageResult],
    formats: Sequence[str],
    version: str | None,
    source_pdf: str | None = None,
) -> WrittenFormats:
    """Write ``doc_id``'s file of every asked format but the text, from its read ``pages``
    (page order, text already stripped of Tesseract's form feed). ``source_pdf``: the
    document is a PDF, whose pages get the text layers. Nothing is written when no page
    was read; an OSError (a full disk) is the caller's to judge."""
    done = WrittenFormats()
    for fmt in (f for f in formats if f != "txt") if pages else ():
        target = layout.format_path(doc_id, fmt)
        entry: dict[str, Any] = {"path": layout.relative(target)}
        try:
            with atomic_writer(target) as raw:
                fh = _Hashing(raw)
                if fmt in MARKUP:
                    _write_markup(fh, fmt, pages, doc_id, version)
                else:
                    texts = [(page.page, page.text or "") for page in pages]
                    entry["layer_cer"] = _write_pdf(fh, pages, doc_id, version, source_pdf, texts)
        except (ValueError, RuntimeError) as exc:  # a part missing, a layer not reading back
            done.errors.append(ErrorEntry(None, type(exc).__name__, str(exc)))
            continue
        entry["sha256"] = fh.digest.hexdigest()
        done.formats[fmt] = entry
        done.paths.append(target)
    remove_files(layout, doc_id, keep=("txt", *done.formats))
    return done


def remove_files(layout: OutputLayout, doc_id: str, keep: Sequence[str]) -> None:
    """Remove ``doc_id``'s files in the formats not in ``keep``: what a previous run wrote of
    it that this run's record will not list."""
    for fmt in FORMATS:
        if fmt not in keep:
            with contextlib.suppress(OSError):
                layout.format_path(doc_id, fmt).unlink(missing_ok=True)


def drop_parts(tmp_dir: str | Path, doc_id: str) -> None:
    """Remove a finished document's page parts from the run's temporary folder."""
    folder = part_path(tmp_dir, doc_id, 0, "").parent
    if folder.parent.name == PARTS:
        shutil.rmtree(folder, ignore_errors=True)
