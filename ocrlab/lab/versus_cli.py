"""ocrlab against the Tesseract CLI in one run: ordering against ``xargs -P N tesseract``,
one-page latency, start-up, and memory (RSS beside PSS).

Usage::

    python -m ocrlab.lab.versus_cli --out bench10 [--rounds 3] [--workers 2]

What it measures, each in alternating rounds (the order of the contenders is
reversed on odd rounds so drift of a shared machine spreads evenly), medians:

* ``mixed-last``: 24 small A6 scans in ``a/`` and ``b/``, then 3 dense letter pages
  in ``z/`` (dense last in discovery order, the case LPT is for): ``ocrlab run``
  as it comes (cost order, small pages in bundles), with ``OCR_ORDER=discovery``,
  and with ``OCR_BUNDLE_MP=0`` (cost order, every page in a process of its own),
  against ``xargs -0 -P N -I{} tesseract {} stdout`` on the same files in the same
  order (``OMP_THREAD_LIMIT=1`` for all);
* ``mixed-first``: the same pages with the dense ones first (already in good order);
* ``one-page``: ``ocrlab run ONE.tif --out X`` against ``tesseract ONE.tif stdout``,
  and the first page's start in its worker after the command's launch;
* ``a4``: 12 A4 pages at 300 dpi at N workers (first round only): peak tree RSS, PSS, USS.

Every command's CPU time (user + system of its whole process tree) is recorded
too, and a load-independent *model* of what the order alone is worth is computed
from the traces of the runs without bundles: each page's Tesseract CPU time
(``engine_cpu_us``) list-scheduled on N workers in discovery order (what
``xargs -P N`` does) and in ocrlab's cost order (by the estimates).
On a machine shared with other work the measured wall times move by 2x between
identical runs; the model shows what the order alone is worth.

Every ocrlab time is a whole command (interpreter start, imports, shutdown), like
the CLI's. The load average is recorded around each round: on a shared machine the
absolute times move, the ratios within a round are the figures to read.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ocrlab.lab.corpus import generate_bench_corpus, generate_mixed_corpus
from ocrlab.output import trace_schema as ts
from ocrlab.output.trace_reader import load_trace
from ocrlab.sources import discover

ENV = {**os.environ, "OMP_THREAD_LIMIT": "1", "OCR_PROGRESS": "false"}
SHARED_PAGE = Path("/work/shared/corpus/real/phototest.tif")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _files(corpus: Path) -> list[str]:
    return [d.path for d in discover([str(corpus)]) if d.ok]


def _xargs(files: list[str], workers: int) -> dict[str, float]:
    t, cpu = time.perf_counter(), _cpu()
    subprocess.run(
        ["xargs", "-0", "-P", str(workers), "-I{}", "tesseract", "{}", "stdout"],
        input=b"\0".join(f.encode() for f in files),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    return {"wall_s": time.perf_counter() - t, "cpu_s": _cpu() - cpu}


#: ocrlab's contenders: environment for each (the default is cost order with bundles).
VARIANTS: dict[str, dict[str, str]] = {
    "cost": {"OCR_ORDER": "cost"},
    "discovery": {"OCR_ORDER": "discovery"},
    "alone": {"OCR_ORDER": "cost", "OCR_BUNDLE_MP": "0"},
}


def _ocrlab(inputs: str, out: Path, workers: int, variant: str = "cost") -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    launch = time.monotonic_ns()
    t, cpu = time.perf_counter(), _cpu()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ocrlab",
            "run",
            inputs,
            "--out",
            str(out),
            "--workers",
            str(workers),
        ],
        env={**ENV, **VARIANTS[variant]},
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t
    cpu = _cpu() - cpu
    if proc.returncode != 0:
        raise SystemExit(f"ocrlab run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    events = load_trace(out / "trace.json")
    meta = next(e for e in events if e.get("name") == ts.RUN_METADATA)["args"]
    pages = [e for e in events if e.get("cat") == ts.CAT_PAGE]
    first_start_ns = meta["t0_monotonic_ns"] + min(e["ts"] for e in pages) * 1000
    summary = json.loads((out / "results.json").read_text())
    peaks = summary.get("summary", summary.get("run", {})).get("peaks", {})
    digest = hashlib.sha256()
    for path in sorted((out / "text").rglob("*.txt")):
        digest.update(path.relative_to(out).as_posix().encode() + path.read_bytes())
    costs = {
        (e["args"]["doc_id"], e["args"]["page"]): (
            e["args"].get("cost_estimate"),
            e["args"]["engine_cpu_us"] / 1e6,
        )
        for e in pages
    }
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "first_page_after_launch_s": (first_start_ns - launch) / 1e9,
        "pages": [[d, p, c, s] for (d, p), (c, s) in sorted(costs.items())],
        "run_wall_s": max(e["ts"] + e["dur"] for e in pages) / 1e6,
        "peaks": peaks,
        "digest": digest.hexdigest(),
        "stdout": proc.stdout.strip(),
    }


def _one(path: Path) -> dict[str, float]:
    t, cpu = time.perf_counter(), _cpu()
    subprocess.run(
        ["tesseract", str(path), "stdout"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    return {"wall_s": time.perf_counter() - t, "cpu_s": _cpu() - cpu}


def makespan(durations: list[float], workers: int) -> float:
    """List scheduling: each page, in the given order, to the first worker free."""
    free = [0.0] * workers
    for d in durations:
        heapq.heapreplace(free, free[0] + d)
    return max(free)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="bench10")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    out = Path(args.out)
    corpora = {
        "mixed-last": out / "corpus" / "mixed-last",
        "mixed-first": out / "corpus" / "mixed-first",
        "a4": out / "corpus" / "a4",
    }
    if not corpora["mixed-last"].is_dir():
        generate_mixed_corpus(corpora["mixed-last"])
        generate_mixed_corpus(corpora["mixed-first"], dense_first=True)
        generate_bench_corpus(corpora["a4"], pages=12)
    one = SHARED_PAGE if SHARED_PAGE.is_file() else corpora["a4"] / "a4-001.png"
    n = args.workers
    rows: list[dict[str, Any]] = []

    def record(**row: Any) -> None:
        rows.append(row)
        print(
            json.dumps({k: v for k, v in row.items() if k not in {"peaks", "stdout", "pages"}}),
            flush=True,
        )

    for r in range(args.rounds):
        load_before = os.getloadavg()[0]
        for name in ("mixed-last", "mixed-first"):
            files = _files(corpora[name])
            contenders = [*VARIANTS, "xargs"]
            for who in contenders if r % 2 == 0 else contenders[::-1]:
                if who == "xargs":
                    record(round=r, corpus=name, who="xargs", **_xargs(files, n))
                else:
                    res = _ocrlab(str(corpora[name]), out / "runs" / f"{name}-{who}", n, who)
                    record(round=r, corpus=name, who=f"ocrlab-{who}", **res)
        for who in ["ocrlab", "cli"] if r % 2 == 0 else ["cli", "ocrlab"]:
            if who == "cli":
                record(round=r, corpus="one-page", who="cli", **_one(one))
            else:
                record(
                    round=r,
                    corpus="one-page",
                    who="ocrlab",
                    **_ocrlab(str(one), out / "runs" / "one", n),
                )
        if r == 0:
            record(
                round=r,
                corpus="a4",
                who="ocrlab",
                **_ocrlab(str(corpora["a4"]), out / "runs" / "a4", n),
            )
        print(f"round {r}: load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}", flush=True)
        rows.append({"round": r, "load_before": load_before, "load_after": os.getloadavg()[0]})
    (out / "results.json").write_text(json.dumps(rows, indent=1, default=str) + "\n")
    print(report(rows, n))


def _median(rows: list[dict[str, Any]], corpus: str, who: str, key: str = "wall_s") -> float:
    return float(
        statistics.median(r[key] for r in rows if r.get("corpus") == corpus and r.get("who") == who)
    )


def report(rows: list[dict[str, Any]], n: int) -> str:
    """The Markdown summary ``docs/performance.md`` quotes."""
    lines = [
        f"| batch | xargs -P {n} s | ocrlab s | ocrlab, discovery order s | "
        "ocrlab, no bundles s | ocrlab vs xargs | discovery order vs xargs | "
        "no bundles vs xargs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for corpus in ("mixed-last", "mixed-first"):
        x = _median(rows, corpus, "xargs")
        c, d, a = (_median(rows, corpus, f"ocrlab-{v}") for v in ("cost", "discovery", "alone"))
        lines.append(
            f"| {corpus} | {x:.2f} | {c:.2f} | {d:.2f} | {a:.2f} | **{x / c:.3f}x** | "
            f"{x / d:.3f}x | {x / a:.3f}x |"
        )
    for corpus in ("mixed-last", "mixed-first"):
        per_round = []
        for r in sorted({int(row["round"]) for row in rows if row.get("corpus") == corpus}):
            walls = {
                row["who"]: row["wall_s"]
                for row in rows
                if row.get("corpus") == corpus and row.get("round") == r
            }
            per_round.append(f"{walls['xargs'] / walls['ocrlab-cost']:.3f}x")
        lines.append(f"ocrlab vs xargs round by round ({corpus}): {', '.join(per_round)}")
    firsts = [
        r["first_page_after_launch_s"]
        for r in rows
        if str(r.get("corpus", "")).startswith("mixed") and "first_page_after_launch_s" in r
    ]
    lines.append(
        f"first page of a batch started after launch: median {statistics.median(firsts):.2f} s "
        f"(min {min(firsts):.2f}, max {max(firsts):.2f}, {len(firsts)} ocrlab runs)"
    )
    same = {
        r["digest"]
        for r in rows
        if str(r.get("corpus", "")).startswith("mixed-last") and "digest" in r
    }
    lines.append(
        f"\nartifacts identical across orders, bundles on and off, and rounds: {len(same) == 1}"
    )
    for corpus in ("mixed-last", "mixed-first"):
        alone = [r for r in rows if r.get("corpus") == corpus and r.get("who") == "ocrlab-alone"]
        estimate = {(d, p): c for d, p, c, _ in alone[0]["pages"]}
        cpu: dict[tuple[str, int], list[float]] = {}
        for run in alone:  # pages run alone: each page's Tesseract CPU is its own
            for d, p, _, s in run["pages"]:
                cpu.setdefault((d, p), []).append(s)
        keys = sorted(cpu)  # discovery order: documents sorted by path, pages in order
        med = {k: statistics.median(v) for k, v in cpu.items()}
        lpt = sorted(keys, key=lambda k: -(estimate.get(k) or 0.0))
        disc, cost = makespan([med[k] for k in keys], n), makespan([med[k] for k in lpt], n)
        lines.append(
            f"model ({corpus}, Tesseract CPU s per page run alone, median over runs, {n} "
            f"workers): discovery order {disc:.2f} s, cost order {cost:.2f} s, "
            f"ratio {disc / cost:.3f}x; total {sum(med.values()):.2f} CPU s, "
            f"ideal {sum(med.values()) / n:.2f} s"
        )
    for corpus in ("mixed-last", "mixed-first"):
        cpus = {
            who: _median(rows, corpus, who, "cpu_s")
            for who in ("xargs", "ocrlab-cost", "ocrlab-discovery", "ocrlab-alone")
        }
        lines.append(
            f"CPU s of the whole command ({corpus}, median): "
            + ", ".join(f"{k} {v:.2f}" for k, v in cpus.items())
        )
    cli, mine = _median(rows, "one-page", "cli"), _median(rows, "one-page", "ocrlab")
    first = _median(rows, "one-page", "ocrlab", "first_page_after_launch_s")
    cli_cpu, mine_cpu = (
        _median(rows, "one-page", "cli", "cpu_s"),
        _median(rows, "one-page", "ocrlab", "cpu_s"),
    )
    lines.append(
        f"one page: tesseract {cli:.2f} s, ocrlab run {mine:.2f} s "
        f"(+{mine - cli:.2f} s); CPU {cli_cpu:.2f} s against {mine_cpu:.2f} s "
        f"(+{mine_cpu - cli_cpu:.2f} s); first page started {first:.2f} s after launch"
    )
    a4 = [r for r in rows if r.get("corpus") == "a4"]
    mb = 2**20
    lines.append(
        "12 A4 pages, {} workers: peak tree RSS {:.0f} MB, PSS {:.0f} MB, USS {:.0f} MB "
        "(max over rounds)".format(
            n,
            max(r["peaks"].get("rss_total", 0) for r in a4) / mb,
            max(r["peaks"].get("pss_total", 0) for r in a4) / mb,
            max(r["peaks"].get("uss_total", 0) for r in a4) / mb,
        )
    )
    loads = [(r["load_before"], r["load_after"]) for r in rows if "load_before" in r]
    lines.append(
        "load average (1 min) around the rounds: "
        + ", ".join(f"{a:.1f}->{b:.1f}" for a, b in loads)
        + f" on {os.cpu_count()} CPUs"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
