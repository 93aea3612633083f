"""How long a run has left: the estimated work still to do over the rate work is done lately.

Why work and not pages: pages go most expensive first (:mod:`ocrlab.ordering`),
so a run's first pages are its slowest. Counting pages, the first quarter of
the pages is half the time, and a time left of "pages left x seconds per page
so far" is two to four times too long until the last seconds, when the small
pages rush through and the bar jumps to the end. The run knows each page's cost
estimate (megapixels, from the headers, before any OCR) and records it in the
trace beside the page's measured span; each ``pages_found`` event carries the
pages and the estimated work found so far, in all and by size class (powers of
two of megapixels, :func:`size_class`). The bar and the time left count in that.

How the time left is made, from finished pages only (a page's span is recorded
when it ends):

* **speed** of each size class: worker-seconds per estimated megapixel of the
  last :data:`WINDOW` units of work of that class (a page, or a bundle of small
  pages measured as one), their seconds over their estimates, the fastest and
  the slowest unit left out once there are four (one large, nearly blank page the
  estimate gets badly wrong must not carry the others). By class, because the
  estimate is not proportional to the time: with Tesseract a small page costs
  more per megapixel than a large one. A class with nothing finished yet takes
  the speed of the nearest class that has (with most expensive first, the next
  larger one: the best guess there is). The latest few units against their
  class's speed tell whether the machine is slowing down (its load rising): the
  whole estimate is scaled by that (between half and twice).
* **work left** of each class x its speed = worker-seconds left, less what the
  busy workers have spent on the pages they run (since each one's last page
  ended). In cost order the pages running are the largest left: a worker's credit
  is at most what its page is expected to take, so a page slower than its estimate
  is not counted as if it were the whole rest. Shared among the workers still busy
  (at most one per page left).
* **how sure**: the spread of the recent units' speeds around their class's
  (quartiles) gives a range, at least +-10%; until a few units have finished
  (:meth:`WorkClock.settled`) the figure is only "about"; while discovery still
  finds pages, it is a lower bound.

A pure class of numbers (no clock of its own, no I/O): the live view feeds it
the trace (:mod:`ocrlab.follow`), the terminal and notebook bars the results as
they arrive (:mod:`ocrlab.progress`), and tests feed it whatever they like.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

#: Units of work per size class the speed is taken over.
WINDOW = 12

#: The latest units whose speed against their class's tells a machine slowing down.
DRIFT_UNITS = 5

#: The range is never narrower than this, relatively (the estimate is a model of pixels),
#: nor wider than MAX_SPREAD (past that, a range says no more than "about").
MIN_SPREAD = 0.10
MAX_SPREAD = 0.50

#: The class of pages without an estimate (their header could not be read).
UNKNOWN = -99


def size_class(cost: float | None) -> int:
    """A page's size class: floor(log2(megapixels)), within -8 .. 10; UNKNOWN without one."""
    if not cost or cost <= 0:
        return UNKNOWN
    return max(-8, min(10, math.floor(math.log2(cost))))


@dataclass
class SizeCount:
    """Pages and their estimated work, by size class (what ``pages_found`` carries)."""

    classes: dict[int, list[float]] = field(default_factory=dict)  # class -> [pages, work]

    def add(self, cost: float | None) -> None:
        entry = self.classes.setdefault(size_class(cost), [0, 0.0])
        entry[0] += 1
        entry[1] += cost or 0.0

    @property
    def pages(self) -> int:
        return int(sum(n for n, _ in self.classes.values()))

    @property
    def work(self) -> float:
        return sum(w for _, w in self.classes.values())

    def as_json(self) -> dict[str, list[float]]:
        return {str(c): [int(n), round(w, 4)] for c, (n, w) in sorted(self.classes.items())}

    def event(self, final: bool = False) -> dict[str, object]:
        """The ``pages_found`` event's arguments: pages, estimated work (MP), by class."""
        found = {"pages": self.pages, "work": round(self.work, 4), "sizes": self.as_json()}
        return {**found, "final": True} if final else found

    @classmethod
    def from_json(cls, data: Mapping[str, Iterable[float]]) -> SizeCount:
        return cls({int(c): [float(x) for x in entry] for c, entry in data.items()})


@dataclass(frozen=True)
class Estimate:
    """A time left, in seconds, with its range."""

    seconds: float
    low: float
    high: float
    settled: bool  # enough finished work to give a range; else "about"
    final: bool  # every page is found; else more may come (the figure is a lower bound)
    overdue: bool = False  # a page running has taken longer than its estimate says

    def text(self) -> str:
        """For people: ``42 s (35 s - 50 s)``, ``about 2:10``, ``at least 40 s``."""
        best = duration(self.seconds)
        if self.overdue and self.seconds < 1:
            return "any moment: a page takes longer than its size says"
        if not self.final:
            return f"at least {best} (still finding pages)"
        if not self.settled:
            return f"about {best}"
        low, high = duration(self.low), duration(self.high)
        return best if low == high else f"{best} ({low} - {high})"


def duration(seconds: float | None) -> str:
    """``42 s``, ``3:05``, ``1:02:03``; ``-`` for None."""
    if seconds is None:
        return "-"
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _trimmed_speed(units: Iterable[tuple[float, float]]) -> float | None:
    """Seconds over cost of ``units`` without the fastest and slowest once there are four."""
    ranked = sorted(units, key=lambda u: u[1] / u[0])
    if len(ranked) >= 4:
        ranked = ranked[1:-1]
    cost = sum(c for c, _ in ranked)
    return sum(s for _, s in ranked) / cost if cost > 0 else None


class WorkClock:
    """Progress of a run in estimated work, and its time left (see the module doc).

    Feed it :meth:`found` as discovery finds pages and :meth:`page_done` for every
    finished page; ask :meth:`fraction` and :meth:`time_left`. ``largest_first``:
    pages are submitted most expensive first (``order='cost'`` on a pool), so the
    pages running are the largest left. Costs are the pages' estimates; a run (or
    an old trace) without them counts pages instead.
    """

    def __init__(self, workers: int | None = None, largest_first: bool = True) -> None:
        self.workers = workers
        self.largest_first = largest_first
        self.pages_total: int | None = None
        self.work_total: float | None = None
        self.final = False
        self.pages_done = 0
        self.work_done = 0.0
        self.elapsed_s = 0.0  # end of the latest finished page, seconds from the run start
        self._found: SizeCount | None = None
        self._done = SizeCount()
        self._first_start: float | None = None
        self._last_end: dict[object, float] = {}  # worker -> end of its latest page
        self._units: dict[int, deque[tuple[float, float]]] = {}  # class -> (cost, seconds)
        self._recent: deque[tuple[int, float, float]] = deque(maxlen=WINDOW)  # all classes
        self._pages: deque[tuple[float, float]] = deque(maxlen=WINDOW)  # (1, seconds)
        self._open: object = None  # the bundle whose pages are arriving

    # -- what happened ------------------------------------------------------------------------
    def found(
        self,
        pages: int,
        work: float | None = None,
        final: bool = False,
        sizes: SizeCount | None = None,
    ) -> None:
        """Discovery has found ``pages`` pages to OCR, estimated at ``work`` in all."""
        self.pages_total = pages
        self.work_total = work if work else None
        self.final = final
        self._found = sizes

    def page_done(
        self,
        cost: float | None,
        start_s: float,
        dur_s: float,
        worker: object,
        bundle: object = None,
    ) -> None:
        """A page ended; ``bundle`` is the id its bundle's pages share (measured as one)."""
        self.pages_done += 1
        self.work_done += cost or 0.0
        self._done.add(cost)
        end = start_s + dur_s
        self.elapsed_s = max(self.elapsed_s, end)
        self._first_start = (
            start_s if self._first_start is None else min(self._first_start, start_s)
        )
        self._last_end[worker] = max(end, self._last_end.get(worker, end))
        klass = size_class(cost)
        if bundle is not None and bundle == self._open:  # the bundle's next page: one unit
            c, t = self._pages[-1]
            self._pages[-1] = (c, t + dur_s)
            if klass != UNKNOWN and self._recent:
                first, c, t = self._recent[-1]
                self._recent[-1] = (first, c + (cost or 0.0), t + dur_s)
                self._units[first][-1] = (c + (cost or 0.0), t + dur_s)
            return
        self._open = bundle
        self._pages.append((1.0, dur_s))
        if klass != UNKNOWN:
            self._units.setdefault(klass, deque(maxlen=WINDOW)).append((cost or 0.0, dur_s))
            self._recent.append((klass, cost or 0.0, dur_s))

    # -- what it means ------------------------------------------------------------------------
    @property
    def by_work(self) -> bool:
        """Whether progress is counted in estimated work (else in pages)."""
        return bool(self.work_total)

    def fraction(self) -> float | None:
        """The share of the work found that is done (0..1), or None before anything is found."""
        if not self.pages_total:
            return None
        if self.by_work:
            total, done = float(self.work_total or 0.0), self.work_done
        else:
            total, done = float(self.pages_total), float(self.pages_done)
        return 1.0 if total <= 0 else min(1.0, done / total)

    def _speed(self, klass: int | None) -> float | None:
        """Worker-seconds per unit of work of ``klass`` (or of the nearest class measured);
        ``None``: of any class (no sizes known); without estimates, seconds per page."""
        if not self.by_work:
            return _trimmed_speed(self._pages)
        if klass is None:
            return _trimmed_speed((c, t) for _, c, t in self._recent)
        known = [k for k, units in self._units.items() if units]
        if not known:
            return None
        nearest = min(known, key=lambda k: (abs(k - klass), -k))
        return _trimmed_speed(self._units[nearest])

    def _left(self) -> list[tuple[int, float]]:
        """(pages, worker-seconds expected) per size class still to do, largest first."""
        if not self.by_work:
            pages_left = max(0, (self.pages_total or 0) - self.pages_done)
            todo: list[tuple[int | None, float, float]] = [(None, pages_left, pages_left)]
        elif self._found is None:  # sizes unknown: one class of everything
            pages_left = max(0, (self.pages_total or 0) - self.pages_done)
            todo = [(None, pages_left, max(0.0, (self.work_total or 0.0) - self.work_done))]
        else:
            done = self._done.classes
            todo = [
                (klass, pages - done.get(klass, [0, 0.0])[0], work - done.get(klass, [0, 0.0])[1])
                for klass, (pages, work) in sorted(self._found.classes.items(), reverse=True)
            ]
        rows = []
        for klass, pages, work in todo:
            n = int(pages)
            if n <= 0:
                continue
            if klass == UNKNOWN:  # no estimate (an unreadable header): it fails at once
                rows.append((n, 0.0))
                continue
            k = self._speed(klass)
            if k is not None:
                rows.append((n, k * max(0.0, work)))
        return rows

    def settled(self) -> bool:
        """Enough finished units for a range: more than one per worker, at least three."""
        return len(self._recent if self.by_work else self._pages) >= max(3, (self.workers or 1) + 1)

    def time_left(self, now_s: float | None = None) -> Estimate | None:
        """Seconds left from ``now_s`` (seconds from the run start; default: the latest
        finished page's end), or None before the first page has finished."""
        if self.pages_total is None or not self._pages:
            return None
        now = max(self.elapsed_s, now_s if now_s is not None else 0.0)
        pages_left = max(0, self.pages_total - self.pages_done)
        if pages_left == 0:
            return Estimate(0.0, 0.0, 0.0, True, self.final)
        drift = self._drift()
        rows = [(n, seconds * drift) for n, seconds in self._left()]
        if not rows:
            return None
        busy = max(1, min(self.workers or len(self._last_end) or 1, pages_left))
        work_s = sum(seconds for _, seconds in rows)
        running, overdue = self._running(now, busy, rows)
        best = max(0.0, work_s - running) / busy
        spread = self._spread()
        low, high = best * (1 - spread), best * (1 + spread)
        return Estimate(best, low, high, self.settled(), self.final, overdue)

    def _running(self, now: float, busy: int, rows: list[tuple[int, float]]) -> tuple[float, bool]:
        """Worker-seconds already spent on the pages in flight: since each busy worker's last
        page ended (a worker yet to finish one: since the first page started). When fewer
        pages are left than workers, the busy ones are those idle longest by this measure:
        the last pages went to the workers that finished before them, the others found
        nothing left. In cost order each is credited at most what the page it runs is
        expected to take (the ``busy`` largest pages left, the longest running worker with
        the largest page). Also: whether a page has run longer than that."""
        since = [now - end for end in self._last_end.values()]
        unseen = max(0, (self.workers or 0) - len(since))
        if unseen and self._first_start is not None:
            since += [now - self._first_start] * unseen
        running = sorted((max(0.0, s) for s in since), reverse=True)[:busy]
        if not self.largest_first or self._found is None:  # which pages run is unknown
            return sum(running), False
        expected = [seconds / n for n, seconds in rows for _ in range(min(n, busy))][:busy]
        expected += [0.0] * (busy - len(expected))
        pairs = list(
            zip(sorted(running, reverse=True), sorted(expected, reverse=True), strict=True)
        )
        overdue = any(spent > page > 0 for spent, page in pairs)
        return sum(min(spent, page) for spent, page in pairs), overdue

    def _drift(self) -> float:
        """How much slower (> 1) or faster the last :data:`DRIFT_UNITS` units ran than their
        classes' speeds say: the median ratio, within 0.5 .. 2. A machine whose load rises
        during the run makes every page slower than the pages before it."""
        recent = list(self._recent)[-DRIFT_UNITS:] if self.by_work else []
        ratios = [t / c / k for klass, c, t in recent if (k := self._speed(klass)) and c > 0]
        if len(ratios) < 2:
            return 1.0
        return min(2.0, max(0.5, statistics.median(ratios)))

    def _spread(self) -> float:
        """Half the interquartile range of the recent units' speeds relative to their class's."""
        if self.by_work:
            units = [(self._speed(klass), c, t) for klass, c, t in self._recent]
        else:
            units = [(self._speed(None), c, t) for c, t in self._pages]
        ratios = sorted(t / c / k for k, c, t in units if k and c > 0)
        if len(ratios) < 3:
            return MAX_SPREAD
        n = len(ratios)
        spread = (ratios[(3 * n) // 4] - ratios[n // 4]) / (2 * statistics.median(ratios))
        return min(MAX_SPREAD, max(MIN_SPREAD, spread))
