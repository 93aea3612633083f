"""Runs side by side: what did two workers buy over one, and did the output change?

Two or more output folders of the same inputs (a worker sweep's runs, a
sequential and a parallel run, two settings): their throughput against a
baseline run, the process tree's memory over time (RSS and PSS, from the
monitor's counters in each ``trace.json``), each run's pages per worker on a
shared time axis, and page by page whether the text differs from the
baseline's and how the page's character error rate changed (where there is
ground truth beside the inputs).

The widget (:class:`RunComparison`) picks the runs and the baseline; without
a kernel (HTML reports) :func:`show_comparison` shows the same as static HTML
and figures. The runs are read with the package's trace reader
(:func:`ocrlab.output.trace_reader.iter_trace`) and manifest reader, like every other view.

The page comparison is the command line's (``ocrlab diff``,
:func:`ocrlab.lab.rundiff.compare_runs`): one definition of "the output changed".
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..output import trace_schema as ts
from ..output.trace_reader import iter_trace
from ..timeleft import duration
from .rundiff import compare_runs

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class PageChange:
    """One page of run ``b`` against the same page of run ``a``."""

    doc_id: str
    page: int
    same: bool  # the texts are identical (a page missing from either run is not)
    cer_a: float | None  # against ground truth; None without ground truth or text
    cer_b: float | None

    @property
    def cer_change(self) -> float | None:
        return None if self.cer_a is None or self.cer_b is None else self.cer_b - self.cer_a


def page_changes(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> list[PageChange]:
    """Page by page, in (document, page) order: whether run ``b``'s text is run ``a``'s, and
    each page's CER against the ground truth beside the inputs. The comparison is the one
    ``ocrlab diff`` makes (:func:`ocrlab.lab.rundiff.compare_runs`); this is what of it the
    side-by-side view shows."""
    return [
        PageChange(p.doc_id, p.page, p.identical, p.cer_a, p.cer_b)
        for p in compare_runs(a, b).pages
    ]


@dataclass
class RunFacts:
    """What the comparison shows of one run, read once from its output folder."""

    label: str
    out_dir: Path
    workers: int | None = None
    engine: str = ""
    status: str = "?"
    pages: int = 0
    pages_failed: int = 0
    wall_s: float | None = None
    peak_rss_mb: float | None = None
    peak_pss_mb: float | None = None
    memory: list[tuple[float, float | None, float | None]] = field(default_factory=list)
    spans: list[tuple[int, float, float, bool]] = field(default_factory=list)  # pid, t, dur, ok

    @property
    def pages_per_s(self) -> float | None:
        return self.pages / self.wall_s if self.wall_s else None

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str], label: str | None = None) -> RunFacts:
        out = Path(out_dir)
        facts = cls(label or out.name, out)
        trace = out / "trace.json"
        if not trace.is_file():
            raise FileNotFoundError(
                f"{out} has no trace.json: not a run's output folder (or the run has not "
                "started); pass the folder given as the run's output"
            )
        for e in iter_trace(trace):
            ph, name, args = e.get("ph"), e.get("name"), e.get("args") or {}
            if ts.is_page(e):
                facts.spans.append(
                    (int(e["pid"]), e["ts"] / 1e6, e["dur"] / 1e6, bool(args.get("ok", True)))
                )
            elif ph == "C" and name == ts.MEMORY:
                facts.memory.append((e["ts"] / 1e6, args.get(ts.TREE_RSS), args.get(ts.TREE_PSS)))
            elif name == ts.RUN_METADATA:
                config = args.get("config") or {}
                facts.workers = config.get("effective_workers")
                facts.engine = str(config.get("engine", ""))
            elif name == ts.RUN_END:
                facts.status = str(args.get("status"))
                facts.pages = int(args.get("pages") or 0)
                facts.pages_failed = int(args.get("pages_failed") or 0)
                facts.wall_s = args.get("wall_s")
                peaks = args.get("peaks") or {}
                facts.peak_rss_mb = (peaks.get("rss_total") or 0) / 2**20 or None
                facts.peak_pss_mb = (peaks.get("pss_total") or 0) / 2**20 or None
        facts.memory.sort()
        return facts


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} MB"


def _output_vs(changes: list[PageChange]) -> str:
    differ = sum(not c.same for c in changes)
    if not differ:
        return f'<span style="color:#060">identical, {len(changes)} pages</span>'
    return f'<span style="color:#b00">{differ} of {len(changes)} differ</span>'


def _mean_cer(changes: list[PageChange], which: str) -> float | None:
    values = [getattr(c, which) for c in changes if getattr(c, which) is not None]
    return sum(values) / len(values) if values else None


_HEAD = ("run", "workers", "engine", "pages", "wall", "pages/s", "speedup")


def summary_html(runs: Sequence[RunFacts], changes: Sequence[list[PageChange]]) -> str:
    """One row per run: workers, engine, pages, wall time, pages/s, speedup and output against
    the first (the baseline), peak tree memory, mean CER. ``changes[i]``: run i against it."""
    base = runs[0]
    rows = []
    for run, diff in zip(runs, changes, strict=True):
        speedup = base.wall_s / run.wall_s if base.wall_s and run.wall_s else None
        cer = _mean_cer(diff, "cer_b")
        cells = [
            html.escape(run.label),
            "-" if run.workers is None else str(run.workers),
            html.escape(run.engine.rsplit(":", 1)[-1]),
            f"{run.pages}" + (f" ({run.pages_failed} failed)" if run.pages_failed else ""),
            duration(run.wall_s) if run.wall_s and run.wall_s >= 60 else f"{run.wall_s or 0:.1f} s",
            "-" if run.pages_per_s is None else f"{run.pages_per_s:.2f}",
            "baseline" if run is base else ("-" if speedup is None else f"{speedup:.2f}x"),
            _mb(run.peak_rss_mb),
            _mb(run.peak_pss_mb),
            "baseline" if run is base else _output_vs(diff),
            "-" if cer is None else f"{cer:.2%}",
        ]
        rows.append("".join(f"<td>{c}</td>" for c in cells))
    head = [*_HEAD, "peak&nbsp;RSS", "peak&nbsp;PSS", "output", "mean&nbsp;CER"]
    return (
        '<table class="ocrlab-comparison-summary"><tr>'
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr>"
        + "".join(f"<tr>{r}</tr>" for r in rows)
        + "</table><p style='color:#666;font-size:90%'>Speedup and output against the first "
        "run. Times are of one run each, under whatever load the machine had: compare runs "
        "made back to back, and repeat them before calling a small difference a result.</p>"
    )


def pages_html(
    runs: Sequence[RunFacts], changes: Sequence[list[PageChange]], limit: int = 40
) -> str:
    """Page by page against the baseline: pages that differ or whose CER changed first."""
    by_page: dict[tuple[str, int], dict[int, PageChange]] = {}
    for i, diff in enumerate(changes[1:], start=1):
        for c in diff:
            by_page.setdefault((c.doc_id, c.page), {})[i] = c
    if not by_page:
        return "<p>No pages to compare.</p>"

    def moved(c: PageChange) -> bool:
        return not c.same or bool(c.cer_change)

    ordered = sorted(
        by_page.items(), key=lambda kv: (not any(moved(c) for c in kv[1].values()), kv[0])
    )
    head = "".join(f"<th>{html.escape(r.label)}</th>" for r in runs[1:])
    rows = []
    for (doc, page), cs in ordered[:limit]:
        base_cer = next(iter(cs.values())).cer_a
        cells = [html.escape(doc), str(page), "-" if base_cer is None else f"{base_cer:.2%}"]
        for i in range(1, len(runs)):
            change = cs.get(i)
            if change is None:
                cells.append("-")
                continue
            text = "same text" if change.same else "<b style='color:#b00'>differs</b>"
            if change.cer_change and change.cer_a is not None and change.cer_b is not None:
                text += f", CER {change.cer_a:.1%} &rarr; {change.cer_b:.1%}"
            cells.append(text)
        rows.append("<tr>" + "".join(f"<td>{x}</td>" for x in cells) + "</tr>")
    more = len(ordered) - limit
    tail = f"<p>... and {more} more pages, unchanged</p>" if more > 0 else ""
    return (
        '<table class="ocrlab-comparison-pages"><tr><th>document</th><th>page</th>'
        f"<th>CER ({html.escape(runs[0].label)})</th>{head}</tr>"
        + "".join(rows)
        + "</table>"
        + tail
    )


def memory_figure(runs: Sequence[RunFacts]) -> Figure:
    """Tree RSS (solid) and PSS (dashed) over time, a colour per run."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.2), layout="constrained")
    ax = fig.subplots()
    for i, run in enumerate(runs):
        colour = f"C{i}"
        rss = [(t, v) for t, v, _ in run.memory if v is not None]
        pss = [(t, v) for t, _, v in run.memory if v is not None]  # sampled less often
        for points, style, kind in ((rss, "-", "RSS"), (pss, "--", "PSS")):
            if points:
                xs, ys = zip(*points, strict=True)
                ax.step(
                    xs, ys, where="post", color=colour, linestyle=style, label=f"{run.label} {kind}"
                )
    ax.set(xlabel="seconds since run start", ylabel="MB", title="Tree memory over time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def timelines_figure(runs: Sequence[RunFacts]) -> Figure:
    """Each run's pages per worker (a row per worker process) on one time axis (red: failed)."""
    from matplotlib.figure import Figure

    rows = [len({s[0] for s in r.spans}) or 1 for r in runs]
    fig = Figure(figsize=(6.0, 0.9 + 0.45 * sum(rows) + 0.35 * len(runs)), layout="constrained")
    axes = fig.subplots(len(runs), 1, sharex=True, height_ratios=rows, squeeze=False)[:, 0]
    for ax, run in zip(axes, runs, strict=True):
        pids = sorted({s[0] for s in run.spans})
        for row, pid in enumerate(pids):
            mine = [s for s in run.spans if s[0] == pid]
            ax.broken_barh(
                [(s[1], s[2]) for s in mine],
                (row - 0.4, 0.8),
                facecolors=["tab:blue" if s[3] else "tab:red" for s in mine],
                edgecolor="white",
                linewidth=0.5,
            )
        ax.set_yticks(range(len(pids)), [f"w{i + 1}" for i in range(len(pids))])
        ax.set_title(run.label, fontsize="medium", loc="left")
        ax.grid(alpha=0.3, axis="x")
    axes[-1].set_xlabel("seconds since run start")
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


def _img(fig: Figure) -> str:
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(_png(fig)).decode()}">'


def _load(outs: Sequence[str | os.PathLike[str]], labels: Sequence[str] | None) -> list[RunFacts]:
    if len(outs) < 2:
        raise ValueError(
            f"a comparison needs two or more output folders, got {len(outs)}: "
            "pass a list such as [out_1_worker, out_2_workers]"
        )
    names = list(labels) if labels else [Path(o).name for o in outs]
    if len(set(names)) < len(names):  # same folder names in different places
        names = [str(o) for o in outs]
    return [RunFacts.load(o, n) for o, n in zip(outs, names, strict=True)]


STYLE = """<style>.ocrlab-comparison td,.ocrlab-comparison th{padding:1px 6px;text-align:left;
white-space:nowrap;font-size:92%}</style>"""


def comparison_html(
    outs: Sequence[str | os.PathLike[str]], labels: Sequence[str] | None = None
) -> str:
    """The whole comparison as one static HTML fragment (figures inline): for reports."""
    runs = _load(outs, labels)
    changes = [page_changes(runs[0].out_dir, r.out_dir) for r in runs]
    return (
        STYLE
        + '<div class="ocrlab-comparison">'
        + summary_html(runs, changes)
        + f"<div>{_img(memory_figure(runs))}{_img(timelines_figure(runs))}</div>"
        + pages_html(runs, changes)
        + "</div>"
    )


class RunComparison:
    """Pick two or more runs among ``outs`` and a baseline: the comparison, in JupyterLab."""

    def __init__(
        self, outs: Sequence[str | os.PathLike[str]], labels: Sequence[str] | None = None
    ) -> None:
        import ipywidgets as widgets

        self.runs = _load(outs, labels)
        names = [r.label for r in self.runs]
        self.pick = widgets.SelectMultiple(
            options=[(n, i) for i, n in enumerate(names)],
            value=tuple(range(len(names))),
            rows=min(6, len(names)),
            description="runs",
        )
        self.baseline = widgets.Dropdown(
            options=[(n, i) for i, n in enumerate(names)], value=0, description="against"
        )
        self.summary = widgets.HTML()
        fig_layout = widgets.Layout(max_width="49%", height="auto", object_fit="contain")
        self.memory = widgets.Image(format="png", layout=fig_layout)
        self.timelines = widgets.Image(format="png", layout=fig_layout)
        self.pages = widgets.HTML()
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.pick, self.baseline]),
                self.summary,
                widgets.HBox(
                    [self.memory, self.timelines], layout=widgets.Layout(align_items="flex-start")
                ),
                self.pages,
            ]
        )
        self.widget.add_class("ocrlab-comparison")
        self._changes: dict[tuple[int, int], list[PageChange]] = {}
        self.pick.observe(lambda _: self.update(), names="value")
        self.baseline.observe(lambda _: self.update(), names="value")
        self.update()

    def _diff(self, base: int, other: int) -> list[PageChange]:
        key = (base, other)
        if key not in self._changes:  # reading and scoring pages is the slow part
            a, b = self.runs[base].out_dir, self.runs[other].out_dir
            self._changes[key] = page_changes(a, b)
        return self._changes[key]

    def update(self) -> None:
        """Redraw for the runs picked (the baseline first)."""
        base = int(self.baseline.value)
        chosen = [base] + [i for i in self.pick.value if i != base]
        if len(chosen) < 2:
            self.summary.value = "<i>pick at least one run besides the baseline</i>"
            return
        runs = [self.runs[i] for i in chosen]
        changes = [self._diff(base, i) for i in chosen]
        self.summary.value = STYLE + summary_html(runs, changes)
        self.memory.value = _png(memory_figure(runs))
        self.timelines.value = _png(timelines_figure(runs))
        self.pages.value = pages_html(runs, changes)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)  # type: ignore[no-untyped-call]


def show_comparison(
    outs: Sequence[str | os.PathLike[str]],
    labels: Sequence[str] | None = None,
    interactive: bool | None = None,
) -> Any:
    """The comparison: the widget in JupyterLab, static HTML and figures in reports (no
    kernel to talk to). ``interactive=None`` decides by :func:`ocrlab.frontend.frontend`."""
    from IPython.display import HTML, display

    from ..frontend import frontend

    if interactive is None:
        interactive = frontend() == "notebook"
    shown: Any = (
        RunComparison(outs, labels) if interactive else HTML(comparison_html(outs, labels))  # type: ignore[no-untyped-call]
    )
    display(shown)  # type: ignore[no-untyped-call]
    return shown
