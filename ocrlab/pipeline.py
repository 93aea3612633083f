"""The pipeline: where the data flow of a run is wired.

::

    inputs (files, folders)          main process                          worker processes
      |
      |- sources: walk, sort, sniff, count pages --> Document, PageTask (small, frozen)
      |- plan: in-process / loky pool / Dask, decided once (ExecutionPlan); a pool is
      |        sized by the pages (warmup.page_bound) and warmed at once, so workers
      |        start while the engine is checked and the inputs discovered
      |- ordering: cost from headers, most expensive first (bounded look-ahead)
      |- executor.BoundedScheduler: <= limit pages in flight ---------> worker.ocr_page(task,
      |                                                                   settings)
      |                                                                 pages: page -> file
      |                                                                 engines: file -> text
      |   <------------------------------------------------- PageResult (text | error,
      |                                                       pid, times, memory)
      |- collector: per-document assembly in page order, log, progress
      |     |- artifacts: text/<doc_id>.txt (atomic), results.json (ManifestWriter)
      |     '- trace: trace.json (Chrome Trace Event Format, appended live)
      |- measure.monitor: tree memory, fds, live Tesseracts -> trace counters, peaks
      '- finish: manifest status, run_end, executor.shutdown(wait=True) in `finally`

:func:`run_groups` is the entry of the verification plan: several groups of
inputs share ONE executor, so the number of live Tesseract processes never
exceeds the worker count however many groups there are. :func:`run` is the
one-group convenience for notebooks and scripts. The executor is created from
:data:`ocrlab.executor.ProcessPoolExecutor` (loky's) with ``max_workers=<workers>``
and shut down with ``wait=True`` in a ``finally``, also when the run raises
:class:`~ocrlab.errors.PipelineError`.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .artifacts import ManifestWriter, OutputLayout
from .collector import Collector, run_log
from .config import OcrConfig, load_config
from .executor import BoundedScheduler, kill_workers
from .ordering import cost_order, with_estimates
from .plan import ExecutionPlan
from .procs import child_subreaper
from .records import PageTask, RunSummary
from .resume import previous_records, reusable, settings_key
from .runinfo import check_engine, check_memory, run_metadata
from .sources import Document, discover
from .trace import TraceRecorder
from .warmup import page_bound

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
    def single(
        cls,
        inputs: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
        out_dir: str | os.PathLike[str],
        resume: bool = False,
    ) -> RunContext:
        items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
        return cls(
            (Group("", tuple(os.fspath(p) for p in items)),), os.fspath(out_dir), resume
        )


def _progress_enabled(cfg: OcrConfig) -> bool:
    if cfg.progress is not None:
        return cfg.progress
    return sys.stderr.isatty() and not os.environ.get("CI")


class _NoProgress:
    """A disabled progress bar without importing tqdm (the main process stays smaller)."""

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        return None

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        return None


def _make_progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=total, unit="page", desc="OCR", disable=not enabled, dynamic_ncols=True)


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
    check_memory(cfg)
    plan = ExecutionPlan.from_config(cfg)
    if plan.kind == "pool":  # a pool no larger than the batch (a few header reads at most)
        plan = plan.fitted(page_bound([i for g in context.groups for i in g.inputs],
                                      plan.workers, exclude=[context.out_dir]))
    executor = plan.start()  # its workers start while the engine is checked and inputs found
    try:
        check_engine(cfg)
        plan = plan.sized(executor)
        with child_subreaper():
            return _Run(context, plan, executor, t0).execute()
    finally:
        executor.shutdown(wait=True)
        plan.after_run()


class _Run:
    """One run's state: what was found, where it goes, and the recorders it feeds."""

    def __init__(self, context: RunContext, plan: ExecutionPlan, executor: cf.Executor,
                 t0: int) -> None:
        self.context = context
        self.plan = plan
        self.cfg = plan.cfg
        self.executor = executor
        self.t0 = t0
        self.started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.layout = OutputLayout(context.out_dir)
        self.tmp_root = self.layout.root / ".ocrlab-tmp"
        self.key = settings_key(self.cfg)
        self.summary = RunSummary(out_dir=self.layout.root, workers=plan.workers,
                                  sequential=plan.sequential)
        self.monitor: Any = None

    def execute(self) -> RunSummary:
        docs: list[Document] = []
        for group in self.context.groups:
            docs.extend(discover(group.inputs, group=group.name, exclude=[self.layout.root]))
        previous = previous_records(self.layout) if self.context.resume else {}
        self.layout.prepare()
        self.tmp_root.mkdir()
        meta = run_metadata(self.cfg)
        meta.update(started_at=self.started_at, settings_key=self.key, t0_monotonic_ns=self.t0,
                    resume=self.context.resume,
                    groups=[{"name": g.name, "inputs": list(g.inputs)}
                            for g in self.context.groups])
        self.trace = TraceRecorder(self.layout.trace, self.t0)
        self.trace.metadata(meta)
        self.manifest = ManifestWriter(self.layout.manifest, meta)
        kept = {d.doc_id for d in docs if d.ok and reusable(previous.get(d.doc_id), d.path,
                                                             self.key, self.layout)}
        todo = [d for d in docs if d.ok and d.doc_id not in kept]
        n_pages = sum(d.n_pages for d in todo)
        status = "interrupted"
        with run_log(self.layout.log), \
                _make_progress(n_pages, _progress_enabled(self.cfg)) as bar:
            try:
                log.info("run: %d documents, %d pages, %d worker(s)%s, engine %s%s",
                         len(docs), n_pages, self.cfg.effective_workers,
                         " (sequential, in-process)" if self.plan.sequential else "",
                         self.cfg.engine, f"; resuming, {len(kept)} document(s) kept"
                         if self.context.resume else "")
                self.monitor = self._start_monitor()
                self.collector = Collector(self.layout, self.trace, self.manifest,
                                           self.summary, bar, self.key)
                for doc in docs:
                    if doc.doc_id in kept:
                        self.collector.kept(previous[doc.doc_id])
                    elif not doc.ok:
                        self.collector.failed_document(doc)
                self._schedule(todo)
                status = "complete"
            finally:
                self._finish(status)
        return self.summary

    def _start_monitor(self) -> Any:
        if self.cfg.monitor_interval <= 0:
            return None
        from .measure.monitor import ProcessTreeMonitor, Sample

        trace = self.trace

        def on_sample(s: Sample) -> None:
            memory = {"tree RSS": round(s.rss_total / 2**20, 2),
                      "main RSS": round(s.rss_main / 2**20, 2)}
            if s.pss_total is not None and s.uss_total is not None:  # every few samples
                memory.update({"tree PSS": round(s.pss_total / 2**20, 2),
                               "tree USS": round(s.uss_total / 2**20, 2)})
            trace.counter("memory (MB)", s.t_ns, memory)
            trace.counter("file descriptors", s.t_ns, {"tree": s.fds_total, "main": s.fds_main})
            trace.counter("live tesseract processes", s.t_ns, {"tesseract": s.n_tesseract})

        return ProcessTreeMonitor(interval_s=self.cfg.monitor_interval,
                                  on_sample=on_sample).start()

    def _pages(self, docs: Sequence[Document]) -> Iterator[tuple[Document, PageTask]]:
        """The pages of ``docs`` in submission order: most expensive first (``order='cost'``,
        a bounded look-ahead, :mod:`ocrlab.ordering`) or as discovered."""
        pairs = ((doc, task) for doc in docs for task in doc.tasks)
        if self.cfg.order != "cost" or self.plan.sequential:
            return pairs  # in-process, one page at a time: no tail to avoid
        return cost_order(with_estimates(pairs, self.cfg.dpi), lambda pair: pair[1].cost or 0.0,
                          self.cfg.order_window)

    def _tasks(self, docs: Sequence[Document]) -> Iterator[PageTask]:
        """The pages of ``docs``, each announced to the collector as it is submitted."""
        shipped: tuple[str, bytes] | None = None  # pages of one document may be apart
        for doc, task in self._pages(docs):
            if self.plan.ship_pages:
                if shipped is None or shipped[0] != doc.path:
                    shipped = (doc.path, Path(doc.path).read_bytes())
                task = dataclasses.replace(task, payload=shipped[1])
            now = time.monotonic_ns()
            if self.summary.startup_s is None:  # configuration to first submission
                self.summary.startup_s = (now - self.t0) / 1e9
            self.collector.submitted(doc, now)
            yield task

    def _on_event(self, kind: str, info: dict[str, Any]) -> None:
        self.trace.instant(kind, time.monotonic_ns(), info)
        log.warning("%s: %s", kind, info)

    def _memory_note(self) -> str:
        if self.monitor is None:
            return ""
        peaks = self.monitor.peaks
        return (f"peak process-tree memory so far {peaks.rss_total / 2**20:.0f} MB RSS, "
                f"{peaks.pss_total / 2**20:.0f} MB PSS")

    def _schedule(self, docs: Sequence[Document]) -> None:
        """Feed the pages of ``docs`` through the bounded scheduler into the collector."""
        settings = dataclasses.replace(
            self.cfg.engine_settings(), tmp_dir=str(self.tmp_root), main_pid=os.getpid(),
            pool_worker=self.plan.pool_worker)
        scheduler = BoundedScheduler(
            self.executor, settings, self.plan.limit,
            restart=self.plan.start if self.plan.restartable else None,
            on_event=self._on_event, deadline_s=self.plan.deadline_s,
            memory_note=self._memory_note)
        try:
            for done in scheduler.run(self._tasks(docs)):
                self.collector.page_done(done.result, done.submit_ns, done.attempt,
                                        done.task.cost)
        except BaseException:
            # Ctrl-C, SIGTERM or a failure of the main process: stop the workers now rather
            # than wait for the pages in flight; shutdown(wait=True) then returns promptly.
            kill_workers(scheduler.executor)
            raise
        finally:
            if scheduler.executor is not self.executor:  # a restarted pool is ours to close
                scheduler.executor.shutdown(wait=True)
            self.summary.restarts = scheduler.restarts

    def _finish(self, status: str) -> None:
        """Peaks, manifest status, ``run_end``, the trace closed, temporary files gone."""
        summary = self.summary
        summary.wall_s = (time.monotonic_ns() - self.t0) / 1e9
        if self.monitor is not None:
            summary.peaks = self.monitor.stop().as_dict()
        self.manifest.run["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.manifest.run["wall_s"] = round(summary.wall_s, 4)
        self.manifest.write(status, summary.as_dict())
        self.trace.instant("run_end", time.monotonic_ns(), {"status": status,
                                                            **summary.as_dict()})
        self.trace.close()
        shutil.rmtree(self.tmp_root, ignore_errors=True)
        log.info("run %s: %d documents (%d ok, %d partial, %d failed), %d pages in %.2f s%s",
                 status, summary.documents, summary.documents_ok,
                 summary.documents_partial, summary.documents_failed, summary.pages,
                 summary.wall_s, f"; {summary.memory_line()}" if summary.memory_line() else "")


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
