"""The streaming manifest: an append-only journal, and ``results.json`` written from it.

Why: the manifest used to live in memory and be rewritten whole every second,
which costs memory per document and time quadratic in the batch (at 100,000
documents the main process held 841 MB and rewrote 57 MB every second). Now:

* ``journal.jsonl`` gets one JSON line per finished document, flushed at once,
  so a run killed with ``kill -9`` leaves every finished document on disk (at
  most its last line torn, which readers skip and the next writer truncates).
  Each run starts a *section* with a ``{"run_start": ...}`` line; ``--resume``
  looks at every section (the newest record of a document wins).
* ``results.json`` is written once, at the end of the run (also when it is
  interrupted), from the run's section of the journal, sorted by ``doc_id``
  with a bounded-memory external merge sort (runs of :data:`SORT_CHUNK` lines
  sorted in memory, spilled to temporary files, merged with :func:`heapq.merge`).
  Its schema is unchanged (``ocrlab.results/1``); documents are one per line.
  While a run goes on, ``results.json`` is a stub with status ``running`` and no
  documents; :func:`ocrlab.output.manifest.load_manifest` fills them in from the journal.
* once ``results.json`` is written, the journal is compacted to the run's own
  section, so repeated ``--resume`` runs do not make it grow.
"""

from __future__ import annotations

import heapq
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from ..records import DocumentRecord, RunStatus
from .atomic import atomic_writer
from .layout import JOURNAL_NAME
from .names import json_dumps

MANIFEST_SCHEMA = "ocrlab.results/1"
#: journal lines sorted in memory at once when results.json is written (about 0.5 KB each:
#: ~6 MB; a million documents make 100 temporary runs to merge)
SORT_CHUNK = 10_000


def _dumps(obj: Mapping[str, Any]) -> str:
    return json_dumps(obj, separators=(",", ":"), default=str)


def iter_journal(path: Path, start: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(offset, object)`` for every complete, readable line from byte ``start`` on.

    A line without its newline (torn by ``kill -9``) or that does not parse is skipped.
    """
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, also when the caller stops
    except FileNotFoundError:
        return
    with fh:
        fh.seek(start)
        offset = start
        for raw in fh:
            here, offset = offset, offset + len(raw)
            if not raw.endswith(b"\n"):
                break
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if isinstance(obj, dict):
                yield here, obj


def last_section(path: Path) -> int:
    """Byte offset of the newest run's first line (0 when the journal has no header)."""
    start = 0
    for offset, obj in iter_journal(path):
        if "run_start" in obj:
            start = offset
    return start


class Journal:
    """Appends one line per finished document; the main process is the only writer."""

    def __init__(self, path: Path, run_start: str, fresh: bool = True) -> None:
        self.path = path
        if fresh:  # a new run (not --resume): earlier sections have nothing to offer
            path.unlink(missing_ok=True)
        self._truncate_torn_tail()
        self._fh: IO[bytes] = open(path, "ab")  # noqa: SIM115 - closed in close()
        self.section = self._fh.tell()
        self._write({"run_start": run_start})

    def _truncate_torn_tail(self) -> None:
        """Drop a torn last line a killed run left, so the next line starts clean."""
        try:
            with open(self.path, "r+b") as fh:
                size = fh.seek(0, os.SEEK_END)
                if size == 0:
                    return
                fh.seek(max(0, size - 1))
                if fh.read(1) == b"\n":
                    return
                block = 1 << 16
                pos = size
                while pos > 0:
                    pos = max(0, pos - block)
                    fh.seek(pos)
                    chunk = fh.read(min(block, size - pos))
                    cut = chunk.rfind(b"\n")
                    if cut >= 0:
                        fh.truncate(pos + cut + 1)
                        return
                fh.truncate(0)
        except FileNotFoundError:
            return

    def _write(self, obj: Mapping[str, Any]) -> None:
        self._fh.write((_dumps(obj) + "\n").encode("utf-8"))
        self._fh.flush()

    def add(self, record: DocumentRecord) -> None:
        self._write(record.as_dict())

    def close(self) -> None:
        self._fh.close()


def sorted_section(path: Path, start: int, tmp_dir: Path) -> Iterator[str]:
    """The document lines of the section at ``start``, sorted by ``doc_id``, newest wins.

    Memory stays bounded by :data:`SORT_CHUNK` lines whatever the section's size.
    """
    runs: list[Path] = []
    chunk: list[tuple[str, int, str]] = []
    seq = 0

    def spill() -> None:
        chunk.sort()
        fd, name = tempfile.mkstemp(prefix=".sort-", suffix=".tmp", dir=tmp_dir)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for doc_id, n, line in chunk:
                out.write(_dumps({"k": doc_id, "n": n, "l": line}) + "\n")
        runs.append(Path(name))
        chunk.clear()

    try:
        for offset, obj in iter_journal(path, start):
            if offset > start and "run_start" in obj:
                break  # a later section (should not happen: each run compacts its own)
            if "doc_id" not in obj:
                continue
            chunk.append((str(obj["doc_id"]), seq, _dumps(obj)))
            seq += 1
            if len(chunk) >= SORT_CHUNK:
                spill()
        if not runs:
            chunk.sort()
            merged: Iterator[tuple[str, int, str]] = iter(chunk)
        else:
            if chunk:
                spill()
            files = [open(p, encoding="utf-8") for p in runs]  # noqa: SIM115 - closed below

            def read(fh: IO[str]) -> Iterator[tuple[str, int, str]]:
                for line in fh:
                    obj = json.loads(line)
                    yield obj["k"], obj["n"], obj["l"]

            merged = heapq.merge(*(read(fh) for fh in files))
        pending: tuple[str, int, str] | None = None
        for item in merged:
            if pending is not None and pending[0] != item[0]:
                yield pending[2]
            pending = item  # same doc_id twice: the later line (higher seq) wins
        if pending is not None:
            yield pending[2]
    finally:
        for p in runs:
            p.unlink(missing_ok=True)
        if runs:
            for fh in files:
                fh.close()


class StreamingManifest:
    """The manifest of one run: journal lines as documents finish, results.json at the end.

    Same interface as the old in-memory writer (``add``, ``write``, ``run``), so the
    collector does not know the difference.
    """

    def __init__(
        self,
        manifest_path: Path,
        run: Mapping[str, Any],
        run_start: str,
        fresh: bool = True,
        tmp_dir: Path | None = None,
    ) -> None:
        self.path = manifest_path
        #: where the sort spills (the run's own temporary folder, not the output folder)
        self.tmp_dir = tmp_dir or manifest_path.parent
        self.run = dict(run)
        self.journal = Journal(manifest_path.parent / JOURNAL_NAME, run_start, fresh)
        self._write_body("running", {}, iter(()))

    def add(self, record: DocumentRecord) -> None:
        self.journal.add(record)

    def _write_body(
        self, status: RunStatus, summary: Mapping[str, Any], lines: Iterator[str]
    ) -> None:
        head = {
            "schema": MANIFEST_SCHEMA,
            "status": status,
            "run": self.run,
            "summary": dict(summary),
            "journal": JOURNAL_NAME,
        }
        text = json_dumps(head, indent=1, default=str)
        with atomic_writer(self.path) as fh:
            fh.write(text[:-2].encode("utf-8"))  # without the closing "\n}"
            fh.write(b',\n "documents": [')
            first = True
            for line in lines:
                fh.write((b"\n  " if first else b",\n  ") + line.encode("utf-8"))
                first = False
            fh.write(b"\n ]\n}\n")

    def write(self, status: RunStatus, summary: Mapping[str, Any] | None = None) -> None:
        """Write results.json from the journal, then compact the journal to this run."""
        self.journal.close()
        journal = self.journal.path
        tmp = self.tmp_dir
        self._write_body(status, summary or {}, sorted_section(journal, self.journal.section, tmp))
        if self.journal.section > 0:
            with atomic_writer(journal) as out, open(journal, "rb") as src:
                src.seek(self.journal.section)
                for block in iter(lambda: src.read(1 << 20), b""):
                    out.write(block)
            self.journal.section = 0


def journal_documents(out_dir: Path) -> list[dict[str, Any]]:
    """The newest run's documents from its journal, sorted (a killed run's manifest)."""
    path = out_dir / JOURNAL_NAME
    # In the system's temporary folder: the output folder may belong to a running run.
    with tempfile.TemporaryDirectory(prefix="ocrlab-sort-") as tmp:
        return [json.loads(line) for line in sorted_section(path, last_section(path), Path(tmp))]


class PreviousRun:
    """The newest record of each document in a journal, read on demand (``--resume``).

    Only an index ``doc_id -> offset`` of ``ok`` records is held (the others are
    redone anyway): about 100 bytes per document instead of the whole record;
    besides, the artifact of each newest record that is not ``ok`` but has one (a
    partial document), which a redo must replace.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.index: dict[str, int] = {}
        self.stale: dict[str, str] = {}
        for offset, obj in iter_journal(path):
            doc_id = obj.get("doc_id")
            if doc_id is None:
                continue
            key = str(doc_id)
            if obj.get("status") == "ok":
                self.index[key] = offset
                self.stale.pop(key, None)
            else:
                self.index.pop(key, None)
                if obj.get("artifact"):
                    self.stale[key] = str(obj["artifact"])
                else:
                    self.stale.pop(key, None)

    def __len__(self) -> int:
        return len(self.index)

    def get(self, doc_id: str) -> DocumentRecord | None:
        offset = self.index.get(doc_id)
        if offset is None:
            return None
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            try:
                return DocumentRecord.from_dict(json.loads(fh.readline()))
            except (TypeError, ValueError, KeyError):
                return None

    def artifact(self, doc_id: str) -> str | None:
        """The artifact (relative to the folder) the newest record of ``doc_id`` lists."""
        if doc_id in self.stale:
            return self.stale[doc_id]
        record = self.get(doc_id)
        return record.artifact if record is not None else None
