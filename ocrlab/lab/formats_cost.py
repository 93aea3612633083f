"""What the formats beyond the text cost: Tesseract CPU, Tesseract processes, main-process time.

Runs each corpus with ``formats`` = ``txt``, ``txt,tsv,hocr,alto`` and
``txt,tsv,hocr,alto,pdf``, round after round with the order alternating (so drift
on a busy machine spreads evenly), and reports per variant:

* the Tesseract CPU time of the run (user + system of the Tesseract processes, the
  page spans' ``engine_cpu_us``), and its ratio to ``txt`` alone **in the same
  round**: one recognition serves every renderer, so the ratio is the renderers'
  own cost (the target: at most 1.10 for ``txt,tsv,hocr,alto``);
* the number of Tesseract processes started, counted by a ``tesseract`` on ``PATH``
  that logs each start and runs the real one: the same for every variant;
* wall time, the main process's CPU (where documents are assembled, the PDF read
  back) and the bytes each format's folder holds.

    python -m ocrlab.lab.formats_cost data ../shared/corpus/real --rounds 3

Timings are noisy on a shared machine: the load average before and after is printed
beside them, and only ratios measured in one round are reported as the result.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..output.trace_reader import load_trace
from ..output.trace_schema import is_page
from ..pipeline import run

VARIANTS = ("txt", "txt,tsv,hocr,alto", "txt,tsv,hocr,alto,pdf")


@contextmanager
def counting_tesseract(log: Path) -> Iterator[None]:
    """A ``tesseract`` first on ``PATH`` that appends its first argument to ``log`` and runs
    the real one; workers started inside the block inherit it."""
    real = shutil.which("tesseract")
    if real is None:
        raise SystemExit("tesseract is not on PATH")
    folder = Path(tempfile.mkdtemp(prefix="ocrlab-count-"))
    wrapper = folder / "tesseract"
    wrapper.write_text(f'#!/bin/sh\necho "$1" >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)
    saved = os.environ["PATH"]
    os.environ["PATH"] = f"{folder}{os.pathsep}{saved}"
    try:
        yield
    finally:
        os.environ["PATH"] = saved
        shutil.rmtree(folder, ignore_errors=True)


def _starts(log: Path) -> int:
    """Tesseract processes that read pages (not ``--version`` / ``--list-langs``)."""
    if not log.exists():
        return 0
    return sum(1 for line in log.read_text().splitlines() if not line.startswith("--"))


def _bytes(out: Path) -> dict[str, int]:
    return {
        folder: sum(p.stat().st_size for p in (out / folder).rglob("*") if p.is_file())
        for folder in ("text", "tsv", "hocr", "alto", "pdf")
        if (out / folder).is_dir()
    }


def measure(corpus: str, out: Path, formats: str, workers: int, log: Path) -> dict[str, Any]:
    """One run of ``corpus`` writing ``formats``: its costs."""
    log.unlink(missing_ok=True)
    cpu0 = time.process_time()
    summary = run(corpus, out, workers=workers, formats=formats, overwrite=True, progress=False)
    main_cpu = time.process_time() - cpu0
    spans = [e for e in load_trace(out / "trace.json") if is_page(e)]
    return {
        "formats": formats,
        "pages": summary.pages,
        "pages_failed": summary.pages_failed,
        "tesseract_cpu_s": round(sum(e["args"].get("engine_cpu_us", 0) for e in spans) / 1e6, 3),
        "tesseract_starts": _starts(log),
        "wall_s": round(summary.wall_s, 3),
        "main_cpu_s": round(main_cpu, 3),
        "bytes": _bytes(out),
    }


def cost(
    corpora: Sequence[str], work: Path, rounds: int = 3, workers: int = 2
) -> list[dict[str, Any]]:
    """Every variant on every corpus, ``rounds`` times, order alternating; one row per
    corpus and variant with the per-round ratios to ``txt``."""
    rows: list[dict[str, Any]] = []
    log = work / "tesseract-starts.log"
    with counting_tesseract(log):
        for corpus in corpora:
            runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
            for r in range(rounds):
                for variant in VARIANTS if r % 2 == 0 else tuple(reversed(VARIANTS)):
                    target = work / Path(corpus).name / variant.replace(",", "-")
                    runs[variant].append(measure(corpus, target, variant, workers, log))
            for variant in VARIANTS:
                mine, base = runs[variant], runs["txt"]
                ratios = [
                    m["tesseract_cpu_s"] / b["tesseract_cpu_s"]
                    for m, b in zip(mine, base, strict=True)
                    if b["tesseract_cpu_s"]
                ]
                rows.append(
                    {
                        "corpus": corpus,
                        "formats": variant,
                        "pages": mine[0]["pages"],
                        "tesseract_cpu_s": [m["tesseract_cpu_s"] for m in mine],
                        "cpu_ratio_to_txt": [round(x, 3) for x in ratios],
                        "cpu_ratio_median": round(statistics.median(ratios), 3) if ratios else None,
                        "tesseract_starts": [m["tesseract_starts"] for m in mine],
                        "wall_s": [m["wall_s"] for m in mine],
                        "main_cpu_s": [m["main_cpu_s"] for m in mine],
                        "bytes": mine[0]["bytes"],
                    }
                )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("corpora", nargs="+", help="folders of inputs (e.g. data)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "ocrlab-formats"))
    parser.add_argument("--json", help="write the rows here too")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M:%S %z")
    rows = cost(args.corpora, Path(args.work), args.rounds, args.workers)
    load_after = os.getloadavg()
    print(f"{started}; load average before {load_before}, after {load_after}")
    for row in rows:
        print(
            f"{row['corpus']:<28} {row['formats']:<24} {row['pages']:>3} pages  "
            f"Tesseract CPU {row['tesseract_cpu_s']} s  x txt {row['cpu_ratio_to_txt']} "
            f"(median {row['cpu_ratio_median']})  starts {row['tesseract_starts']}  "
            f"wall {row['wall_s']} s  main CPU {row['main_cpu_s']} s  bytes {row['bytes']}"
        )
    if args.json:
        meta = {"started": started, "load_before": load_before, "load_after": load_after}
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
