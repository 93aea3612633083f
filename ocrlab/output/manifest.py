"""The manifest as readers see it, and what ``--resume`` compares documents by.

:func:`load_manifest` reads ``results.json`` (a finished run) or the journal (a run
still going, or killed). :func:`settings_key` hashes the settings that shape the
text (engine, language, segmentation mode, dpi, engine options, Tesseract version)
and :func:`sha256_file` a file's content; :mod:`ocrlab.output.resume` decides, per
document, whether a previous run's result is kept.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..config import OcrConfig
from ..engines.registry import engine_version
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
