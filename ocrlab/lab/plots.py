"""Matplotlib figures for the notebooks; each returns a Figure (static, so HTML reports work).

Kept here, not in notebook cells, so the figures are the same in JupyterLab, in
papermill runs and in the exported HTML, and so they are tested.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..output import trace_schema as ts
from ..output.merge_trace import WORKER_TID_BASE
from .analysis import PLAN_BUDGET_GB, TraceFrames

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


def _figure(ncols: int = 1, width: float = 6.0, height: float = 3.6) -> tuple[Figure, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, axes


def _errors(rows: Sequence[Mapping[str, Any]], key: str) -> Any:
    """Matplotlib ``yerr`` (2 x n, distances below and above) from ``key_low`` / ``key_high``;
    None when no row has an interval (one run per count)."""
    if not any(r.get(f"{key}_low") is not None for r in rows):
        return None
    below = [
        r[key] - (r.get(f"{key}_low") if r.get(f"{key}_low") is not None else r[key]) for r in rows
    ]
    above = [
        (r.get(f"{key}_high") if r.get(f"{key}_high") is not None else r[key]) - r[key]
        for r in rows
    ]
    return [below, above]


def sweep_throughput(table: Sequence[Mapping[str, Any]]) -> Figure:
    """Pages/s, speedup and Tesseract CPU s per page against workers, with intervals.

    Error bars are the 95% bootstrap intervals over the repeats (none with one run); the
    y axes start at 0, so a difference inside the noise looks as small as it is. The
    third panel is the load-robust figure: Tesseract's own CPU time per page hardly
    grows when other processes take CPU time, where wall-clock throughput falls.
    """
    has_cpu = any(r.get("cpu_s_per_page") for r in table)  # benches before it: 2 panels
    fig, axes = _figure(3 if has_cpu else 2, width=4.6 if has_cpu else 6.0)
    ax1, ax2 = axes[0], axes[1]
    ax3 = axes[2] if has_cpu else None
    n = sorted({r["workers"] for r in table})
    for engine in dict.fromkeys(r.get("engine", "ocrlab") for r in table):
        rows = [r for r in table if r.get("engine", "ocrlab") == engine]
        label = f"ocrlab, {engine}" + (
            f" {rows[0]['engine_version']}" if rows[0].get("engine_version") else ""
        )
        xs = [r["workers"] for r in rows]
        for ax, key in ((ax1, "pages_per_s"), (ax2, "speedup")):
            ax.errorbar(
                xs,
                [r[key] for r in rows],
                yerr=_errors(rows, key),
                fmt="o-",
                capsize=4,
                label=label,
            )
        cpu = [r for r in rows if r.get("cpu_s_per_page")]
        if cpu and ax3 is not None:
            ax3.errorbar(
                [r["workers"] for r in cpu],
                [r["cpu_s_per_page"] for r in cpu],
                yerr=_errors(cpu, "cpu_s_per_page"),
                fmt="o-",
                capsize=4,
                label=label,
            )
    cli = sorted(
        {(r["workers"], r["pages"] / r["cli_wall_s"]) for r in table if r.get("cli_wall_s")}
    )
    if cli:
        ax1.plot(*zip(*cli, strict=True), "s--", label="tesseract CLI (xargs -P N)")
    ax1.set(xlabel="workers", ylabel="pages / s", title="Throughput (95% intervals)")
    ax2.plot(n, n, ":", color="grey", label="ideal (N x 1 worker)")
    ax2.set(xlabel="workers", ylabel="speedup vs 1 worker", title="Speedup (paired by repeat)")
    if ax3 is not None:
        ax3.set(xlabel="workers", ylabel="CPU s / page", title="Tesseract CPU time per page")
    for ax in axes:
        ax.set_xticks(n)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return fig


def sweep_memory(table: Sequence[Mapping[str, Any]], memory_limit_gb: float) -> Figure:
    """Peak process-tree memory against workers, in MB at the scale of the measurements.

    The container limit and the deployment's budget
    (:data:`ocrlab.lab.analysis.PLAN_BUDGET_GB`) are written on the plot as labelled
    references (and the share of the budget each peak uses), not drawn as lines: at a
    few hundred MB against 8 GB, an axis that reached them would flatten the bars to a
    few pixels. RSS and PSS (shared pages counted once) side by side where measured.
    """
    fig, ax = _figure(width=7.0, height=3.8)
    engines = list(dict.fromkeys(r.get("engine", "ocrlab") for r in table))
    series = [("peak_rss_mb", "RSS")]
    if any(r.get("peak_pss_mb") for r in table):
        series.append(("peak_pss_mb", "PSS"))
    bars = [(e, key, label) for e in engines for key, label in series]
    width = 0.8 / len(bars)
    top = 0.0
    for i, (engine, key, label) in enumerate(bars):
        rows = [r for r in table if r.get("engine", "ocrlab") == engine and r.get(key)]
        xs = [r["workers"] - 0.4 + width * (i + 0.5) for r in rows]
        values = [float(r[key]) for r in rows]
        drawn = ax.bar(xs, values, width=width, label=f"peak tree {label}, {engine}")
        ax.bar_label(drawn, labels=[f"{v:.0f}" for v in values], fontsize=8)
        top = max([top, *values])
    budget = "; ".join(
        f"{n} worker{'s' if n > 1 else ''}: {gb:g} GB" for n, gb in PLAN_BUDGET_GB.items()
    )
    worst = max(
        (
            r["peak_rss_mb"] / 1024 / PLAN_BUDGET_GB[r["workers"]]
            for r in table
            if r.get("peak_rss_mb") and r["workers"] in PLAN_BUDGET_GB
        ),
        default=None,
    )
    note = f"memory limit {memory_limit_gb:g} GB\nplan budget: {budget}"
    if worst is not None:
        note += f"\nhighest peak = {worst:.1%} of its budget"
    ax.text(
        0.02,
        0.97,
        note,
        transform=ax.transAxes,
        va="top",
        fontsize=8,
        bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "tab:orange"},
    )
    ax.set_ylim(0, top * 1.6 if top else 1)
    ax.set(xlabel="workers", ylabel="MB", title="Peak memory of the process tree")
    ax.set_xticks(sorted({r["workers"] for r in table}))
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return fig


def per_page_times(runs: pd.DataFrame) -> Figure:
    """Per-page time by worker count: it should stay flat while the total drops."""
    fig, ax = _figure()
    groups = sorted(runs["workers"].unique())
    data = [runs.loc[runs["workers"] == g, "page_s"].to_numpy() for g in groups]
    ax.boxplot(data, tick_labels=[str(g) for g in groups])
    ax.set(xlabel="workers", ylabel="seconds per page", title="Per-page time")
    ax.grid(alpha=0.3, axis="y")
    return fig


def timeline(frames: TraceFrames, title: str = "Pages per worker") -> Figure:
    """A Gantt chart: one row per worker, one bar per page (red: failed).

    A worker is a track (pid, tid): a worker process of a run, or a worker thread of a
    shard's group in a merged run (:mod:`ocrlab.output.merge_trace`)."""
    tracks = sorted(set(zip(frames.pages["pid"], frames.pages["tid"], strict=True)))
    fig, ax = _figure(width=10, height=max(2.0, 0.5 + 0.6 * len(tracks)))
    for row, (pid, tid) in enumerate(tracks):
        mine = frames.pages[(frames.pages["pid"] == pid) & (frames.pages["tid"] == tid)]
        colors = ["tab:blue" if ok else "tab:red" for ok in mine["ok"]]
        ax.broken_barh(
            list(zip(mine["start_s"], mine["dur_s"], strict=True)),
            (row - 0.4, 0.8),
            facecolors=colors,
            edgecolor="white",
        )
    for _, inst in frames.instants.iterrows():
        if inst["name"] in {ts.WORKER_DIED, ts.POOL_RESTARTED}:
            ax.axvline(inst["t_s"], color="black", linestyle="--")
    labels = [f"pid {p}" if p == t else f"group {p}, pid {t % WORKER_TID_BASE}" for p, t in tracks]
    ax.set_yticks(range(len(tracks)), labels)
    ax.set(xlabel="seconds since run start", title=title)
    ax.grid(alpha=0.3, axis="x")
    return fig


def counters(frames: TraceFrames) -> Figure:
    """Tree memory, descriptors and live Tesseract processes over time."""
    fig, axes = _figure(3, width=4.2)
    for ax, name in zip(axes, ts.COUNTERS, strict=True):
        data = frames.counters[frames.counters["counter"] == name]
        for series, part in data.groupby("series"):
            ax.step(part["t_s"], part["value"], where="post", label=str(series))
        ax.set(title=name, xlabel="seconds")
        if len(data):
            ax.legend()
        ax.grid(alpha=0.3)
    return fig


def hosts(frames: TraceFrames) -> Figure:
    """A Dask run's hosts: each host's tree RSS (its workers and their Tesseracts summed),
    the cluster's sum at one moment, and each host's live Tesseracts."""
    fig, (ax1, ax2) = _figure(2)
    c = frames.counters
    for host, part in c[(c["counter"] == ts.HOST_MEMORY) & (c["series"] == ts.TREE_RSS)].groupby(
        "host"
    ):
        ax1.step(part["t_s"], part["value"], where="post", label=str(host))
    total = c[(c["counter"] == ts.CLUSTER_MEMORY) & (c["series"] == ts.TREE_RSS)]
    if len(total):
        ax1.step(total["t_s"], total["value"], where="post", color="black", label="cluster")
    for host, part in c[c["counter"] == ts.HOST_TESSERACTS].groupby("host"):
        ax2.step(part["t_s"], part["value"], where="post", label=str(host))
    ax1.set(title="tree RSS per host (MB)", xlabel="seconds")
    ax2.set(title="live Tesseracts per host", xlabel="seconds")
    for ax in (ax1, ax2):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return fig


def wait_vs_ocr(frames: TraceFrames) -> Figure:
    """Where a page's time goes: queue wait, page preparation and OCR."""
    fig, ax = _figure()
    p = frames.pages
    ax.bar(range(len(p)), p["queue_wait_s"], label="queue wait", color="tab:grey")
    ax.bar(
        range(len(p)), p["prepare_s"], bottom=p["queue_wait_s"], label="prepare", color="tab:orange"
    )
    ax.bar(
        range(len(p)),
        p["ocr_s"],
        bottom=p["queue_wait_s"] + p["prepare_s"],
        label="OCR",
        color="tab:blue",
    )
    ax.set(xlabel="page (in start order)", ylabel="seconds", title="Queue wait vs OCR time")
    ax.legend()
    return fig


def speed_accuracy(table: Sequence[Mapping[str, Any]]) -> Figure:
    """Throughput against CER for each setting of a sweep; the Pareto front joined by a line.

    Lower right is better; a setting above and left of the line is dominated. Horizontal
    bars are the throughput's interval over the repeats: settings whose bars overlap
    cannot be told apart in speed.
    """
    fig, ax = _figure(width=8, height=4.5)
    rows = [r for r in table if r.get("cer") is not None]
    for model in dict.fromkeys(f"{r['engine']}, {r['model']}" for r in rows):
        mine = [r for r in rows if f"{r['engine']}, {r['model']}" == model]
        ax.errorbar(
            [r["pages_per_s"] for r in mine],
            [100 * r["cer"] for r in mine],
            xerr=_errors(mine, "pages_per_s"),
            fmt="o",
            capsize=4,
            label=model,
            zorder=3,
        )
    for r in rows:
        psm = "default" if r["psm"] is None else r["psm"]
        ax.annotate(
            f"psm {psm}, {r['dpi']} dpi",
            (r["pages_per_s"], 100 * r["cer"]),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=7,
        )
    front = sorted((r for r in rows if not r.get("dominated_by")), key=lambda r: r["pages_per_s"])
    if front:
        ax.plot(
            [r["pages_per_s"] for r in front],
            [100 * r["cer"] for r in front],
            "--",
            color="grey",
            label="Pareto front",
            zorder=2,
        )
    ax.set(
        xlabel="pages / s (parallel runs; bars: 95% interval over the repeats)",
        ylabel="CER %",
        title="Speed against accuracy",
    )
    ax.set_xlim(left=0)  # from 0: a difference inside the noise looks as small as it is
    top = max((100 * r["cer"] for r in rows), default=0.0)
    ax.set_ylim(0, top * 1.15 if top > 0 else 1.0)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def cer_by_degradation(pivot: pd.DataFrame, title: str = "CER by degradation") -> Figure:
    """One line per degradation kind: mean page CER against strength (0 = the clean page)."""
    fig, ax = _figure(width=7, height=4)
    clean = pivot.loc["clean"].dropna() if "clean" in pivot.index else None
    base = float(clean.iloc[0]) if clean is not None and len(clean) else None
    for kind, values in pivot.iterrows():
        if kind == "clean":
            continue
        points = values.dropna()
        xs, ys = list(points.index), [100 * v for v in points]
        if base is not None:
            xs, ys = [0.0, *xs], [100 * base, *ys]
        ax.plot(xs, ys, "o-", label=str(kind))
    ax.set(
        xlabel="strength (0 = clean, 1 = strongest)", ylabel="CER % (mean of pages)", title=title
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def estimate_vs_measured(frames: TraceFrames) -> Figure:
    """The ordering's cost estimate against each page's measured OCR time.

    LPT needs the estimates in the right order, not exact: the title gives
    Spearman's rank correlation beside Pearson's r (:func:`estimate_quality`).
    """
    from .estimates import cost_units, estimate_quality

    fig, ax = _figure()
    p = cost_units(frames.pages)  # a bundle of small pages is one point: it is measured whole
    quality = estimate_quality(frames.pages)
    measure = quality["measure"]
    for fmt, part in p.groupby(p["doc_id"].str.rsplit(".", n=1).str[-1]):
        ax.scatter(part["cost_estimate"], part[measure], s=14, label=str(fmt))
    if quality["s_per_mp"]:
        top = float(p["cost_estimate"].max())
        ax.plot(
            [0, top],
            [0, top * quality["s_per_mp"]],
            ":",
            color="grey",
            label=f"{quality['s_per_mp']:.3g} s per estimated MP",
        )
    ax.set(
        xlabel="estimated cost (megapixels x format factor)",
        ylabel="Tesseract CPU s" if measure == "engine_cpu_s" else "OCR wall s",
        title=f"Cost estimate vs OCR time: Spearman {quality['spearman']}, "
        f"Pearson {quality['pearson']} ({quality['pages']} units of work)",
    )
    if len(p):
        ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return fig


def confidence_vs_cer(pages: Sequence[Mapping[str, Any]], label: str | None = None) -> Figure:
    """Page confidence against page CER (a sweep's page rows, one setting): does Tesseract's
    confidence flag the pages it got wrong? Spearman's rho in the title."""
    from .confidence import confidence_cer_correlation

    rows = [
        p
        for p in pages
        if (label is None or p.get("label") == label)
        and p.get("conf_mean") is not None
        and p.get("cer") is not None
    ]
    found = confidence_cer_correlation(rows)
    fig, ax = _figure(width=7, height=4.2)
    for kind in dict.fromkeys(p.get("kind") or "clean / other" for p in rows):
        mine = [p for p in rows if (p.get("kind") or "clean / other") == kind]
        ax.scatter([p["conf_mean"] for p in mine], [100 * p["cer"] for p in mine], label=kind, s=18)
    rho = "n/a" if found["spearman"] is None else f"{found['spearman']:+.2f}"
    ax.set(
        xlabel="page mean word confidence (Tesseract, 0-100)",
        ylabel="page CER %",
        title=f"Confidence against errors: Spearman rho {rho} ({found['pages']} pages)",
    )
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig
