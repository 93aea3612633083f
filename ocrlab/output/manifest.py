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
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from ..config import OcrConfig
from ..engines.registry import engine_version
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

    def __len__(self) -> int: ...


def sha256_file(path: str | Path) -> str | None:
    """The SHA-256 of a file's content, or None when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


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
    try:
        data = json.loads(layout.manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out: dict[str, DocumentRecord] = {}
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
    formats: Sequence[str] = ("txt",),
) -> bool:
    """True when ``record`` describes a finished, still valid result for ``source``: in
    every asked format too (a document lacking one is redone, all its formats from one
    recognition; one that has more than asked keeps them)."""
    if record is None or record.status != "ok" or record.settings_key != key:
        return False
    if not record.artifact or record.input_sha256 != sha256_file(source):
        return False
    if sha256_file(layout.root / record.artifact) != record.sha256:
        return False
    files = record.formats or {}
    for fmt in formats:
        if fmt == "txt":
            continue
        entry = files.get(fmt)
        if not entry or sha256_file(layout.root / str(entry.get("path"))) != entry.get("sha256"):
            return False
    return True
