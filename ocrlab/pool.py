"""The pool's life in one handle: chosen, started and warmed, sized, told that pages are
coming, replaced after a crash, shut down and cleaned up after.

::

    with Pool.open(context, cfg) as pool:   # settings checked, plan chosen, workers booting
        ...                                 # lock, engine check, inputs (workers keep booting)
        plan = pool.sized()                 # a cluster's size, once it can be asked
        pool.pages_coming()                 # warm-ups stop waiting for slower siblings
        BoundedScheduler(pool.executor, ..., restart=pool.restart)
    # out of the block, however it is left: every executor the handle started is shut down
    # with wait=True, the warm-up folders are gone, and what the plan says to clean up is done

Why it starts first (the ``ocrlab`` command opens it before it imports the
pipeline): a loky worker takes 0.2-0.4 s to start (a fresh interpreter, loky,
ocrlab's worker modules, Pillow, pytesseract), the longest wait before the first
page. Started here, its start overlaps everything else the main process does
before the first page (importing the rest of ocrlab, locking the output folder,
checking the engine, walking the inputs, opening the trace) instead of following it.

What comes before the pool, because it must not wait for (or cost) a process:
settings that exclude each other, the engine (a name that is no engine, a package
not installed, an import path that does not import is refused before any worker
starts, not by every page) and the memory check (a worker count that does not fit
is refused, never started). A run refused after it (a busy folder, a
missing input) shuts the pool down again; its workers have run only their warm-up.

Which executor, how many workers and what follows from the choice is the pure
:class:`~ocrlab.plan.ExecutionPlan`; this handle is what acts on it.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from types import TracebackType

from .config import OcrConfig
from .engines.registry import check_engine, release_engines
from .errors import ConfigError
from .plan import ExecutionPlan
from .procs import reap_orphans
from .records import RunContext
from .runinfo import check_memory
from .warmup import Meeting, page_bound, warm

log = logging.getLogger("ocrlab")


class Pool:
    """A run's executor from its start to its clean-up (see the module doc)."""

    def __init__(self, plan: ExecutionPlan, t0: int | None = None) -> None:
        self.plan = plan
        #: ``time.monotonic_ns()`` when the run began: the trace's zero, the start of startup_s
        self.t0 = time.monotonic_ns() if t0 is None else t0
        self._started: list[cf.Executor] = []
        self._meetings: list[Meeting] = []
        self._closed = False
        #: the executor pages go to now (a crashed pool is replaced by :meth:`restart`)
        self.executor = self._start()

    @classmethod
    def open(cls, context: RunContext, cfg: OcrConfig, t0: int | None = None) -> Pool:
        """Check what needs no process, choose the plan, start the executor (workers boot now).

        Raises :class:`~ocrlab.errors.ConfigError` (resume with overwrite, an engine
        that cannot be loaded, a worker count the memory budget cannot hold) before any
        process is started. A local
        pool is no larger than the batch: a few header reads find out.
        """
        t0 = time.monotonic_ns() if t0 is None else t0
        if context.resume and context.overwrite:
            raise ConfigError(
                "resume and overwrite exclude each other: --resume keeps a previous "
                "run's finished documents, --overwrite removes them; choose one."
            )
        if not cfg.remote:  # a cluster's workers load the engine in their own environment
            source = cfg.provenance.get("engine", "")
            check_engine(cfg.engine, source[4:] if source.startswith("env ") else "engine")
        check_memory(cfg)
        plan = ExecutionPlan.from_config(cfg)
        if plan.kind == "pool":
            inputs = [i for g in context.groups for i in g.inputs]
            plan = plan.fitted(page_bound(inputs, plan.workers, exclude=[context.out_dir]))
        return cls(plan, t0)

    def _start(self) -> cf.Executor:
        executor = self.plan.new_executor()
        self._started.append(executor)
        if self.plan.kind == "pool":  # workers start now, not at the first page
            meeting = warm(executor, self.plan.workers, self.plan.cfg.engine)
            if meeting is not None:
                self._meetings.append(meeting)
        return executor

    def sized(self) -> ExecutionPlan:
        """The plan with a cluster's real size (its threads) when no worker count was given."""
        self.plan = self.plan.sized(self.executor)
        return self.plan

    def pages_coming(self) -> None:
        """Pages are about to be submitted: warm-ups stop waiting for slower siblings."""
        for meeting in self._meetings:
            meeting.go()

    def restart(self) -> cf.Executor:
        """A fresh executor in place of a crashed one (the scheduler has shut that down)."""
        if not self.plan.restartable:
            raise RuntimeError(f"a {self.plan.kind} executor is not restarted after a crash")
        self.executor = self._start()
        return self.executor

    def close(self) -> None:
        """Shut every executor down (waiting for its workers), then clean up, once."""
        if self._closed:
            return
        self._closed = True
        try:
            for executor in self._started:
                executor.shutdown(wait=True)
        finally:
            for meeting in self._meetings:
                meeting.end()
            if self.plan.kind == "inline":
                release_engines()  # the user's own process: the model must not outlive the run
            elif self.plan.kind == "pool":
                reap_orphans()  # a dead worker's Tesseract, re-parented to us

    def __enter__(self) -> Pool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
