"""The pipeline: where the data flow of a run is wired.

::

    inputs (files, folders)          main process                          worker processes
      |
      |- sources: walk, sort, sniff, count pages --> Document, PageTask (small, frozen),
      |           lazily: one document ahead of the scheduler (iter_documents)
      |- startup: in-process / loky pool / Dask, decided once (plan.ExecutionPlan) and
      |        started first: a pool sized by the pages (warmup.page_bound), its workers
      |        booting while the rest starts (the command starts it before it even
      |        imports this module); then the output lock, engine check, inputs check
      |- ordering: cost from headers, most expensive first (bounded look-ahead)
      |- bundles: consecutive small pages grouped (one Tesseract process for several)
      |- scheduler.BoundedScheduler: <= limit units in flight --------> worker.ocr_page(task)
      |     on executor.* (loky pool, in-process, Dask)                   or ocr_bundle(tasks)
      |                                                                 pages: page -> file
      |                                                                 engines: file(s) -> text
      |   <------------------------------------------------- PageResult per page (text |
      |                                                       error, pid, times, memory)
      |- collector: per-document assembly in page order, log, progress
      |     |- artifacts: text/<doc_id>.txt (atomic)
      |     |- journal: journal.jsonl (a line per document, live) -> results.json at the end
      |     '- trace: trace.json (Chrome Trace Event Format, streamed, never held)
      |- supervise: measure.monitor (tree memory, fds, live Tesseracts -> trace counters,
      |     peaks), guard (holds submission while the tree nears the memory budget),
      |     recycle (a worker retires after N pages / past an RSS bound; counted here)
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
import itertools
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .bundles import bundled
from .collector import Collector, run_log
from .config import OcrConfig, load_config
from .engines.registry import engine_version, list_engine
from .engines.tesseract import lists_pages_independently
from .errors import OutputStoppedError
from .ordering import cost_order, with_estimates
from .output.documents import OutputsPlan
from .output.journal import StreamingManifest
from .output.layout import OutputLayout
from .output.lock import hold_output
from .output.manifest import previous_records, reusable, settings_key
from .output.scratch import RunTempDir
from .output.stops import Ballast, run_wide_reason, stopped_error
from .output.trace import TraceRecorder
from .plan import ExecutionPlan
from .procs import child_subreaper, kill_workers
from .progress import run_progress
from .records import EngineSettings, Group, PageTask, RunContext, RunSummary
from .recycle import quiet_recycling_warning
from .runinfo import check_engine, run_metadata
from .scheduler import BoundedScheduler
from .sources import Document, check_inputs, iter_documents
from .startup import Started, start_run
from .supervise import Supervisor
from .warmup import pages_coming

log = logging.getLogger("ocrlab")

#: The entry points; ``Group`` and ``RunContext`` (what to OCR) live in :mod:`ocrlab.records`.
__all__ = ["Group", "RunContext", "run", "run_groups"]


def run_groups(
    context: RunContext,
    config: Mapping[str, Any] | OcrConfig | None = None,
    *,
    started: Started | None = None,
) -> RunSummary:
    """OCR every group of ``context`` on one shared executor; return the summary.

    Raises :class:`~ocrlab.errors.ConfigError` for bad settings and
    :class:`~ocrlab.errors.PipelineError` for a missing input or unwritable
    output, before any page is OCRed. Page and document failures do not raise:
    they are in the manifest and the summary (``exit_code`` 1).

    The output folder is locked for the whole run (:mod:`ocrlab.output.lock`): a
    second run on it raises :class:`~ocrlab.errors.OutputBusyError` before
    touching anything. A folder holding a previous run's files raises
    :class:`~ocrlab.errors.OutputNotEmptyError` unless ``context.resume`` or
    ``context.overwrite``. A full, read-only or vanished output filesystem stops
    the run with :class:`~ocrlab.errors.OutputStoppedError` (finished documents
    are kept, the manifest says ``interrupted`` and why).

    ``started`` is the run's executor started ahead by :func:`ocrlab.startup.start_run`
    (the ``ocrlab`` command does, before importing this module, so the workers boot
    meanwhile); its configuration is the run's, ``config`` is then ignored, and the
    run closes it. Without it the executor is started here.
    """
    if started is None:
        started = start_run(context, load_config(config))
    cfg = started.plan.cfg
    try:
        with hold_output(Path(context.out_dir)):
            try:
                check_engine(cfg)  # while the pool's workers start
                plan = started.plan.sized(started.executor)
                with child_subreaper():
                    return _Run(context, plan, started.executor, started.t0).execute()
            finally:
                started.close()  # within the lock, as the run's last act
    finally:
        started.close()  # refused before the lock was taken (a busy folder)


class _Run:
    """One run's state: what was found, where it goes, and the recorders it feeds."""

    def __init__(
        self, context: RunContext, plan: ExecutionPlan, executor: cf.Executor, t0: int
    ) -> None:
        self.context = context
        self.plan = plan
        self.cfg = plan.cfg
        self.executor = executor
        self.t0 = t0
        self.started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.layout = OutputLayout(context.out_dir)
        self.key = settings_key(self.cfg)
        self.summary = RunSummary(
            out_dir=self.layout.root, workers=plan.workers, sequential=plan.sequential
        )
        self.watch: Supervisor | None = None
        self.bundle_mp = 0.0  # set by _schedule (0: every page alone)

    def execute(self) -> RunSummary:
        self.layout.claim(resume=self.context.resume, overwrite=self.context.overwrite)
        docs = self._documents()  # lazy: checks the inputs now, walks them as pages go out
        previous = previous_records(self.layout) if self.context.resume else None
        self.layout.prepare()
        try:
            self.ballast = Ballast(self.layout.root)
        except OSError as exc:
            reason = run_wide_reason(exc) or f"the output folder failed ({exc})"
            raise stopped_error(reason, 0) from exc
        RunTempDir.remove_stale()
        self.tmp = RunTempDir()
        meta = run_metadata(self.cfg)
        meta.update(
            started_at=self.started_at,
            settings_key=self.key,
            t0_monotonic_ns=self.t0,
            resume=self.context.resume,
            groups=[{"name": g.name, "inputs": list(g.inputs)} for g in self.context.groups],
        )
        self.trace = TraceRecorder(self.layout.trace, self.t0)
        self.trace.metadata(meta)
        self.manifest = StreamingManifest(
            self.layout.manifest,
            meta,
            self.started_at,
            fresh=previous is None,
            tmp_dir=self.tmp.path,
        )
        self.previous = previous
        status = "interrupted"
        self.stop_reason: str | None = None
        self.trace.run_start(time.monotonic_ns())
        # The bar's total grows as discovery finds documents (see _tasks).
        with run_log(self.layout.log), run_progress(0, self.cfg, self.layout.trace) as bar:
            try:
                log.info(
                    "run: %d worker(s)%s, engine %s%s; documents are discovered as "
                    "pages are submitted",
                    self.cfg.effective_workers,
                    " (sequential, in-process)" if self.plan.sequential else "",
                    self.cfg.engine,
                    f"; resuming, {len(previous)} document(s) finished before"
                    if previous is not None
                    else "",
                )
                self.watch = Supervisor(self.cfg, self.plan, self.trace, self.summary)
                outputs = OutputsPlan(
                    self.cfg.formats,
                    engine_version(self.cfg.engine),
                    self.cfg.conf_low,
                    str(self.tmp.path),
                )
                self.collector = Collector(
                    self.layout, self.trace, self.manifest, self.summary, bar, self.key, outputs
                )
                pages_coming(self.executor)  # warm-ups stop waiting for slower siblings
                self._schedule(docs)
                status = "complete"
            except OutputStoppedError as exc:
                self.stop_reason = exc.reason
                log.info("run stopped: %s", exc.reason)  # the command prints it once
                raise
            finally:
                self._finish(status)
        return self.summary

    def _documents(self) -> Iterator[Document]:
        """Every group's documents, lazily; missing inputs raise here, before any work."""
        exclude = [self.layout.root]
        for group in self.context.groups:
            check_inputs(group.inputs, group=group.name, exclude=exclude)
        return itertools.chain.from_iterable(
            iter_documents(g.inputs, group=g.name, exclude=exclude, check=False)
            for g in self.context.groups
        )

    def _runnable(self, docs: Iterable[Document]) -> Iterator[Document]:
        """The documents to OCR, as discovery finds them; the others are recorded here.

        Discovery happens here, one document ahead of the scheduler: documents kept
        from a previous run (``--resume``) and documents that failed discovery are
        recorded as they are found, the others are yielded for OCR.
        """
        found = 0
        announced = time.monotonic()
        for doc in docs:
            if not doc.ok:
                self.collector.failed_document(doc)
                continue
            if self.previous is not None:
                record = self.previous.get(doc.doc_id)
                if record is not None and reusable(
                    record, doc.path, self.key, self.layout, self.cfg.formats
                ):
                    self.collector.kept(record)
                    continue
            found += doc.n_pages
            self.collector.progress.total = found
            if time.monotonic() - announced >= 0.5:  # live views learn the growing total
                announced = time.monotonic()
                self.trace.instant("pages_found", time.monotonic_ns(), {"pages": found})
            yield doc
        self.trace.instant("pages_found", time.monotonic_ns(), {"pages": found, "final": True})

    def _pages(self, docs: Iterable[Document]) -> Iterator[tuple[Document, PageTask]]:
        """The pages of ``docs`` in submission order: most expensive first (``order='cost'``,
        a bounded look-ahead, :mod:`ocrlab.ordering`) or as discovered."""
        pairs: Iterator[tuple[Document, PageTask]]
        pairs = ((doc, task) for doc in self._runnable(docs) for task in doc.tasks)
        by_cost = self.cfg.order == "cost" and not self.plan.sequential  # in-process: no tail
        if by_cost or self.bundle_mp > 0:  # bundles need the estimates too
            pairs = with_estimates(pairs, self.cfg.dpi)
        if not by_cost:
            return pairs
        return cost_order(pairs, lambda pair: pair[1].cost or 0.0, self.cfg.order_window)

    def _tasks(self, docs: Iterable[Document]) -> Iterator[PageTask]:
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

    def _schedule(self, docs: Iterable[Document]) -> None:
        """Feed the pages of ``docs`` through the bounded scheduler into the collector."""
        settings = dataclasses.replace(
            self.cfg.engine_settings(),
            tmp_dir=str(self.tmp.path),
            main_pid=os.getpid(),
            pool_worker=self.plan.pool_worker,
        )
        if self.plan.pool_worker:
            quiet_recycling_warning()
        self.bundle_mp = _bundle_mp(self.cfg, settings)
        scheduler = BoundedScheduler(
            self.executor,
            settings,
            self.plan.limit,
            restart=self.plan.start if self.plan.restartable else None,
            on_event=self._on_event,
            deadline_s=self.plan.deadline_s,
            memory_note=self.watch.memory_note if self.watch else None,
            admit=self.watch.admit if self.watch else None,
        )
        try:
            units = bundled(
                self._tasks(docs), self.bundle_mp, self.plan.workers, "pdf" in self.cfg.formats
            )
            for done in scheduler.run(units):
                self.collector.page_done(done.result, done.submit_ns, done.attempt, done.task.cost)
                if self.watch is not None:
                    self.watch.page_done(done.result)
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
        """Peaks, manifest status, ``run_end``, the trace closed, temporary files gone.

        After a run-wide stop the ballast is released first, so the manifest that
        says ``interrupted`` and why still finds room; a write that fails anyway is
        logged, never allowed to hide the reason the run stopped.
        """
        summary = self.summary
        summary.wall_s = (time.monotonic_ns() - self.t0) / 1e9
        if self.watch is not None:
            summary.peaks = self.watch.stop()
        self.ballast.release()
        self.manifest.run["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.manifest.run["wall_s"] = round(summary.wall_s, 4)
        if self.stop_reason is not None:
            self.manifest.run["stop_reason"] = self.stop_reason
        end = {"status": status, **summary.as_dict()}
        if self.stop_reason is not None:
            end["stop_reason"] = self.stop_reason
        try:
            self.manifest.write(status, summary.as_dict())
        except OSError as exc:
            log.error("could not write the manifest %s: %s", self.layout.manifest, exc)
        self.trace.instant("run_end", time.monotonic_ns(), end)
        try:
            self.trace.close()
        except OSError as exc:
            log.error("could not finish the trace %s: %s", self.layout.trace, exc)
        self.tmp.close()
        log.info(
            "run %s: %d documents (%d ok, %d partial, %d failed), %d pages in %.2f s%s",
            status,
            summary.documents,
            summary.documents_ok,
            summary.documents_partial,
            summary.documents_failed,
            summary.pages,
            summary.wall_s,
            f"; {summary.memory_line()}" if summary.memory_line() else "",
        )


def _bundle_mp(cfg: OcrConfig, settings: EngineSettings) -> float:
    """``bundle_mp`` where the engine can OCR a list of pages that stay independent, else 0."""
    if list_engine(settings.engine) is None or not lists_pages_independently(settings):
        return 0.0
    return cfg.bundle_mp


def run(
    inputs: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    config: Mapping[str, Any] | OcrConfig | None = None,
    resume: bool = False,
    overwrite: bool = False,
    **options: Any,
) -> RunSummary:
    """OCR ``inputs`` (files and folders) into ``out_dir``: the one-call API for notebooks.

    ``options`` are configuration keys (``workers=2``, ``dpi=300``,
    ``progress=False``...) and win over ``config`` and the environment.
    ``resume=True`` keeps the documents a previous run in ``out_dir`` finished
    with the same input and settings (see :mod:`ocrlab.output.manifest`); ``overwrite=True``
    starts from an empty folder. Without either, a folder that holds a previous
    run's files is refused (:class:`~ocrlab.errors.OutputNotEmptyError`).
    """
    cfg = load_config(config, **options)
    return run_groups(RunContext.single(inputs, out_dir, resume=resume, overwrite=overwrite), cfg)
