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
  interrupted), from the run's section of the journal (every section when the run
  did not complete), sorted by ``doc_id``
  with a bounded-memory external merge sort (runs of :data:`SORT_CHUNK` lines
  sorted in memory, spilled to temporary files, merged with :func:`heapq.merge`).
  Its schema is unchanged (``ocrlab.results/1``); documents are one per line.
  While a run goes on, ``results.json`` is a stub with status ``running`` and no
  documents; :func:`ocrlab.output.manifest.load_manifest` fills them in from the journal.
* before an artifact is renamed into ``text/``, a ``{"writing": <artifact>, "for":
  <doc_id>}`` line says so (:data:`WRITING`): a run killed between the rename and
  the document's record leaves an artifact no record lists, and ``--resume`` learns
  from the line which file to remove before it redoes the document (found: the redo
  saw the name taken and wrote a second, hashed artifact beside the first).
* once a complete resumed run has written ``results.json``, the journal is compacted
  to the run's own section, its ``writing`` lines dropped, so repeated ``--resume``
  runs do not make it grow (a first run's journal is left as written: readers skip
  the ``writing`` lines, and rewriting it would copy the whole journal).
* a line's format, and what is read from its bytes: :mod:`ocrlab.output.journal_lines`.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from ..records import DocumentRecord, RunStatus
from .atomic import atomic_writer
from .journal_lines import (
    _DOC_PREFIX,
    Stamps,
    _dumps,
    doc_id_of,
    record_line,
    whole_lines,
    without_stamps,
)
from .layout import JOURNAL_NAME
from .names import json_dumps

MANIFEST_SCHEMA = "ocrlab.results/1"
#: journal lines sorted in memory at once when results.json is written (about 0.5 KB each:
#: ~6 MB; a million documents make 100 temporary runs to merge)
SORT_CHUNK = 10_000
#: key of the line written before an artifact is renamed into place (its value the
#: artifact's path relative to the folder; ``"for"`` the document's id)
WRITING = "writing"
_WRITING_PREFIX = b'{"' + WRITING.encode() + b'":'
_RUN_START = b'{"run_start":'


def last_section(path: Path) -> int:
    """Byte offset of the newest run's first line (0 when the journal has no header)."""
    start = 0
    for offset, raw in whole_lines(path):
        if raw.startswith(_RUN_START):
            start = offset
    return start


class Journal:
    """Appends one line per finished document; the main process is the only writer.

    Written through its own buffer to an unbuffered file, so that a write failing
    part way (a full disk) is cut back to its last whole line. Found: a line torn by
    ENOSPC stayed in a buffered writer and was completed by the flush at close, after
    the run had given its document up and removed its artifact, so the manifest listed
    an artifact that was not there.
    """

    #: kept lines (:meth:`add_kept`) are written once this many bytes wait
    KEPT_BUFFER = 1 << 16

    def __init__(self, path: Path, run_start: str, fresh: bool = True) -> None:
        self.path = path
        if fresh:  # a new run (not --resume): earlier sections have nothing to offer
            path.unlink(missing_ok=True)
        self._truncate_torn_tail()
        self._fh = open(path, "ab", buffering=0)  # noqa: SIM115 - closed in close()
        self._buf = bytearray()
        #: where the last whole line written ends
        self._end = os.fstat(self._fh.fileno()).st_size
        self.section = self._end
        self._put((_dumps({"run_start": run_start}) + "\n").encode("utf-8"), flush=True)

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

    def _put(self, line: bytes, flush: bool) -> None:
        self._buf += line
        if flush or len(self._buf) >= self.KEPT_BUFFER:
            self._flush()

    def _flush(self) -> None:
        data = bytes(self._buf)
        self._buf.clear()
        done = 0
        try:
            while done < len(data):
                done += self._fh.write(data[done:]) or 0
        except OSError:
            whole = self._end + data.rfind(b"\n", 0, done) + 1  # lines that made it stay
            with contextlib.suppress(OSError):
                os.ftruncate(self._fh.fileno(), whole)
                self._end = whole
            raise
        self._end += len(data)

    def add(self, record: DocumentRecord, stamps: Stamps = None) -> None:
        """A finished document, written at once: a ``kill -9`` after this keeps it."""
        self._put(record_line(record, stamps), flush=True)

    def add_kept(self, line: bytes) -> None:
        """A document kept from an earlier section, as its line; written in batches.

        Why: its record is still in the earlier section, which is only dropped once
        this run is complete (:meth:`StreamingManifest.write`); a run killed before
        loses nothing. A write call for each of a million kept lines was measurable.
        """
        self._put(line, flush=False)

    def writing(self, doc_id: str, artifact: str) -> None:
        """``artifact`` of ``doc_id`` is about to land: until the document's record
        follows, a resumed run treats the file as a leftover to remove."""
        self._put((_dumps({WRITING: artifact, "for": doc_id}) + "\n").encode("utf-8"), True)

    def close(self) -> None:
        try:
            if self._buf:
                self._flush()
        finally:
            self._fh.close()


def _section_lines(path: Path, start: int, through: bool) -> Iterator[tuple[str, bytes]]:
    """``(doc_id, line)`` of every document line of the section at ``start`` (and of the
    later ones: ``through``), in file order.

    A line :func:`record_line` wrote is known by its first and last bytes (a line is
    whole once its newline is written: :class:`Journal` cuts a failed write back);
    any other line is parsed, and skipped if it does not parse. A torn last line ends
    the section (:func:`whole_lines`).
    """
    first = True
    for _, raw in whole_lines(path, start):
        if raw.startswith(_DOC_PREFIX) and raw.endswith(b"}\n"):
            doc_id = doc_id_of(raw)
            if doc_id is not None:
                first = False
                yield doc_id, raw
            continue
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        if "run_start" in obj and not first and not through:
            break  # a later section
        first = False
        if obj.get("doc_id") is not None:
            yield str(obj["doc_id"]), raw


def _read_run(fh: IO[bytes], run: int) -> Iterator[tuple[str, int, bytes]]:
    """A spilled run back: its lines were parsed when spilled, the prefix is enough now."""
    for raw in fh:
        doc_id = doc_id_of(raw)
        if doc_id is not None:
            yield doc_id, run, raw


def sorted_section(path: Path, start: int, tmp_dir: Path, through: bool = False) -> Iterator[bytes]:
    """The records of the section at ``start`` (and the later ones: ``through``), sorted
    by ``doc_id``, newest wins, as results.json holds them (:func:`without_stamps`).

    Memory stays bounded by :data:`SORT_CHUNK` lines whatever the section's size: runs
    of that many lines are sorted in memory and spilled as they are (journal lines),
    then merged; equal ids keep their journal order (a run's own order, then the run's
    number), so the last of them is the newest.
    """
    runs: list[Path] = []
    files: list[IO[bytes]] = []
    chunk: list[tuple[str, int, bytes]] = []

    def spill() -> None:
        chunk.sort(key=lambda item: (item[0], item[1]))
        fd, name = tempfile.mkstemp(prefix=".sort-", suffix=".tmp", dir=tmp_dir)
        runs.append(Path(name))
        with os.fdopen(fd, "wb") as out:
            out.writelines(raw for _, _, raw in chunk)
        chunk.clear()

    try:
        for seq, (doc_id, raw) in enumerate(_section_lines(path, start, through)):
            chunk.append((doc_id, seq, raw))
            if len(chunk) >= SORT_CHUNK:
                spill()
        merged: Iterator[tuple[str, int, bytes]]
        if not runs:
            chunk.sort(key=lambda item: (item[0], item[1]))
            merged = iter(chunk)
        else:
            if chunk:
                spill()
            files.extend(open(p, "rb") for p in runs)  # noqa: SIM115 - closed below
            merged = heapq.merge(
                *(_read_run(fh, n) for n, fh in enumerate(files)),
                key=lambda item: (item[0], item[1]),
            )
        pending: tuple[str, int, bytes] | None = None
        for item in merged:
            if pending is not None and pending[0] != item[0]:
                yield without_stamps(pending[2])
            pending = item  # same doc_id twice: the later line wins
        if pending is not None:
            yield without_stamps(pending[2])
    finally:
        for fh in files:
            fh.close()
        for p in runs:
            p.unlink(missing_ok=True)


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
        #: seconds the last :meth:`write` took (the sort, results.json, the compaction)
        self.write_s = 0.0
        self._write_body("running", {}, iter(()))

    def add(self, record: DocumentRecord, stamps: Stamps = None) -> None:
        self.journal.add(record, stamps)

    def add_kept(self, line: bytes) -> None:
        self.journal.add_kept(line)

    def writing(self, doc_id: str, artifact: str) -> None:
        """See :meth:`Journal.writing`."""
        self.journal.writing(doc_id, artifact)

    def _write_body(
        self, status: RunStatus, summary: Mapping[str, Any], lines: Iterator[bytes]
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
                fh.write((b"\n  " if first else b",\n  ") + line)
                first = False
            fh.write(b"\n ]\n}\n")

    def write(self, status: RunStatus, summary: Mapping[str, Any] | None = None) -> None:
        """Write results.json from the journal; once the run is complete, compact the
        journal to its section.

        A run that did not complete (interrupted, stopped) keeps every section and lists
        the newest record of each document of them all: a resumed run stopped part way
        has not met every document the earlier runs finished, and dropping their
        sections lost them (their artifacts stayed, unlisted, and were OCRed again).
        """
        t = time.perf_counter()
        self.journal.close()
        journal = self.journal.path
        whole = status != "complete"
        start = 0 if whole else self.journal.section
        lines = sorted_section(journal, start, self.tmp_dir, through=whole)
        self._write_body(status, summary or {}, lines)
        if self.journal.section > 0 and not whole:
            with atomic_writer(journal) as out, open(journal, "rb") as src:
                src.seek(self.journal.section)
                out.writelines(line for line in src if not line.startswith(_WRITING_PREFIX))
            self.journal.section = 0
        self.write_s = round(time.perf_counter() - t, 3)


def journal_documents(out_dir: Path) -> list[dict[str, Any]]:
    """The documents of a run still going or killed, from its journal, sorted: the newest
    record of each document in every section (a resumed run's earlier runs included)."""
    path = out_dir / JOURNAL_NAME
    # In the system's temporary folder: the output folder may belong to a running run.
    with tempfile.TemporaryDirectory(prefix="ocrlab-sort-") as tmp:
        return [json.loads(line) for line in sorted_section(path, 0, Path(tmp), through=True)]
