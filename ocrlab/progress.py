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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .config import OcrConfig
from .frontend import frontend

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
    """Stands in for a tqdm bar when nothing is shown: progress off, or the live view
    (which reads the trace) shows it."""

    total = 0

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass


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
def run_progress(total: int, cfg: OcrConfig, trace_path: Path) -> Iterator[Any]:
    """The progress bar of one run (a context manager yielding it) and, in a notebook,
    the live view following ``trace_path``; the view settles when the block ends."""
    where = frontend()
    if live_view_enabled(cfg, where):
        from .lab.widgets import LiveView

        view = LiveView(trace_path, total=total or None).show().start()
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
    with make_bar(total, True, where, desc=desc, leave=not _SWEEP) as bar:
        yield bar


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
