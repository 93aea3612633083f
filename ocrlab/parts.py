"""A page's outputs beyond its text, as a worker hands them to the main process.

Fields of :class:`ocrlab.records.PageResult` (re-exported there): the word
confidences Tesseract gave the page (:mod:`ocrlab.output.confidence`) and, per asked
format, where the page's part of the document's file waits
(:mod:`ocrlab.output.formats` writes them, :mod:`ocrlab.output.documents` reads them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class PageConfidence:
    """A page's word confidences (0-100, :mod:`ocrlab.output.confidence`); ``values``
    serve the document's aggregate."""

    conf_mean: float | None
    conf_p10: float | None
    words: int
    words_low: int
    values: tuple[float, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("conf_mean", "conf_p10", "words", "words_low")}


@dataclass(frozen=True)
class PagePart:
    """One page's output in one format, for the main process to assemble: a file in the
    run's temporary folder (``path``: the result stays small whatever a PDF page weighs),
    or the bytes where that folder is not shared (``data``: a Dask worker elsewhere)."""

    fmt: str
    path: str | None = None
    data: bytes | None = None

    def read(self) -> bytes:
        return self.data if self.data is not None else Path(str(self.path)).read_bytes()
