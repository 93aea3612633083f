"""The pipeline: sources -> executor -> collector -> artifacts, trace, manifest, log.

:func:`run_groups` is the entry of the verification plan: several groups of
inputs share ONE executor, so the number of live Tesseract processes never
exceeds the worker count however many groups there are. :func:`run` is the
one-group convenience for notebooks and scripts.

The executor is created from :data:`ProcessPoolExecutor` (loky's, from joblib)
with ``max_workers=<workers>`` and shut down with ``wait=True`` in a
``finally``, also when the run raises :class:`~ocrlab.errors.PipelineError`.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import hashlib
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import executor as executor_mod
from .artifacts import ManifestWriter, OutputLayout, assemble_text, atomic_write_bytes
from .config import OcrConfig, load_config
from .errors import PipelineError
from .executor import BoundedScheduler, InlineExecutor, kill_workers
from .procs import child_subreaper, reap_orphans
from .records import EngineSettings, PageResult
from .resume import previous_records, reusable, settings_key, sha256_file
from .runinfo import check_engine, check_memory, run_metadata
from .scaleout import is_loopback
from .sources import Document, discover
from .trace import TraceRecorder

log = logging.getLogger("ocrlab")

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Group:
    """A named set of inputs; the name prefixes its document ids (``""``: no prefix)."""

    name: str
    inputs: tuple[str, ...]


@dataclass(frozen=True)
class RunContext:
    """What to OCR and where to write it."""

    groups: tuple[Group, ...]
    out_dir: str
    resume: bool = False

    @classmethod
    def single(cls, inputs: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
               out_dir: str | os.PathLike[str], resume: bool = False) -> RunContext:
        items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
        return cls((Group("", tuple(os.fspath(p) for p in items)),), os.fspath(out_dir),
                   resume)


@dataclass
class RunSummary:
    """What a run did: counts, time, peaks, and where its files are."""

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
    startup_s: float | None = None
    peaks: dict[str, Any] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.documents_partial + self.documents_failed == 0 else EXIT_SOME_FAILED

    def as_dict(self) -> dict[str, Any]:
        return {
            "documents": self.documents, "documents_ok": self.documents_ok,
            "documents_partial": self.documents_partial,
            "documents_failed": self.documents_failed,
            "documents_kept": self.documents_kept, "pages": self.pages,
            "pages_failed": self.pages_failed, "wall_s": round(self.wall_s, 4),
            "pages_per_s": round(self.pages_per_s, 4), "workers": self.workers,
            "sequential": self.sequential, "restarts": self.restarts,
            "startup_s": None if self.startup_s is None else round(self.startup_s, 4),
            "peaks": self.peaks,
        }


class _RunLogFilter(logging.Filter):
    """Every line of the run log names a document and a page ('-' for run-level lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "doc"):
            record.doc = "-"
        if not hasattr(record, "page"):
            record.page = "-"
        return True


@contextlib.contextmanager
def _run_log(path: Path) -> Iterator[logging.Handler]:
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)-7s doc=%(doc)s page=%(page)s %(message)s"))
    handler.addFilter(_RunLogFilter())
    handler.setLevel(logging.INFO)
    log.addHandler(handler)
    previous = log.level
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        log.removeHandler(handler)
        log.setLevel(previous)
        handler.close()


@dataclass
class _DocState:
    doc: Document
    lane: int
    first_submit_ns: int = 0
    results: dict[int, PageResult] = field(default_factory=dict)


class Collector:
    """Main-process side of a run: turns page results into artifacts, trace and manifest.

    Pages arrive in completion order; a document is assembled, in page order,
    once all its pages are in, then its state is dropped (memory stays
    proportional to the documents in flight, not the batch).
    """

    def __init__(self, layout: OutputLayout, trace: TraceRecorder, manifest: ManifestWriter,
                 summary: RunSummary, progress: Any, settings_key: str = ""):
        self.settings_key = settings_key
        self.layout = layout
        self.trace = trace
        self.manifest = manifest
        self.summary = summary
        self.progress = progress
        self.open: dict[str, _DocState] = {}
        self._free_lanes: list[int] = []
        self._next_lane = 0

    def _lane(self) -> int:
        if self._free_lanes:
            return self._free_lanes.pop(0)
        self._next_lane += 1
        return self._next_lane - 1

    def submitted(self, doc: Document, submit_ns: int) -> None:
        if doc.doc_id not in self.open:
            self.open[doc.doc_id] = _DocState(doc, self._lane(), submit_ns)

    def kept(self, record: Mapping[str, Any]) -> None:
        """A document a previous run finished with the same input and settings (resume)."""
        self.summary.documents += 1
        self.summary.documents_ok += 1
        self.summary.documents_kept += 1
        self.manifest.add({**record, "kept_from_previous_run": True})
        log.info("kept from the previous run (same input and settings)",
                 extra={"doc": record["doc_id"], "page": "-"})

    def failed_document(self, doc: Document) -> None:
        """A document that never reached a worker (unreadable, corrupt header, empty)."""
        self.summary.documents += 1
        self.summary.documents_failed += 1
        self.summary.failures.append({"doc_id": doc.doc_id, "page": None,
                                      "error_type": doc.error_type, "error": doc.error})
        log.error("%s: %s", doc.error_type, doc.error, extra={"doc": doc.doc_id, "page": "-"})
        self.manifest.add({
            "doc_id": doc.doc_id, "source": doc.path, "format": doc.fmt,
            "size_bytes": doc.size, "status": "failed", "pages": doc.n_pages, "pages_ok": 0,
            "errors": [{"page": None, "type": doc.error_type, "message": doc.error}],
            "chars": 0, "sha256": None, "artifact": None,
            "input_sha256": sha256_file(doc.path), "settings_key": self.settings_key,
        })

    def page_done(self, result: PageResult, submit_ns: int, attempt: int) -> None:
        self.trace.page(result, submit_ns, attempt)
        self.summary.pages += 1
        if not result.ok:
            self.summary.pages_failed += 1
        self.progress.update(1)
        if not result.ok:
            self.progress.set_postfix(failed=self.summary.pages_failed, refresh=False)
        state = self.open[result.doc_id]
        state.results[result.page] = result
        if len(state.results) == state.doc.n_pages:
            self._finish(state)

    def _finish(self, state: _DocState) -> None:
        doc = state.doc
        del self.open[doc.doc_id]
        self._free_lanes.append(state.lane)
        self._free_lanes.sort()
        pages = [state.results[p] for p in range(1, doc.n_pages + 1)]
        errors = [{"page": r.page, "type": r.error_type, "message": r.error}
                  for r in pages if not r.ok]
        n_ok = len(pages) - len(errors)
        status = "ok" if not errors else ("partial" if n_ok else "failed")
        for r in pages:
            extra = {"doc": doc.doc_id, "page": r.page}
            if r.ok:
                log.info("ok %d chars in %.3f s (worker %d)", len(r.text or ""),
                         (r.end_ns - r.start_ns) / 1e9, r.pid, extra=extra)
            else:
                log.error("%s: %s", r.error_type, r.error, extra=extra)
                self.summary.failures.append({"doc_id": doc.doc_id, "page": r.page,
                                              "error_type": r.error_type, "error": r.error})
        artifact_rel: str | None = None
        text = ""
        digest: str | None = None
        if n_ok:
            text = assemble_text([r.text or "" for r in pages])
            data = text.encode("utf-8")
            digest = hashlib.sha256(data).hexdigest()
            target = self.layout.artifact_path(doc.doc_id)
            try:
                atomic_write_bytes(target, data)
            except OSError as exc:
                raise PipelineError(
                    f"cannot write the artifact of {doc.doc_id!r} to {target} "
                    f"({exc.strerror or exc}); check the output folder and free space."
                ) from exc
            artifact_rel = self.layout.relative(target)
        end_ns = max(r.end_ns for r in pages)
        self.summary.documents += 1
        if status == "ok":
            self.summary.documents_ok += 1
        elif status == "partial":
            self.summary.documents_partial += 1
        else:
            self.summary.documents_failed += 1
        record = {
            "doc_id": doc.doc_id, "source": doc.path, "format": doc.fmt,
            "size_bytes": doc.size, "status": status, "pages": doc.n_pages, "pages_ok": n_ok,
            "errors": errors, "chars": len(text), "sha256": digest, "artifact": artifact_rel,
            "input_sha256": sha256_file(doc.path), "settings_key": self.settings_key,
            "seconds": {
                "wall": round((end_ns - state.first_submit_ns) / 1e9, 4),
                "ocr": round(sum(r.ocr_ns for r in pages) / 1e9, 4),
                "prepare": round(sum(r.prepare_ns for r in pages) / 1e9, 4),
            },
            "workers": sorted({r.pid for r in pages}),
        }
        self.manifest.add(record)
        self.trace.document(doc.doc_id, state.lane, state.first_submit_ns, end_ns,
                            {"status": status, "pages": doc.n_pages, "pages_ok": n_ok})
        log.log(logging.INFO if status == "ok" else logging.WARNING,
                "document %s: %d/%d pages, %d chars", status, n_ok, doc.n_pages, len(text),
                extra={"doc": doc.doc_id, "page": "-"})


def _progress_enabled(cfg: OcrConfig) -> bool:
    if cfg.progress is not None:
        return cfg.progress
    return sys.stderr.isatty() and not os.environ.get("CI")


def _make_progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="page", desc="OCR", disable=not enabled, dynamic_ncols=True)


def create_executor(cfg: OcrConfig) -> cf.Executor:
    """The executor for ``cfg``: loky's pool, in-process, or a Dask cluster's."""
    if cfg.remote:
        from .scaleout import dask_executor

        remote: cf.Executor = dask_executor(cfg.executor)
        return remote
    if cfg.sequential:
        return InlineExecutor()
    # Looked up on the module at call time, so tests can patch it (the plan's mock tests).
    pool: cf.Executor = executor_mod.ProcessPoolExecutor(max_workers=cfg.effective_workers)
    return pool


def _start_monitor(cfg: OcrConfig, trace: TraceRecorder) -> Any:
    if cfg.monitor_interval <= 0:
        return None
    from .monitor import ProcessTreeMonitor, Sample

    def on_sample(s: Sample) -> None:
        trace.counter("memory (MB)", s.t_ns, {"tree RSS": round(s.rss_total / 2**20, 2),
                                              "main RSS": round(s.rss_main / 2**20, 2)})
        trace.counter("file descriptors", s.t_ns, {"tree": s.fds_total, "main": s.fds_main})
        trace.counter("live tesseract processes", s.t_ns, {"tesseract": s.n_tesseract})

    return ProcessTreeMonitor(interval_s=cfg.monitor_interval, on_sample=on_sample).start()


def run_groups(
    context: RunContext,
    config: Mapping[str, Any] | OcrConfig | None = None,
) -> RunSummary:
    """OCR every group of ``context`` on one shared executor; return the summary.

    Raises :class:`~ocrlab.errors.ConfigError` for bad settings and
    :class:`~ocrlab.errors.PipelineError` for a missing input or unwritable
    output, before any page is OCRed. Page and document failures do not raise:
    they are in the manifest and the summary (``exit_code`` 1).
    """
    t0 = time.monotonic_ns()
    cfg = load_config(config)
    check_engine(cfg)
    check_memory(cfg)
    layout = OutputLayout(context.out_dir)
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    executor = create_executor(cfg)
    try:
        with child_subreaper():
            return _run(context, cfg, layout, executor, t0, started_at)
    finally:
        executor.shutdown(wait=True)
        if not isinstance(executor, InlineExecutor):
            reap_orphans()


def _deadline_s(cfg: OcrConfig) -> float:
    """How long a page may stay submitted before it is presumed hung (see BoundedScheduler).

    A page may wait behind ``inflight_per_worker - 1`` others on its worker, each
    bounded by the Tesseract timeout; 10% + 5 s covers opening and rendering.
    """
    return cfg.inflight_per_worker * (cfg.page_timeout * 1.1 + 5.0)


def _run(context: RunContext, cfg: OcrConfig, layout: OutputLayout, executor: cf.Executor,
         t0: int, started_at: str) -> RunSummary:
    docs: list[Document] = []
    for group in context.groups:
        docs.extend(discover(group.inputs, group=group.name, exclude=[layout.root]))
    previous = previous_records(layout) if context.resume else {}
    layout.prepare()
    key = settings_key(cfg)
    tmp_root = layout.root / ".ocrlab-tmp"
    tmp_root.mkdir()
    settings = cfg.engine_settings()
    settings = EngineSettings(**{**settings.__dict__, "options": (
        *settings.options, ("tmp_dir", str(tmp_root)), ("main_pid", os.getpid()))})
    meta = run_metadata(cfg)
    meta.update(started_at=started_at, settings_key=key, resume=context.resume,
                groups=[{"name": g.name, "inputs": list(g.inputs)} for g in context.groups])
    summary = RunSummary(out_dir=layout.root, workers=cfg.effective_workers,
                         sequential=isinstance(executor, InlineExecutor))
    trace = TraceRecorder(layout.trace, t0)
    trace.metadata(meta)
    manifest = ManifestWriter(layout.manifest, meta)
    kept = {d.doc_id for d in docs if d.ok and reusable(previous.get(d.doc_id), d.path, key,
                                                         layout)}
    todo = [d for d in docs if d.ok and d.doc_id not in kept]
    n_pages = sum(d.n_pages for d in todo)
    monitor = None
    status = "interrupted"
    with _run_log(layout.log), _make_progress(n_pages, _progress_enabled(cfg)) as bar:
        try:
            log.info("run: %d documents, %d pages, %d worker(s)%s, engine %s%s",
                     len(docs), n_pages, cfg.effective_workers,
                     " (sequential, in-process)" if summary.sequential else "", cfg.engine,
                     f"; resuming, {len(kept)} document(s) kept" if context.resume else "")
            monitor = _start_monitor(cfg, trace)
            collector = Collector(layout, trace, manifest, summary, bar, key)
            for doc in docs:
                if doc.doc_id in kept:
                    collector.kept(previous[doc.doc_id])
                elif not doc.ok:
                    collector.failed_document(doc)
            _schedule(cfg, executor, settings, todo, collector, summary, trace, monitor, t0)
            status = "complete"
        finally:
            summary.wall_s = (time.monotonic_ns() - t0) / 1e9
            if monitor is not None:
                summary.peaks = monitor.stop().as_dict()
            manifest.run["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            manifest.run["wall_s"] = round(summary.wall_s, 4)
            manifest.write(status, summary.as_dict())
            trace.instant("run_end", time.monotonic_ns(), {"status": status,
                                                           **summary.as_dict()})
            trace.close()
            shutil.rmtree(tmp_root, ignore_errors=True)
            log.info("run %s: %d documents (%d ok, %d partial, %d failed), %d pages in %.2f s",
                     status, summary.documents, summary.documents_ok,
                     summary.documents_partial, summary.documents_failed, summary.pages,
                     summary.wall_s)
    return summary


def _schedule(cfg: OcrConfig, executor: cf.Executor, settings: EngineSettings,
              docs: Sequence[Document], collector: Collector, summary: RunSummary,
              trace: TraceRecorder, monitor: Any, t0: int) -> None:
    """Feed the pages of ``docs`` through the bounded scheduler into the collector."""

    ship = cfg.remote and (cfg.ship_pages if cfg.ship_pages is not None
                           else not is_loopback(cfg.executor))

    def tasks() -> Iterator[Any]:
        for doc in docs:
            payload = Path(doc.path).read_bytes() if ship else None
            for task in doc.tasks:
                if payload is not None:
                    task = dataclasses.replace(task, payload=payload)
                now = time.monotonic_ns()
                if summary.startup_s is None:  # configuration to first submission
                    summary.startup_s = (now - t0) / 1e9
                collector.submitted(doc, now)
                yield task

    def on_event(kind: str, info: dict[str, Any]) -> None:
        trace.instant(kind, time.monotonic_ns(), info)
        log.warning("%s: %s", kind, info)

    def restart() -> cf.Executor:
        reap_orphans()  # the dead worker's Tesseract, re-parented to us
        return create_executor(cfg)

    def memory_note() -> str:
        if monitor is None:
            return ""
        return f"peak process-tree memory so far {monitor.peaks.rss_total / 2**20:.0f} MB"

    sequential = isinstance(executor, InlineExecutor)
    if sequential:
        limit = 1
    elif cfg.remote and cfg.sources.get("workers") == "default":
        # Bounded by the cluster's worker threads unless a worker count was given.
        limit = getattr(executor, "capacity", cfg.effective_workers) * cfg.inflight_per_worker
    else:
        limit = cfg.max_inflight
    scheduler = BoundedScheduler(
        executor, settings, limit,
        restart=None if sequential or cfg.remote else restart, on_event=on_event,
        deadline_s=None if sequential or cfg.remote else _deadline_s(cfg),
        memory_note=memory_note)
    try:
        for done in scheduler.run(tasks()):
            collector.page_done(done.result, done.submit_ns, done.attempt)
    except BaseException:
        # Ctrl-C, SIGTERM or a failure of the main process: stop the workers now rather
        # than wait for the pages in flight; shutdown(wait=True) then returns promptly.
        kill_workers(scheduler.executor)
        raise
    finally:
        if scheduler.executor is not executor:  # a restarted pool is ours to close
            scheduler.executor.shutdown(wait=True)
        summary.restarts = scheduler.restarts


def run(
    inputs: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    config: Mapping[str, Any] | OcrConfig | None = None,
    resume: bool = False,
    **options: Any,
) -> RunSummary:
    """OCR ``inputs`` (files and folders) into ``out_dir``: the one-call API for notebooks.

    ``options`` are configuration keys (``workers=2``, ``dpi=300``,
    ``progress=False``...) and win over ``config`` and the environment.
    ``resume=True`` keeps the documents a previous run in ``out_dir`` finished
    with the same input and settings (see :mod:`ocrlab.resume`).
    """
    cfg = load_config(config, **options)
    return run_groups(RunContext.single(inputs, out_dir, resume=resume), cfg)
