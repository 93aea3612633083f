"""Sizing from measurements: ``ocrlab plan --bench bench-out --memory 8G --cores 4``.

The question an engineer sizing an OCR service asks is "in a container of M GB and C
cores, how many workers, how many pages an hour, and what peak memory?". The answer
here comes only from a bench (or sweep) that was measured, with the intervals of its
repeats, and says where it stops:

* a worker count is a candidate when it was measured, is at most the container's
  cores (Tesseract is single-threaded in each worker: more workers than cores only
  queue) and at most the CPUs of the machine it was measured on (a count above those
  measured the measuring machine's queue, not what C cores would give);
* it fits when its highest measured peak of the tree's PSS (RSS when PSS was not
  measured: an overstatement) is within ``headroom`` (80%) of the memory;
* the recommendation is the fitting candidate with the highest median throughput; the
  counts whose throughput intervals overlap it are named as indistinguishable;
* beyond the measured counts nothing is claimed: with ``extrapolate`` a linear estimate
  is added and labelled as such (throughput per worker of the largest candidate times
  the count, an upper bound; memory from a straight line through the measured peaks).

The peaks are those of the benchmark's pages: larger pages need more memory per
Tesseract, so benchmark on pages like the ones the service will read.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .bench_table import interval_of, load_result
from .stats import Interval, bootstrap

HEADROOM = 0.8


def parse_memory(text: str) -> float:
    """``8G``, ``512M``, ``8GB``, ``1.5g`` or a bare number of GB, to MB."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([gGmMtT]?)[iI]?[bB]?\s*", text)
    if not m:
        raise ValueError(f"memory {text!r} must look like 8G, 512M or 1.5 (GB)")
    value, unit = float(m[1]), m[2].lower() or "g"
    return value * {"m": 1.0, "g": 1024.0, "t": 1024.0**2}[unit]


@dataclass(frozen=True)
class WorkerFigures:
    """What was measured (or, ``extrapolated``, estimated) at one worker count."""

    workers: int
    pages_per_s: Interval
    peak_mb: Interval  #: estimate: the highest peak over the repeats; low-high: their range
    peak_kind: str  #: "PSS" or "RSS"
    cpu_s_per_page: Interval | None = None
    extrapolated: bool = False

    @property
    def pages_per_hour(self) -> Interval:
        return self.pages_per_s.scaled(3600)


@dataclass(frozen=True)
class CapacityPlan:
    memory_mb: float
    cores: int
    headroom: float
    source: str
    engine: str | None
    measured_cpus: int | None
    measured: tuple[WorkerFigures, ...]
    chosen: WorkerFigures | None
    indistinguishable: tuple[int, ...] = ()
    estimate: WorkerFigures | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: the noise warning of the measurements (:mod:`ocrlab.lab.noise`), shown first
    warning: str | None = None

    @property
    def budget_mb(self) -> float:
        return self.memory_mb * self.headroom

    def text(self) -> str:
        """The answer for a person (Markdown-friendly plain text)."""
        head = (
            f"Container: {self.memory_mb / 1024:.3g} GB, {self.cores} core(s); memory budget "
            f"{self.budget_mb:.0f} MB ({self.headroom:.0%}). Measured: {self.source}"
            + (f" ({self.engine})" if self.engine else "")
            + (f", on a machine with {self.measured_cpus} CPU(s)" if self.measured_cpus else "")
            + "."
        )
        lines = [head, *([self.warning] if self.warning else [])]
        if self.chosen is None:
            lines.append("No measured worker count fits this container.")
        else:
            c = self.chosen
            lines.append(
                f"Recommended: {c.workers} worker(s): {c.pages_per_hour.format('.0f')} pages/hour "
                + (
                    "(95% interval over the repeats)"
                    if c.pages_per_s.finite
                    else "(one run: no interval)"
                )
                + f", peak {c.peak_kind} {c.peak_mb.estimate:.0f} MB "
                f"(runs {c.peak_mb.low or c.peak_mb.estimate:.0f}-"
                f"{c.peak_mb.high or c.peak_mb.estimate:.0f} MB)"
                + (
                    f", Tesseract {c.cpu_s_per_page.format('.2f')} CPU s/page"
                    if c.cpu_s_per_page
                    else ""
                )
                + "."
            )
            if self.indistinguishable:
                counts = ", ".join(str(n) for n in self.indistinguishable)
                lines.append(
                    f"{counts} worker(s) cannot be told apart from {c.workers} on these "
                    "measurements (their throughput intervals overlap); more repeats on a "
                    "quieter machine would separate them, or choose the smaller for less memory."
                )
        lines.extend(self.notes)
        if self.estimate is not None:
            e = self.estimate
            lines.append(
                f"EXTRAPOLATED, not measured: {e.workers} worker(s) would give at most "
                f"{e.pages_per_hour.format('.0f')} pages/hour (the best measured throughput per "
                "worker times the count, which real runs do not reach) and need about "
                f"{e.peak_mb.estimate:.0f} MB {e.peak_kind}."
            )
        return "\n".join(lines)


def _bench_figures(
    table: Sequence[Mapping[str, Any]], engine: str | None
) -> tuple[str | None, list[WorkerFigures]]:
    engines = list(dict.fromkeys(r.get("engine") for r in table))
    if engine is None:
        engine = engines[0]
    elif engine not in engines:
        raise ValueError(
            f"engine {engine!r} is not in the bench; it has {', '.join(map(str, engines))}"
        )
    out = []
    for row in (r for r in table if r.get("engine") == engine):
        rate = interval_of(row, "pages_per_s")
        if rate is None:
            continue
        kind = "PSS" if row.get("peak_pss_mb") else "RSS"
        top = float(row.get("peak_pss_mb") or row.get("peak_rss_mb") or 0)
        low = float(row.get("peak_pss_min_mb") or top) if kind == "PSS" else top
        out.append(
            WorkerFigures(
                int(row["workers"]),
                rate,
                Interval(top, low, top, int(row.get("runs", 1))),
                kind,
                interval_of(row, "cpu_s_per_page"),
            )
        )
    return engine, sorted(out, key=lambda f: f.workers)


def _sweep_figures(
    data: Mapping[str, Any], label: str | None
) -> tuple[str | None, list[WorkerFigures]]:
    table = data["table"]
    wanted = label or data.get("default_label")
    row = next((r for r in table if r["label"] == wanted), table[0] if table else None)
    if row is None:
        return None, []
    runs = row["runs_pages_per_s"]
    runs = json.loads(runs) if isinstance(runs, str) else runs
    peak = float(row.get("peak_rss_mb") or 0)
    figures = WorkerFigures(
        int(row["workers"]), bootstrap(runs), Interval(peak, peak, peak, len(runs)), "RSS"
    )
    return str(row["label"]), [figures]


def load_measurements(path: str | os.PathLike[str]) -> tuple[dict[str, Any], str]:
    """A bench's or sweep's result: from a folder holding ``bench.json`` / ``sweep.json``
    or the file itself. Raises :class:`FileNotFoundError` / :class:`ValueError`."""
    return load_result(path, ("bench.json", "sweep.json"))


def _memory_line(points: Sequence[WorkerFigures]) -> tuple[float, float]:
    """(fixed MB, MB per worker) of a least-squares line through the measured peaks; with
    one point, no fixed part (an overestimate per worker)."""
    if len(points) < 2:
        only = points[0]
        return 0.0, only.peak_mb.estimate / only.workers
    xs = [float(p.workers) for p in points]
    ys = [p.peak_mb.estimate for p in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    slope = max(slope, 0.0)
    return my - slope * mx, slope


def plan_capacity(
    data: Mapping[str, Any],
    memory_mb: float,
    cores: int,
    *,
    headroom: float = HEADROOM,
    engine: str | None = None,
    extrapolate: bool = False,
    source: str = "bench",
) -> CapacityPlan:
    """The plan for a container of ``memory_mb`` and ``cores`` from a bench or sweep result."""
    if cores < 1 or memory_mb <= 0:
        raise ValueError(f"cores={cores} and memory={memory_mb} MB must be positive")
    if "default_label" in data:  # a sweep.json: one worker count, settings side by side
        engine, figures = _sweep_figures(data, engine)
    else:
        engine, figures = _bench_figures(data["table"], engine)
    meta = data.get("meta") or {}
    cpus = meta.get("usable_cpus") or meta.get("cpu_count")
    budget = memory_mb * headroom
    notes: list[str] = []
    usable = [f for f in figures if f.workers <= cores and (cpus is None or f.workers <= cpus)]
    over = [f.workers for f in figures if cpus is not None and f.workers > cpus]
    if over:
        notes.append(
            f"Not used: {', '.join(map(str, over))} worker(s), measured on {cpus} CPU(s), "
            "measured a queue, not what more cores would give."
        )
    fitting = [f for f in usable if f.peak_mb.estimate <= budget]
    too_big = [f.workers for f in usable if f.peak_mb.estimate > budget]
    if too_big:
        notes.append(f"Over the memory budget: {', '.join(map(str, too_big))} worker(s).")
    chosen = max(fitting, key=lambda f: f.pages_per_s.estimate, default=None)
    alike = tuple(
        f.workers
        for f in fitting
        if chosen is not None
        and f is not chosen
        and f.pages_per_s.finite
        and chosen.pages_per_s.finite
        and f.pages_per_s.overlaps(chosen.pages_per_s)
    )
    top = max((f.workers for f in usable), default=0)
    base, per_worker = _memory_line(figures) if figures else (0.0, 0.0)
    fits_n = int((budget - base) // per_worker) if per_worker > 0 else cores
    reach = min(cores, max(fits_n, 0))
    estimate = None
    if reach > top and usable:
        notes.append(
            f"{cores} core(s) could run up to {reach} worker(s) within the memory budget, but "
            f"only up to {top} were measured"
            + (f" (on {cpus} CPU(s))" if cpus else "")
            + ": run 'ocrlab bench --workers 1,...,"
            f"{reach}' on a machine like the container"
            + ("." if extrapolate else ", or pass --extrapolate for a labelled estimate.")
        )
        if extrapolate:  # the best throughput per worker, times the count: the upper bound
            ref = max(usable, key=lambda f: f.pages_per_s.estimate / f.workers)
            estimate = WorkerFigures(
                reach,
                ref.pages_per_s.scaled(reach / ref.workers),
                Interval(base + per_worker * reach, None, None, 0),
                ref.peak_kind,
                ref.cpu_s_per_page,
                extrapolated=True,
            )
    if any(f.pages_per_s.n < 2 for f in usable):
        notes.append("One run per worker count: no interval; bench with --repeats 3 or more.")
    return CapacityPlan(
        memory_mb,
        cores,
        headroom,
        source,
        engine,
        cpus,
        tuple(figures),
        chosen,
        alike,
        estimate,
        tuple(notes),
        (data.get("noise") or {}).get("warning"),
    )
