"""Matplotlib figures for the notebooks; each returns a Figure (static, so HTML reports work).

Kept here, not in notebook cells, so the figures are the same in JupyterLab, in
papermill runs and in the exported HTML, and so they are tested.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .analysis import PLAN_BUDGET_GB, TraceFrames

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


def _figure(ncols: int = 1, width: float = 6.0, height: float = 3.6) -> tuple[Figure, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, axes


def sweep_throughput(table: Sequence[Mapping[str, Any]]) -> Figure:
    """Pages/s and speedup against workers, with the ideal line and the CLI reference."""
    fig, (ax1, ax2) = _figure(2)
    n = sorted({r["workers"] for r in table})
    for engine in dict.fromkeys(r.get("engine", "ocrlab") for r in table):
        rows = [r for r in table if r.get("engine", "ocrlab") == engine]
        label = f"ocrlab, {engine}" + (f" {rows[0]['engine_version']}"
                                       if rows[0].get("engine_version") else "")
        ax1.plot([r["workers"] for r in rows], [r["pages_per_s"] for r in rows], "o-",
                 label=label)
        ax2.plot([r["workers"] for r in rows], [r["speedup"] for r in rows], "o-", label=label)
    cli = sorted({(r["workers"], r["pages"] / r["cli_wall_s"]) for r in table
                  if r.get("cli_wall_s")})
    if cli:
        ax1.plot(*zip(*cli, strict=True), "s--", label="tesseract CLI (xargs -P N)")
    ax1.set(xlabel="workers", ylabel="pages / s", title="Throughput")
    ax1.legend()
    ax2.plot(n, n, ":", color="grey", label="ideal (N x 1 worker)")
    ax2.set(xlabel="workers", ylabel="speedup vs 1 worker", title="Speedup")
    ax2.legend()
    for ax in (ax1, ax2):
        ax.set_xticks(n)
        ax.grid(alpha=0.3)
    return fig


def sweep_memory(table: Sequence[Mapping[str, Any]], memory_limit_gb: float) -> Figure:
    """Peak process-tree memory against workers, the container limit and the plan's budget.

    Two bars per engine: tree RSS (counts shared pages once per process, so it
    overstates) and tree PSS (each shared page once: what the limit sees), when measured.
    """
    fig, ax = _figure()
    engines = list(dict.fromkeys(r.get("engine", "ocrlab") for r in table))
    kinds = [("peak_rss_mb", "RSS")] + (
        [("peak_pss_mb", "PSS")] if any(r.get("peak_pss_mb") for r in table) else [])
    width = 0.8 / (len(engines) * len(kinds))
    n = sorted({r["workers"] for r in table})
    slot = 0
    for engine in engines:
        rows = [r for r in table if r.get("engine", "ocrlab") == engine]
        for key, kind in kinds:
            ax.bar([r["workers"] - 0.4 + width * (slot + 0.5) for r in rows],
                   [(r.get(key) or 0) / 1024 for r in rows], width=width,
                   label=f"measured peak (tree {kind}), {engine}")
            slot += 1
    budget = [(k, v) for k, v in PLAN_BUDGET_GB.items()]
    ax.plot(*zip(*budget, strict=True), "D--", color="tab:orange",
            label="verification plan budget")
    ax.axhline(memory_limit_gb, color="tab:red", label=f"memory limit {memory_limit_gb:g} GB")
    ax.set(xlabel="workers", ylabel="GB", title="Peak memory of the process tree")
    ax.set_xticks(sorted(set(n) | set(PLAN_BUDGET_GB)))
    ax.legend()
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
    """A Gantt chart: one row per worker process, one bar per page (red: failed)."""
    fig, ax = _figure(width=10, height=max(2.0, 0.5 + 0.6 * frames.pages["pid"].nunique()))
    pids = sorted(frames.pages["pid"].unique())
    for row, pid in enumerate(pids):
        mine = frames.pages[frames.pages["pid"] == pid]
        colors = ["tab:blue" if ok else "tab:red" for ok in mine["ok"]]
        ax.broken_barh(list(zip(mine["start_s"], mine["dur_s"], strict=True)), (row - 0.4, 0.8),
                       facecolors=colors, edgecolor="white")
    for _, inst in frames.instants.iterrows():
        if inst["name"] in {"worker_died", "pool_restarted"}:
            ax.axvline(inst["t_s"], color="black", linestyle="--")
    ax.set_yticks(range(len(pids)), [f"pid {p}" for p in pids])
    ax.set(xlabel="seconds since run start", title=title)
    ax.grid(alpha=0.3, axis="x")
    return fig


def counters(frames: TraceFrames) -> Figure:
    """Tree memory, descriptors and live Tesseract processes over time."""
    fig, axes = _figure(3, width=4.2)
    for ax, name in zip(axes, ["memory (MB)", "file descriptors", "live tesseract processes"],
                        strict=True):
        data = frames.counters[frames.counters["counter"] == name]
        for series, part in data.groupby("series"):
            ax.step(part["t_s"], part["value"], where="post", label=str(series))
        ax.set(title=name, xlabel="seconds")
        if len(data):
            ax.legend()
        ax.grid(alpha=0.3)
    return fig


def wait_vs_ocr(frames: TraceFrames) -> Figure:
    """Where a page's time goes: queue wait, page preparation and OCR."""
    fig, ax = _figure()
    p = frames.pages
    ax.bar(range(len(p)), p["queue_wait_s"], label="queue wait", color="tab:grey")
    ax.bar(range(len(p)), p["prepare_s"], bottom=p["queue_wait_s"], label="prepare",
           color="tab:orange")
    ax.bar(range(len(p)), p["ocr_s"], bottom=p["queue_wait_s"] + p["prepare_s"], label="OCR",
           color="tab:blue")
    ax.set(xlabel="page (in start order)", ylabel="seconds", title="Queue wait vs OCR time")
    ax.legend()
    return fig


def estimate_vs_measured(frames: TraceFrames) -> Figure:
    """The ordering's cost estimate against each page's measured OCR time.

    LPT needs the estimates in the right order, not exact: the title gives
    Spearman's rank correlation beside Pearson's r (:func:`estimate_quality`).
    """
    from .analysis import estimate_quality

    fig, ax = _figure()
    p = frames.pages[frames.pages["ok"] & frames.pages["cost_estimate"].notna()]
    quality = estimate_quality(frames.pages)
    measure = quality["measure"]
    for fmt, part in p.groupby(p["doc_id"].str.rsplit(".", n=1).str[-1]):
        ax.scatter(part["cost_estimate"], part[measure], s=14, label=str(fmt))
    if quality["s_per_mp"]:
        top = float(p["cost_estimate"].max())
        ax.plot([0, top], [0, top * quality["s_per_mp"]], ":", color="grey",
                label=f"{quality['s_per_mp']:.3g} s per estimated MP")
    ax.set(xlabel="estimated cost (megapixels x format factor)",
           ylabel="Tesseract CPU s" if measure == "engine_cpu_s" else "OCR wall s",
           title=f"Cost estimate vs OCR time: Spearman {quality['spearman']}, "
                 f"Pearson {quality['pearson']} ({quality['pages']} pages)")
    if len(p):
        ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return fig
