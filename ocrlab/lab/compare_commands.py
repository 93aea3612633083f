"""The lab's comparison subcommands: ``ocrlab diff`` and ``ocrlab plan``, and the verdict
of ``ocrlab bench --compare``.

Registered on :mod:`ocrlab.cli`'s subparsers like :mod:`ocrlab.lab.commands`; what they
run is imported when they run. Exit codes: 0 nothing worse (or a plan was made), 1 worse
(or no worker count fits), 2 bad input (a missing folder, a file that is not what
ocrlab writes, a bad value), each with a message naming what was wrong.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import ConfigError, ExitCode


def _fraction(text: str) -> float:
    """``0.01``, or ``1%`` (one point of CER)."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} must be a fraction (0.01) or a percentage (1%)"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def add_diff(sub: Any) -> None:
    p = sub.add_parser(
        "diff",
        help="compare two output folders page by page (text, CER/WER, failures, confidence)",
        description="Compare run B with run A (two --out folders of 'ocrlab run'): per document "
        "and page, identical or not, CER / WER against NAME.gt.txt ground truth where it "
        "exists, failures that appear or disappear, confidence where the manifest has it. "
        "Exit 0: B is not worse; 1: B is worse beyond the thresholds; 2: bad input.",
    )
    p.add_argument("run_a", metavar="RUN_A", help="the reference output folder")
    p.add_argument("run_b", metavar="RUN_B", help="the output folder to judge")
    p.add_argument(
        "--max-cer-increase",
        type=_fraction,
        default=0.0,
        metavar="X",
        help="CER rise per page and overall that still passes: 0.005 or 0.5%% (default 0)",
    )
    p.add_argument(
        "--allow-text-changes",
        action="store_true",
        help="changed text is not worse by itself (CER and failures still are)",
    )
    p.add_argument("--json", metavar="FILE", help="also write the comparison as JSON")
    p.add_argument("--all", action="store_true", help="list identical pages too")
    p.set_defaults(func=_cmd_diff)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def format_diff(diff: Any, verdict: Any, show_all: bool = False) -> str:
    """The terminal form of a :class:`~ocrlab.lab.rundiff.RunDiff` and its verdict."""
    pages = diff.pages
    counts = {c: len(diff.by_change(c)) for c in ("same", "changed", "newly failed", "fixed")}
    failing = len(diff.by_change("still failing"))
    cer_a, cer_b, scored = diff.total_cer()
    lines = [f"A: {diff.a}", f"B: {diff.b}", *(f"note: {c}" for c in diff.context)]
    lines.append(
        f"{len(pages)} page(s): {counts['same']} identical, {counts['changed']} changed, "
        f"{counts['newly failed']} newly failed, {counts['fixed']} fixed, {failing} failing "
        "in both"
        + (f"; CER {_pct(cer_a)} (A) -> {_pct(cer_b)} (B) over {scored} scored" if scored else "")
    )
    shown = [p for p in pages if show_all or p.change not in ("same", "still failing")]
    if shown:
        width = max(len(p.where) for p in shown)
        lines.append("")
        lines.append(
            f"{'page':<{width}}  {'change':<13} {'CER A':>7} {'CER B':>7} {'ΔCER':>7} "
            f"{'conf A':>6} {'conf B':>6}"
        )
        for p in shown:
            delta = "-" if p.cer_change is None else f"{p.cer_change * 100:+.2f}"
            conf = [("-" if c is None else f"{c:.1f}") for c in (p.conf_a, p.conf_b)]
            lines.append(
                f"{p.where:<{width}}  {p.change:<13} {_pct(p.cer_a):>7} {_pct(p.cer_b):>7} "
                f"{delta:>7} {conf[0]:>6} {conf[1]:>6}"
            )
    lines.append("")
    if verdict.code:
        lines.append("WORSE: " + "; ".join(verdict.reasons))
    else:
        lines.append("not worse" + (": " + "; ".join(verdict.notes) if verdict.notes else ""))
    return "\n".join(lines)


def _cmd_diff(args: argparse.Namespace) -> int:
    from .rundiff import NotAnOutputFolder, compare_runs, judge, load_run, write_json

    try:
        a, b = load_run(args.run_a), load_run(args.run_b)
    except NotAnOutputFolder as exc:
        print(f"ocrlab diff: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    diff = compare_runs(a, b)
    verdict = judge(
        diff, max_cer_increase=args.max_cer_increase, allow_text_changes=args.allow_text_changes
    )
    print(format_diff(diff, verdict, args.all))
    if args.json:
        write_json(diff, verdict, args.json)
    return verdict.code


def add_compare_arguments(p: argparse.ArgumentParser) -> None:
    """``ocrlab bench``'s regression gate (:mod:`ocrlab.lab.regress`)."""
    p.add_argument(
        "--compare",
        metavar="BASELINE",
        help="judge this bench against a stored one (its folder or bench.json): exit 1 on a "
        "significant slowdown or any worse exact signal (text, CER, failures)",
    )
    p.add_argument(
        "--max-slowdown",
        type=_fraction,
        default=0.05,
        metavar="X",
        help="with --compare: slowdown that still passes, 0.05 or 5%% (default 5%%)",
    )
    p.add_argument(
        "--allow-text-changes",
        action="store_true",
        help="with --compare: changed output digests are not a regression by themselves",
    )
    p.add_argument("--compare-json", metavar="FILE", help="with --compare: the verdict as JSON")


def load_baseline(args: argparse.Namespace) -> dict[str, Any] | None:
    """The ``--compare`` baseline, or None; a missing or foreign file is a ConfigError
    (exit 2) before the bench runs."""
    if not args.compare:
        return None
    from .bench_table import load_result

    try:
        data, _ = load_result(args.compare)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--compare {args.compare}: {exc}") from None
    if "runs" not in data:
        raise ConfigError(f"--compare {args.compare}: a bench.json without its runs")
    return data


def judge_bench(args: argparse.Namespace, baseline: dict[str, Any], result: dict[str, Any]) -> int:
    """Print the verdict of the bench against the baseline; its exit code."""
    from ..output.atomic import atomic_write_text
    from .regress import compare_benches

    verdict = compare_benches(
        baseline,
        result,
        max_slowdown=args.max_slowdown,
        allow_text_changes=args.allow_text_changes,
    )
    print(verdict.text())
    if args.compare_json:
        import json

        atomic_write_text(args.compare_json, json.dumps(verdict.as_dict(), indent=1) + "\n")
    return verdict.code


def add_plan(sub: Any) -> None:
    p = sub.add_parser(
        "plan",
        help="size a container from a bench: workers, pages/hour, peak memory",
        description="From a bench (or sweep) output: for a container of --memory and --cores, "
        "the worker count, pages per hour and peak memory (PSS) with their intervals, from "
        "the measured worker counts only (--extrapolate adds a labelled estimate beyond them).",
    )
    p.add_argument(
        "--bench", required=True, help="bench output folder, or its bench.json / sweep.json"
    )
    p.add_argument("--memory", required=True, help="the container's memory, e.g. 8G or 512M")
    p.add_argument("--cores", type=int, required=True, help="the container's CPU cores")
    p.add_argument("--engine", help="which engine of the bench (default: its first)")
    p.add_argument(
        "--headroom",
        type=float,
        default=0.8,
        help="share of the memory the tree may peak at (default 0.8)",
    )
    p.add_argument(
        "--extrapolate",
        action="store_true",
        help="estimate beyond the measured worker counts (labelled as an estimate)",
    )
    p.set_defaults(func=_cmd_plan)


def _cmd_plan(args: argparse.Namespace) -> int:
    from .capacity import load_measurements, parse_memory, plan_capacity

    try:
        memory = parse_memory(args.memory)
    except ValueError as exc:
        raise ConfigError(f"--memory: {exc}") from None
    if args.cores < 1:
        raise ConfigError(f"--cores {args.cores} must be at least 1")
    if not 0 < args.headroom <= 1:
        raise ConfigError(f"--headroom {args.headroom} must be in (0, 1]")
    try:
        data, source = load_measurements(args.bench)
        plan = plan_capacity(
            data,
            memory,
            args.cores,
            headroom=args.headroom,
            engine=args.engine,
            extrapolate=args.extrapolate,
            source=source,
        )
    except (OSError, ValueError, KeyError) as exc:
        print(f"ocrlab plan: --bench {args.bench}: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    print(plan.text())
    return ExitCode.OK if plan.chosen is not None else ExitCode.SOME_FAILED
