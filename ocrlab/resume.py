"""``--resume``: which documents of a previous, interrupted run can be kept as they are.

A document is kept when its previous record says ``ok``, its input file still
has the same SHA-256, the settings that shape the text (engine, language,
segmentation mode, dpi, engine options, Tesseract version) are the same, and its
artifact is on disk with the recorded SHA-256. Everything else is redone. The
manifest of a killed run lists what finished up to its last rewrite (at most a
second before the kill); documents finished after that are simply redone,
producing the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .artifacts import OutputLayout
from .config import OcrConfig
from .runinfo import tesseract_version


def sha256_file(path: str | Path) -> str | None:
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
        "engine": cfg.engine, "lang": cfg.lang, "psm": cfg.psm, "dpi": cfg.dpi,
        "engine_options": {k: v for k, v in sorted(cfg.engine_options.items())},
        "tesseract": tesseract_version() if cfg.engine == "pytesseract" else None,
    }
    blob = json.dumps(shaping, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def previous_records(layout: OutputLayout) -> dict[str, dict[str, Any]]:
    """Document records of the run that last wrote ``layout`` ({} if none or unreadable)."""
    try:
        data = json.loads(layout.manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {d["doc_id"]: d for d in data.get("documents", []) if "doc_id" in d}


def reusable(record: Mapping[str, Any] | None, source: str, key: str,
             layout: OutputLayout) -> bool:
    """True when ``record`` describes a finished, still valid result for ``source``."""
    if not record or record.get("status") != "ok" or record.get("settings_key") != key:
        return False
    if not record.get("artifact") or record.get("input_sha256") != sha256_file(source):
        return False
    return sha256_file(layout.root / record["artifact"]) == record.get("sha256")
