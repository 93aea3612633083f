"""ipywidgets for JupyterLab: the live run view and the page viewer.

:class:`LiveView` follows a run's ``trace.json`` (:mod:`ocrlab.follow`) from a
watcher thread, twice a second: pages done / total, the share of the estimated
work done (what the bar shows), pages per second, time left (the estimated work
left over the recent rate of work done, with its range: :mod:`ocrlab.timeleft`),
tree memory now and peak (PSS beside RSS when the monitor records it), live
Tesseract processes, worker deaths and pool restarts, failures with their
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
from typing import Any

import ipywidgets as widgets
from IPython.display import display

from ..follow import RunState
from ..output.names import printable
from ..output.trace_reader import TraceFollower
from ..records import Failure
from ..timeleft import duration


def _set(widget: Any, name: str, value: Any) -> None:
    """Set a widget's trait only when it changes: each change is a message to the page."""
    if getattr(widget, name) != value:
        setattr(widget, name, value)


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} MB"


def _work(state: RunState) -> str:
    """What the bar counts: the share of the estimated work done, and what it is based on."""
    clock, fraction = state.clock, state.fraction
    if fraction is None:
        return "-"
    if not clock.by_work:
        return f"{fraction:.0%} of the pages (no cost estimates)"
    total = f"{clock.work_total:,.0f} MP" if clock.work_total else "?"
    return f"{fraction:.0%} of the estimated work ({total} of page area)"


def _time_left(state: RunState) -> tuple[str, str]:
    """(text, seconds for the page's data attribute) of the time left."""
    if state.finished:
        return "-", ""
    left = state.time_left()
    if left is None:
        return "after the first pages", ""
    return html.escape(left.text()), f"{left.seconds:.1f}"


def _host_rows(state: RunState) -> list[tuple[str, str]]:
    """A Dask run's hosts (each its workers' trees summed) and the cluster's same-moment sum;
    once the run is over, the peaks from the summary."""
    peaks = state.summary.get("peaks", {}) if state.finished else {}
    hosts = peaks.get("hosts")
    rows = []
    for name, host in sorted(state.hosts.items()):
        if hosts and name in hosts:
            peak = hosts[name]
            text = (
                f"{_mb(peak['rss_peak'] / 2**20)} peak (RSS), Tesseracts peak "
                f"{peak['tesseract_peak']}, sampler {peak.get('sampler_cpu_pct') or 0:.2f}% CPU"
            )
        else:
            text = (
                f"{_mb(host.rss_mb)} now, {_mb(host.rss_peak_mb)} peak (RSS); Tesseracts "
                f"{'-' if host.tesseract is None else host.tesseract} (peak {host.tesseract_peak})"
            )
        lost = f"; {host.workers_lost} worker(s) lost" if host.workers_lost else ""
        rows.append((f"host {html.escape(name)}", text + lost))
    if state.hosts:
        cluster = peaks.get("cluster")
        peak = cluster["rss_peak"] / 2**20 if cluster else state.cluster_rss_peak_mb
        now = "" if cluster else f"{_mb(state.cluster_rss_mb)} now, "
        rows.append(("cluster (hosts summed at one moment)", f"{now}{_mb(peak)} peak (RSS)"))
    return rows


def _memory(state: RunState) -> str:
    """Tree memory in words, each group of figures from one moment, and said so.

    "Now" is the latest sample: its RSS, and its PSS only when that same sample
    read it (else the latest PSS read, with how much earlier). The peak is the
    sample with the largest RSS, with that sample's own PSS.
    """
    peaks = state.summary.get("peaks", {}) if state.finished else {}
    if peaks.get("rss_total"):
        text = f"peak {_mb(peaks['rss_total'] / 2**20)} RSS"
        if peaks.get("pss_at_peak"):
            return text + f", {_mb(peaks['pss_at_peak'] / 2**20)} PSS at that moment"
        if peaks.get("pss_total"):  # a run from before the peak carried its own PSS
            return text + f"; largest PSS read {_mb(peaks['pss_total'] / 2**20)}, another moment"
        return text
    if state.pss_mb is not None:
        now = f"{_mb(state.rss_mb)} RSS, {_mb(state.pss_mb)} PSS now"
    else:
        now = f"{_mb(state.rss_mb)} RSS now"
        if state.pss_read_mb is not None and state.memory_at_s is not None:
            ago = state.memory_at_s - (state.pss_read_at_s or 0.0)
            now += f" (PSS {_mb(state.pss_read_mb)} {ago:.1f} s earlier)"
    peak = f"peak {_mb(state.rss_peak_mb)} RSS"
    if state.pss_at_peak_mb is not None:
        peak += f", {_mb(state.pss_at_peak_mb)} PSS at that moment"
    return f"{now}; {peak}"


def render_state(state: RunState) -> str:
    """The view's figures as HTML for ``state`` (a function, so it is tested without a
    kernel); the failures are :func:`render_failures`, in a widget of their own."""
    total = "?" if state.total is None else str(state.total)
    rate = state.pages_per_s
    memory = _memory(state)
    tess = "-" if state.tesseract is None else f"{state.tesseract} (peak {state.tesseract_peak})"
    left, left_s = _time_left(state)
    rows = [
        (
            "pages",
            f'<span class="ocrlab-pages">{state.pages_done} / {total}</span>'
            + (f", {state.pages_failed} failed" if state.pages_failed else ""),
        ),
        ("work done", _work(state)),
        (
            "pages / s" + (" (average)" if state.finished else ""),
            "-" if rate is None else f"{rate:.2f}",
        ),
        (
            "elapsed" if not state.finished else "wall time",
            duration(state.summary.get("wall_s") if state.finished else state.now_s()),
        ),
        (
            "time left",
            f'<span class="ocrlab-time-left">{left}</span>'
            + (
                " <span style='color:#666'>(estimated work left / recent rate)</span>"
                if left_s
                else ""
            ),
        ),
        ("tree memory", memory),
        ("live Tesseracts", tess),
        ("open descriptors (tree)", "-" if state.fds is None else str(state.fds)),
        ("worker deaths / pool restarts", f"{state.worker_deaths} / {state.restarts}"),
        *_host_rows(state),
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
    fraction = "" if state.fraction is None else f"{state.fraction:.4f}"
    return (
        f'<div data-pages-done="{state.pages_done}" data-pages-total="{total}" '
        f'data-status="{state.status}" data-time-left="{left_s}" data-work-done="{fraction}">'
        f"{head}<table>{table}</table></div>"
    )


def render_failures(failures: list[Failure], limit: int = 10) -> str:
    """The failures as an HTML list (the first ``limit``, then how many more)."""
    items = "".join(
        f"<li>{html.escape(printable(f.doc_id))}"
        + (f" p{f.page}" if f.page else "")
        + f": {html.escape(str(f.error_type))}: "
        f"{html.escape(printable(str(f.error))[:160])}</li>"
        for f in failures[:limit]
    )
    more = f"<li>... {len(failures) - limit} more</li>" if len(failures) > limit else ""
    return f'<ul class="ocrlab-failures">{items}{more}</ul>'


class LiveView:
    """A panel following the run whose trace is ``trace_path``.

    ``stale``: the :func:`ocrlab.follow.stat_key` of a trace an earlier run left
    there (not shown). ``alive``: for background runs, a callable that returns
    None while the run's process lives, else an error text when it ended
    without a ``run_end`` (killed, or failed before its trace began).

    The widgets are made once and updated in place, each only when what it shows
    changed: a person may be reading the failures (an accordion they opened stays
    open) or selecting text while the run goes on.
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
        self.bar = widgets.FloatProgress(
            value=0.0,
            min=0.0,
            max=1.0,
            description=title,
            bar_style="info",
            style={"description_width": "initial"},  # the whole title, not "OCR (bac..."
            layout=widgets.Layout(width="32em"),
        )
        self.info = widgets.HTML(render_state(self.state))
        self.failure_list = widgets.HTML()
        self.failures = widgets.Accordion(
            children=[self.failure_list], layout=widgets.Layout(display="none", width="48em")
        )
        self.failures.add_class("ocrlab-failures-box")
        self.widget = widgets.VBox([self.bar, self.info, self.failures])
        self.widget.add_class("ocrlab-live-view")
        self._shown_failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def refresh(self) -> RunState:
        """Read what the trace gained and update the widgets (thread-safe)."""
        with self._lock:
            self.state.apply(self.follower.poll())
            if not self.state.finished and self.alive is not None:
                error = self.alive()
                if error is not None:
                    self.state.apply(self.follower.poll())  # what it wrote before it went
                    if not self.state.finished:
                        self.state.status, self.state.error = "failed", error
            s = self.state
            _set(self.bar, "value", min(1.0, s.fraction or 0.0))
            if s.finished:
                style = {"complete": "success", "interrupted": "warning"}.get(s.status, "danger")
                _set(self.bar, "bar_style", style)
            _set(self.info, "value", render_state(s))
            if len(s.failures) != self._shown_failures:
                self._shown_failures = len(s.failures)
                self.failure_list.value = render_failures(s.failures)
                self.failures.set_title(0, f"{len(s.failures)} failure(s)")
                self.failures.layout.display = "flex"
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


# The run comparison and the page viewer live in their own modules; widgets of the lab too.
from .comparison import RunComparison, show_comparison  # noqa: E402
from .viewer import PageViewer, show_pages  # noqa: E402

__all__ = [
    "LiveView",
    "PageViewer",
    "RunComparison",
    "render_state",
    "show_comparison",
    "show_pages",
]
