"""``ocrlab bench ... --compare BASELINE``: a regression gate that does not cry wolf.

Two kinds of signal, judged differently:

* **Exact signals** are compared exactly: each engine's output digests (the text of
  every document), the CER against ground truth, the number of failed pages, and
  whether the parallel output equals the 1-worker output. Any change that is worse is
  a regression, whatever the noise: a machine's load does not change what Tesseract reads.
* **Time** is compared only with its noise. The unit of replication is the run, not
  the page: on a shared machine the pages of one run share its load, so a thousand
  pages are not a thousand independent samples. Where both benches timed the Tesseract
  CLI (the default), each run's time is taken relative to the CLI's run right after it
  on the same pages at the same N: the machine's speed at that moment, measured, so
  that a runner twice as busy today does not read as ocrlab twice as slow. Without it,
  bare wall times are compared (and said to be). Each run's time is divided by the
  baseline's median at the same engine and worker count, and the runs of all matched
  counts are pooled (a slower engine or package shows at every count). A slowdown
  fails the gate only when all three hold:

  1. it is significant: the exact two-sided Mann-Whitney test of the new runs against
     the baseline's has ``p < alpha`` (default 0.01: a gate run on every commit must
     rarely fail by chance), or, where the sample sizes cannot reach ``alpha`` (fewer
     than 4 runs a side), the 99% bootstrap interval of the ratio lies above 1;
  2. it matters: the median ratio exceeds ``1 + max_slowdown`` (default 5%);
  3. it is not the machine's doing: during the new runs other processes did not take
     markedly more of the CPUs than during the baseline's (more than :data:`LOAD_MARGIN`
     of them), and the run queue was not markedly longer (more than :data:`QUEUE_RISE`
     times as many runnable tasks per CPU, on a machine with more runnable tasks than
     CPUs), as :mod:`ocrlab.lab.noise` measured them. Otherwise the slowdown is reported
     as not attributable and the gate passes with a warning to rerun on a quieter
     machine: on a saturated machine other processes' share cannot grow any more, but
     the queue every task waits in does. This holds for times relative to the CLI too:
     they carry most of the machine's speed, not all of it.

Memory (peak PSS) is shown beside, not judged: it depends on which pages happened to
run together.
"""

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
_EPS = 1e-9


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


@dataclass(frozen=True)
class BenchComparison:
    """The verdict of ``--compare``: ``code`` 1 on a regression, and every finding."""

    code: int
    regressions: tuple[str, ...]
    notes: tuple[str, ...]
    checks: tuple[TimeCheck, ...] = field(default_factory=tuple)
    pooled: TimeCheck | None = None

    def text(self) -> str:
        lines = [f"compared with the baseline: {'REGRESSION' if self.code else 'no regression'}"]
        for check in self.checks:
            lines.append(f"  {_describe(check)}")
        if self.pooled is not None:
            lines.append(f"  pooled: {_describe(self.pooled)}")
        lines += [f"REGRESSION: {r}" for r in self.regressions]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        def check(c: TimeCheck) -> dict[str, Any]:
            return {
                "label": c.label,
                "ratio": c.ratio.as_dict(),
                "p": None if c.test is None else round(c.test.p, 5),
                "base_load": c.base_load,
                "new_load": c.new_load,
                "base_queue": c.base_queue,
                "new_queue": c.new_queue,
            }

        return {
            "code": self.code,
            "regressions": list(self.regressions),
            "notes": list(self.notes),
            "checks": [check(c) for c in self.checks],
            "pooled": check(self.pooled) if self.pooled else None,
        }


def _describe(check: TimeCheck) -> str:
    p = "" if check.test is None else f", Mann-Whitney p={check.test.p:.3g}"
    load = (
        ""
        if check.base_load is None or check.new_load is None
        else f", other processes {check.base_load:.0%} -> {check.new_load:.0%} of the CPUs"
    )
    if check.base_queue is not None and check.new_queue is not None:
        load += f", runnable per CPU {check.base_queue:.2f} -> {check.new_queue:.2f}"
    return f"{check.label}: time x{check.ratio.format('.3f')} (95%){p}{load}"


def _runs(bench: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [r for r in bench.get("runs", []) if r.get("kind") == "ocrlab"]


def _cli_runs(bench: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [r for r in bench.get("runs", []) if r.get("kind") == "cli"]


def _engine_pairs(
    base: Mapping[str, Any], new: Mapping[str, Any]
) -> tuple[list[tuple[str, str]], list[str]]:
    """(baseline engine, new engine) pairs: by name, or the only engine of each side."""
    eb = list(dict.fromkeys(r["engine"] for r in _runs(base)))
    en = list(dict.fromkeys(r["engine"] for r in _runs(new)))
    same = [(e, e) for e in eb if e in en]
    if same:
        return same, []
    if len(eb) == 1 and len(en) == 1:
        return [(eb[0], en[0])], [f"engines differ: {eb[0]} (baseline) against {en[0]} (new)"]
    return [], [f"no engine in common: baseline {eb}, new {en}; time not compared"]


def _times(
    runs: Sequence[Mapping[str, Any]], cli: Sequence[Mapping[str, Any]]
) -> list[float] | None:
    """Each run's wall time over the wall time of the Tesseract CLI timed right after it
    on the same pages (same worker count and repeat), or None when a run has no CLI run."""
    after = {r["repeat"]: r["wall_s"] for r in cli}
    if not runs or any(r["repeat"] not in after for r in runs):
        return None
    return [r["wall_s"] / after[r["repeat"]] for r in runs]


def _load(runs: Sequence[Mapping[str, Any]]) -> tuple[float | None, float | None]:
    """(other processes' median CPU share, median runnable tasks per CPU) of the runs."""
    shares = [r["noise"]["other_share"] for r in runs if r.get("noise")]
    queues = [
        r["noise"]["runnable_per_cpu"]
        for r in runs
        if r.get("noise") and r["noise"].get("runnable_per_cpu") is not None
    ]
    return (median(shares) if shares else None, median(queues) if queues else None)


def _check(
    label: str,
    base: Sequence[float],
    new: Sequence[float],
    runs: tuple[Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]]],
    alpha: float,
    calibrated: bool = False,
) -> TimeCheck:
    test = mann_whitney(new, base) if len(base) >= 2 and len(new) >= 2 else None
    (load_b, queue_b), (load_n, queue_n) = _load(runs[0]), _load(runs[1])
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


def _exact(
    base: Mapping[str, Any],
    new: Mapping[str, Any],
    pairs: Sequence[tuple[str, str]],
    allow_text_changes: bool,
) -> tuple[list[str], list[str]]:
    regressions: list[str] = []
    notes: list[str] = []
    digests_b, digests_n = base.get("digests") or {}, new.get("digests") or {}
    rows_b = {(r["engine"], r["workers"]): r for r in base.get("table", [])}
    rows_n = {(r["engine"], r["workers"]): r for r in new.get("table", [])}
    for eb, en in pairs:
        db, dn = digests_b.get(eb), digests_n.get(en)
        if db is None or dn is None:
            notes.append(f"{en}: a bench without output digests; text not compared")
        else:
            changed = sorted(d for d in set(db) | set(dn) if db.get(d) != dn.get(d))
            if changed:
                shown = ", ".join(changed[:8]) + (
                    f" and {len(changed) - 8} more" if len(changed) > 8 else ""
                )
                (notes if allow_text_changes else regressions).append(
                    f"{en}: the text of {len(changed)} document(s) changed: {shown}"
                )
        for (engine, n), rn in rows_n.items():
            if engine != en:
                continue
            rb = rows_b.get((eb, n))
            if rn.get("identical") is False:
                (notes if rb is not None and rb.get("identical") is False else regressions).append(
                    f"{en}, {n} worker(s): parallel output differs from 1 worker"
                    + (
                        " (in the baseline too)"
                        if rb is not None and rb.get("identical") is False
                        else ""
                    )
                )
            if rb is None:
                continue
            if (
                rb.get("cer") is not None
                and rn.get("cer") is not None
                and rn["cer"] > rb["cer"] + _EPS
            ):
                regressions.append(f"{en}, {n} worker(s): CER {rb['cer']:.4%} -> {rn['cer']:.4%}")
    failed_b = {(r["engine"], r["workers"]): r.get("pages_failed", 0) for r in _runs(base)}
    for r in _runs(new):
        key = next((eb for eb, en in pairs if en == r["engine"]), None)
        before = failed_b.get((key, r["workers"])) if key else None
        if before is not None and r.get("pages_failed", 0) > before:
            regressions.append(
                f"{r['engine']}, {r['workers']} worker(s), repeat {r['repeat'] + 1}: "
                f"{r['pages_failed']} failed page(s), the baseline {before}"
            )
    return list(dict.fromkeys(regressions)), notes


def _context(base: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    mb, mn = base.get("meta") or {}, new.get("meta") or {}
    out = []
    tb, tn = (m.get("versions", {}).get("tesseract") for m in (mb, mn))
    if tb != tn:
        out.append(f"Tesseract versions differ: {tb} (baseline) against {tn} (new)")
    for key, what in (("host", "hosts"), ("cpu_count", "CPU counts")):
        if mb.get(key) != mn.get(key):
            out.append(f"{what} differ: {mb.get(key)} (baseline) against {mn.get(key)} (new)")
    if base.get("corpus") != new.get("corpus"):
        out.append(f"corpora differ by path: {base.get('corpus')} against {new.get('corpus')}")
    return out


def compare_benches(
    base: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    max_slowdown: float = MAX_SLOWDOWN,
    alpha: float = ALPHA,
    allow_text_changes: bool = False,
) -> BenchComparison:
    """Judge bench result ``new`` against ``base`` (both as ``bench.json`` holds them)."""
    pairs, notes = _engine_pairs(base, new)
    notes += _context(base, new)
    regressions, more = _exact(base, new, pairs, allow_text_changes)
    notes += more
    checks: list[TimeCheck] = []
    pooled_b: list[float] = []
    pooled_n: list[float] = []
    matched_b: list[Mapping[str, Any]] = []
    matched_n: list[Mapping[str, Any]] = []
    for eb, en in pairs:
        rb_all = [r for r in _runs(base) if r["engine"] == eb]
        rn_all = [r for r in _runs(new) if r["engine"] == en]
        for n in sorted({r["workers"] for r in rb_all} & {r["workers"] for r in rn_all}):
            rb = [r for r in rb_all if r["workers"] == n]
            rn = [r for r in rn_all if r["workers"] == n]
            if {r["pages"] for r in rb} != {r["pages"] for r in rn}:
                notes.append(f"{en}, {n} worker(s): different page counts; time not compared")
                continue
            tb = _times(rb, [r for r in _cli_runs(base) if r["workers"] == n])
            tn = _times(rn, [r for r in _cli_runs(new) if r["workers"] == n])
            calibrated = tb is not None and tn is not None
            if not calibrated:
                tb, tn = [r["wall_s"] for r in rb], [r["wall_s"] for r in rn]
            assert tb is not None and tn is not None
            mid = median(tb)
            wb, wn = [t / mid for t in tb], [t / mid for t in tn]
            pooled_b += wb
            pooled_n += wn
            matched_b += rb
            matched_n += rn
            label = f"{en}, {n} worker(s)" + (" against the CLI" if calibrated else "")
            checks.append(_check(label, wb, wn, (rb, rn), alpha, calibrated))
    pooled = None
    if checks:
        pooled = _check(
            "all counts",
            pooled_b,
            pooled_n,
            (matched_b, matched_n),
            alpha,
            all(c.calibrated for c in checks),
        )
        slower = pooled.ratio.estimate > 1 + max_slowdown
        if slower and pooled.significant(alpha):
            busier = pooled.busier()
            if busier:
                notes.append(
                    f"slower (time x{pooled.ratio.estimate:.3f}), but the machine was busier "
                    f"during the new runs ({busier}): not attributed to the change; rerun on "
                    "a quieter machine to tell"
                )
            else:
                regressions.append(
                    f"slower: time x{pooled.ratio.format('.3f')} over the baseline "
                    f"(more than {max_slowdown:.0%}, significant at {alpha:g})"
                )
        elif slower:
            notes.append(
                f"time x{pooled.ratio.estimate:.3f}, not significant at {alpha:g} with "
                f"{len(pooled_n)} run(s) against {len(pooled_b)}: within the noise"
            )
        elif pooled.ratio.estimate < 1 - max_slowdown and pooled.significant(alpha, False):
            busier = pooled.busier(new=False)
            notes.append(
                f"faster: time x{pooled.ratio.format('.3f')}"
                + (f", but the baseline's machine was busier ({busier})" if busier else "")
            )
        if not pooled.calibrated:
            notes.append(
                "times are bare wall times (no Tesseract CLI reference in both benches): a "
                "change in the machine's load shows in them as a change in speed"
            )
    for label, bench in (("baseline", base), ("new bench", new)):
        warning = (bench.get("noise") or {}).get("warning")
        if warning:
            notes.append(f"{label}: {warning}")
    return BenchComparison(
        1 if regressions else 0, tuple(regressions), tuple(notes), tuple(checks), pooled
    )
