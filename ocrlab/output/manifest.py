"""The manifest as readers see it, and ``--resume``'s question: which documents of a
previous run can be kept as they are.

:func:`load_manifest` reads ``results.json`` (a finished run) or the journal (a run
still going, or killed). For ``--resume``:

A document is kept when its previous record says ``ok``, its input file still
has the same SHA-256, the settings that shape the text (engine, language,
segmentation mode, dpi, engine options, Tesseract version) are the same, and its
artifact is on disk with the recorded SHA-256, and so is its file of every other
asked format (``formats``). Everything else is redone. The
previous records come from the journal (``journal.jsonl``, one line per document
flushed as it finished, so a killed run loses at most a torn last line), read on
demand through an index; runs written before the journal existed are read from
their ``results.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from ..config import OcrConfig
from ..engines.registry import engine_version
from ..inputfiles import InputFileError, open_input
from ..records import DocumentRecord
from .journal import PreviousRun, journal_documents
from .layout import OutputLayout


def load_manifest(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``results.json`` from an output folder.

    While a run goes on (or after it was killed) results.json is a stub with status
    ``running``; its documents are then read from the journal (:mod:`ocrlab.output.journal`).
    """
    root = Path(out_dir)
    data: dict[str, Any] = json.loads((root / "results.json").read_text("utf-8"))
    if data.get("status") == "running" and data.get("journal"):
        data["documents"] = journal_documents(root)
    return data


class Previous(Protocol):
    """Records of a previous run, looked up by document id."""

    def get(self, doc_id: str) -> DocumentRecord | None: ...

    def artifact(self, doc_id: str) -> str | None: ...

    def __len__(self) -> int: ...


class _Records(dict[str, DocumentRecord]):
    """The records of a manifest written before the journal existed, held in memory."""

    def artifact(self, doc_id: str) -> str | None:
        record = self.get(doc_id)
        return record.artifact if record is not None else None


#: inputs up to this size are hashed whole; a larger one (a sparse file of a terabyte
#: would take an hour) by its size and its first and last :data:`SAMPLE_BYTES`
WHOLE_HASH_LIMIT = 1 << 30
SAMPLE_BYTES = 64 << 20


def _read_into(digest: Any, fh: BinaryIO, count: int) -> None:
    while count > 0:
        block = fh.read(min(count, 1 << 20))
        if not block:
            return
        digest.update(block)
        count -= len(block)


def sha256_file(path: str | Path, *, whole_limit: int | None = None) -> str | None:
    """The SHA-256 of a file's content, or None when it cannot be read.

    A regular file only, opened so that it cannot wait (a FIFO put in an input's
    place would block a plain ``open`` forever), and read to the size it had when
    opened (a file still growing does not keep the hash going). With
    ``whole_limit``, a larger file is hashed by its size and its first and last
    :data:`SAMPLE_BYTES`, and the digest says so (``sampled:`` before the hex).
    """
    digest = hashlib.sha256()
    try:
        with open_input(path) as fh:
            size = os.fstat(fh.fileno()).st_size
            if whole_limit is None or size <= whole_limit:
                _read_into(digest, fh, size)
                return digest.hexdigest()
            digest.update(str(size).encode())
            _read_into(digest, fh, SAMPLE_BYTES)
            fh.seek(size - SAMPLE_BYTES)
            _read_into(digest, fh, SAMPLE_BYTES)
            return "sampled:" + digest.hexdigest()
    except (OSError, InputFileError):
        return None


def input_digest(path: str | Path) -> str | None:
    """What ``--resume`` compares an input by: :func:`sha256_file`, sampled past 1 GiB."""
    return sha256_file(path, whole_limit=WHOLE_HASH_LIMIT)


def settings_key(cfg: OcrConfig) -> str:
    """A short hash of everything that changes the text a page gives."""
    shaping = {
        "engine": cfg.engine,
        "lang": cfg.lang,
        "psm": cfg.psm,
        "dpi": cfg.dpi,
        "engine_options": {k: v for k, v in sorted(cfg.engine_options.items())},
        "tesseract": engine_version(cfg.engine),
    }
    blob = json.dumps(shaping, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def previous_records(layout: OutputLayout) -> Previous:
    """Document records of the runs that wrote ``layout`` (empty if none or unreadable).

    From the journal when there is one; else (a run older than the journal) from
    results.json, held in memory.
    """
    if layout.journal.exists():
        return PreviousRun(layout.journal)
    out = _Records()
    try:
        data = json.loads(layout.manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return out
    for raw in data.get("documents", []):
        if isinstance(raw, dict) and "doc_id" in raw:
            try:
                record = DocumentRecord.from_dict(raw)
            except (TypeError, ValueError):
                continue  # a record we cannot read is a document to redo
            out[record.doc_id] = record
    return out


def reusable(
    record: DocumentRecord | None,
    source: str,
    key: str,
    layout: OutputLayout,
) -> bool:
    """True when ``record`` describes a finished, still valid result for ``source``: in
    every format the run asks (``layout.formats``) too; a document lacking one is redone,
    all its formats from one recognition; one that has more than asked keeps them."""
    if record is None or record.status != "ok" or record.settings_key != key:
        return False
    if not record.artifact or record.input_sha256 != input_digest(source):
        return False
    if sha256_file(layout.root / record.artifact) != record.sha256:
        return False
    files = record.formats or {}
    for fmt in layout.formats:
        if fmt == "txt":
            continue
        entry = files.get(fmt)
        if not entry or sha256_file(layout.root / str(entry.get("path"))) != entry.get("sha256"):
            return False
    return True
