"""Intervals and the rank test (ocrlab.lab.stats), on synthetic samples with a known truth."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from ocrlab.lab.stats import (
    Interval,
    bootstrap,
    bootstrap_ratio,
    mann_whitney,
    min_p_value,
)


def test_bootstrap_interval_contains_the_true_median_most_of_the_time() -> None:
    """Coverage on synthetic skewed timings (log-normal around 2 s, 20 runs each)."""
    rng = np.random.default_rng(7)
    truth = 2.0  # the median of 2 * lognormal(0, 0.1)
    trials = 200
    hits = 0
    for i in range(trials):
        sample = truth * rng.lognormal(0.0, 0.1, size=20)
        hits += bootstrap(sample, seed=i).contains(truth)
    assert 0.85 <= hits / trials <= 1.0, hits  # nominal 95%; percentile bootstrap runs a bit low


def test_bootstrap_of_one_run_has_no_interval_and_three_runs_a_finite_one() -> None:
    one = bootstrap([1.5])
    assert one.estimate == 1.5 and not one.finite and one.format() == "1.50"
    three = bootstrap([1.0, 1.2, 1.1])
    assert three.finite and three.low == 1.0 and three.high == 1.2  # the range of the runs
    assert three.format(".1f") == "1.1 [1.0-1.2]"
    assert bootstrap([1.0, 1.2, 1.1]) == three  # seeded: the same figures, the same interval
    with pytest.raises(ValueError, match="at least one"):
        bootstrap([])


def test_paired_ratio_keeps_what_the_pairing_cancels() -> None:
    """Both series drift together (a neighbour's load): the paired ratio stays tight,
    the unpaired one does not."""
    drift = np.array([1.0, 1.4, 0.8, 1.2, 0.9, 1.3])
    one, two = 10.0 * drift, 5.0 * drift * np.array([1.0, 1.01, 0.99, 1.0, 1.02, 0.98])
    paired = bootstrap_ratio(one, two, paired=True)
    unpaired = bootstrap_ratio(one, two)
    assert paired.contains(2.0) and unpaired.contains(2.0)
    assert (paired.high - paired.low) < 0.5 * (unpaired.high - unpaired.low)  # type: ignore[operator]
    with pytest.raises(ValueError, match="one size"):
        bootstrap_ratio([1.0, 2.0], [1.0], paired=True)


def _brute_force_p(a: list[float], b: list[float]) -> float:
    """The exact two-sided p by enumerating every split of the pooled values."""
    pooled = a + b
    u_of = lambda xs, ys: sum(x > y for x in xs for y in ys)  # noqa: E731
    observed = u_of(a, b)
    us = []
    for idx in itertools.combinations(range(len(pooled)), len(a)):
        xs = [pooled[i] for i in idx]
        ys = [pooled[i] for i in range(len(pooled)) if i not in idx]
        us.append(u_of(xs, ys))
    low = sum(u <= observed for u in us) / len(us)
    high = sum(u >= observed for u in us) / len(us)
    return min(1.0, 2 * min(low, high))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]),
        ([1.0, 5.0, 3.0, 7.0], [2.0, 4.0, 6.0]),
        ([0.3, 0.9, 0.1, 0.5, 0.7], [0.2, 0.4, 0.6, 0.8]),
    ],
)
def test_mann_whitney_exact_matches_enumeration(a: list[float], b: list[float]) -> None:
    test = mann_whitney(a, b)
    assert test.exact and test.p == pytest.approx(_brute_force_p(a, b))


def test_small_samples_cannot_be_significant_and_the_bound_says_so() -> None:
    assert min_p_value(3, 3) == pytest.approx(0.1)
    assert mann_whitney([1.0, 2.0, 3.0], [10.0, 11.0, 12.0]).p == pytest.approx(0.1)
    assert min_p_value(6, 6) == pytest.approx(2 / math.comb(12, 6))


def test_a_over_a_is_not_significant_and_a_shift_is() -> None:
    rng = np.random.default_rng(3)
    false_alarms = 0
    for _ in range(200):
        a, b = rng.lognormal(0, 0.1, 6), rng.lognormal(0, 0.1, 6)
        false_alarms += mann_whitney(a, b).p < 0.01
    assert false_alarms <= 6, false_alarms  # ~1% expected, 2 at most by chance mostly
    shifted = mann_whitney(rng.lognormal(np.log(1.3), 0.05, 8), rng.lognormal(0, 0.05, 8))
    assert shifted.p < 0.01 and shifted.effect > 0.9
    # ties use the normal approximation with the tie correction
    tied = mann_whitney([1.0, 1.0, 2.0, 2.0, 3.0] * 4, [2.0, 3.0, 3.0, 4.0, 4.0] * 4)
    assert not tied.exact and tied.p < 0.05


def test_interval_overlap_and_units() -> None:
    a = Interval(1.0, 0.9, 1.1, 3)
    assert a.overlaps(Interval(1.15, 1.05, 1.3, 3))
    assert not a.overlaps(Interval(1.3, 1.2, 1.4, 3))
    assert a.overlaps(Interval(5.0, None, None, 1))  # one run cannot be told apart
    hourly = a.scaled(3600)
    assert hourly.estimate == 3600 and hourly.low == pytest.approx(3240)
