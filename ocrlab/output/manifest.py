"""The manifest as readers see it, and what ``--resume`` compares documents by.

:func:`load_manifest` reads ``results.json`` (a finished run) or the journal (a run
still going, or killed). :func:`settings_key` hashes the settings that shape the
text (engine, language, segmentation mode, dpi, engine options, Tesseract version),
:func:`input_digest` an input's content and :func:`sha256_file` an artifact's (or
another format's file); :mod:`ocrlab.output.resume` decides, per document, whether a
previous run's result is kept.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, BinaryIO

from ..config import OcrConfig
from ..engines.registry import engine_version
from ..inputfiles import InputFileError, open_input
from .journal import journal_documents


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
