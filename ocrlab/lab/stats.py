"""Intervals and tests for timings measured a few times on a noisy machine.

Why these methods:

* **Bootstrap percentile intervals** (resampling the repeats, or the pages): they assume
  no distribution, and timings on a shared machine are skewed (a neighbour only ever
  slows a run down). The statistic is the median by default, so that one run hit by a
  burst of load moves the interval, not the estimate. The resampling is seeded: the
  same figures always give the same interval. Small samples are the weakness of every
  method; here, with 3 repeats the 95% interval of a median is the range of the runs
  (its true coverage is about 75%), so say "the runs ranged over" rather than read it
  as a precise 95%. One run gives no interval (``low`` and ``high`` are None).
* **Paired resampling** for ratios measured side by side (a worker count and the
  1-worker run of the same repeat, ocrlab and the Tesseract CLI right after it): the
  pair shares the machine's state, so resampling pairs keeps what the pairing cancels.
* **Mann-Whitney U**, exact from the distribution of U for small samples without ties
  (the normal approximation with tie correction otherwise), so that "significant" means
  the same at 3 repeats as at 30. Note what it can say: with 3 against 3 runs the
  smallest two-sided p is 0.1 (:func:`min_p_value`), so three repeats can never be
  significant at 5% however far apart they are; the bench comparison then relies on
  the per-page intervals.

scipy is not a dependency of ocrlab, so the test is implemented here (and checked
against exact enumeration in the tests).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 4000
SEED = 20240521

Statistic = Callable[[Any], Any]

_STATISTICS: dict[str, Statistic] = {
    "median": lambda a: np.median(a, axis=-1),
    "mean": lambda a: np.mean(a, axis=-1),
}


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval (``low``/``high`` None: no interval, n < 2)."""

    estimate: float
    low: float | None
    high: float | None
    n: int
    confidence: float = CONFIDENCE

    @property
    def finite(self) -> bool:
        return self.low is not None and self.high is not None

    def contains(self, value: float) -> bool:
        return self.finite and self.low <= value <= self.high  # type: ignore[operator]

    def overlaps(self, other: Interval) -> bool:
        """Whether two intervals share a value. A side without an interval (one run)
        cannot be told apart from anything, so it counts as overlapping."""
        if not (self.finite and other.finite):
            return True
        return not (self.high < other.low or other.high < self.low)  # type: ignore[operator]

    def scaled(self, factor: float) -> Interval:
        """The same interval in other units (pages/s to pages/hour)."""
        return Interval(
            self.estimate * factor,
            None if self.low is None else self.low * factor,
            None if self.high is None else self.high * factor,
            self.n,
            self.confidence,
        )

    def format(self, spec: str = ".2f", unit: str = "") -> str:
        """``1.23 [1.10-1.35]``, or ``1.23`` without an interval."""
        head = f"{self.estimate:{spec}}{unit}"
        if not self.finite:
            return head
        return f"{head} [{self.low:{spec}}-{self.high:{spec}}]"

    def as_dict(self, digits: int = 4) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(float(v), digits)

        return {
            "estimate": r(self.estimate),
            "low": r(self.low),
            "high": r(self.high),
            "n": self.n,
            "confidence": self.confidence,
        }


def from_dict(d: dict[str, Any] | None) -> Interval | None:
    """An :class:`Interval` back from its ``as_dict()`` (a saved bench.json)."""
    if not d or d.get("estimate") is None:
        return None
    return Interval(d["estimate"], d.get("low"), d.get("high"), d.get("n", 0), d["confidence"])


def _resolve(statistic: str | Statistic) -> Statistic:
    return _STATISTICS[statistic] if isinstance(statistic, str) else statistic


def _percentiles(values: Any, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap(
    samples: Sequence[float],
    statistic: str | Statistic = "median",
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Interval:
    """The statistic of ``samples`` and its bootstrap percentile interval."""
    data = np.asarray(samples, dtype=float)
    if data.size == 0:
        raise ValueError("bootstrap needs at least one sample, got none")
    stat = _resolve(statistic)
    estimate = float(stat(data))
    if data.size < 2:
        return Interval(estimate, None, None, int(data.size), confidence)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, data.size, size=(resamples, data.size))
    low, high = _percentiles(stat(data[idx]), confidence)
    return Interval(estimate, min(low, estimate), max(high, estimate), int(data.size), confidence)


def bootstrap_ratio(
    numerator: Sequence[float],
    denominator: Sequence[float],
    statistic: str | Statistic = "median",
    *,
    paired: bool = False,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Interval:
    """statistic(numerator) / statistic(denominator), with its bootstrap interval.

    ``paired``: ``numerator[i]`` and ``denominator[i]`` were measured together, and the
    statistic is taken of the per-pair ratios (resampling pairs); otherwise the two
    samples are resampled independently and the ratio is of their statistics.
    """
    num = np.asarray(numerator, dtype=float)
    den = np.asarray(denominator, dtype=float)
    if num.size == 0 or den.size == 0:
        raise ValueError(f"a ratio needs samples on both sides, got {num.size} and {den.size}")
    stat = _resolve(statistic)
    rng = np.random.default_rng(seed)
    if paired:
        if num.size != den.size:
            raise ValueError(f"paired samples must have one size, got {num.size}, {den.size}")
        return bootstrap(
            num / den, statistic, confidence=confidence, resamples=resamples, seed=seed
        )
    estimate = float(stat(num) / stat(den))
    if num.size < 2 and den.size < 2:
        return Interval(estimate, None, None, min(num.size, den.size), confidence)
    top = stat(num[rng.integers(0, num.size, size=(resamples, num.size))])
    bottom = stat(den[rng.integers(0, den.size, size=(resamples, den.size))])
    low, high = _percentiles(top / bottom, confidence)
    n = min(num.size, den.size)
    return Interval(estimate, min(low, estimate), max(high, estimate), int(n), confidence)


@dataclass(frozen=True)
class RankTest:
    """Mann-Whitney U of sample ``a`` against ``b`` (two-sided)."""

    u: float  #: U of ``a``: pairs (x in a, y in b) with x > y, ties counting one half
    p: float
    exact: bool
    n_a: int
    n_b: int

    @property
    def effect(self) -> float:
        """P(a random x of a exceeds a random y of b): 0.5 = no shift."""
        return self.u / (self.n_a * self.n_b)


@lru_cache(maxsize=256)
def _u_counts(m: int, n: int) -> tuple[int, ...]:
    """How many of the C(m+n, m) orderings give each U = 0..m*n (no ties)."""
    if m == 0 or n == 0:
        return (1,)
    # f(m, n)[u] = f(m-1, n)[u-n] + f(m, n-1)[u]: the largest value is from a, or from b.
    with_a = _u_counts(m - 1, n)
    with_b = _u_counts(m, n - 1)
    out = [0] * (m * n + 1)
    for u, c in enumerate(with_a):
        out[u + n] += c
    for u, c in enumerate(with_b):
        out[u] += c
    return tuple(out)


def min_p_value(n_a: int, n_b: int) -> float:
    """The smallest two-sided p the exact test can give at these sample sizes."""
    if n_a == 0 or n_b == 0:
        return 1.0
    return min(1.0, 2 / math.comb(n_a + n_b, n_a))


def mann_whitney(a: Sequence[float], b: Sequence[float], exact_up_to: int = 50) -> RankTest:
    """Two-sided Mann-Whitney U test of whether ``a`` and ``b`` come from one distribution."""
    xs, ys = [float(v) for v in a], [float(v) for v in b]
    m, n = len(xs), len(ys)
    if m == 0 or n == 0:
        raise ValueError(f"Mann-Whitney needs two non-empty samples, got {m} and {n}")
    u = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in xs for y in ys)
    pooled = xs + ys
    ties = len(set(pooled)) < len(pooled)
    if not ties and m + n <= exact_up_to:
        counts = _u_counts(m, n)
        total = math.comb(m + n, m)
        k = round(u)
        low = sum(counts[: k + 1]) / total
        high = sum(counts[k:]) / total
        return RankTest(u, min(1.0, 2 * min(low, high)), True, m, n)
    # Normal approximation with the tie correction and a continuity correction.
    mean = m * n / 2
    groups: dict[float, int] = {}
    for v in pooled:
        groups[v] = groups.get(v, 0) + 1
    big = m + n
    tie_term = sum(t**3 - t for t in groups.values()) / (big * (big - 1))
    var = m * n / 12 * ((big + 1) - tie_term)
    if var <= 0:
        return RankTest(u, 1.0, False, m, n)
    z = (abs(u - mean) - 0.5) / math.sqrt(var)
    p = math.erfc(max(z, 0.0) / math.sqrt(2))
    return RankTest(u, min(1.0, p), False, m, n)
