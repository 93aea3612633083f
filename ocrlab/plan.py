"""Where pages run, decided once: in-process, a local loky pool, or a Dask cluster.

A pure decision (no process is started here): :class:`ocrlab.pool.Pool` acts on it.

Every difference between the three lives in one :class:`ExecutionPlan`, and
the rest of the pipeline asks it instead of testing the executor's type:

=================  ==============  ==================  ============================
question           in-process      local loky pool     Dask cluster
=================  ==============  ==================  ============================
pages in flight    1               workers x inflight  cluster threads x inflight
                                                       (or workers x inflight when
                                                       ``workers`` was given)
restart on crash   no (nothing     yes: a fresh pool,  no: Dask re-runs the tasks
                   to restart)     suspects alone      of a dead worker itself
hang watchdog      no              yes                 no (cannot kill its workers)
ship page bytes    no              no                  when not on loopback
workers reported   1               workers             cluster threads (or workers)
after the run      free in-process reap orphaned       -
(the pool's        engines         Tesseracts
handle does it)
=================  ==============  ==================  ============================

A local pool never has more workers than the batch has pages (:meth:`ExecutionPlan.fitted`),
and a single page with the default engine runs in-process (its Tesseract is a process anyway).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
from dataclasses import dataclass
from typing import Literal

from . import executor as executor_mod
from .config import OcrConfig
from .scaleout import dask_executor, is_loopback

Kind = Literal["inline", "pool", "cluster"]


@dataclass(frozen=True)
class ExecutionPlan:
    """The executor choice for a run and everything that follows from it (see module doc)."""

    kind: Kind
    #: the worker count reported in the summary and the manifest
    workers: int
    #: bound on submitted-but-unfinished pages
    limit: int
    #: seconds a page may stay submitted before it is presumed hung (None: no watchdog)
    deadline_s: float | None
    #: send each page's file bytes with its task (cluster workers on other hosts)
    ship_pages: bool
    #: the configuration the plan was made from (the executor is built from it)
    cfg: OcrConfig

    @classmethod
    def from_config(cls, cfg: OcrConfig) -> ExecutionPlan:
        """The plan for ``cfg``; a cluster's size is filled in by :meth:`sized`."""
        if cfg.remote:
            ship = cfg.ship_pages if cfg.ship_pages is not None else not is_loopback(cfg.executor)
            return cls("cluster", cfg.effective_workers, cfg.max_inflight, None, ship, cfg)
        if cfg.sequential:
            return cls("inline", 1, 1, None, False, cfg)
        return cls("pool", cfg.effective_workers, cfg.max_inflight, _deadline_s(cfg), False, cfg)

    @property
    def sequential(self) -> bool:
        """Pages run in the main process, one after another."""
        return self.kind == "inline"

    @property
    def restartable(self) -> bool:
        """A crashed executor is replaced by a fresh one (local pools only)."""
        return self.kind == "pool"

    @property
    def pool_worker(self) -> bool:
        """Pages run in loky workers of this run, which live as long as the run."""
        return self.kind == "pool"

    def new_executor(self) -> cf.Executor:
        """A new executor for this plan (the pool's handle warms a local pool's workers)."""
        if self.kind == "cluster":
            return dask_executor(self.cfg.executor)
        if self.kind == "inline":
            return executor_mod.InlineExecutor()
        # Looked up on the module at call time, so the executor lifecycle tests can patch it.
        pool: cf.Executor = executor_mod.ProcessPoolExecutor(max_workers=self.workers)
        return pool

    def fitted(self, pages: int) -> ExecutionPlan:
        """No more pool workers than the batch has pages (``pages`` >= 1; 0 = unknown).

        A worker without a page only costs start-up CPU, taken from the pages that
        are running, and memory. One page with the default engine runs in-process:
        a worker would add an interpreter's start-up (and loky's two resource
        trackers) to a run whose only work is one ``tesseract`` process, which is
        already isolated from the main process and killed at the page timeout.
        """
        if self.kind != "pool" or not 1 <= pages < self.workers:
            return self
        if pages == 1 and self.cfg.engine == "pytesseract":
            return dataclasses.replace(self, kind="inline", workers=1, limit=1, deadline_s=None)
        return dataclasses.replace(self, workers=pages, limit=pages * self.cfg.inflight_per_worker)

    def sized(self, executor: cf.Executor) -> ExecutionPlan:
        """With a cluster and no worker count given, size the run by the cluster's threads."""
        if self.kind != "cluster" or self.cfg.workers_given:
            return self
        capacity = int(getattr(executor, "capacity", self.workers))
        return dataclasses.replace(
            self, workers=capacity, limit=capacity * self.cfg.inflight_per_worker
        )


def _deadline_s(cfg: OcrConfig) -> float:
    """How long a page may stay submitted before it is presumed hung (see BoundedScheduler).

    A page may wait behind ``inflight_per_worker - 1`` others on its worker, each
    bounded by the Tesseract timeout; 10% + 5 s covers opening and rendering.
    """
    return cfg.inflight_per_worker * (cfg.page_timeout * 1.1 + 5.0)
