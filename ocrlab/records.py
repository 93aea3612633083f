"""The small records that cross the process boundary.

Everything a worker receives (:class:`PageTask`, :class:`EngineSettings`) and
everything it sends back (:class:`PageResult`) is defined here, frozen and
picklable, so the cost of a page in inter-process traffic is a few hundred
bytes. Pixels never travel: the worker opens the page itself from ``path``
(or, for executors on other hosts, from ``payload``, the file's bytes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PageTask:
    """One page of one document: the unit of work sent to a worker.

    ``doc_id`` is the document's path relative to its input root (prefixed by the
    group name under :func:`ocrlab.run_groups`); ``page`` counts from 1.
    ``fmt`` is the format sniffed from the content (``"png"``, ``"tiff"``, ``"pdf"``...),
    ``n_pages`` the document's page count, so the worker knows whether it must
    extract a page or may hand the whole file to Tesseract.
    """

    doc_id: str
    path: str
    page: int
    n_pages: int
    fmt: str
    payload: bytes | None = None

    @property
    def key(self) -> tuple[str, int]:
        """(document, page): the key that artifacts and comparisons use."""
        return (self.doc_id, self.page)


@dataclass(frozen=True)
class EngineSettings:
    """What a worker needs to know to OCR a page; derived from the run config."""

    engine: str = "pytesseract"
    lang: str = "eng"
    psm: int | None = None
    tesseract_config: str = ""
    dpi: int = 300
    timeout_s: float = 300.0
    max_megapixels: float = 200.0
    omp_thread_limit: str | None = "1"
    options: tuple[tuple[str, Any], ...] = ()

    def option(self, name: str, default: Any = None) -> Any:
        """Look up an engine-specific option (used by fault-injection engines)."""
        return dict(self.options).get(name, default)


@dataclass(frozen=True)
class PageResult:
    """What a worker returns for one page: text or an error, and its metrics.

    Times are ``time.monotonic_ns()`` stamps (CLOCK_MONOTONIC, system-wide on
    Linux) so the main process can place them on one timeline. Memory figures
    are bytes; ``worker_hwm`` is the worker's own peak RSS (``VmHWM``) and
    ``child_maxrss`` the largest reaped child's (the Tesseract process).
    """

    doc_id: str
    page: int
    text: str | None
    error_type: str | None = None
    error: str | None = None
    pid: int = 0
    host: str = ""
    start_ns: int = 0
    end_ns: int = 0
    prepare_ns: int = 0
    ocr_ns: int = 0
    width: int = 0
    height: int = 0
    worker_rss: int = 0
    worker_hwm: int = 0
    child_maxrss: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error_type is None

    @property
    def key(self) -> tuple[str, int]:
        return (self.doc_id, self.page)
