"""The memory guard: hold back submission while the tree is near the memory budget.

Why: a batch whose pages together need more than the budget (a run of large
scans after thousands of small ones) would otherwise be submitted as fast as
workers free up, and the kernel's OOM killer would choose what dies. The guard
lets the scheduler submit a page only when the projected memory fits:

    tree memory now + (pages in flight + 1) x estimated page cost <= budget - margin

* tree memory: :func:`tree_memory` of the monitor's latest sample, PSS where
  the monitor has it (shared pages counted once), RSS otherwise;
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


def tree_memory(sample: Any, pss_share: float | None = None) -> int:
    """The tree's memory in a monitor sample: PSS when this sample measured it; else RSS
    scaled by ``pss_share`` (PSS / RSS of the last sample that measured both), since
    the monitor reads PSS only every few samples and RSS overstates shared pages."""
    pss = getattr(sample, "pss_total", None)
    if pss:
        return int(pss)
    return int(sample.rss_total * (pss_share or 1.0))


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
        self._pss_share: float | None = None  # PSS / RSS at the last sample with both
        self._memory: int | None = None
        self._held_since: int | None = None
        self.holds = 0

    def observe(self, sample: Any) -> None:
        """The monitor's latest sample (called on its thread)."""
        pss = getattr(sample, "pss_total", None)
        with self._lock:
            if pss and sample.rss_total:
                self._pss_share = min(1.0, pss / sample.rss_total)
            self._memory = tree_memory(sample, self._pss_share)

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
