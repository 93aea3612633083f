"""``ocrlab merge``: shard outputs into one output folder, as one unsharded run leaves it.

Each shard of a run (``ocrlab run ... --shard I/N``, :mod:`ocrlab.shards`) wrote a
complete output folder of its share. The merge writes one folder whose ``text/``,
``results.json``, ``journal.jsonl`` and ``trace.json`` are those of a run over all
the documents: the same artifacts (copied, their SHA-256 checked against the
records), one record per document sorted by id (the shards' journals merged, each
sorted with the journal's bounded-memory sort: no shard is held in memory), the
summary's counts summed, and the shards' traces side by side on one wall-clock
timeline, one process group per shard (:mod:`ocrlab.output.merge_trace`).

Refused, before anything is written (:class:`~ocrlab.errors.MergeRefusedError`,
exit 2): a folder given twice, a shard given twice (overlap) or missing, shards of
different counts, a shard that did not finish, shards run with other text-shaping
settings or another Tesseract version, shards that saw different inputs, a
document in two shards. The output folder must be new or empty, like a run's.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MergeRefusedError, OutputNotEmptyError
from ..records import DocumentRecord
from .atomic import atomic_writer
from .journal import StreamingManifest, last_section, sorted_section
from .layout import OutputLayout
from .lock import hold_output
from .merge_trace import merge_traces, t0_unix_ns

#: summary counts that add up over the shards (the rest is recomputed or per shard)
SUMMED = (
    "documents",
    "documents_ok",
    "documents_partial",
    "documents_failed",
    "documents_kept",
    "pages",
    "pages_failed",
    "restarts",
    "workers_recycled",
    "backpressure",
    "workers",
)
#: the settings that shape the text, named when two shards differ (the settings key
#: covers them and the Tesseract version)
SHAPING = ("engine", "lang", "psm", "dpi", "engine_options")


@dataclass(frozen=True)
class ShardOutput:
    """One shard's output folder, as its results.json describes it (documents not read)."""

    root: Path
    head: dict[str, Any]

    @property
    def run(self) -> dict[str, Any]:
        run: dict[str, Any] = self.head.get("run", {})
        return run

    @property
    def share(self) -> dict[str, Any]:
        share: dict[str, Any] = self.run.get("shard") or {}
        return share

    @property
    def index(self) -> int:
        return int(str(self.share["shard"]).split("/")[0])

    @property
    def count(self) -> int:
        return int(str(self.share["shard"]).split("/")[1])

    @property
    def label(self) -> str:
        return f"{self.root} (shard {self.share.get('shard')})"


def read_head(path: Path) -> dict[str, Any]:
    """results.json without its documents: the head is parsed, the document lines skipped."""
    marker = b',\n "documents": ['
    head = b""
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 16):
            head += chunk
            cut = head.find(marker)
            if cut >= 0:
                data: dict[str, Any] = json.loads(head[:cut] + b"\n}")
                return data
    whole: dict[str, Any] = json.loads(head)  # another layout: parse it whole
    whole.pop("documents", None)
    return whole


def load_shard(root: Path) -> ShardOutput:
    """A shard's output folder, or a refusal saying why it is not one."""
    manifest = root / "results.json"
    if not manifest.is_file():
        raise MergeRefusedError(
            f"{root} holds no results.json: not an ocrlab output folder; give the --out "
            "folders of the shard runs."
        )
    try:
        shard = ShardOutput(root, read_head(manifest))
    except (OSError, ValueError) as exc:
        raise MergeRefusedError(f"{manifest} cannot be read ({exc}).") from exc
    if not shard.share.get("shard"):
        raise MergeRefusedError(
            f"{root} is not a shard's output (its run had no --shard); merge the outputs "
            "of 'ocrlab run ... --shard I/N', one per I."
        )
    return shard


def check_shards(shards: Sequence[ShardOutput]) -> None:
    """Refuse shards that do not make one run (see the module doc); silent when they do."""
    seen: dict[Path, ShardOutput] = {}
    for s in shards:
        real = s.root.resolve()
        if real in seen:
            same = "" if seen[real].root == s.root else f" (as {seen[real].root} too)"
            raise MergeRefusedError(
                f"{s.root} is given twice{same}: overlapping shards; give each shard's "
                "output folder once."
            )
        seen[real] = s
    first = shards[0]
    by_index: dict[int, ShardOutput] = {}
    for s in shards:
        if s.count != first.count:
            raise MergeRefusedError(
                f"{s.label} and {first.label} are shards of different runs ({s.count} vs "
                f"{first.count} shards); merge the shards of one run."
            )
        if s.index in by_index:
            raise MergeRefusedError(
                f"shard {s.index}/{s.count} is given twice ({by_index[s.index].root} and "
                f"{s.root}): overlapping shards; give each shard once."
            )
        by_index[s.index] = s
        if s.head.get("status") != "complete":
            raise MergeRefusedError(
                f"{s.label} did not finish (status {s.head.get('status')!r}); run it again "
                "with --resume, then merge."
            )
    missing = [f"{i}/{first.count}" for i in range(first.count) if i not in by_index]
    if missing:
        raise MergeRefusedError(
            f"missing shard(s) {', '.join(missing)}: give every shard's output folder "
            f"(run 'ocrlab run ... --shard I/{first.count}' for each one missing)."
        )
    for s in shards[1:]:
        _same_settings(first, s)
        _same_inputs(first, s)


def _same_settings(a: ShardOutput, b: ShardOutput) -> None:
    va = (a.run.get("versions") or {}).get("tesseract")
    vb = (b.run.get("versions") or {}).get("tesseract")
    if va != vb:
        raise MergeRefusedError(
            f"{a.label} ran Tesseract {va} but {b.label} Tesseract {vb}: the texts would "
            "not be one run's; run every shard with the same Tesseract."
        )
    if a.run.get("settings_key") != b.run.get("settings_key"):
        ca, cb = a.run.get("config") or {}, b.run.get("config") or {}
        diff = [f"{k} {ca.get(k)!r} vs {cb.get(k)!r}" for k in SHAPING if ca.get(k) != cb.get(k)]
        raise MergeRefusedError(
            f"{a.label} and {b.label} were run with other settings "
            f"({'; '.join(diff) or 'settings key ' + str(a.run.get('settings_key'))}); "
            "run every shard with the same settings."
        )


def _same_inputs(a: ShardOutput, b: ShardOutput) -> None:
    if a.share.get("seen") != b.share.get("seen") or a.share.get("window") != b.share.get("window"):
        raise MergeRefusedError(
            f"{a.label} saw {a.share.get('seen')} of the inputs but {b.label} saw "
            f"{b.share.get('seen')}: the shards walked different inputs (or ran different "
            "ocrlab versions); run every shard on the same inputs."
        )


def _keyed(journal: Path, index: int, tmp: Path) -> Iterator[tuple[str, int, bytes]]:
    """One shard's record lines sorted by doc_id, as (doc_id, shard index, line)."""
    for line in sorted_section(journal, last_section(journal), tmp):
        yield str(json.loads(line)["doc_id"]), index, line


def _documents(shards: Sequence[ShardOutput], tmp: Path) -> Iterator[tuple[ShardOutput, bytes]]:
    """Every shard's records merged in doc_id order (each shard's sorted in bounded memory)."""
    streams = [_keyed(s.root / "journal.jsonl", s.index, tmp) for s in shards]
    by_index = {s.index: s for s in shards}
    previous: tuple[str, int] | None = None
    for doc_id, index, line in heapq.merge(*streams):
        if previous is not None and previous[0] == doc_id:
            raise MergeRefusedError(
                f"document {doc_id!r} is in {by_index[previous[1]].label} and in "
                f"{by_index[index].label}: overlapping shards."
            )
        previous = (doc_id, index)
        yield by_index[index], line


def _count(shards: Sequence[ShardOutput], tmp: Path) -> int:
    """Documents over all shards, checked for overlap (a first pass: nothing written yet)."""
    n = 0
    for _ in _documents(shards, tmp):
        n += 1
    want = int(shards[0].share["seen"]["documents"])
    if n != want:
        raise MergeRefusedError(
            f"the shards hold {n} documents but each saw {want} in the inputs: "
            "a shard's output is incomplete; run it again with --resume."
        )
    return n


def _copy_artifact(shard: ShardOutput, record: dict[str, Any], into: OutputLayout) -> None:
    """The record's text artifact and its files in the other formats, each checked against
    the SHA-256 its record gives (the other formats keep their paths: named like the text)."""
    rel = record.get("artifact")
    if not rel:
        return
    _copy(shard.root / rel, into.artifact_path(str(record["doc_id"])), record.get("sha256"))
    for fmt, entry in (record.get("formats") or {}).items():
        if fmt != "txt":
            _copy(shard.root / entry["path"], into.root / entry["path"], entry.get("sha256"))


def _copy(source: Path, target: Path, sha256: object) -> None:
    digest = hashlib.sha256()
    with open(source, "rb") as src, atomic_writer(target) as out:
        for block in iter(lambda: src.read(1 << 20), b""):
            digest.update(block)
            out.write(block)
        if digest.hexdigest() != sha256:
            raise MergeRefusedError(
                f"{source} does not match its record's SHA-256 (changed since its run?); "
                "run that shard again with --overwrite."
            )


def merged_run(shards: Sequence[ShardOutput]) -> dict[str, Any]:
    """The merged run's metadata: the first shard's, the share gone, every shard listed."""
    run: dict[str, Any] = json.loads(json.dumps(shards[0].run))
    run.pop("shard", None)
    run.pop("stop_reason", None)
    config = run.setdefault("config", {})
    config["shard"] = None
    config.setdefault("provenance", {})["shard"] = "merge"
    starts = [t0_unix_ns(s.run) for s in shards]
    ends = [
        t + int(float(s.run.get("wall_s") or 0) * 1e9) for t, s in zip(starts, shards, strict=True)
    ]
    run["wall_s"] = round((max(ends) - min(starts)) / 1e9, 4)
    # the merged run begins where its earliest shard did (no monotonic clock spans machines)
    run["clocks"], run["t0_monotonic_ns"] = {"unix_ns": min(starts), "monotonic_ns": 0}, 0
    run["started_at"] = min(str(s.run.get("started_at", "")) for s in shards)
    run["finished_at"] = max(str(s.run.get("finished_at", "")) for s in shards)
    run["merged_from"] = [
        {
            "out": str(s.root),
            "shard": s.share,
            **{k: s.run.get(k) for k in ("host", "pid", "started_at", "finished_at", "wall_s")},
        }
        for s in shards
    ]
    return run


def merged_summary(shards: Sequence[ShardOutput], wall_s: float) -> dict[str, Any]:
    """Counts summed over the shards; time and rates over the merged run's span."""
    out: dict[str, Any] = {
        k: sum(int(s.head["summary"].get(k) or 0) for s in shards) for k in SUMMED
    }
    skipped: dict[str, int] = {}
    for s in shards:
        for kind, n in (s.head["summary"].get("skipped") or {}).items():
            skipped[kind] = skipped.get(kind, 0) + int(n)
    out.update(
        skipped=dict(sorted(skipped.items())),
        wall_s=wall_s,
        pages_per_s=round(out["pages"] / wall_s, 4) if wall_s > 0 else 0.0,
        sequential=all(s.head["summary"].get("sequential") for s in shards),
        startup_s=None,
        first_page_s=None,
        engine_maxrss=max(int(s.head["summary"].get("engine_maxrss") or 0) for s in shards),
        peaks={},
        shards=[
            {"shard": s.share["shard"], "peaks": s.head["summary"].get("peaks", {})} for s in shards
        ],
    )
    return out


def merge_outputs(
    sources: Sequence[str | os.PathLike[str]], into: str | os.PathLike[str]
) -> dict[str, Any]:
    """Merge the shard output folders ``sources`` into ``into``; return the merged summary.

    Raises :class:`~ocrlab.errors.MergeRefusedError` (nothing written) for shards that
    do not make one run, and the output folder's own refusals (busy, holding a run).
    """
    if not sources:
        raise MergeRefusedError("no shard output folder given; name every shard's --out folder.")
    shards = sorted((load_shard(Path(p)) for p in sources), key=lambda s: s.index)
    check_shards(shards)
    layout = OutputLayout(into)
    with hold_output(layout.root), tempfile.TemporaryDirectory(prefix="ocrlab-merge-") as tmp:
        _count(shards, Path(tmp))
        found = layout.previous_outputs()
        if found:
            raise OutputNotEmptyError(
                f"output folder {str(layout.root)!r} holds a previous run's "
                f"{', '.join(found)}; merge into a new or empty folder (--into)."
            )
        layout.prepare()
        run = merged_run(shards)
        summary = merged_summary(shards, float(run["wall_s"]))
        try:
            manifest = StreamingManifest(
                layout.manifest, run, str(run["started_at"]), tmp_dir=Path(tmp)
            )
            for shard, line in _documents(shards, Path(tmp)):
                record = json.loads(line)
                _copy_artifact(shard, record, layout)
                manifest.add(DocumentRecord.from_dict(record))
            manifest.write("complete", summary)
            merge_traces(
                [(s.root / "trace.json", s.run, s.share) for s in shards],
                layout.trace,
                run,
                summary,
            )
            _merge_logs(shards, layout.log)
        except BaseException:
            with contextlib.suppress(OSError):
                layout.clear()  # a refusal found late (a changed artifact) leaves nothing
            raise
    return summary


def _merge_logs(shards: Sequence[ShardOutput], target: Path) -> None:
    """The shards' logs one after the other, each under a line naming its shard."""
    with atomic_writer(target) as out:
        for s in shards:
            out.write(f"# shard {s.share['shard']} from {s.root}\n".encode())
            log = s.root / "ocrlab.log"
            if log.is_file():
                with open(log, "rb") as src:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        out.write(block)
