"""Where a run shows its progress: a terminal bar, a notebook bar, a live view, or nothing.

Why a module of its own: the pipeline should not know about terminals,
Jupyter kernels, papermill or widgets. It asks :func:`run_progress` for a bar
(anything with ``update`` and ``set_postfix``) and this module decides:

============================  ============================  ==========================
where the run is              ``progress`` auto             ``live_view`` auto
============================  ============================  ==========================
``CI`` set in the environment nothing                       nothing
a terminal (stderr is a tty)  terminal tqdm bar             -- (no kernel)
JupyterLab / Notebook kernel  notebook bar (in the view)    live view (ipywidgets)
kernel run by papermill       nothing                       nothing
anything else (pipes, logs)   nothing                       nothing
============================  ============================  ==========================

Explicit ``progress=True/False`` and ``live_view=True/False`` (keywords or
``OCR_PROGRESS`` / ``OCR_LIVE_VIEW``) win over the detection. ``progress=False``
silences the bar *and* the auto live view: a caller asking for quiet gets quiet.

How a headless kernel is told from a person at a browser: papermill and
nbclient send every cell with ``allow_stdin=False`` (nobody can answer
``input()``), JupyterLab with ``allow_stdin=True``; ipykernel keeps the flag of
the cell being run. This is the one signal both papermill and a hand-made
nbclient run give without cooperation from the caller.

The live view follows the run's ``trace.json`` (see :mod:`ocrlab.follow`), so it
needs nothing from the pipeline but the path; it lives in
:mod:`ocrlab.lab.widgets` and is imported only when it is shown.
"""

from __future__ import annotations

import contextlib
import importlib.util
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .config import OcrConfig
from .frontend import frontend
from .records import PageResult
from .timeleft import SizeCount, WorkClock, duration

#: Labels of the sweeps (``ocrlab.bench``) the current run is part of, outermost first.
_SWEEP: list[str] = []


def progress_enabled(cfg: OcrConfig, where: str | None = None) -> bool:
    """Whether a progress bar is shown (explicit setting, else by :func:`frontend`)."""
    if cfg.progress is not None:
        return cfg.progress
    return (where or frontend()) in {"terminal", "notebook"}


def live_view_enabled(cfg: OcrConfig, where: str | None = None) -> bool:
    """Whether the live run view is shown: it needs a kernel to display widgets in."""
    where = where or frontend()
    if where not in {"notebook", "headless"} or _SWEEP:
        return False  # no widgets outside a kernel; a sweep shows its own progress
    if cfg.live_view is not None:
        return cfg.live_view
    # auto: a person at JupyterLab, who did not ask for quiet, with the widgets installed
    return (
        where == "notebook"
        and cfg.progress is not False
        and importlib.util.find_spec("ipywidgets") is not None
    )


class _QuietBar:
    """Stands in for the run's bar when nothing is shown: progress off, or the live view
    (which reads the trace) shows it."""

    def found(self, sizes: SizeCount, final: bool) -> None:
        pass

    def page_done(self, result: PageResult, cost: float | None, t0_ns: int) -> None:
        pass


class WorkBar:
    """The run's tqdm bar, counting estimated work (:mod:`ocrlab.timeleft`), not pages.

    tqdm's own figures would count pages: its rate is a moving average over the
    last updates (a bundle of small pages arriving at once read ``8.46 page/s`` at
    the end of a run that averaged 1.68) and its time left is pages left over
    that rate. So the bar runs from 0 to 1000 (per mille of the estimated work)
    and the text right of it is ours: pages done, time left with its range, the
    pages per second so far; when the run ends, the run's average rate.
    """

    SCALE = 1000

    def __init__(self, bar: Any, workers: int | None, t0_ns: int, largest_first: bool) -> None:
        self.bar = bar
        self.clock = WorkClock(workers, largest_first)
        self.t0_ns = t0_ns
        self.failed = 0
        self._shown = 0
        self._said = 0.0  # when the text was last made (s): at most four times a second
        self._text("starting")

    def _text(self, text: str) -> None:
        escaped = text.replace("{", "{{").replace("}", "}}")
        self.bar.bar_format = "{desc}: {percentage:3.0f}%|{bar}| " + escaped

    def _elapsed(self) -> float:
        return (time.monotonic_ns() - self.t0_ns) / 1e9

    def _pages(self) -> str:
        total = "?" if self.clock.pages_total is None else str(self.clock.pages_total)
        failed = f", {self.failed} failed" if self.failed else ""
        return f"{self.clock.pages_done}/{total} pages{failed}"

    def found(self, sizes: SizeCount, final: bool) -> None:
        """Discovery found ``sizes`` so far (pages and estimated work by size class)."""
        self.clock.found(sizes.pages, sizes.work, final, sizes)

    def page_done(self, result: PageResult, cost: float | None, t0_ns: int) -> None:
        self.failed += not result.ok
        self.clock.page_done(
            cost,
            (result.start_ns - t0_ns) / 1e9,
            (result.end_ns - result.start_ns) / 1e9,
            result.pid,
            result.extra.get("bundle"),
        )
        now = self._elapsed()
        if now - self._said >= 0.25:  # a million echo pages must not pay for it a million times
            self._said = now
            left = self.clock.time_left(now)
            rate = self.clock.pages_done / now if now > 0 else 0.0
            when = "" if left is None else f", {left.text()} left"
            self._text(f"{self._pages()} [{duration(now)}{when}, {rate:.2f} pages/s]")
        target = round((self.clock.fraction() or 0.0) * self.SCALE)
        if target > self._shown:
            self.bar.update(target - self._shown)
            self._shown = target
        else:
            self.bar.refresh()

    def close(self, wall_s: float | None = None) -> None:
        """The final line: the run's average rate over its wall time."""
        wall = wall_s if wall_s is not None else self._elapsed()
        rate = self.clock.pages_done / wall if wall > 0 else 0.0
        self._text(f"{self._pages()} in {duration(wall)}, {rate:.2f} pages/s on average")
        if self.clock.pages_total is not None and self.clock.pages_done >= self.clock.pages_total:
            self.bar.update(self.SCALE - self._shown)
            self._shown = self.SCALE
        self.bar.refresh()


def make_bar(
    total: int, enabled: bool, where: str, desc: str = "OCR", leave: bool = True, unit: str = "page"
) -> Any:
    """A tqdm bar for ``where``: the notebook widget in a kernel, the terminal bar elsewhere."""
    if where in {"notebook", "headless"}:
        # tqdm.auto: the widget bar when ipywidgets is there, the text bar otherwise
        from tqdm.auto import tqdm as bar_class
    else:
        from tqdm.std import tqdm as bar_class
    return bar_class(
        total=total, unit=unit, desc=desc, disable=not enabled, leave=leave, dynamic_ncols=True
    )


@contextlib.contextmanager
def run_progress(
    cfg: OcrConfig, trace_path: Path, t0_ns: int, workers: int | None = None
) -> Iterator[Any]:
    """The progress bar of one run (a context manager yielding it) and, in a notebook,
    the live view following ``trace_path``; the view settles when the block ends.
    The bar takes ``found`` (pages and estimated work discovered) and ``page_done``."""
    where = frontend()
    if live_view_enabled(cfg, where):
        from .lab.widgets import LiveView

        view = LiveView(trace_path).show().start()
        try:
            yield _QuietBar()
        finally:
            view.finish()  # in this (the cell's) thread: the final state reaches the page
        return
    if not progress_enabled(cfg, where):
        # No bar shown: no tqdm either (importing it costs 20-30 ms before the first page).
        yield _QuietBar()
        return
    desc = f"{_SWEEP[-1]}: OCR" if _SWEEP else "OCR"
    with make_bar(WorkBar.SCALE, True, where, desc=desc, leave=not _SWEEP) as bar:
        work = WorkBar(bar, workers, t0_ns, cfg.order == "cost" and not cfg.sequential)
        try:
            yield work
        finally:
            work.close()


@contextlib.contextmanager
def sweep_progress(total_runs: int, enabled: bool | None = None) -> Iterator[Any]:
    """For a sweep of runs (``ocrlab.bench``): an outer bar over the runs; call the yielded
    ``step(label)`` before each run, whose own bar then shows beneath it."""
    where = frontend()
    shown = enabled if enabled is not None else where in {"terminal", "notebook"}
    with make_bar(total_runs, shown, where, desc="sweep", unit="run") as outer:
        started = 0

        def step(label: str) -> None:
            nonlocal started
            if started:
                outer.update(1)
            started += 1
            text = f"run {started}/{total_runs}: {label}"
            outer.set_description(text, refresh=True)
            _SWEEP[-1] = text

        _SWEEP.append("sweep")
        try:
            yield step
            if started:
                outer.update(1)
        finally:
            _SWEEP.pop()
