"""The memory guard: hold back submission while the tree is near the memory budget.

Why: a batch whose pages together need more than the budget (a run of large
scans after thousands of small ones) would otherwise be submitted as fast as
workers free up, and the kernel's OOM killer would choose what dies. The guard
lets the scheduler submit a page only when the projected memory fits:

    tree memory now + (pages in flight + 1) x estimated page cost <= budget - margin

* tree memory: :func:`tree_memory` of the monitor's latest sample: its PSS when
  that sample read it (shared pages counted once); between PSS reads, the last
  PSS read plus what RSS grew since, counted whole. Growth is what a new
  Tesseract or a page's image adds, private memory that PSS counts whole too;
  scaling it by the last PSS / RSS share (as the guard once did) counted a 700 MB
  spike as 280 MB when the tree's idle share was 0.4. When RSS shrinks, PSS is
  scaled by it (a process that exits takes its shared pages' share with it);
  without any PSS read, RSS itself;
* estimated page cost: ``prior`` until the first page is back, then the largest
  cost a page has shown: its Tesseract's peak (``child_maxrss``) or its worker's
  growth during the page (``worker_hwm - worker_rss``);
* pages in flight are counted at full cost although the running ones are
  already in the sample: deliberately conservative, the guard errs on holding.

A page is always admitted when nothing is in flight, so the run cannot stall;
such a page alone may still exceed the budget (then the crash recovery of
:class:`~ocrlab.scheduler.BoundedScheduler` names it). Holding starts a
``backpressure`` trace event with the figures, releasing a ``backpressure_end``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .records import PageResult


def tree_memory(sample: Any, last: tuple[int, int] | None = None) -> int:
    """The tree's memory in a monitor sample: its PSS when it read PSS; else estimated
    from ``last`` = (PSS, RSS) of the latest sample that read both (see the module
    doc); else its RSS."""
    pss = getattr(sample, "pss_total", None)
    if pss:
        return int(pss)
    rss = int(sample.rss_total)
    if last is None or last[1] <= 0:
        return rss
    last_pss, last_rss = last
    if rss >= last_rss:
        return min(rss, last_pss + (rss - last_rss))
    return int(last_pss * rss / last_rss)


class MemoryGuard:
    """Decides whether the scheduler may submit one more page (see the module doc)."""

    def __init__(
        self,
        budget_bytes: float,
        margin_bytes: float,
        prior_page_bytes: float,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        if budget_bytes <= margin_bytes:
            raise ValueError(
                f"memory budget {budget_bytes / 2**20:.0f} MB must exceed the "
                f"guard's margin {margin_bytes / 2**20:.0f} MB; raise "
                "memory_budget_mb"
            )
        self.budget = float(budget_bytes)
        self.margin = float(margin_bytes)
        self.page_cost = float(prior_page_bytes)
        self._learned = False
        self.on_event = on_event or (lambda kind, info: None)
        self._lock = threading.Lock()
        self._last_pss: tuple[int, int] | None = None  # (PSS, RSS) of the last sample with both
        self._memory: int | None = None
        self._held_since: int | None = None
        self.holds = 0

    def observe(self, sample: Any) -> None:
        """The monitor's latest sample (called on its thread)."""
        pss = getattr(sample, "pss_total", None)
        with self._lock:
            self._memory = tree_memory(sample, self._last_pss)
            if pss and sample.rss_total:
                self._last_pss = (int(pss), int(sample.rss_total))

    def learn(self, result: PageResult) -> None:
        """What a finished page cost; the estimate is the largest seen."""
        cost = max(result.child_maxrss, result.worker_hwm - result.worker_rss, 0)
        if not self._learned:
            self.page_cost, self._learned = float(cost), True
        else:
            self.page_cost = max(self.page_cost, float(cost))

    def admit(self, inflight: int) -> bool:
        """True when one more page may be submitted now."""
        with self._lock:
            memory = self._memory
        if inflight == 0:
            self._release()
            return True
        if memory is None:  # no sample yet: one page at a time until the monitor has spoken
            return False
        projected = memory + (inflight + 1) * self.page_cost
        if projected <= self.budget - self.margin:
            self._release()
            return True
        if self._held_since is None:
            self._held_since = time.monotonic_ns()
            self.holds += 1
            self.on_event(
                "backpressure",
                {
                    "tree_mb": round(memory / 2**20, 1),
                    "budget_mb": round(self.budget / 2**20, 1),
                    "margin_mb": round(self.margin / 2**20, 1),
                    "page_cost_mb": round(self.page_cost / 2**20, 1),
                    "inflight": inflight,
                    "projected_mb": round(projected / 2**20, 1),
                },
            )
        return False

    def _release(self) -> None:
        if self._held_since is not None:
            held_s = (time.monotonic_ns() - self._held_since) / 1e9
            self._held_since = None
            with self._lock:
                memory = self._memory
            self.on_event(
                "backpressure_end",
                {
                    "held_s": round(held_s, 3),
                    "tree_mb": None if memory is None else round(memory / 2**20, 1),
                },
            )
