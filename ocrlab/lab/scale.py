"""Scale benchmark: the main process's own cost per page, from a thousand to a million pages.

Generates N tiny PNG documents (one page each, 1,000 per folder), OCRs them with the
``ocrlab.engines.fakes:echo`` engine (no OCR: what is left is ocrlab's own cost) at
2 workers, each N in a fresh Python process so its peak RSS is its own, and writes a
table (``scale.md``, ``scale.json``) and a plot (``scale.png``): pages/s, main-process
peak RSS (the kernel's ``ru_maxrss``), and the sizes of results.json, journal.jsonl,
trace.json and ocrlab.log. All sizes run in one invocation, so the ratios between them
are measured under the same conditions (a size may be repeated, e.g. ``2000,100000,2000``,
to bracket a long run); the host's load average before and after each run is in the table.

    ocrlab bench --scale 1000,2000,10000,100000 --out scale-out
    python -m ocrlab.lab.scale --sizes 1000000 --work /tmp/ocrlab-scale   # about an hour
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PER_FOLDER = 1000

_CHILD = r"""
import json, resource, sys, time
import ocrlab
corpus, out, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = time.monotonic()
s = ocrlab.run(corpus, out, workers=workers, engine="ocrlab.engines.fakes:echo",
               progress=False)
print(json.dumps({"pages": s.pages, "documents": s.documents, "wall_s": s.wall_s,
                  "pages_per_s": s.pages_per_s, "startup_s": s.startup_s,
                  "elapsed_s": time.monotonic() - t,
                  "main_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "tree_peak_rss_mb": s.peaks.get("rss_total", 0) / 2**20,
                  "exit_code": int(s.exit_code)}))
"""


def tiny_png() -> bytes:
    """A 64 x 24 grey PNG: a real image the worker opens, as small as a page gets."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (64, 24), 255).save(buf, format="PNG")
    return buf.getvalue()


def make_corpus(root: Path, n: int) -> Path:
    """``n`` one-page documents under ``root`` (reused when already complete)."""
    done = root / ".complete"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    data = tiny_png()
    for i in range(n):
        folder = root / f"d{i // PER_FOLDER:05d}"
        if i % PER_FOLDER == 0:
            folder.mkdir(parents=True)
        (folder / f"p{i:07d}.png").write_bytes(data)
    done.write_text(str(n))
    return root


def _size_mb(path: Path) -> float:
    return round(path.stat().st_size / 2**20, 2) if path.exists() else 0.0


def run_one(corpus: Path, out: Path, workers: int) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    load_before = os.getloadavg()[0]
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(corpus), str(out), str(workers)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"run of {corpus} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    row: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    # The host's 1-minute load average around the run: the machine is shared, say how busy.
    row["load_before"], row["load_after"] = round(load_before, 1), round(os.getloadavg()[0], 1)
    row.update(
        {
            name.replace(".", "_") + "_mb": _size_mb(out / name)
            for name in ("results.json", "journal.jsonl", "trace.json", "ocrlab.log")
        }
    )
    return row


def table(rows: list[dict[str, Any]]) -> str:
    ref = rows[0]["pages_per_s"]
    lines = [
        "| documents | pages/s | vs first | main peak RSS MB | tree peak MB | start-up s "
        "| results.json MB | journal MB | trace.json MB | log MB | host load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['documents']:,} | {r['pages_per_s']:.0f} | {r['pages_per_s'] / ref:.2f} "
            f"| {r['main_peak_rss_mb']:.0f} | {r['tree_peak_rss_mb']:.0f} "
            f"| {r['startup_s']:.2f} | {r['results_json_mb']} | {r['journal_jsonl_mb']} "
            f"| {r['trace_json_mb']} | {r['ocrlab_log_mb']} "
            f"| {r['load_before']} -> {r['load_after']} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["documents"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(n, [r["pages_per_s"] for r in rows], "o-")
    a.set(
        xscale="log",
        xlabel="documents (1 page each)",
        ylabel="pages/s",
        title="throughput, echo engine, 2 workers",
        ylim=(0, None),
    )
    b.plot(n, [r["main_peak_rss_mb"] for r in rows], "o-", label="main process peak RSS")
    b.plot(n, [r["trace_json_mb"] for r in rows], "s--", label="trace.json")
    b.plot(n, [r["results_json_mb"] for r in rows], "^--", label="results.json")
    b.set(xscale="log", xlabel="documents", ylabel="MB", title="memory and files", ylim=(0, None))
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default="1000,2000,10000,100000",
        help="comma-separated document counts (default 1000,2000,10000,100000)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--work", default="/tmp/ocrlab-scale", help="where corpora (kept for reuse) and outputs go"
    )
    parser.add_argument("--out", default="scale-out", help="where the table and plot go")
    args = parser.parse_args(argv)
    os.environ.setdefault("OCR_PROGRESS", "false")
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    work, out = Path(args.work), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in sizes:
        t = time.monotonic()
        corpus = make_corpus(work / f"corpus-{n}", n)
        print(f"corpus {n}: {time.monotonic() - t:.1f} s", file=sys.stderr, flush=True)
        row = run_one(corpus, work / f"out-{n}", args.workers)
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    (out / "scale.json").write_text(json.dumps(rows, indent=1) + "\n")
    md = table(rows)
    (out / "scale.md").write_text(md + "\n")
    plot(rows, out / "scale.png")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
