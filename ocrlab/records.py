"""The small typed records of a run: what crosses the process boundary, what the manifest holds.

Everything a worker receives (:class:`PageTask`, :class:`EngineSettings`) and
everything it sends back (:class:`PageResult`) is defined here, frozen and
picklable, so the cost of a page in inter-process traffic is a few hundred
bytes. Pixels never travel: the worker opens the page itself from ``path``
(or, for executors on other hosts, from ``payload``, the file's bytes).

What the main process writes is typed here too: one :class:`DocumentRecord`
per document in ``results.json``, and the :class:`RunSummary` a run returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .context import Group as Group  # what to OCR (ocrlab.context), re-exported
from .context import RunContext as RunContext
from .errors import ExitCode
from .parts import PageConfidence, PagePart

#: How a document ended: every page read (``ok``), some (``partial``) or none (``failed``).
DocumentStatus = Literal["ok", "partial", "failed"]
DOCUMENT_STATUSES: tuple[DocumentStatus, ...] = ("ok", "partial", "failed")
#: How a run ended, as results.json and the trace's ``run_end`` say (``running`` while
#: it goes on, in results.json's stub); ``interrupted`` also after a run-wide stop.
RunStatus = Literal["running", "complete", "interrupted"]
#: A run as a watcher sees it (the live view, a background run's handle): ``waiting``
#: before its trace says anything, ``failed`` when the run raised instead of ending.
WatchedStatus = Literal["waiting", "running", "complete", "interrupted", "failed"]


def ended_status(raw: object) -> WatchedStatus:
    """The status a ``run_end`` event states: ``interrupted`` or (any other) ``complete``."""
    return "interrupted" if raw == "interrupted" else "complete"


def document_status(pages: int, pages_ok: int) -> DocumentStatus:
    """``ok`` when every page was read, ``partial`` when some were, else ``failed``."""
    if pages_ok == pages:
        return "ok"
    return "partial" if pages_ok else "failed"


def _known_status(raw: object) -> DocumentStatus:
    """A status read back from a manifest; one this version does not know is ``failed``
    (the document is redone by ``--resume``, which keeps ``ok`` documents only)."""
    for status in DOCUMENT_STATUSES:
        if raw == status:
            return status
    return "failed"


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
    #: the estimated cost (megapixel-equivalents, :mod:`ocrlab.ordering`); None = not estimated
    cost: float | None = None
    #: width x height as discovery read it from the header (None: not read there, e.g. a
    #: PDF page, whose size depends on the dpi); spares the estimate a second header read
    pixels: int | None = None

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
    dpi: int = 300
    timeout_s: float = 300.0
    max_megapixels: float = 200.0
    omp_thread_limit: str | None = "1"
    #: the files written per document (``formats``; txt first), and the confidence below
    #: which a word counts as low
    formats: tuple[str, ...] = ("txt",)
    conf_low: float = 60.0
    #: engine-specific options (``engine_options``; the fault-injection fakes read them)
    options: tuple[tuple[str, Any], ...] = ()
    #: the run's private temporary folder: Tesseract's and PDFium's page files go there
    tmp_dir: str | None = None
    #: the main process's pid: a page run in it (sequential mode) must undo what it changes
    main_pid: int = 0
    #: True in a loky worker of this run: it lives for the run and dies with the main process
    pool_worker: bool = False
    #: a pool worker retires after this many pages (0: never); see ocrlab.recycle
    max_pages_per_worker: int = 0
    #: ... or once its RSS, live children included, passed this (0: no bound)
    max_worker_rss_mb: float = 0.0

    def option(self, name: str, default: Any = None) -> Any:
        """Look up an engine-specific option (used by fault-injection engines)."""
        return dict(self.options).get(name, default)


@dataclass(frozen=True)
class PageResult:
    """What a worker returns for one page: text or an error, and its metrics.

    Times are ``time.monotonic_ns()`` stamps (CLOCK_MONOTONIC, system-wide on
    Linux) so the main process can place them on one timeline. Memory figures
    are bytes; ``worker_hwm`` is the worker's own peak RSS (``VmHWM``) and
    ``child_maxrss`` the page's own Tesseract's peak (its ``wait4``; a bundle's, shared).
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
    #: ``errno`` of the OSError behind a failure (ENOSPC on the temporary folder is run-wide)
    os_errno: int | None = None
    #: CPU time (user + system) of the processes the engine ran for this page (Tesseract);
    #: unlike ``ocr_ns`` it does not grow when the machine is busy with other work
    engine_cpu_ns: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    #: the page's structured outputs (``formats`` beyond txt) and its word confidences
    parts: tuple[PagePart, ...] = ()
    confidence: PageConfidence | None = None

    @property
    def ok(self) -> bool:
        return self.error_type is None

    @property
    def key(self) -> tuple[str, int]:
        return (self.doc_id, self.page)


@dataclass(frozen=True)
class ErrorEntry:
    """One failure of a document: a page (``page`` set) or the whole file (``page`` None)."""

    page: int | None
    type: str | None
    message: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"page": self.page, "type": self.type, "message": self.message}


@dataclass(frozen=True)
class DocumentRecord:
    """One document's entry in ``results.json`` (schema ``ocrlab.results/1``).

    ``status`` is ``ok`` (every page read), ``partial`` or ``failed``;
    ``artifact`` is the text file relative to the output folder (``None`` when no
    page was read); ``sha256`` its digest and ``input_sha256`` the input's, which
    ``--resume`` compares; ``seconds`` and ``workers`` exist for OCRed documents only.
    """

    doc_id: str
    source: str
    format: str | None
    size_bytes: int
    status: DocumentStatus
    pages: int
    pages_ok: int
    errors: tuple[ErrorEntry, ...] = ()
    chars: int = 0
    sha256: str | None = None
    artifact: str | None = None
    input_sha256: str | None = None
    settings_key: str = ""
    seconds: dict[str, float] | None = None
    workers: tuple[int, ...] | None = None
    kept_from_previous_run: bool = False
    #: every file written for the document, by format: ``{"tsv": {"path", "sha256"}, ...}``
    formats: dict[str, dict[str, Any]] | None = None
    #: its words' confidence figures and each read page's (:mod:`ocrlab.output.confidence`)
    confidence: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON object written to the manifest (keys as README documents them)."""
        out: dict[str, Any] = {
            "doc_id": self.doc_id,
            "source": self.source,
            "format": self.format,
            "size_bytes": self.size_bytes,
            "status": self.status,
            "pages": self.pages,
            "pages_ok": self.pages_ok,
            "errors": [e.as_dict() for e in self.errors],
            "chars": self.chars,
            "sha256": self.sha256,
            "artifact": self.artifact,
            "input_sha256": self.input_sha256,
            "settings_key": self.settings_key,
        }
        if self.seconds is not None:
            out["seconds"] = dict(self.seconds)
        if self.workers is not None:
            out["workers"] = list(self.workers)
        if self.kept_from_previous_run:
            out["kept_from_previous_run"] = True
        out.update({k: v for k in ("formats", "confidence") if (v := getattr(self, k)) is not None})
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DocumentRecord:
        """Read a record back from a manifest (``--resume``); unknown keys are ignored."""
        workers = data.get("workers")
        return cls(
            doc_id=str(data["doc_id"]),
            source=str(data.get("source", "")),
            format=data.get("format"),
            size_bytes=int(data.get("size_bytes") or 0),
            status=_known_status(data.get("status")),
            pages=int(data.get("pages") or 0),
            pages_ok=int(data.get("pages_ok") or 0),
            errors=tuple(
                ErrorEntry(e.get("page"), e.get("type"), e.get("message"))
                for e in data.get("errors", [])
            ),
            chars=int(data.get("chars") or 0),
            sha256=data.get("sha256"),
            artifact=data.get("artifact"),
            input_sha256=data.get("input_sha256"),
            settings_key=str(data.get("settings_key", "")),
            seconds=data.get("seconds"),
            workers=None if workers is None else tuple(int(w) for w in workers),
            kept_from_previous_run=bool(data.get("kept_from_previous_run", False)),
            formats=data.get("formats"),
            confidence=data.get("confidence"),
        )


@dataclass(frozen=True)
class Failure:
    """One failure as the run's summary keeps it: a page (``page`` set) or a whole
    document (``page`` None: unreadable, corrupt header, empty) that was not read."""

    doc_id: str
    page: int | None
    error_type: str | None
    error: str | None

    @property
    def where(self) -> str:
        """``doc`` or ``doc page N``, as the command's summary lists it."""
        return self.doc_id if self.page is None else f"{self.doc_id} page {self.page}"


#: failures a :class:`RunSummary` keeps in memory (all of them are in results.json)
FAILURES_KEPT = 100


@dataclass
class RunSummary:
    """What a run did: counts, time, peaks, and where its files are.

    Kept incrementally and bounded: ``failures`` holds the first
    :data:`FAILURES_KEPT` failures and ``failures_total`` counts them all, so a
    batch of a million broken files does not grow the main process.
    """

    out_dir: Path
    documents: int = 0
    documents_ok: int = 0
    documents_partial: int = 0
    documents_failed: int = 0
    pages: int = 0
    pages_failed: int = 0
    wall_s: float = 0.0
    workers: int = 0
    sequential: bool = True
    restarts: int = 0
    documents_kept: int = 0
    #: previous run's documents a resume no longer found among the inputs (files removed)
    documents_vanished: int = 0
    #: largest peak RSS of a reaped Tesseract process, as the workers' kernels report it
    engine_maxrss: int = 0
    startup_s: float | None = None
    #: run start to the first page starting in a worker (start-up as a user feels it)
    first_page_s: float | None = None
    peaks: dict[str, Any] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    failures_total: int = 0
    #: pool workers replaced after max_pages_per_worker pages or past max_worker_rss_mb
    workers_recycled: int = 0
    #: times the memory guard held submission back (tree near the memory budget)
    backpressure: int = 0
    #: entries discovery passed over, by kind (``ocrlab.sources.SKIP_KINDS``), each logged
    skipped: dict[str, int] = field(default_factory=dict)

    def add_failure(self, failure: Failure) -> None:
        """Count a failure; keep it if fewer than :data:`FAILURES_KEPT` are kept."""
        self.failures_total += 1
        if len(self.failures) < FAILURES_KEPT:
            self.failures.append(failure)

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.wall_s if self.wall_s > 0 else 0.0

    def memory_line(self) -> str:
        """Peak tree memory, RSS beside PSS ('' without a monitor): RSS counts pages
        shared between the processes once per process, PSS once in all."""
        rss = int(self.peaks.get("rss_total") or 0)
        if not rss:
            return ""
        pss = int(self.peaks.get("pss_at_peak") or 0)  # read in the sample of the RSS peak
        uss = int(self.peaks.get("uss_at_peak") or 0)
        line = f"peak tree memory {rss / 2**20:.0f} MB RSS"
        if pss:
            line += f", {pss / 2**20:.0f} MB PSS ({uss / 2**20:.0f} MB USS) at that moment"
        return line

    @property
    def exit_code(self) -> ExitCode:
        """``OK`` when every document was read, else ``SOME_FAILED``."""
        if self.documents_partial + self.documents_failed == 0:
            return ExitCode.OK
        return ExitCode.SOME_FAILED

    def count(self, status: DocumentStatus) -> None:
        """Count one finished document of ``status``."""
        self.documents += 1
        if status == "ok":
            self.documents_ok += 1
        elif status == "partial":
            self.documents_partial += 1
        else:
            self.documents_failed += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "documents_ok": self.documents_ok,
            "documents_partial": self.documents_partial,
            "documents_failed": self.documents_failed,
            "documents_kept": self.documents_kept,
            "documents_vanished": self.documents_vanished,
            "pages": self.pages,
            "pages_failed": self.pages_failed,
            "wall_s": round(self.wall_s, 4),
            "pages_per_s": round(self.pages_per_s, 4),
            "workers": self.workers,
            "sequential": self.sequential,
            "restarts": self.restarts,
            "workers_recycled": self.workers_recycled,
            "backpressure": self.backpressure,
            "startup_s": None if self.startup_s is None else round(self.startup_s, 4),
            "first_page_s": None if self.first_page_s is None else round(self.first_page_s, 4),
            "engine_maxrss": self.engine_maxrss,
            "skipped": dict(sorted(self.skipped.items())),
            "peaks": self.peaks,
        }
