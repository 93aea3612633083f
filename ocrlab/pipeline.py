"""The pipeline: where the data flow of a run is wired.

::

    inputs (files, folders)          main process                          worker processes
      |
      |- pool.Pool: in-process / loky pool / Dask, chosen once (plan.ExecutionPlan) and
      |     started first, sized by the pages (warmup.page_bound), its workers booting
      |     while the rest starts (the command opens it before it imports this module);
      |     then the output lock, the engine check, the inputs check
      |- sources: walk, sort, sniff, count pages --> Document, PageTask (small, frozen)
      |     lazily, ONE DOCUMENT AHEAD of submission: kept (--resume) and failed documents
      |     are recorded as discovery meets them, and the page total grows (_runnable)
      |- ordering: cost from headers, most expensive first; holds up to ``order_window``
      |     pages AHEAD of submission (a bounded look-ahead)
      |- bundles: consecutive small pages grouped (one Tesseract process for several);
      |     looks a bounded number of pages AHEAD to spread the tail over the workers
      |- scheduler.BoundedScheduler: <= limit units in flight --------> worker.ocr_page(task)
      |     on pool.executor (restarted after a crash by the pool)       or ocr_bundle(tasks)
      |                                                                 pages: page -> file
      |                                                                 engines: file(s) -> text
      |   <------------------------------------------------- PageResult per page (text |
      |                                                       error, pid, times, memory)
      |- collector: per-document assembly in page order, log, progress
      |     |- output.layout: text/<doc_id>.txt (atomic, output.atomic)
      |     |- output.journal: journal.jsonl (a line per document, live) -> results.json
      |     '- output.trace: trace.json (Chrome Trace Event Format, streamed, never held)
      |- supervise: measure.monitor (tree memory, fds, live Tesseracts -> trace counters,
      |     peaks), guard (holds submission while the tree nears the memory budget),
      |     recycle (a worker retires after N pages / past an RSS bound; counted here)
      '- finish: summary, manifest status, run_end; the pool shut down (wait=True) on leaving

The three look-aheads are why the generator chain has side effects at all: what
discovery records (kept and failed documents, the growing page total) happens
when the look-ahead pulls, which is at most one document plus the two bounded
windows ahead of the pages actually submitted. A document's own clock starts when
its first page is really submitted (the collector learns that from the scheduler).

:func:`run_groups` is the pipeline's entry (``run_groups(context, config)``, with
``config={"ocr_workers": N}`` as existing callers pass it): several groups of
inputs share ONE executor, so the number of live Tesseract processes never
exceeds the worker count however many groups there are. :func:`run` is the
one-group convenience for notebooks and scripts. The executor is created from
:data:`ocrlab.executor.ProcessPoolExecutor` (loky's) with ``max_workers=<workers>``
and shut down with ``wait=True`` when the pool's ``with`` block is left, also when
the run raises :class:`~ocrlab.errors.PipelineError`.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .bundles import bundle_budget, bundled
from .collector import Collector
from .config import OcrConfig, load_config
from .errors import OutputStoppedError
from .inputfiles import read_input
from .ordering import cost_order, with_estimates
from .output import trace_schema as ts
from .output.documents import OutputsPlan
from .output.layout import OutputLayout
from .output.lock import hold_output
from .output.manifest import settings_key
from .output.resume import Resume
from .output.run_files import RunFiles
from .output.runlog import run_log
from .output.trace import TraceRecorder
from .pool import Pool
from .procs import child_subreaper, kill_workers
from .progress import run_progress
from .records import Group, PageTask, RunContext, RunStatus, RunSummary
from .recycle import quiet_recycling_warning
from .runinfo import check_engine, run_metadata
from .scheduler import BoundedScheduler
from .shards import ShardFilter
from .sources import Document, check_inputs, iter_documents
from .supervise import Supervisor
from .timeleft import SizeCount

log = logging.getLogger("ocrlab")

#: The entry points; ``Group`` and ``RunContext`` (what to OCR) live in :mod:`ocrlab.records`.
__all__ = ["Group", "RunContext", "run", "run_groups"]


def run_groups(
    context: RunContext,
    config: Mapping[str, Any] | OcrConfig | None = None,
    *,
    pool: Pool | None = None,
) -> RunSummary:
    """OCR every group of ``context`` on one shared executor; return the summary.

    Raises :class:`~ocrlab.errors.ConfigError` for bad settings and
    :class:`~ocrlab.errors.PipelineError` for a missing input or unwritable output, before
    any page is OCRed. Page and document failures are in the manifest and the summary.

    The output folder is locked for the whole run (:mod:`ocrlab.output.lock`: else
    :class:`~ocrlab.errors.OutputBusyError`); a folder holding a previous run's files
    raises :class:`~ocrlab.errors.OutputNotEmptyError` unless resuming or overwriting; a
    full, read-only or vanished output filesystem stops the run with
    :class:`~ocrlab.errors.OutputStoppedError` (finished documents kept, manifest says why).
    ``pool`` is the run's pool opened ahead by :meth:`ocrlab.pool.Pool.open` (the
    ``ocrlab`` command does, before importing this module, so the workers boot
    meanwhile); its configuration is the run's, ``config`` is then ignored, and
    the run closes it. Without it the pool is opened here.
    """
    if pool is None:
        pool = Pool.open(context, load_config(config))
    with pool, hold_output(Path(context.out_dir)):
        check_engine(pool.plan.cfg)  # while the pool's workers start
        pool.sized()
        with child_subreaper():
            return _Run(context, pool).execute()


class _Run:
    """One run: its state is built here; :meth:`execute` is the run's steps in order."""

    def __init__(self, context: RunContext, pool: Pool) -> None:
        self.context = context
        self.pool = pool
        self.plan = pool.plan
        self.cfg = pool.plan.cfg
        self.started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.layout = OutputLayout(context.out_dir, self.cfg.formats)
        self.key = settings_key(self.cfg)
        self.summary = RunSummary(
            out_dir=self.layout.root, workers=self.plan.workers, sequential=self.plan.sequential
        )
        self.previous: Resume | None = None
        self.stop_reason: str | None = None
        self.shard = ShardFilter.of(self.cfg.shard, self.cfg.dpi)  # this run's share (or all)

    def execute(self) -> RunSummary:
        self.layout.claim(resume=self.context.resume, overwrite=self.context.overwrite)
        if self.context.resume:  # first: discovery asks it before it opens a file
            self.previous = Resume(self.layout, self.key, self.cfg.verify_inputs)
        docs = self.shard(self._documents())  # inputs checked now, walked as pages go out
        records = self._open_records()
        status: RunStatus = "interrupted"
        bar_of_run = run_progress(self.cfg, self.layout.trace, self.pool.t0, self.plan.workers)
        with run_log(self.layout.log, append=self.context.resume), bar_of_run as bar:
            watch = Supervisor(self.cfg, self.plan, records.trace, self.pool.executor)
            outputs = OutputsPlan.of(self.cfg, records.scratch.path)  # the formats beyond txt
            collector = Collector(
                self.layout, records.trace, records.manifest, self.summary, bar, self.key, outputs
            )
            if self.previous is not None:
                self.previous.record = collector.kept
            try:
                self._announce()
                self.pool.pages_coming()
                self._ocr(docs, records, collector, watch)
                status = "complete"
            except OutputStoppedError as exc:
                self.stop_reason = exc.reason
                log.info("run stopped: %s", exc.reason)  # the command prints it once
                raise
            finally:
                self._finish(status, records, watch)
        return self.summary

    # -- the steps ------------------------------------------------------------------------
    def _documents(self) -> Iterator[Document]:
        """Every group's documents, lazily; missing inputs raise here, before any work."""
        exclude = [self.layout.root]
        # Kept documents are not even opened, but a shard deals every document out by cost
        whole = self.shard.as_dict() is None  # (a shard's are kept once dealt: _runnable)
        known = self.previous.keep if self.previous is not None and whole else None
        for group in self.context.groups:
            check_inputs(group.inputs, group=group.name, exclude=exclude)
        return itertools.chain.from_iterable(
            iter_documents(
                g.inputs, group=g.name, exclude=exclude, check=False, skips=True, known=known
            )
            for g in self.context.groups
        )

    def _open_records(self) -> RunFiles:
        """The run's files besides ``text/``, with the run's metadata (output.run_files)."""
        meta = run_metadata(self.cfg)
        meta.update(
            started_at=self.started_at,
            settings_key=self.key,
            t0_monotonic_ns=self.pool.t0,
            resume=self.context.resume,
            groups=[{"name": g.name, "inputs": list(g.inputs)} for g in self.context.groups],
        )
        fresh = self.previous is None
        return RunFiles.open(self.layout, meta, self.started_at, self.pool.t0, fresh)

    def _announce(self) -> None:
        log.info(
            "run: %d worker(s)%s, engine %s%s; documents are discovered as pages are submitted",
            self.cfg.effective_workers,
            " (sequential, in-process)" if self.plan.sequential else "",
            self.cfg.engine,
            f"; {self.previous.began()}" if self.previous is not None else "",
        )

    def _ocr(
        self, docs: Iterable[Document], records: RunFiles, collector: Collector, watch: Supervisor
    ) -> None:
        """Feed the pages of ``docs`` through the bounded scheduler into the collector."""
        settings = dataclasses.replace(
            self.cfg.engine_settings(),
            tmp_dir=str(records.scratch.path),
            main_pid=os.getpid(),
            pool_worker=self.plan.pool_worker,
        )
        if self.plan.pool_worker:
            quiet_recycling_warning()
        bundle_mp = bundle_budget(self.cfg.bundle_mp, settings.engine)
        scheduler = BoundedScheduler(
            self.pool.executor,
            settings,
            self.plan.limit,
            restart=self.pool.restart if self.plan.restartable else None,
            on_event=lambda kind, info: _on_event(records.trace, kind, info),
            deadline_s=self.plan.deadline_s,
            memory_note=watch.memory_note,
            admit=watch.admit,
        )
        pages = self._pages(self._runnable(docs, collector))
        pdf_apart = "pdf" in self.cfg.formats  # a PDF input's layer is a call of its own kind
        units = bundled(self._submitted(pages, collector), bundle_mp, self.plan.workers, pdf_apart)
        try:
            for done in scheduler.run(units):
                collector.page_done(
                    done.result, done.submit_ns, done.attempt, done.task.cost, done.first_submit_ns
                )
                watch.page_done(done.result)
        except BaseException:
            # Ctrl-C, SIGTERM or a failure of the main process: stop the workers now rather
            # than wait for the pages in flight; the pool's shutdown then returns promptly.
            kill_workers(scheduler.executor)
            raise
        finally:
            self.summary.restarts = scheduler.restarts

    # -- the generator chain (pulled by the scheduler; see the look-aheads in the drawing) --
    def _runnable(
        self, docs: Iterable[Document], collector: Collector
    ) -> Iterator[tuple[Document, PageTask]]:
        """The pages to OCR with their cost estimates, as discovery finds their documents;
        the others are recorded here: skipped, failed, or kept (``--resume``: by discovery
        before it opens them, :meth:`_documents`). Every page's cost is estimated (a header
        read): progress and the time left count in it (:mod:`ocrlab.timeleft`)."""
        found = SizeCount()
        for doc in docs:
            if doc.skip is not None:
                collector.skipped(doc)
                continue
            if not doc.ok:
                collector.failed_document(doc)
                continue
            if self.previous is not None:
                if self.shard.as_dict() and self.previous.keep(doc.doc_id, doc.path):
                    continue  # a shard's kept document (see _documents)
                self.layout.discard(self.previous.artifact(doc.doc_id))  # redone: old text goes
            pairs = list(with_estimates(((doc, task) for task in doc.tasks), self.cfg.dpi))
            for _, task in pairs:
                found.add(task.cost)
            collector.found(found)
            yield from pairs
        collector.found(found, final=True)

    def _pages(
        self, pairs: Iterator[tuple[Document, PageTask]]
    ) -> Iterator[tuple[Document, PageTask]]:
        """The pages in submission order: most expensive first (``order='cost'``, a bounded
        look-ahead, :mod:`ocrlab.ordering`) or as discovered."""
        if self.cfg.order != "cost" or self.plan.sequential:  # in-process: no tail
            return pairs
        return cost_order(pairs, lambda pair: pair[1].cost or 0.0, self.cfg.order_window)

    def _submitted(
        self, pairs: Iterable[tuple[Document, PageTask]], collector: Collector
    ) -> Iterator[PageTask]:
        """The tasks, each announced to the collector as it leaves the look-aheads."""
        shipped: tuple[str, bytes | None] | None = None  # pages of one document may be apart
        for doc, task in pairs:
            if self.plan.ship_pages:
                if shipped is None or shipped[0] != doc.path:
                    shipped = (doc.path, read_input(doc.path))
                task = dataclasses.replace(task, payload=shipped[1])
            now = time.monotonic_ns()
            if self.summary.startup_s is None:  # configuration to first submission
                self.summary.startup_s = (now - self.pool.t0) / 1e9
            collector.submitted(doc, now)
            yield task

    def _finish(self, status: RunStatus, records: RunFiles, watch: Supervisor) -> None:
        """Summary, manifest status, ``run_end``, the trace closed, temporary files gone.

        After a run-wide stop the reserve is released first, so the manifest that says
        ``interrupted`` and why still finds room; a write that fails anyway is logged.
        """
        summary = self.summary
        summary.wall_s = (time.monotonic_ns() - self.pool.t0) / 1e9
        watch.stop(summary)
        records.ballast.release()
        manifest = records.manifest
        manifest.run["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        manifest.run["wall_s"] = round(summary.wall_s, 4)
        manifest.run["shard"] = self.shard.as_dict()  # None: every document
        end = {"status": status, **summary.as_dict()}
        if self.stop_reason is not None:
            manifest.run["stop_reason"] = end["stop_reason"] = self.stop_reason
        if self.previous is not None:  # kept documents are counted, not listed
            end["resume"] = self.previous.finish(status == "complete", not self.shard.as_dict())
            summary.documents_vanished = self.previous.vanished
        try:
            manifest.write(status, summary.as_dict())
        except OSError as exc:
            log.error("could not write the manifest %s: %s", self.layout.manifest, exc)
        end.update(manifest_write_s=manifest.write_s, trace_write_s=records.trace.write_s)
        records.trace.instant(ts.RUN_END, time.monotonic_ns(), end)
        try:
            records.trace.close()
        except OSError as exc:
            log.error("could not finish the trace %s: %s", self.layout.trace, exc)
        records.scratch.close()
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


def _on_event(trace: TraceRecorder, kind: str, info: dict[str, Any]) -> None:
    """A scheduler event (worker died, pool restarted, page hung): traced and logged."""
    trace.instant(kind, time.monotonic_ns(), info)
    log.warning("%s: %s", kind, info)


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
