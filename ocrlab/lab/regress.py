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

A second time signal is judged the same way: each run's **wall time per second of
Tesseract CPU** (the engine's CPU time the workers measured for their own Tesseract
processes). A machine whose CPUs run slower or faster for a while (a virtual machine's
host, frequency scaling) changes both alike, so this ratio does not move with the
machine's speed: measured on the quiet 2-vCPU machine here, the same 7 pages at 1 worker
took 7.0 to 12.1 s of wall time over 99 runs (33 benches), and their wall time per
Tesseract CPU-second stayed within 1.004-1.027. It moves when time goes somewhere else
than into Tesseract: the pool waiting, the main process falling behind, a wrapper that
sleeps, pages waiting for a worker. It does not see a Tesseract that does more work
(both sides grow), which only the wall time shows. A run without the engine's CPU time
(an engine that does not report it) leaves this signal out, with a note.

Memory (peak PSS) is shown beside, not judged: it depends on which pages happened to
run together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .regress_time import (
    ALPHA,
    MAX_SLOWDOWN,
    Signal,
    TimeCheck,
    describe,
    judge,
    per_cpu,
    times,
)

_EPS = 1e-9

__all__ = ["ALPHA", "MAX_SLOWDOWN", "BenchComparison", "TimeCheck", "compare_benches"]


@dataclass(frozen=True)
class BenchComparison:
    """The verdict of ``--compare``: ``code`` 1 on a regression, and every finding."""

    code: int
    regressions: tuple[str, ...]
    notes: tuple[str, ...]
    checks: tuple[TimeCheck, ...] = field(default_factory=tuple)
    pooled: TimeCheck | None = None
    #: the same, of each run's wall time per second of Tesseract CPU
    cpu_checks: tuple[TimeCheck, ...] = field(default_factory=tuple)
    pooled_cpu: TimeCheck | None = None

    def text(self) -> str:
        lines = [f"compared with the baseline: {'REGRESSION' if self.code else 'no regression'}"]
        for check in self.checks:
            lines.append(f"  {describe(check)}")
        if self.pooled is not None:
            lines.append(f"  pooled: {describe(self.pooled)}")
        for check in self.cpu_checks:
            lines.append(f"  {describe(check)}")
        if self.pooled_cpu is not None:
            lines.append(f"  pooled: {describe(self.pooled_cpu)}")
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
            "cpu_checks": [check(c) for c in self.cpu_checks],
            "pooled_cpu": check(self.pooled_cpu) if self.pooled_cpu else None,
        }


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
    wall = Signal("")
    by_cpu = Signal(", wall time per Tesseract CPU-second")
    for eb, en in pairs:
        rb_all = [r for r in _runs(base) if r["engine"] == eb]
        rn_all = [r for r in _runs(new) if r["engine"] == en]
        for n in sorted({r["workers"] for r in rb_all} & {r["workers"] for r in rn_all}):
            rb = [r for r in rb_all if r["workers"] == n]
            rn = [r for r in rn_all if r["workers"] == n]
            if {r["pages"] for r in rb} != {r["pages"] for r in rn}:
                notes.append(f"{en}, {n} worker(s): different page counts; time not compared")
                continue
            tb = times(rb, [r for r in _cli_runs(base) if r["workers"] == n])
            tn = times(rn, [r for r in _cli_runs(new) if r["workers"] == n])
            calibrated = tb is not None and tn is not None
            if not calibrated:
                tb, tn = [r["wall_s"] for r in rb], [r["wall_s"] for r in rn]
            assert tb is not None and tn is not None
            label = f"{en}, {n} worker(s)"
            wall.add(
                label + (" against the CLI" if calibrated else ""),
                tb,
                tn,
                rb,
                rn,
                alpha,
                calibrated,
            )
            cb, cn = per_cpu(rb), per_cpu(rn)
            if cb is not None and cn is not None:
                by_cpu.add(label + by_cpu.what, cb, cn, rb, rn, alpha, True)
            else:
                by_cpu.missing = True
    pooled = wall.pool(alpha)
    if pooled is not None:
        judge(pooled, "time", max_slowdown, alpha, regressions, notes)
        if not pooled.calibrated:
            notes.append(
                "times are bare wall times (no Tesseract CLI reference in both benches): a "
                "change in the machine's load shows in them as a change in speed"
            )
    pooled_cpu = by_cpu.pool(alpha) if not by_cpu.missing else None
    if pooled_cpu is not None:
        judge(pooled_cpu, "time per Tesseract CPU-second", max_slowdown, alpha, regressions, notes)
    elif wall.checks:
        notes.append(
            "a run without the engine's CPU time: wall time per Tesseract CPU-second not compared"
        )
    for label, bench in (("baseline", base), ("new bench", new)):
        warning = (bench.get("noise") or {}).get("warning")
        if warning:
            notes.append(f"{label}: {warning}")
    return BenchComparison(
        1 if regressions else 0,
        tuple(dict.fromkeys(regressions)),
        tuple(notes),
        tuple(wall.checks),
        pooled,
        tuple(by_cpu.checks) if pooled_cpu is not None else (),
        pooled_cpu,
    )
