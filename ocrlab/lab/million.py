"""The million-document benchmark: a run, its resume, a ``kill -9`` half-way and its resume,
and the trace explorer on the result (the echo engine at 2 workers, one page a document).

    python -m ocrlab.lab.million --docs 1000000 --out million-out --work /work/bench-million

Each step runs the ``ocrlab`` command in a process of its own and samples that main
process's memory from ``/proc/PID/status`` (``VmHWM``, the kernel's own peak, and ``VmRSS``
for its course): a process killed with ``kill -9`` cannot report its own peak.

* ``run``: a 2,000-document reference run, then N documents: pages/s of each (the ratio is
  the figure; both in one invocation, so under the same load), main-process peak, sizes of
  results.json and trace.json and the time the run spent writing them (``run_end``).
* ``resume``: ``--resume`` of the finished N-document run: wall time as a share of the run's,
  main-process peak, lines the log grew by, the keep decisions' own time.
* ``kill``: a second N-document run killed with SIGKILL once half its documents are in the
  journal, then ``--resume``: its results.json records and summary counts against the
  uninterrupted run's, its artifacts byte for byte, and the kept half's cost (the keep
  decisions, and the resumed run's start to its first page) as a share of the time the
  killed run took to do that half.
* ``explore``: :func:`ocrlab.lab.analysis.trace_frames` on the run's trace, in a process of
  its own: its answer (a refusal, or a sample) and its peak memory.
* ``index``: the journal index three ways on the run's journal (a dict of the ids as before,
  the sorted arrays of :class:`ocrlab.output.journal_index.JournalIndex`, SQLite on disk): build
  time, time per lookup, memory.

Corpora go under ``--work`` (kept for reuse; a million tiny files take ~4 GB and ~10 min to
make: put them outside any git tree and remove them afterwards). The host's load average
is recorded before and after every step: the figures are only comparable within one
invocation on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .scale import PER_FOLDER, make_corpus

ECHO = "ocrlab.engines.fakes:echo"
_DROP = {"seconds", "workers", "kept_from_previous_run"}


class Watch:
    """Samples a process's ``VmHWM`` and ``VmRSS`` from ``/proc`` on a thread until it ends."""

    def __init__(self, pid: int, interval_s: float = 0.2) -> None:
        self.pid, self.interval_s = pid, interval_s
        self.hwm_kb = 0
        self.rss_kb: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                status = Path(f"/proc/{self.pid}/status").read_text()
            except OSError:
                return
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            self.hwm_kb = max(self.hwm_kb, int(fields.get("VmHWM", "0 kB").split()[0]))
            self.rss_kb.append(int(fields.get("VmRSS", "0 kB").split()[0]))
            self._stop.wait(self.interval_s)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        rss = sorted(self.rss_kb) or [0]
        return {
            "main_peak_mb": round(self.hwm_kb / 1024, 1),
            "main_rss_median_mb": round(rss[len(rss) // 2] / 1024, 1),
            "main_rss_max_mb": round(rss[-1] / 1024, 1),
            "samples": len(self.rss_kb),
        }


def _uptime() -> str:
    """The host's load averages (1, 5, 15 minutes)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as fh:
        return sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))


def ocrlab_run(
    corpus: Path, out: Path, workers: int, *extra: str, kill_at: int | None = None
) -> dict[str, Any]:
    """One ``ocrlab run`` in a process of its own; SIGKILL once ``kill_at`` documents are in
    the journal (its document lines counted as it grows; not its ``writing`` lines)."""
    args = [sys.executable, "-m", "ocrlab", "run", str(corpus), "--out", str(out)]
    args += ["--workers", str(workers), "--engine", ECHO, "--quiet", *extra]
    env = {**os.environ, "OCR_PROGRESS": "false"}
    row: dict[str, Any] = {"load_before": _uptime(), "log_lines_before": _lines(out / "ocrlab.log")}
    t0 = time.monotonic()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    watch = Watch(proc.pid)
    if kill_at is not None:
        journal, offset, done = out / "journal.jsonl", 0, 0
        while proc.poll() is None and done < kill_at:
            time.sleep(0.2)
            if journal.exists():
                with open(journal, "rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read()
                chunk = chunk[: chunk.rfind(b"\n") + 1]  # whole lines only
                offset += len(chunk)
                done += chunk.count(b'{"doc_id":"')  # how every document line begins
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            row["killed_at_s"], row["killed_at_docs"] = round(time.monotonic() - t0, 2), done
    stdout, stderr = proc.communicate()
    row.update(watch.stop())
    row.update(
        wall_s=round(time.monotonic() - t0, 2),
        returncode=proc.returncode,
        load_after=_uptime(),
        stdout=stdout.decode()[-500:],
        log_lines_after=_lines(out / "ocrlab.log"),
    )
    if proc.returncode not in (0, -signal.SIGKILL):
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{stderr.decode()[-3000:]}")
    return row


def _results_head(path: Path) -> dict[str, Any]:
    """results.json without its documents (read up to them, not whole)."""
    head = b""
    with open(path, "rb") as fh:
        for line in fh:
            if line.startswith(b' "documents"'):
                break
            head += line
    data: dict[str, Any] = json.loads(head.rstrip().rstrip(b",") + b"}")
    return data


def _run_end(trace: Path) -> dict[str, Any]:
    with open(trace, "rb") as fh:
        fh.seek(max(0, trace.stat().st_size - (1 << 16)))
        for line in reversed(fh.read().splitlines()):
            if b'"run_end"' in line:
                event: dict[str, Any] = json.loads(line.strip().strip(b","))
                return dict(event["args"])
    return {}


def outputs(out: Path) -> dict[str, Any]:
    """What a finished run wrote: its summary, run_end figures and file sizes."""
    summary = _results_head(out / "results.json")["summary"]
    end = _run_end(out / "trace.json")
    mb = {n: round((out / n).stat().st_size / 2**20, 1) for n in ("results.json", "trace.json")}
    keys = ("documents", "documents_ok", "documents_kept", "pages", "pages_per_s", "wall_s")
    return {
        **{k: summary.get(k) for k in keys},
        "first_page_s": summary.get("first_page_s"),
        "results_json_mb": mb["results.json"],
        "trace_json_mb": mb["trace.json"],
        "results_json_write_s": end.get("manifest_write_s"),
        "trace_json_write_s": end.get("trace_write_s"),
        "resume": end.get("resume"),
    }


def _documents(path: Path) -> Any:
    with open(path, "rb") as fh:
        for line in fh:
            if line.startswith(b"  {"):
                doc = json.loads(line.strip().rstrip(b","))
                yield {k: v for k, v in doc.items() if k not in _DROP}


def compare(a: Path, b: Path) -> dict[str, Any]:
    """Two finished runs' records (streamed, both sorted) and artifacts (byte for byte)."""
    records = differ = 0
    for x, y in zip(_documents(a / "results.json"), _documents(b / "results.json"), strict=True):
        records += 1
        differ += x != y
    artifacts = mismatched = 0
    for dirpath, _, names in os.walk(a / "text"):
        for name in names:
            path = Path(dirpath, name)
            other = b / path.relative_to(a)
            artifacts += 1
            mismatched += not other.exists() or other.read_bytes() != path.read_bytes()
    in_b = sum(len(names) for _, _, names in os.walk(b / "text"))
    counts = ("documents", "documents_ok", "documents_partial", "documents_failed")
    sa, sb = _results_head(a / "results.json")["summary"], _results_head(b / "results.json")
    return {
        "records": records,
        "records_differing": differ,
        "artifacts": artifacts,
        "artifacts_differing": mismatched + abs(in_b - artifacts),
        "summary_counts_equal": all(sa[k] == sb["summary"][k] for k in counts),
    }


_EXPLORE = r"""
import json, resource, sys, time
from ocrlab.lab.analysis import TraceTooLargeError, trace_frames
t = time.monotonic()
try:
    f = trace_frames(sys.argv[1], every=int(sys.argv[2]))
    out = {"pages": len(f.pages), "documents": len(f.documents), "counters": len(f.counters)}
except TraceTooLargeError as exc:
    out = {"refused": str(exc)}
out.update(seconds=round(time.monotonic() - t, 1),
           peak_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
print(json.dumps(out))
"""


def explore(trace: Path) -> list[dict[str, Any]]:
    """trace_frames on ``trace``: as it is, then sampled as its refusal suggests."""
    rows, every = [], 1
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, "-c", _EXPLORE, str(trace), str(every)],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append({"every": every, **row, "load": _uptime()})
        if "refused" not in row:
            break
        every = int(row["refused"].split("every=")[1].split()[0])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--reference", type=int, default=2000, help="the reference run's size")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", default="/work/bench-million", help="corpora and outputs")
    parser.add_argument("--out", default="million-out", help="where million.json goes")
    parser.add_argument("--steps", default="run,resume,kill,explore,index")
    args = parser.parse_args(argv)
    steps = set(args.steps.split(","))
    work, out = Path(args.work), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report_path = out / "million.json"
    report: dict[str, Any] = json.loads(report_path.read_text()) if report_path.exists() else {}
    report.update(docs=args.docs, workers=args.workers, per_folder=PER_FOLDER)

    def step(name: str, value: Any) -> None:
        report[name] = value
        report_path.write_text(json.dumps(report, indent=1) + "\n")
        print(f"{name}: {json.dumps(value)}", file=sys.stderr, flush=True)

    n, full, killed = args.docs, work / "out-full", work / "out-kill"
    t = time.monotonic()
    corpus = make_corpus(work / f"corpus-{n}", n)
    reference = make_corpus(work / f"corpus-{args.reference}", args.reference)
    step("corpus_s", round(time.monotonic() - t, 1))
    if "run" in steps:
        shutil.rmtree(work / "out-reference", ignore_errors=True)
        row = ocrlab_run(reference, work / "out-reference", args.workers)
        step("reference", {**row, **outputs(work / "out-reference")})
        shutil.rmtree(full, ignore_errors=True)
        step("run", {**ocrlab_run(corpus, full, args.workers), **outputs(full)})
    if "resume" in steps:
        step("resume", {**ocrlab_run(corpus, full, args.workers, "--resume"), **outputs(full)})
    if "kill" in steps:
        shutil.rmtree(killed, ignore_errors=True)
        step("killed", ocrlab_run(corpus, killed, args.workers, kill_at=n // 2))
        row = ocrlab_run(corpus, killed, args.workers, "--resume")
        step("kill_resume", {**row, **outputs(killed), "versus_run": compare(full, killed)})
    if "explore" in steps:
        first = full / "trace.1.json" if (full / "trace.1.json").exists() else full / "trace.json"
        step("explore", explore(first))
    if "index" in steps:
        from .million_index import index_bench

        step("index", index_bench(full / "journal.jsonl", n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
