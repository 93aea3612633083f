"""The first step of a run: the checks that need no process, then the pool, started at once.

Why a step of its own, which the ``ocrlab`` command takes before it imports the
pipeline: a loky worker takes 0.2-0.4 s to start (a fresh interpreter, loky,
ocrlab's worker modules, Pillow, pytesseract), the longest wait before the first
page. Started here, its start overlaps everything else the main process does
before the first page (importing the rest of ocrlab, locking the output folder,
checking the engine, walking the inputs, opening the trace), instead of
following it.

What comes before the pool, because it must not wait for (or cost) a process:
settings that exclude each other, the engine (a name that is no engine, a
package not installed, an import path that does not import is refused before
any worker starts, not by every page) and the memory check (a worker count that
does not fit is refused, never started). What comes after it, still before any
page is submitted (:func:`ocrlab.pipeline.run_groups`): the output folder's lock,
the engine check, the inputs' check. A run refused there shuts the pool down
again; its workers have run nothing but their warm-up.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from dataclasses import dataclass, field

from .config import OcrConfig
from .engines.registry import check_engine
from .errors import ConfigError
from .plan import ExecutionPlan
from .records import RunContext
from .runinfo import check_memory
from .warmup import end_meeting, page_bound


@dataclass
class Started:
    """A run's plan and its executor, started; :meth:`close` ends them (idempotent)."""

    plan: ExecutionPlan
    executor: cf.Executor
    #: ``time.monotonic_ns()`` when the run began: the trace's zero, the start of startup_s
    t0: int
    _closed: bool = field(default=False, repr=False)

    def close(self) -> None:
        """Shut the executor down (waiting for its workers) and clean up after it, once."""
        if self._closed:
            return
        self._closed = True
        try:
            self.executor.shutdown(wait=True)
        finally:
            end_meeting(self.executor)
            self.plan.after_run()


def start_run(context: RunContext, cfg: OcrConfig, t0: int | None = None) -> Started:
    """Check what needs no process, then start the executor (a pool's workers boot now).

    Raises :class:`~ocrlab.errors.ConfigError` (resume with overwrite, an engine
    that cannot be loaded, a worker count the memory budget cannot hold) before any
    process is started. The
    caller owns the result: :func:`ocrlab.pipeline.run_groups` closes it.
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
    if plan.kind == "pool":  # a pool no larger than the batch (a few header reads at most)
        plan = plan.fitted(
            page_bound(
                [i for g in context.groups for i in g.inputs],
                plan.workers,
                exclude=[context.out_dir],
            )
        )
    return Started(plan, plan.start(), t0)
