"""ipywidgets for JupyterLab: the live run view and the page viewer.

:class:`LiveView` follows a run's ``trace.json`` (:mod:`ocrlab.follow`) from a
watcher thread, twice a second: pages done / total, pages per second, time
left, tree memory now and peak (PSS beside RSS when the monitor records it),
live Tesseract processes, worker deaths and pool restarts, failures with their
reasons. When the run ends it settles into the run's summary. The same class
serves a blocking ``ocrlab.run`` (the pipeline opens it through
:func:`ocrlab.progress.run_progress`) and a background ``ocrlab.start`` handle.

Why the final refresh happens in :meth:`LiveView.finish`, on the caller's
thread: widget state set from the watcher thread reaches the page whenever the
kernel sends it, but a tool that stores widget state with the notebook
(nbclient, papermill) only sees what was sent before the cell finished.

:class:`PageViewer` picks a run, a document and a page and shows the page
image beside its OCR text, the ground-truth diff, the page's CER and OCR time.
"""

from __future__ import annotations

import html
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from IPython.display import HTML, display

from ..follow import RunState
from ..output.trace_reader import TraceFollower
from . import pageview as pages_mod


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} MB"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


def render_state(state: RunState) -> str:
    """The view's HTML for ``state`` (a function, so it is tested without a kernel)."""
    total = "?" if state.total is None else str(state.total)
    rate = state.pages_per_s
    memory = f"{_mb(state.rss_mb)} now, {_mb(state.rss_peak_mb)} peak (RSS)"
    if state.pss_mb is not None:
        memory += f"; {_mb(state.pss_mb)} now, {_mb(state.pss_peak_mb)} peak (PSS)"
    if state.finished and state.summary.get("peaks", {}).get("rss_total"):
        memory = f"{_mb(state.summary['peaks']['rss_total'] / 2**20)} peak (RSS)" + (
            f", {_mb(state.summary['peaks']['pss_total'] / 2**20)} peak (PSS)"
            if state.summary["peaks"].get("pss_total")
            else ""
        )
    tess = "-" if state.tesseract is None else f"{state.tesseract} (peak {state.tesseract_peak})"
    rows = [
        (
            "pages",
            f'<span class="ocrlab-pages">{state.pages_done} / {total}</span>'
            + (f", {state.pages_failed} failed" if state.pages_failed else ""),
        ),
        ("pages / s", "-" if rate is None else f"{rate:.2f}"),
        (
            "elapsed" if not state.finished else "wall time",
            _duration(state.summary.get("wall_s") if state.finished else state.t_s),
        ),
        ("time left", _duration(state.eta_s) if not state.finished else "-"),
        ("tree memory", memory),
        ("live Tesseracts", tess),
        ("open descriptors (tree)", "-" if state.fds is None else str(state.fds)),
        ("worker deaths / pool restarts", f"{state.worker_deaths} / {state.restarts}"),
    ]
    if state.finished and state.summary:
        s = state.summary
        rows.append(
            (
                "documents",
                f"{s.get('documents', 0)}: {s.get('documents_ok', 0)} ok, "
                f"{s.get('documents_partial', 0)} partial, "
                f"{s.get('documents_failed', 0)} failed",
            )
        )
    colour = {"complete": "#060", "interrupted": "#b60", "failed": "#b00"}.get(state.status, "#036")
    head = f'<b style="color:{colour}" class="ocrlab-status">{html.escape(state.status)}</b>' + (
        f": {html.escape(state.error)}" if state.error else ""
    )
    table = "".join(f"<tr><td style='padding-right:1em'>{k}</td><td>{v}</td></tr>" for k, v in rows)
    fails = ""
    if state.failures:
        items = "".join(
            f"<li>{html.escape(str(f.get('doc_id')))}"
            + (f" p{f['page']}" if f.get("page") else "")
            + f": {html.escape(str(f.get('error_type')))}: "
            f"{html.escape(str(f.get('error'))[:160])}</li>"
            for f in state.failures[:10]
        )
        more = f"<li>... {len(state.failures) - 10} more</li>" if len(state.failures) > 10 else ""
        fails = (
            f"<details><summary>{len(state.failures)} failure(s)</summary>"
            f"<ul>{items}{more}</ul></details>"
        )
    return (
        f'<div data-pages-done="{state.pages_done}" data-pages-total="{total}" '
        f'data-status="{state.status}">{head}<table>{table}</table>{fails}</div>'
    )


class LiveView:
    """A panel following the run whose trace is ``trace_path``.

    ``stale``: the :func:`ocrlab.follow.stat_key` of a trace an earlier run left
    there (not shown). ``alive``: for background runs, a callable that returns
    None while the run's process lives, else an error text when it ended
    without a ``run_end`` (killed, or failed before its trace began).
    """

    def __init__(
        self,
        trace_path: str | os.PathLike[str],
        total: int | None = None,
        stale: tuple[int, int, int] | None = None,
        title: str = "OCR",
        alive: Callable[[], str | None] | None = None,
        interval_s: float = 0.5,
    ):
        self.follower = TraceFollower(trace_path, stale)
        self.state = RunState(total=total)
        self.alive = alive
        self.interval_s = interval_s
        self.bar = widgets.IntProgress(
            value=0, min=0, max=max(1, total or 1), description=title, bar_style="info"
        )
        self.info = widgets.HTML(render_state(self.state))
        self.widget = widgets.VBox([self.bar, self.info])
        self.widget.add_class("ocrlab-live-view")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def refresh(self) -> RunState:
        """Read what the trace gained and redraw (thread-safe)."""
        with self._lock:
            self.state.apply(self.follower.poll())
            if not self.state.finished and self.alive is not None:
                error = self.alive()
                if error is not None:
                    self.state.apply(self.follower.poll())  # what it wrote before it went
                    if not self.state.finished:
                        self.state.status, self.state.error = "failed", error
            s = self.state
            if s.total is not None:
                self.bar.max = max(1, s.total)
            self.bar.value = min(s.pages_done, self.bar.max)
            if s.finished:
                self.bar.bar_style = {"complete": "success", "interrupted": "warning"}.get(
                    s.status, "danger"
                )
            self.info.value = render_state(s)
            return s

    def show(self) -> LiveView:
        display(self.widget)  # type: ignore[no-untyped-call]
        return self

    def start(self) -> LiveView:
        """Follow the trace from a daemon thread until the run ends or :meth:`finish`."""

        def loop() -> None:
            while not self._stop.wait(self.interval_s):
                try:
                    if self.refresh().finished:
                        break
                except Exception as exc:  # a view must never take the run down
                    self.state.error = f"view stopped: {exc}"
                    break

        self._thread = threading.Thread(target=loop, name="ocrlab-live-view", daemon=True)
        self._thread.start()
        return self

    def finish(self) -> RunState:
        """Stop following, read the rest, settle into the summary; returns the final state."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        state = self.refresh()
        self.follower.close()
        return state

    def _ipython_display_(self) -> None:
        display(self.widget)  # type: ignore[no-untyped-call]


class PageViewer:
    """Pick a run under ``root``, a document and a page: image, text, diff, CER, OCR time."""

    def __init__(self, root: str | os.PathLike[str], max_width: int = 600):
        self.max_width = max_width
        runs = pages_mod.find_runs(root) or [Path(root)]
        self.run = widgets.Dropdown(
            options=[(str(r), r) for r in runs], value=runs[0], description="run"
        )
        self.doc = widgets.Dropdown(description="document")
        self.page = widgets.BoundedIntText(value=1, min=1, max=1, description="page")
        self.caption = widgets.HTML()
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="48%"))
        self.image.add_class("ocrlab-page-image")
        self.text = widgets.HTML(layout=widgets.Layout(width="50%"))
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.run, self.doc, self.page]),
                self.caption,
                widgets.HBox([self.image, self.text]),
            ]
        )
        self.widget.add_class("ocrlab-page-viewer")
        self._docs: dict[str, dict[str, Any]] = {}
        self._times: dict[tuple[str, int], tuple[float, float]] = {}
        self.run.observe(lambda _: self._load_run(), names="value")
        self.doc.observe(lambda _: self._load_doc(), names="value")
        self.page.observe(lambda _: self._show(), names="value")
        self._load_run()

    def _load_run(self) -> None:
        out = self.run.value
        try:
            self._docs = {d["doc_id"]: d for d in pages_mod.documents(out)}
        except (OSError, ValueError) as exc:  # not (yet) a run's output folder
            self._docs = {}
            self.caption.value = f"<i>no run in {html.escape(str(out))}: {exc}</i>"
        self._times = pages_mod.page_times(out)
        self.doc.options = list(self._docs)
        if self._docs and self.doc.value not in self._docs:  # ipywidgets 8 may leave None
            self.doc.value = next(iter(self._docs))
        self._load_doc()

    def _load_doc(self) -> None:
        doc = self._docs.get(self.doc.value or "")
        self.page.max = int(doc["pages"]) if doc else 1
        self.page.value = 1
        self._show()

    def _show(self) -> None:
        doc = self._docs.get(self.doc.value or "")
        if doc is None:
            self.text.value = ""
            if not self.caption.value.startswith("<i>no run"):
                self.caption.value = "<i>no document</i>"
            return
        info = pages_mod.page_info(self.run.value, doc, int(self.page.value), self._times)
        self.caption.value = pages_mod.caption(info)
        try:
            self.image.value = pages_mod.page_png_with_words(info, self.max_width)
        except Exception as exc:
            self.caption.value += f" &middot; <i>no image: {html.escape(str(exc))}</i>"
        self.text.value = pages_mod.text_html(info) + pages_mod.low_words(info)

    def _ipython_display_(self) -> None:
        display(self.widget)  # type: ignore[no-untyped-call]


def show_pages(
    out_dir: str | os.PathLike[str], interactive: bool | None = None, worst: int = 3
) -> None:
    """The page viewer in JupyterLab; in reports (no kernel to talk to) the worst pages by
    CER as static HTML. ``interactive=None`` decides by :func:`ocrlab.frontend.frontend`."""
    from ..frontend import frontend

    if interactive is None:
        interactive = frontend() == "notebook"
    if interactive:
        display(PageViewer(out_dir))  # type: ignore[no-untyped-call]
    else:
        display(HTML(pages_mod.worst_pages_html(out_dir, worst)))  # type: ignore[no-untyped-call]
