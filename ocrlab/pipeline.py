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
import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import executor as executor_mod
from .artifacts import ManifestWriter, OutputLayout
from .collector import (
    Collector,
    RunSummary,
    run_log,
)
from .config import OcrConfig, load_config
from .engine import release_engines
from .executor import BoundedScheduler, InlineExecutor, kill_workers
from .procs import child_subreaper, reap_orphans
from .progress import run_progress
from .records import EngineSettings
from .resume import previous_records, reusable, settings_key
from .runinfo import check_engine, check_memory, run_metadata
from .scaleout import is_loopback
from .sources import Document, discover
from .trace import TraceRecorder

log = logging.getLogger("ocrlab")



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
        if isinstance(executor, InlineExecutor):
            release_engines()
        else:
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
        *settings.options, ("tmp_dir", str(tmp_root)), ("main_pid", os.getpid()),
        ("pool_worker", not cfg.remote and not isinstance(executor, InlineExecutor)))})
    meta = run_metadata(cfg)
    meta.update(started_at=started_at, settings_key=key, resume=context.resume,
                groups=[{"name": g.name, "inputs": list(g.inputs)} for g in context.groups])
    workers = cfg.effective_workers
    if cfg.remote and cfg.sources.get("workers") == "default":
        workers = getattr(executor, "capacity", workers)  # the cluster's worker threads
    summary = RunSummary(out_dir=layout.root, workers=workers,
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
    trace.run_start(time.monotonic_ns(), n_pages, docs)
    with run_log(layout.log), run_progress(n_pages, cfg, layout.trace) as bar:
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
