"""Does ``ocrlab bench --compare`` cry wolf? Ten A/A comparisons and one real slowdown.

``python -m ocrlab.lab.gate_check --corpus data --out gate-check`` runs, through the
command line exactly as a CI job would:

1. a baseline: ``ocrlab bench CORPUS --workers 1,2 --repeats 3 --out OUT/baseline``;
2. ``--aa`` (default 10) more benches of the same engine, each with
   ``--compare OUT/baseline``: none may fail (exit 1);
3. one bench of :func:`ocrlab.engines.fakes.slowed` (the default engine, 10% slower in
   wall time, the same text) with ``--compare OUT/baseline``: it should fail.

(``--engine ocrlab.engines.fakes:sleepy --slow-engine ocrlab.engines.fakes:sleepy_slowed
--allow-text-changes`` does the same with pages whose cost is sleep, which the machine's
load hardly changes: the gate's mechanics on real runs when real OCR is too noisy to time),
and prints one line per comparison: exit code, the pooled time ratio with its 95%
interval, the Mann-Whitney p, the same for the wall time per Tesseract CPU-second,
the machine's load during the compared runs (other processes' share of the CPUs and
runnable tasks per CPU), and the load average. It takes a while (12 benches); the
figures in docs/benchmarks-and-noise.md come from it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _bench(corpus: str, out: Path, args: Sequence[str], extra: Sequence[str]) -> int:
    cmd = [sys.executable, "-m", "ocrlab", "bench", corpus, "--out", str(out), *args, *extra]
    with open(out.with_suffix(".log"), "w", encoding="utf-8") as log:
        return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False).returncode


def _line(name: str, code: int, verdict: dict[str, Any] | None) -> str:
    load = os.getloadavg()[0]
    if verdict is None or verdict.get("pooled") is None:
        return f"{name:<8} exit {code}  (no verdict)  load average {load:.1f}"
    pooled = verdict["pooled"]
    ratio = pooled["ratio"]
    queue = (
        f", runnable/CPU {pooled['base_queue']:.2f}->{pooled['new_queue']:.2f}"
        if pooled.get("base_queue") is not None and pooled.get("new_queue") is not None
        else ""
    )
    why = (
        "; ".join(verdict["regressions"])
        or "; ".join(
            n for n in verdict["notes"] if n.startswith(("slower", "time x", "time per", "faster"))
        )
        or "same"
    )
    cpu = verdict.get("pooled_cpu")
    per_cpu = (
        f"  per CPU-s x{cpu['ratio']['estimate']:.3f} "
        f"[{cpu['ratio']['low']:.3f}-{cpu['ratio']['high']:.3f}] p={cpu['p']}"
        if cpu
        else ""
    )
    return (
        f"{name:<8} exit {code}  time x{ratio['estimate']:.3f} "
        f"[{ratio['low']:.3f}-{ratio['high']:.3f}]  p={pooled['p']}{per_cpu}  "
        f"other CPU {pooled['base_load']:.0%}->{pooled['new_load']:.0%}{queue}  "
        f"load average {load:.1f}  | {why}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ocrlab.lab.gate_check", description=__doc__)
    p.add_argument("--corpus", default="data")
    p.add_argument("--out", default="gate-check")
    p.add_argument("--aa", type=int, default=10, help="A/A comparisons (default 10)")
    p.add_argument("--workers", default="1,2")
    p.add_argument("--repeats", default="3")
    p.add_argument("--no-cli", action="store_true", help="skip the Tesseract CLI reference")
    p.add_argument("--engine", default="pytesseract", help="the engine of the A/A benches")
    p.add_argument(
        "--slow-engine",
        default="ocrlab.engines.fakes:slowed",
        help="the 10%% slower engine (sleepy's: ocrlab.engines.fakes:sleepy_slowed)",
    )
    p.add_argument(
        "--allow-text-changes",
        action="store_true",
        help="pass on to --compare (for engines whose text changes run to run, like sleepy)",
    )
    p.add_argument(
        "--baseline",
        help="an existing baseline bench folder to compare with (none is run); with --first "
        "and --no-slowed, several of these commands can share one baseline side by side",
    )
    p.add_argument("--first", type=int, default=1, help="number of the first A/A (default 1)")
    p.add_argument("--no-slowed", action="store_true", help="skip the slowed engine's bench")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = [
        "--workers",
        args.workers,
        "--repeats",
        args.repeats,
        "--engines",
        args.engine,
        *(["--no-cli"] * args.no_cli),
    ]
    allow = ["--allow-text-changes"] * args.allow_text_changes
    started = time.strftime("%Y-%m-%d %H:%M")
    baseline = Path(args.baseline) if args.baseline else out / "baseline"
    print(f"{started}: baseline {baseline}, load average {os.getloadavg()[0]:.1f}", flush=True)
    if not args.baseline:
        code = _bench(args.corpus, baseline, common, [])
        if code != 0:
            print(f"baseline bench failed (exit {code}); see {out / 'baseline.log'}")
            return 2
    runs: list[tuple[str, str, list[str]]] = [
        (f"A/A {i}", f"aa{i}", []) for i in range(args.first, args.first + args.aa)
    ]
    if not args.no_slowed:
        runs.append(("slowed", "slowed", ["--engines", args.slow_engine]))
    failures = 0
    for name, folder, extra in runs:
        verdict_file = out / f"{folder}.verdict.json"
        code = _bench(
            args.corpus,
            out / folder,
            common,
            [
                *extra,
                *allow,
                "--compare",
                str(baseline),
                "--compare-json",
                str(verdict_file),
            ],
        )
        verdict = json.loads(verdict_file.read_text()) if verdict_file.is_file() else None
        print(_line(name, code, verdict), flush=True)
        failures += code != 0 and name.startswith("A/A")
    print(f"{failures} of {args.aa} A/A comparisons failed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
