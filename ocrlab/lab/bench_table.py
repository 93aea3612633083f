"""A bench's runs read as a table: medians with their intervals, ratios, the terminal form.

Apart from :mod:`ocrlab.lab.bench` (which runs the sweep) so that a saved
``bench.json`` can be read, compared and planned from without running anything.

Every timing figure comes with its interval over the repeats (:mod:`ocrlab.lab.stats`):
``pages_per_s_low`` / ``_high`` beside ``pages_per_s``, and so on. Ratios measured side
by side are paired by repeat: the speedup of repeat *r* is the 1-worker wall time of
repeat *r* over the N-worker one, ``vs_cli`` is the CLI's wall time right after the run
over the run's. Tesseract's CPU seconds per page (the engine's children, measured by
the worker) sit beside the wall-clock figures: they hardly grow when other processes
compete for the CPUs, where wall time does, so they are the figure to compare between
machines or between a busy and a quiet hour.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engines.registry import engine_version
from .stats import Interval, bootstrap, bootstrap_ratio


@dataclass
class RunRow:
    """One measured run (ocrlab at N workers, or the CLI reference at N processes)."""

    kind: str  # "ocrlab" or "cli"
    workers: int
    repeat: int
    wall_s: float
    pages: int
    pages_failed: int = 0
    page_s: list[float] = field(default_factory=list)
    peak_rss: int = 0
    peak_hwm: int = 0
    #: tree PSS / USS peaks (what the run costs the machine; RSS counts shared pages per process)
    peak_pss: int = 0
    peak_uss: int = 0
    peak_fds: int = 0
    peak_tesseract: int = 0
    startup_s: float | None = None
    identical: bool | None = None
    engine: str = "tesseract CLI"
    cer: float | None = None
    #: seconds per page keyed ``doc_id#page`` (trace spans; the CLI's process per file)
    page_times: dict[str, float] = field(default_factory=dict)
    #: Tesseract's CPU seconds over the run (the engine's child processes), 0 if unknown
    engine_cpu_s: float = 0.0
    #: how busy the machine was during this run (:class:`ocrlab.lab.noise.NoiseReading`)
    noise: dict[str, Any] | None = None


def page_key(doc_id: str, page: int) -> str:
    return f"{doc_id}#{page}"


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[idx]


def _with_interval(row: dict[str, Any], name: str, value: Interval | None, digits: int = 3) -> None:
    """``name``, ``name_low``, ``name_high`` as flat columns (CSV and DataFrames read them)."""
    if value is None:
        row[name] = row[f"{name}_low"] = row[f"{name}_high"] = None
        return
    row[name] = round(value.estimate, digits)
    row[f"{name}_low"] = None if value.low is None else round(value.low, digits)
    row[f"{name}_high"] = None if value.high is None else round(value.high, digits)


def _paired(rows_a: Sequence[RunRow], rows_b: Sequence[RunRow]) -> tuple[list[float], list[float]]:
    """Wall times of ``rows_a`` and ``rows_b`` taken in the same repeat, in repeat order."""
    by_repeat = {r.repeat: r.wall_s for r in rows_b}
    pairs = [(r.wall_s, by_repeat[r.repeat]) for r in rows_a if r.repeat in by_repeat]
    return [a for a, _ in pairs], [b for _, b in pairs]


def _cpu_per_page(rows: Sequence[RunRow]) -> Interval | None:
    values = [r.engine_cpu_s / r.pages for r in rows if r.engine_cpu_s > 0 and r.pages]
    return bootstrap(values) if values else None


def aggregate(rows: Sequence[RunRow]) -> list[dict[str, Any]]:
    """One line per (engine, worker count): medians over repeats with their intervals,
    ratios against the same engine at 1 worker and against the Tesseract CLI at the same N."""
    ocr = [r for r in rows if r.kind == "ocrlab"]
    cli_rows = [r for r in rows if r.kind == "cli"]
    table = []
    for engine in dict.fromkeys(r.engine for r in ocr):
        mine_all = [r for r in ocr if r.engine == engine]
        counts = sorted({r.workers for r in mine_all})
        ones = [r for r in mine_all if r.workers == 1]
        for n in counts:
            mine = [r for r in mine_all if r.workers == n]
            pages = mine[0].pages
            walls = [r.wall_s for r in mine]
            wall = statistics.median(walls)
            per_page = [s for r in mine for s in r.page_s]
            refs = [r for r in cli_rows if r.workers == n]
            cli_wall = statistics.median(r.wall_s for r in refs) if refs else None
            cers = [r.cer for r in mine if r.cer is not None]
            row: dict[str, Any] = {
                "engine": engine,
                "engine_version": engine_version(engine),
                "workers": n,
                "runs": len(mine),
                "pages": pages,
                "wall_s": round(wall, 3),
                "wall_spread_s": round(max(walls) - min(walls), 3),
            }
            _with_interval(row, "pages_per_s", bootstrap([r.pages / r.wall_s for r in mine]))
            one, this = _paired(ones, mine)
            _with_interval(row, "speedup", bootstrap_ratio(one, this, paired=True) if one else None)
            row["efficiency"] = round(row["speedup"] / n, 3) if row["speedup"] else None
            _with_interval(row, "cpu_s_per_page", _cpu_per_page(mine))
            row.update(
                {
                    "page_median_s": round(statistics.median(per_page), 3) if per_page else None,
                    "page_p10_s": round(_percentile(per_page, 0.1), 3) if per_page else None,
                    "page_p90_s": round(_percentile(per_page, 0.9), 3) if per_page else None,
                    "peak_rss_mb": round(max(r.peak_rss for r in mine) / 2**20, 1),
                    "peak_hwm_mb": round(max(r.peak_hwm for r in mine) / 2**20, 1),
                    "peak_pss_mb": round(max(r.peak_pss for r in mine) / 2**20, 1),
                    "peak_pss_min_mb": round(min(r.peak_pss for r in mine) / 2**20, 1),
                    "peak_uss_mb": round(max(r.peak_uss for r in mine) / 2**20, 1),
                    "peak_fds": max(r.peak_fds for r in mine),
                    "peak_tesseract": max(r.peak_tesseract for r in mine),
                    "startup_s": round(max(r.startup_s or 0 for r in mine), 3),
                    "identical": all(r.identical for r in mine if r.identical is not None),
                    "cer": round(statistics.mean(cers), 5) if cers else None,
                    "cli_wall_s": round(cli_wall, 3) if cli_wall else None,
                    "cli_peak_rss_mb": round(max(r.peak_rss for r in refs) / 2**20, 1)
                    if refs
                    else None,
                    "cli_peak_pss_mb": round(max(r.peak_pss for r in refs) / 2**20, 1)
                    if refs
                    else None,
                    "cli_pages_per_s": round(refs[0].pages / cli_wall, 3) if cli_wall else None,
                    "other_share_max": max(
                        (r.noise["other_share"] for r in mine if r.noise), default=None
                    ),
                }
            )
            cli_w, mine_w = _paired(refs, mine)
            _with_interval(
                row, "vs_cli", bootstrap_ratio(cli_w, mine_w, paired=True) if cli_w else None
            )
            table.append(row)
    return table


def interval_of(row: Mapping[str, Any], name: str) -> Interval | None:
    """A table row's ``name`` with its interval back as an :class:`Interval`."""
    if row.get(name) is None:
        return None
    return Interval(
        float(row[name]), row.get(f"{name}_low"), row.get(f"{name}_high"), int(row.get("runs", 0))
    )


def _cell(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if row.get(f"{key}_low") is not None and row.get(f"{key}_high") is not None:
        return f"{value:.2f}~{row[f'{key}_low']:.2f}-{row[f'{key}_high']:.2f}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def format_table(table: Sequence[Mapping[str, Any]]) -> str:
    """A fixed-width table for the terminal; ``X~L-H`` is a median and its interval."""
    cols = [
        ("engine", "engine", 12),
        ("workers", "N", 3),
        ("wall_s", "wall s", 7),
        ("pages_per_s", "pages/s [95%]", 16),
        ("speedup", "speedup [95%]", 16),
        ("efficiency", "effic.", 6),
        ("cpu_s_per_page", "tess CPU s/page", 16),
        ("page_median_s", "page med s", 10),
        ("peak_pss_mb", "PSS MB", 7),
        ("peak_rss_mb", "RSS MB", 7),
        ("peak_tesseract", "tess", 4),
        ("identical", "same", 4),
        ("cer", "CER", 7),
        ("vs_cli", "vs CLI [95%]", 16),
    ]
    head = " ".join(f"{label:>{w}}" for _, label, w in cols)
    lines = [head, "-" * len(head)]
    for row in table:
        lines.append(" ".join(f"{_cell(row, key):>{w}}" for key, _, w in cols))
    lines.append(
        "X~L-H: median of the repeats and its 95% bootstrap interval (with 3 repeats, "
        "the range of the runs); tess CPU s/page: Tesseract's own CPU time, which other "
        "processes' load hardly changes."
    )
    return "\n".join(lines)


def load_result(
    path: str | os.PathLike[str], names: Sequence[str] = ("bench.json",)
) -> tuple[dict[str, Any], str]:
    """A saved result (``bench.json``, or one of ``names``) from its folder or the file
    itself, and the file's path. Raises :class:`FileNotFoundError` or :class:`ValueError`
    naming what is wrong."""
    p = Path(path)
    if p.is_dir():
        found = [p / n for n in names if (p / n).is_file()]
        if not found:
            raise FileNotFoundError(f"{str(p)!r} holds no {' or '.join(names)}")
        p = found[0]
    elif not p.is_file():
        raise FileNotFoundError(f"{str(p)!r} does not exist")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{p} is not JSON: {exc}") from None
    if not isinstance(data, dict) or "table" not in data:
        raise ValueError(f"{p} is not an ocrlab {' or '.join(names)} (it has no 'table')")
    return data, str(p)
