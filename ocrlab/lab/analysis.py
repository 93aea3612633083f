"""From run outputs to tables: trace.json to pandas, accuracy, recommendations.

Run-to-run comparison is :mod:`ocrlab.lab.rundiff` (also ``ocrlab diff``); how well
the cost estimate predicts the OCR cost, :mod:`ocrlab.lab.estimates`.

The notebooks call these so that their cells stay short and the logic is
tested like the rest of the package. pandas is imported lazily (it is in the
``notebooks`` extra, not needed to OCR).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..output import trace_schema as ts
from ..output.manifest import load_manifest
from ..output.trace_reader import event_lines, iter_trace
from .accuracy import score_run
from .estimates import cost_units as cost_units  # re-exported: notebooks call analysis.*
from .estimates import estimate_quality as estimate_quality

if TYPE_CHECKING:
    import pandas as pd

#: The memory budget per worker count (GB) that a deployment in an 8 GB container was
#: sized with: the reference the worker sweep's memory plot compares its peaks against.
PLAN_BUDGET_GB = {1: 2.0, 2: 4.0, 3: 5.5}


@dataclass(frozen=True)
class TraceFrames:
    """A trace as tables: page spans, document spans, counter samples, instants, metadata."""

    pages: pd.DataFrame
    documents: pd.DataFrame
    counters: pd.DataFrame
    instants: pd.DataFrame
    meta: dict[str, Any]


#: a page span's word confidences (recorded when formats beyond txt were asked)
CONFIDENCE_COLUMNS = ("conf_mean", "conf_p10", "words", "words_low")

#: events :func:`trace_frames` accepts by default: about a million pages, a few GB of frames
MAX_EVENTS = 2_000_000


class TraceTooLargeError(ValueError):
    """A trace with more events than a DataFrame should hold."""


def trace_frames(
    path: str | os.PathLike[str],
    run: str | None = None,
    max_events: int | None = MAX_EVENTS,
    every: int = 1,
) -> TraceFrames:
    """Load ``trace.json`` (complete or torn) into DataFrames; times in seconds from start.

    The trace is read event by event (:func:`ocrlab.output.trace_reader.iter_trace`), in file
    order, which is not time order (the trace is streamed): the page table is
    sorted here. A trace of more than ``max_events`` events raises
    :class:`TraceTooLargeError` before any is parsed (counted from its lines), rather
    than filling memory: ``every=k`` keeps one page and one document span in ``k``
    (counters and instants all), ``max_events=None`` loads it all anyway, or read it
    with :func:`~ocrlab.output.trace_reader.iter_trace` and keep what you need.
    """
    import pandas as pd

    lines = event_lines(path) if max_events is not None else None
    if max_events is not None and lines is not None and lines > max_events * every:
        raise _too_large(path, f"about {lines:,}", max_events, -(-lines // max_events))
    label = run or Path(path).parent.name
    pages, docs, counters, instants = [], [], [], []
    meta: dict[str, Any] = {}
    host_of: dict[int, str] = {}  # a Dask host's counter track (HOST_JOINED) -> its name
    n, spans = 0, {"page": 0, "document": 0}  # sampled apart: pages and documents alternate
    for e in iter_trace(path):
        ph, args = e.get("ph"), e.get("args", {})
        if ph == "X":
            kind = "document" if e.get("cat") == ts.CAT_DOCUMENT else "page"
            spans[kind] += 1
            if spans[kind] % every:
                continue
        n += 1
        if max_events is not None and n > max_events:
            raise _too_large(path, "more than", max_events, 2 * every)
        if ts.is_page(e):
            pages.append(
                {
                    "run": label,
                    "doc_id": args.get("doc_id"),
                    "page": args.get("page"),
                    "pid": e["pid"],
                    "tid": e.get("tid", e["pid"]),
                    "host": args.get("host", ""),
                    "start_s": e["ts"] / 1e6,
                    "dur_s": e["dur"] / 1e6,
                    "end_s": (e["ts"] + e["dur"]) / 1e6,
                    "queue_wait_s": args.get("queue_wait_us", 0) / 1e6,
                    "prepare_s": args.get("prepare_us", 0) / 1e6,
                    "ocr_s": args.get("ocr_us", 0) / 1e6,
                    "ok": bool(args.get("ok", True)),
                    "engine_cpu_s": args.get("engine_cpu_us", 0) / 1e6,
                    "error_type": args.get("error_type"),
                    "error": args.get("error"),
                    "chars": args.get("chars", 0),
                    "width": args.get("width", 0),
                    "height": args.get("height", 0),
                    "worker_rss": args.get("worker_rss", 0),
                    "child_maxrss": args.get("child_maxrss", 0),
                    "attempt": args.get("attempt", 1),
                    "cost_estimate": args.get("cost_estimate"),
                    "bundle": args.get("bundle"),
                    **{k: args.get(k) for k in CONFIDENCE_COLUMNS},
                }
            )
        elif ph == "X" and e.get("cat") == ts.CAT_DOCUMENT:
            docs.append(
                {
                    "run": label,
                    "doc_id": e["name"],
                    "start_s": e["ts"] / 1e6,
                    "dur_s": e["dur"] / 1e6,
                    "status": args.get("status"),
                    "pages": args.get("pages"),
                    "lane": e["tid"],
                }
            )
        elif ph == "C":
            for series, value in args.items():
                counters.append(
                    {
                        "run": label,
                        "t_s": e["ts"] / 1e6,
                        "counter": e["name"],
                        "series": series,
                        "value": value,
                        "host": host_of.get(int(e.get("pid") or 0), ""),
                    }
                )
        elif ph == "i":
            if e.get("name") == ts.RUN_METADATA:
                meta = dict(args)
            else:
                if e.get("name") == ts.HOST_JOINED:
                    host_of[int(args.get("track") or 0)] = str(args.get("host"))
                instants.append(
                    {"run": label, "t_s": e["ts"] / 1e6, "name": e["name"], "args": args}
                )
    page_cols = [
        "run",
        "doc_id",
        "page",
        "pid",
        "tid",
        "host",
        "start_s",
        "dur_s",
        "end_s",
        "queue_wait_s",
        "prepare_s",
        "ocr_s",
        "engine_cpu_s",
        "ok",
        "error_type",
        "error",
        "chars",
        "width",
        "height",
        "worker_rss",
        "child_maxrss",
        "attempt",
        "cost_estimate",
        "bundle",
        *CONFIDENCE_COLUMNS,
    ]
    return TraceFrames(
        pages=pd.DataFrame(pages, columns=page_cols).sort_values(["start_s"], ignore_index=True),
        documents=pd.DataFrame(
            docs, columns=["run", "doc_id", "start_s", "dur_s", "status", "pages", "lane"]
        ).sort_values(["start_s"], kind="stable", ignore_index=True),
        counters=pd.DataFrame(
            counters, columns=["run", "t_s", "counter", "series", "value", "host"]
        ).sort_values(["t_s"], kind="stable", ignore_index=True),
        instants=pd.DataFrame(instants, columns=["run", "t_s", "name", "args"]).sort_values(
            ["t_s"], kind="stable", ignore_index=True
        ),
        meta=meta,
    )


def _too_large(path: Any, held: str, max_events: int, every: int) -> TraceTooLargeError:
    return TraceTooLargeError(
        f"{path} holds {held} trace events, more than max_events={max_events:,} for "
        f"DataFrames in memory; pass every={every} to keep one page and document span in "
        f"{every} (counters and instants all), max_events=None to load it all anyway, or "
        "stream it with ocrlab.output.trace_reader.iter_trace and keep only what you need."
    )


def identity_runs(
    corpus: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    workers: int = 2,
    formats: str = "txt",
) -> tuple[Any, Any]:
    """Run ``corpus`` sequentially (the ``OCR_PARALLEL_DISABLED`` kill switch) and with
    ``workers`` processes, into ``out_dir/sequential`` and ``out_dir/parallel``, writing
    ``formats`` (compare them all with :func:`ocrlab.lab.identity.compare_formats`)."""
    from ..pipeline import run

    out = Path(out_dir)
    saved = os.environ.get("OCR_PARALLEL_DISABLED")
    os.environ["OCR_PARALLEL_DISABLED"] = "true"
    try:
        sequential = run(corpus, out / "sequential", overwrite=True, formats=formats)
    finally:
        if saved is None:
            del os.environ["OCR_PARALLEL_DISABLED"]
        else:
            os.environ["OCR_PARALLEL_DISABLED"] = saved
    parallel = run(corpus, out / "parallel", workers=workers, overwrite=True, formats=formats)
    return sequential, parallel


def page_texts(out_dir: str | os.PathLike[str]) -> dict[tuple[str, int], str]:
    """Every page's text of a run, keyed by (document, page), from the artifacts."""
    texts: dict[tuple[str, int], str] = {}
    for doc in load_manifest(out_dir)["documents"]:
        if not doc.get("artifact"):
            continue
        body = (Path(out_dir) / doc["artifact"]).read_text(encoding="utf-8")
        for number, text in enumerate(body.split("\f")[: doc["pages"]], start=1):
            texts[(doc["doc_id"], number)] = text
    return texts


def accuracy_table(runs: Mapping[str, str | os.PathLike[str]]) -> pd.DataFrame:
    """CER / WER per document for each named run (ground truth beside the sources)."""
    import pandas as pd

    rows = [{"run": name, **row} for name, out in runs.items() for row in score_run(out)]
    return pd.DataFrame(rows, columns=["run", "doc_id", "cer", "wer", "ref_chars"])


def honest_peak_mb(row: Mapping[str, Any]) -> float:
    """A sweep row's peak tree memory: PSS when measured, else RSS.

    RSS summed over a tree counts the pages the workers and Tesseracts share once
    per process; PSS counts them once, which is what a container's limit sees.
    """
    return float(row.get("peak_pss_mb") or row.get("peak_rss_mb") or 0)


def recommend(
    table: Sequence[Mapping[str, Any]], memory_limit_gb: float, headroom: float = 0.8
) -> dict[str, Any]:
    """The worker count with the best throughput whose measured peak (PSS) fits the limit,
    and (``alike``) the counts that cannot be told apart from it in throughput.

    ``headroom`` keeps a margin: the peak on these pages is not the peak on every page.
    The choice is :func:`ocrlab.lab.capacity.plan_capacity`'s for each engine, with as
    many cores as the largest measured count (the sizing question without a core limit).
    """
    from .capacity import plan_capacity

    budget_mb = memory_limit_gb * 1024 * headroom
    cores = max((int(r["workers"]) for r in table), default=1)
    plans = [
        plan_capacity(
            {"table": list(table)}, memory_limit_gb * 1024, cores, headroom=headroom, engine=e
        )
        for e in dict.fromkeys(r.get("engine") for r in table)
    ]
    plans = [p for p in plans if p.chosen is not None]
    if not plans:
        return {
            "workers": None,
            "reason": f"no measured worker count fits in {headroom:.0%} of {memory_limit_gb:g} GB",
        }
    plan = max(plans, key=lambda p: p.chosen.pages_per_s.estimate if p.chosen else 0.0)
    assert plan.chosen is not None
    best = next(
        r for r in table if r["workers"] == plan.chosen.workers and r.get("engine") == plan.engine
    )
    return {
        "workers": best["workers"],
        "engine": best.get("engine"),
        "pages_per_s": best["pages_per_s"],
        "pages_per_s_text": plan.chosen.pages_per_s.format(".2f"),
        "speedup": best.get("speedup"),
        "peak_rss_mb": best["peak_rss_mb"],
        "peak_mb": honest_peak_mb(best),
        "peak_kind": "PSS" if best.get("peak_pss_mb") else "RSS",
        "budget_mb": round(budget_mb),
        "memory_limit_gb": memory_limit_gb,
        "alike": list(plan.indistinguishable),
    }


def sweep_conclusion(
    table: Sequence[Mapping[str, Any]],
    memory_limit_gb: float,
    noise: Mapping[str, Any] | None = None,
) -> str:
    """A short written conclusion computed from a bench table (Markdown); ``noise`` is the
    bench's noise summary, whose warning comes first when the machine was busy."""
    rec = recommend(table, memory_limit_gb)
    lines = []
    warning = (noise or {}).get("warning")
    if warning:
        lines.append(f"**{warning}**\n")
    if rec["workers"] is None:
        lines.append(f"**No measured worker count fits the limit**: {rec['reason']}.")
    else:
        lines.append(
            f"**Recommended: {rec['workers']} worker(s)**"
            + (f" with {rec['engine']}" if rec.get("engine") else "")
            + f" for a {memory_limit_gb:g} GB limit: "
            f"{rec['pages_per_s_text']} pages/s"
            + (f", {rec['speedup']:.2f}x one worker" if rec.get("speedup") else "")
            + f", peak {rec['peak_mb']:.0f} MB {rec['peak_kind']} (RSS "
            f"{rec['peak_rss_mb']:.0f} MB) of the {rec['budget_mb']} MB budget "
            "(80% of the limit)."
        )
        if "[" not in rec["pages_per_s_text"]:
            lines.append(
                "\nOne run per worker count: no interval, so this run cannot tell the counts "
                "apart (bench with --repeats 3 or more).\n"
            )
        elif rec["alike"]:
            lines.append(
                f"\n{', '.join(map(str, rec['alike']))} worker(s) cannot be told apart from "
                f"{rec['workers']} in throughput: their intervals over the repeats overlap. "
                "More repeats on a quieter machine would separate them.\n"
            )
    for row in table:
        if row.get("vs_cli"):
            cpu = (
                f", Tesseract {row['cpu_s_per_page']:.2f} CPU s/page"
                if row.get("cpu_s_per_page")
                else ""
            )
            lines.append(
                f"- {row.get('engine', 'ocrlab')}, {row['workers']} worker(s): "
                f"{row['vs_cli']:.2f}x the throughput of "
                f"the Tesseract CLI at the same N, efficiency "
                f"{row['efficiency']:.0%}{cpu}, output identical: "
                f"{'yes' if row['identical'] else 'NO'}."
            )
    if any(not r["identical"] for r in table):
        lines.append("**Warning: some parallel runs differ from the 1-worker run.**")
    return "\n".join(lines)
