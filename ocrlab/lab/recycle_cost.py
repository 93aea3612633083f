"""What recycling a worker costs, against what draining and restarting the pool would.

Runs the echo engine over N tiny documents at 2 workers with recycling off and with
``max_pages_per_worker`` set, alternating (off, on, off, on...) so drift spreads evenly,
and times a pool drain + restart (shutdown of a warm pool, a new pool, its first result
back), the alternative to loky's retirement path. Figures from one invocation.

    python -m ocrlab.lab.recycle_cost --docs 4000 --every 250 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from ..executor import ProcessPoolExecutor
from ..pipeline import run
from ..records import EngineSettings, PageTask
from ..worker import ocr_page
from .scale import make_corpus


def drain_restart_s(page: str) -> float:
    """Seconds from shutting down a warm 2-worker pool to a fresh pool's first results."""
    settings = EngineSettings(engine="ocrlab.engines.fakes:echo")
    task = PageTask("x", page, 1, 1, "png")
    pool = ProcessPoolExecutor(max_workers=2)
    for fut in [pool.submit(ocr_page, task, settings) for _ in range(4)]:
        fut.result()
    t = time.monotonic()
    pool.shutdown(wait=True)
    pool = ProcessPoolExecutor(max_workers=2)
    for fut in [pool.submit(ocr_page, task, settings) for _ in range(2)]:
        fut.result()
    elapsed = time.monotonic() - t
    pool.shutdown(wait=True)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=4000)
    parser.add_argument("--every", type=int, default=250, help="max_pages_per_worker when on")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--work", default="/tmp/ocrlab-scale")
    args = parser.parse_args(argv)
    corpus = make_corpus(Path(args.work) / f"corpus-{args.docs}", args.docs)
    page = str(next(corpus.rglob("*.png")))
    rows: dict[str, list[float]] = {"off": [], "on": []}
    recycled = 0
    for _ in range(args.repeats):
        for mode in ("off", "on"):
            s = run(
                corpus,
                Path(args.work) / f"recycle-{mode}",
                workers=2,
                engine="ocrlab.engines.fakes:echo",
                progress=False,
                overwrite=True,
                max_pages_per_worker=args.every if mode == "on" else 0,
            )
            rows[mode].append(s.wall_s)
            if mode == "on":
                recycled = s.workers_recycled
    off, on = statistics.median(rows["off"]), statistics.median(rows["on"])
    drains = [drain_restart_s(page) for _ in range(3)]
    out = {
        "docs": args.docs,
        "every": args.every,
        "wall_off_s": rows["off"],
        "wall_on_s": rows["on"],
        "workers_recycled": recycled,
        "cost_per_recycle_s": (on - off) / recycled if recycled else None,
        "drain_restart_s": drains,
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
