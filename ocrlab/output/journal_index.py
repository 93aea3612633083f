"""Where the newest ``ok`` line of each document is in a journal (``--resume``'s index).

20 bytes a document in sorted arrays, not a dict of the ids: at a million documents the
dict was most of a resume's memory (``docs/resume.md`` has the measurements against a
dict and SQLite).
"""

from __future__ import annotations

import bisect
import json
import os
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .journal import _WRITING_PREFIX, WRITING
from .journal_lines import _DOC_PREFIX, doc_id_of, whole_lines
from .names import json_dumps

_OK = b',"status":"ok",'


def _key(doc_id: str) -> int:
    # The interpreter's string hash (SipHash, 64 bits): fast, and the index lives and
    # dies with the process, so its per-process seed does not matter. Two ids with one
    # key leave only the newer findable; the other is redone (read back, the line's own
    # doc_id is checked), never mixed up.
    return hash(doc_id) & 0xFFFF_FFFF_FFFF_FFFF


class JournalIndex:
    """Where the newest ``ok`` line of each document is in a journal.

    Every section is read once (a document's newest line wins; a newer line that is
    not ``ok`` removes it). Held: per document an 8-byte key, the line's offset (8
    bytes) and length (4), in 256 sorted ``array`` buckets by the key's top byte,
    so the sort never holds more than a bucket; looked up by bisection.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        #: the ``run_start`` of each section read, oldest first
        self.runs: list[str] = []
        #: the artifact of each document whose newest line is not ok but lists one (a
        #: partial document), or whose newest line is a :data:`WRITING` line no record
        #: followed (a run killed between the artifact's rename and its record): a redo
        #: removes it first. Few, so a dict.
        self.stale: dict[str, str] = {}
        keys = [array("Q") for _ in range(256)]
        offsets = [array("Q") for _ in range(256)]
        lengths = [array("I") for _ in range(256)]  # 0: the newest line is not ok

        def add(doc_id: str, here: int, length: int) -> None:
            key = _key(doc_id)
            keys[key >> 56].append(key)
            offsets[key >> 56].append(here)
            lengths[key >> 56].append(length)

        pending: tuple[int, bytes] | None = None  # the last writing line, until settled
        for here, raw in whole_lines(path):
            if raw.startswith(_WRITING_PREFIX):
                if pending is not None:
                    self._orphan(pending, None, add)
                pending = (here, raw)
                continue
            doc_id, ok = _doc_status(raw)
            if pending is not None:  # its record follows it at once, or it is an orphan
                self._orphan(pending, doc_id, add)
                pending = None
            if doc_id is None:
                if raw.startswith(b'{"run_start"'):
                    self.runs.append(str(_loads(raw).get("run_start", "")))
                continue
            add(doc_id, here, len(raw) if ok else 0)
            artifact = None if ok else _loads(raw).get("artifact")
            if artifact:
                self.stale[doc_id] = str(artifact)
            elif self.stale:
                self.stale.pop(doc_id, None)
        if pending is not None:
            self._orphan(pending, None, add)
        self._keys: list[array[int]] = []
        self._offsets: list[array[int]] = []
        self._lengths: list[array[int]] = []
        while keys:  # from the last bucket, dropping each unsorted bucket once sorted
            k, o, n = keys.pop(), offsets.pop(), lengths.pop()
            order = sorted(range(len(k)), key=k.__getitem__)  # stable: journal order kept
            nk, no, nn = array("Q"), array("Q"), array("I")
            for j, i in enumerate(order):
                if j + 1 < len(order) and k[order[j + 1]] == k[i]:
                    continue  # a newer line of the same key follows
                if n[i]:
                    nk.append(k[i])
                    no.append(o[i])
                    nn.append(n[i])
            self._keys.append(nk)
            self._offsets.append(no)
            self._lengths.append(nn)
        for kept in (self._keys, self._offsets, self._lengths):
            kept.reverse()
        #: which documents this run asked about (a byte each): the others' inputs are gone
        self._asked = [bytearray(len(k)) for k in self._keys]
        self._stale_asked: set[str] = set()
        self._fd = os.open(path, os.O_RDONLY)

    def _orphan(
        self, writing: tuple[int, bytes], then: str | None, add: Callable[[str, int, int], None]
    ) -> None:
        """A writing line, settled by the line after it (``then``: its doc_id, if any): when
        that is not its document's record, its artifact is stale and the document is
        redone (its earlier result, if any, was already discarded when it was redone)."""
        here, raw = writing
        if then is not None and raw.endswith(b'"for":' + json_dumps(then).encode() + b"}\n"):
            return  # the common case, decided from the bytes
        obj = _loads(raw)
        doc_id, artifact = obj.get("for"), obj.get(WRITING)
        if doc_id is None or not artifact or str(doc_id) == then:
            return
        self.stale[str(doc_id)] = str(artifact)
        add(str(doc_id), here, 0)

    def __len__(self) -> int:
        return sum(len(k) for k in self._keys)

    def nbytes(self) -> int:
        """The index's own memory (its arrays' items)."""
        return sum(
            k.itemsize * len(k) + o.itemsize * len(o) + n.itemsize * len(n)
            for k, o, n in zip(self._keys, self._offsets, self._lengths, strict=True)
        )

    def line(self, doc_id: str) -> bytes | None:
        """The newest ``ok`` line of ``doc_id`` (maybe another id's, on a key collision)."""
        if doc_id in self.stale:
            self._stale_asked.add(doc_id)
        key = _key(doc_id)
        b = key >> 56
        keys = self._keys[b]
        i = bisect.bisect_left(keys, key)
        if i == len(keys) or keys[i] != key:
            return None
        self._asked[b][i] = 1
        return os.pread(self._fd, self._lengths[b][i], self._offsets[b][i])

    def unasked(self) -> Iterator[tuple[str, list[str]]]:
        """``(doc_id, files)`` of every document of the journal this run never asked
        about (:meth:`line`): its ``ok`` record's artifact and format files, or a partial
        document's artifact. Read from disk one line at a time."""
        for b, asked in enumerate(self._asked):
            for i in (i for i, seen in enumerate(asked) if not seen):
                rec = _loads(os.pread(self._fd, self._lengths[b][i], self._offsets[b][i]))
                if "doc_id" in rec:
                    yield str(rec["doc_id"]), _files(rec)
        for doc_id, artifact in self.stale.items():
            if doc_id not in self._stale_asked:
                yield doc_id, [artifact]

    def artifact(self, doc_id: str) -> str | None:
        """The artifact the newest line of ``doc_id`` lists (relative to the folder)."""
        return self.stale.get(doc_id) or _artifact(self.line(doc_id), doc_id)

    def close(self) -> None:
        os.close(self._fd)


def _loads(raw: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except ValueError:
        return {}
    return obj if isinstance(obj, dict) else {}


def _artifact(raw: bytes | None, doc_id: str) -> str | None:
    rec = _loads(raw) if raw is not None else {}
    return str(rec["artifact"]) if rec.get("doc_id") == doc_id and rec.get("artifact") else None


def _files(rec: dict[str, Any]) -> list[str]:
    """The files a record lists in the output folder: its artifact, its format files."""
    files = [str(rec["artifact"])] if rec.get("artifact") else []
    formats = rec.get("formats")
    if isinstance(formats, dict):
        files += [str(f["path"]) for f in formats.values() if isinstance(f, dict) and f.get("path")]
    return files


def _doc_status(raw: bytes) -> tuple[str | None, bool]:
    """A line's doc_id and whether its status is ok, from its bytes where it can."""
    if raw.startswith(_DOC_PREFIX):
        return doc_id_of(raw), _OK in raw
    obj = _loads(raw)
    doc_id = obj.get("doc_id")
    return (None if doc_id is None else str(doc_id)), obj.get("status") == "ok"
