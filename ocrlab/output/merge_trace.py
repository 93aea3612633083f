"""The shards' traces as one ``trace.json``: one process group per shard, one timeline.

Each shard's trace counts from its own start; here every shard's events move by
its start's distance from the earliest shard's (:func:`t0_unix_ns`, the wall clock at
each shard's zero), so shards that ran side by side under a job array overlap
and shards run one after another follow each other. Within its group, a shard's
run and document lanes keep their thread ids and each of its workers becomes a
thread (``WORKER_TID_BASE`` + its pid: pids of different shards may be equal);
a Dask host's counter track stays a process of its own (``shard I/N: host NAME``),
so its counters are not mixed with another host's.

The merged run has one ``run_metadata``, ``run_start``, final ``pages_found`` and
``run_end`` (the merged summary), on the merged run's own group; each shard's own
become ``shard_metadata``, ``shard_start`` and ``shard_end``, so live views and the
trace explorer read the merged trace as one run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from . import trace_schema as ts
from .atomic import atomic_writer
from .trace import event_line, naming
from .trace_reader import iter_trace

#: thread ids of a shard's workers in its group: above every real pid (2**22) and every
#: other host's worker track (2**22 + n)
WORKER_TID_BASE = 1 << 23
MERGED_PID = 1
_RENAMED = {
    ts.RUN_METADATA: ts.SHARD_METADATA,
    ts.RUN_START: ts.SHARD_START,
    ts.RUN_END: ts.SHARD_END,
}


def t0_unix_ns(run: Mapping[str, Any]) -> int:
    """Where a run began on the wall clock (ns), from its metadata: the two clocks read
    together, and the monotonic stamp of its start."""
    clocks = run.get("clocks") or {}
    if not clocks or run.get("t0_monotonic_ns") is None:
        return 0
    elapsed = int(clocks["monotonic_ns"]) - int(run["t0_monotonic_ns"])
    return int(clocks["unix_ns"]) - elapsed


class _Out:
    """Events written one per line, as the run's own trace writer does."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.sep = b"[\n"

    def emit(self, event: Mapping[str, Any]) -> None:
        self.fh.write(self.sep + event_line(event).encode("utf-8"))
        self.sep = b",\n"

    def name(self, pid: int, name: str, sort_index: int, tid: int | None = None) -> None:
        for event in naming(pid, name, tid=tid, sort_index=None if tid is not None else sort_index):
            self.emit(event)

    def instant(self, name: str, ts_us: float, args: Mapping[str, Any]) -> None:
        self.emit(
            {
                "ph": "i",
                "s": "g" if name == ts.RUN_METADATA else "p",
                "name": name,
                "cat": "run",
                "pid": MERGED_PID,
                "tid": 0,
                "ts": ts_us,
                "args": dict(args),
            }
        )


class _Shard:
    """One shard's events moved into its group and onto the merged timeline."""

    def __init__(
        self, out: _Out, group: int, label: str, main_pid: int, shift_us: float, next_pid: int
    ) -> None:
        self.out = out
        self.group = group
        self.label = label
        self.main_pid = main_pid
        self.shift_us = shift_us
        self.next_pid = next_pid
        self.hosts: dict[int, int] = {}  # a host counter track's pid -> its own group
        self.named: set[int] = set()  # workers named as threads already
        self.end_us = shift_us
        self.start_us: float | None = None
        self.pages = 0

    def place(self, pid: int, tid: int) -> tuple[int, int]:
        if pid == self.main_pid:
            return self.group, tid
        if pid in self.hosts:
            return self.hosts[pid], tid
        return self.group, WORKER_TID_BASE + pid

    def take(self, e: dict[str, Any]) -> None:
        ph, name, args = e.get("ph"), e.get("name"), e.get("args") or {}
        pid, tid = int(e.get("pid") or 0), int(e.get("tid") or 0)
        if ph == "M":
            self._metadata(str(name), pid, tid, args)
            return
        if name == ts.PAGES_FOUND:
            return  # the merged run announces its own total
        e = dict(e)
        e["pid"], e["tid"] = self.place(pid, tid)
        e["ts"] = round(float(e.get("ts") or 0) + self.shift_us, 3)
        end = e["ts"] + float(e.get("dur") or 0)
        self.end_us = max(self.end_us, end)
        if ph == "i" and name in _RENAMED:
            e["name"] = _RENAMED[str(name)]
            if name == ts.RUN_START:
                self.start_us = e["ts"]
        if ph == "i" and name == ts.HOST_JOINED and args.get("track") in self.hosts:
            e["args"] = {**args, "track": self.hosts[int(args["track"])]}
        if ts.is_page(e):
            self.pages += 1
        self.out.emit(e)

    def _metadata(self, name: str, pid: int, tid: int, args: Mapping[str, Any]) -> None:
        if pid == self.main_pid:
            if name == "thread_name":
                self.out.name(self.group, str(args.get("name")), 0, tid=tid)
            return  # the process is the shard's group, named by the merge
        label = str(args.get("name", ""))
        if name == "process_name" and label.startswith(ts.HOST_TRACK_PREFIX):
            self.hosts[pid] = self.next_pid
            self.next_pid += 1
            self.out.name(self.hosts[pid], f"{self.label}: {label}", 2)
        elif name == "process_name" and pid not in self.named:
            self.named.add(pid)  # a worker: a thread of the shard's group
            self.out.name(self.group, label, 0, tid=WORKER_TID_BASE + pid)
        elif name == "thread_name" and pid not in self.named and pid not in self.hosts:
            self.named.add(pid)
            self.out.name(self.group, label, 0, tid=WORKER_TID_BASE + pid)


def merge_traces(
    shards: Sequence[tuple[Path, Mapping[str, Any], Mapping[str, Any]]],
    target: Path,
    run: Mapping[str, Any],
    summary: Mapping[str, Any],
) -> None:
    """Write ``target`` from the shards' ``(trace path, run metadata, share)``, in order."""
    t0 = min(t0_unix_ns(meta) for _, meta, _ in shards)
    with atomic_writer(target) as fh:
        out = _Out(fh)
        out.name(MERGED_PID, f"ocrlab (merged run: {len(shards)} shards)", 0)
        out.name(MERGED_PID, "run", 0, tid=0)
        out.instant(ts.RUN_METADATA, 0, run)
        next_pid = MERGED_PID + len(shards) + 1
        starts: list[float] = []
        end = 0.0
        pages = 0
        for n, (path, meta, share) in enumerate(shards):
            group = MERGED_PID + 1 + n
            label = f"shard {share.get('shard')}"
            out.name(group, f"{label} @ {meta.get('host', '?')}", 1 + n)
            shift = (t0_unix_ns(meta) - t0) / 1000.0
            shard = _Shard(out, group, label, int(meta.get("pid") or 0), shift, next_pid)
            if path.is_file():
                for event in iter_trace(path):
                    shard.take(event)
            next_pid = shard.next_pid
            starts.append(shard.start_us if shard.start_us is not None else shift)
            end = max(end, shard.end_us)
            pages += shard.pages
        out.instant(ts.RUN_START, round(min(starts, default=0.0), 3), {"pages": None})
        out.instant(
            ts.PAGES_FOUND,
            round(end, 3),
            {"pages": int(summary.get("pages") or pages), "final": True},
        )
        out.instant(ts.RUN_END, round(end, 3), {"status": "complete", **summary})
        fh.write(b"\n]\n")
