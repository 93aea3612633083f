"""The time signals of ``ocrlab bench --compare`` (:mod:`ocrlab.lab.regress`): each run's
wall time (or wall time over the Tesseract CLI's right after it) and its wall time per
second of Tesseract CPU, each divided by the baseline's median at the same engine and
worker count, judged by a rank test with the machine's load beside (see that module's doc
for why each is judged as it is)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from .stats import Interval, RankTest, bootstrap_ratio, mann_whitney, min_p_value

ALPHA = 0.01
MAX_SLOWDOWN = 0.05
#: Other processes' extra share of the CPUs in the new runs above which a slowdown is
#: put down to the machine rather than the code.
LOAD_MARGIN = 0.10
#: Runnable tasks per CPU in the new runs over the baseline's above which (on a machine
#: with more runnable tasks than CPUs) a slowdown is put down to the machine.
QUEUE_RISE = 1.2


@dataclass(frozen=True)
class TimeCheck:
    """The new bench's wall time over the baseline's at one worker count (or pooled)."""

    label: str
    ratio: Interval  #: median new / median baseline (> 1 is slower), 95% interval
    strict: Interval  #: the same at the gate's confidence (1 - alpha)
    test: RankTest | None  #: new runs against the baseline's
    base_load: float | None  #: other processes' median share of the CPUs
    new_load: float | None
    base_queue: float | None = None  #: median runnable tasks per CPU
    new_queue: float | None = None
    #: times relative to the Tesseract CLI run right after each run (the machine's speed at
    #: that moment), not bare wall times
    calibrated: bool = False

    @property
    def load_rise(self) -> float:
        if self.base_load is None or self.new_load is None:
            return 0.0
        return self.new_load - self.base_load

    def busier(self, new: bool = True) -> str | None:
        """Why the new runs (``new=False``: the baseline's) saw a busier machine than the
        other side's, or None. Asked of calibrated times too: measured here, ocrlab's time
        over the CLI's itself moved by about 10% between a run queue of 8 and of 12 tasks
        per CPU (ocrlab bundles small pages, the CLI starts a process per file), so the
        calibration takes out most of the load, not all of it."""
        rise = self.load_rise if new else -self.load_rise
        if rise > LOAD_MARGIN:
            return f"other processes took {rise:.0%} more of the CPUs"
        before, after = (
            (self.base_queue, self.new_queue) if new else (self.new_queue, self.base_queue)
        )
        if before and after and after > 1.0 and after > QUEUE_RISE * before:
            return f"the run queue grew from {before:.2f} to {after:.2f} runnable tasks per CPU"
        return None

    def significant(self, alpha: float, slower: bool = True) -> bool:
        """Slower (or, ``slower=False``, faster) beyond chance: Mann-Whitney where the
        sample sizes can reach ``alpha``, else the whole (1 - alpha) interval of the ratio
        on that side of 1."""
        if self.test is not None and min_p_value(self.test.n_a, self.test.n_b) < alpha:
            shifted = self.test.effect > 0.5 if slower else self.test.effect < 0.5
            return self.test.p < alpha and shifted
        if slower:
            return self.strict.low is not None and self.strict.low > 1.0
        return self.strict.high is not None and self.strict.high < 1.0


def describe(check: TimeCheck) -> str:
    p = "" if check.test is None else f", Mann-Whitney p={check.test.p:.3g}"
    load = (
        ""
        if check.base_load is None or check.new_load is None
        else f", other processes {check.base_load:.0%} -> {check.new_load:.0%} of the CPUs"
    )
    if check.base_queue is not None and check.new_queue is not None:
        load += f", runnable per CPU {check.base_queue:.2f} -> {check.new_queue:.2f}"
    return f"{check.label}: time x{check.ratio.format('.3f')} (95%){p}{load}"


def times(
    runs: Sequence[Mapping[str, Any]], cli: Sequence[Mapping[str, Any]]
) -> list[float] | None:
    """Each run's wall time over the wall time of the Tesseract CLI timed right after it
    on the same pages (same worker count and repeat), or None when a run has no CLI run."""
    after = {r["repeat"]: r["wall_s"] for r in cli}
    if not runs or any(r["repeat"] not in after for r in runs):
        return None
    return [r["wall_s"] / after[r["repeat"]] for r in runs]


def per_cpu(runs: Sequence[Mapping[str, Any]]) -> list[float] | None:
    """Each run's wall time per second of Tesseract CPU, or None when a run lacks it."""
    if not runs or any(not r.get("engine_cpu_s") for r in runs):
        return None
    return [r["wall_s"] / r["engine_cpu_s"] for r in runs]


def machine_load(runs: Sequence[Mapping[str, Any]]) -> tuple[float | None, float | None]:
    """(other processes' median CPU share, median runnable tasks per CPU) of the runs."""
    shares = [r["noise"]["other_share"] for r in runs if r.get("noise")]
    queues = [
        r["noise"]["runnable_per_cpu"]
        for r in runs
        if r.get("noise") and r["noise"].get("runnable_per_cpu") is not None
    ]
    return (median(shares) if shares else None, median(queues) if queues else None)


def time_check(
    label: str,
    base: Sequence[float],
    new: Sequence[float],
    runs: tuple[Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]]],
    alpha: float,
    calibrated: bool = False,
) -> TimeCheck:
    test = mann_whitney(new, base) if len(base) >= 2 and len(new) >= 2 else None
    (load_b, queue_b), (load_n, queue_n) = machine_load(runs[0]), machine_load(runs[1])
    return TimeCheck(
        label,
        bootstrap_ratio(new, base),
        bootstrap_ratio(new, base, confidence=1 - alpha),
        test,
        load_b,
        load_n,
        queue_b,
        queue_n,
        calibrated,
    )


@dataclass
class Signal:
    """One time signal's runs, each divided by the baseline's median at its engine and
    worker count, per count and pooled over the counts."""

    what: str
    checks: list[TimeCheck] = field(default_factory=list)
    base: list[float] = field(default_factory=list)
    new: list[float] = field(default_factory=list)
    runs_b: list[Mapping[str, Any]] = field(default_factory=list)
    runs_n: list[Mapping[str, Any]] = field(default_factory=list)
    missing: bool = False

    def add(
        self,
        label: str,
        tb: Sequence[float],
        tn: Sequence[float],
        rb: Sequence[Mapping[str, Any]],
        rn: Sequence[Mapping[str, Any]],
        alpha: float,
        calibrated: bool,
    ) -> None:
        mid = median(tb)
        wb, wn = [t / mid for t in tb], [t / mid for t in tn]
        self.base += wb
        self.new += wn
        self.runs_b += rb
        self.runs_n += rn
        self.checks.append(time_check(label, wb, wn, (rb, rn), alpha, calibrated))

    def pool(self, alpha: float) -> TimeCheck | None:
        if not self.checks:
            return None
        calibrated = all(c.calibrated for c in self.checks)
        label = "all counts" + self.what
        return time_check(label, self.base, self.new, (self.runs_b, self.runs_n), alpha, calibrated)


def judge(
    pooled: TimeCheck,
    what: str,
    max_slowdown: float,
    alpha: float,
    regressions: list[str],
    notes: list[str],
) -> None:
    """A pooled signal's verdict: a regression only when slower by more than
    ``max_slowdown``, significant at ``alpha`` and not the machine's doing."""
    slower = pooled.ratio.estimate > 1 + max_slowdown
    if slower and pooled.significant(alpha):
        busier = pooled.busier()
        if busier:
            notes.append(
                f"slower ({what} x{pooled.ratio.estimate:.3f}), but the machine was busier "
                f"during the new runs ({busier}): not attributed to the change; rerun on "
                "a quieter machine to tell"
            )
        else:
            regressions.append(
                f"slower: {what} x{pooled.ratio.format('.3f')} over the baseline "
                f"(more than {max_slowdown:.0%}, significant at {alpha:g})"
            )
    elif slower:
        runs = (
            ""
            if pooled.test is None
            else (f" with {pooled.test.n_a} run(s) against {pooled.test.n_b}")
        )
        notes.append(
            f"{what} x{pooled.ratio.estimate:.3f}, not significant at {alpha:g}{runs}: "
            "within the noise"
        )
    elif pooled.ratio.estimate < 1 - max_slowdown and pooled.significant(alpha, False):
        busier = pooled.busier(new=False)
        notes.append(
            f"faster: {what} x{pooled.ratio.format('.3f')}"
            + (f", but the baseline's machine was busier ({busier})" if busier else "")
        )
