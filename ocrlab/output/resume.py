"""``--resume``'s one question, asked of each document as discovery meets it: is the
previous run's result for it still valid, so it can be kept without opening the input?

A document is kept when its newest record in the journal says ``ok``, the settings
that shape the text are the same (:func:`ocrlab.output.manifest.settings_key`), and
its input, its artifact and its file of every other format the run asks (``formats``:
a document lacking one is redone, all its formats from one recognition) are unchanged.
"Unchanged" is decided the way git's
index, rsync and make decide it: from the file's metadata. When a file's stamp
(:mod:`ocrlab.output.stamps`: size, mtime and ctime in nanoseconds, inode) equals the
one recorded with the document, the file is taken as unchanged without reading it;
when the stamp differs (a ``touch``, a copy, a restore) the file is hashed and compared
with the recorded SHA-256, and a match is kept with its new stamp. ``verify_inputs``
hashes every input and artifact whatever the stamps say: after a machine crash (power
loss, kernel panic), when ocrlab's own files are not guaranteed either (nothing is
fsynced; :mod:`ocrlab.output.atomic`), or where stamps cannot be trusted.

The previous run's lines are found through
:class:`~ocrlab.output.journal_index.JournalIndex`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from .journal_index import JournalIndex, _files, _loads
from .journal_lines import _DOC_PREFIX, _STAMPS, _dumps
from .layout import OutputLayout
from .manifest import input_digest, sha256_file
from .stamps import Stamp, file_stamp, is_racy, parse_stamp

log = logging.getLogger("ocrlab")

_KEPT = b',"kept_from_previous_run":true'
_DECODER = json.JSONDecoder()


def _field(text: str, name: str) -> Any:
    """The value of the top-level key ``name`` of a journal line (None if absent)."""
    at = text.find(f'"{name}":')
    return None if at < 0 else _DECODER.raw_decode(text, at + len(name) + 3)[0]


class _Lines(Protocol):
    runs: list[str]

    def line(self, doc_id: str) -> bytes | None: ...

    def artifact(self, doc_id: str) -> str | None: ...

    def __len__(self) -> int: ...

    def unasked(self) -> Iterator[tuple[str, list[str]]]: ...

    def close(self) -> None: ...


def _remove_empty_folders(folder: str, root: str) -> None:
    """Remove ``folder`` and its parents while empty, below the format's own folder
    (``text/``, ``tsv/``... stay), as a fresh run would not have made them."""
    while os.path.dirname(folder) != root and os.path.commonpath([root, folder]) == root:
        try:
            os.rmdir(folder)
        except OSError:  # not empty (or not ours to remove): the rest stays
            return
        folder = os.path.dirname(folder)


class _ManifestLines:
    """The records of a run older than the journal, from its results.json, in memory."""

    def __init__(self, path: Path) -> None:
        data = _loads(path.read_bytes()) if path.exists() else {}
        self.runs = [str(data.get("run", {}).get("started_at", ""))] if data else []
        docs = [d for d in data.get("documents", []) if isinstance(d, dict) and "doc_id" in d]
        self._lines = {
            str(d["doc_id"]): (_dumps(d) + "\n").encode("utf-8")
            for d in docs
            if d.get("status") == "ok"
        }
        #: each document's files, its artifact first
        self._files = {str(d["doc_id"]): _files(d) for d in docs if d.get("artifact")}
        self._asked: set[str] = set()

    def line(self, doc_id: str) -> bytes | None:
        self._asked.add(doc_id)
        return self._lines.get(doc_id)

    def unasked(self) -> Iterator[tuple[str, list[str]]]:
        return ((d, f) for d, f in self._files.items() if d not in self._asked)

    def artifact(self, doc_id: str) -> str | None:
        files = self._files.get(doc_id)
        return files[0] if files else None

    def __len__(self) -> int:
        return len(self._lines)

    def close(self) -> None:
        self._lines.clear()


class Resume:
    """The previous run's results for ``--resume``, and the figures of what was kept.

    :meth:`keep` is the one call: the journal line to record for a document that is
    kept, or None for one to OCR.
    """

    def __init__(self, layout: OutputLayout, key: str, verify_inputs: bool = False) -> None:
        self.root = layout.root
        self._root = str(layout.root)
        self.key = key
        self._key_field = f'"settings_key":"{key}"'.encode()
        self.verify_inputs = verify_inputs
        #: the formats beside the text the run asks: a kept document has each of them
        self.formats = tuple(f for f in layout.formats if f != "txt")
        self.lines: _Lines = (
            JournalIndex(layout.journal)
            if layout.journal.exists()
            else _ManifestLines(layout.manifest)
        )
        self.kept = 0  #: documents kept
        self.by_stamp = 0  #: ... of which neither file was read
        self.changed = 0  #: documents with an ok record, redone (input, artifact or settings)
        self.hashed = 0  #: files hashed (inputs and artifacts)
        self.check_s = 0.0  #: time spent in :meth:`keep`
        #: documents of the previous run not among this run's inputs, their files removed
        self.vanished = 0
        #: where a kept document's line goes: the run's collector (``Collector.kept``)
        self.record: Callable[[str, bytes], None] | None = None

    def __len__(self) -> int:
        return len(self.lines)

    def began(self) -> str:
        """The log's line where a resumed run begins: what it resumes."""
        started = ", ".join(r for r in self.lines.runs if r) or "unknown"
        how = "every input and artifact hashed" if self.verify_inputs else "unchanged stamps"
        return (
            f"resuming the run(s) started {started}: {len(self):,} document(s) finished "
            f"before are kept if unchanged ({how})"
        )

    def keep(self, doc_id: str, path: str) -> bool:
        """Discovery's question before it opens a file: True when ``doc_id`` (at ``path``)
        is kept; its journal line has then gone to :attr:`record`."""
        line = self.line(doc_id, path)
        if line is not None and self.record is not None:
            self.record(doc_id, line)
        return line is not None

    def artifact(self, doc_id: str) -> str | None:
        """The artifact the newest record of ``doc_id`` lists: a redo replaces it."""
        return self.lines.artifact(doc_id)

    def line(self, doc_id: str, path: str) -> bytes | None:
        """The line to journal for ``doc_id`` (at ``path``) if it is kept, else None."""
        t = time.perf_counter()
        try:
            line = self._keep(doc_id, path)
        finally:
            self.check_s += time.perf_counter() - t
        if line is not None:
            self.kept += 1
        return line

    def _keep(self, doc_id: str, path: str) -> bytes | None:
        raw = self.lines.line(doc_id)
        if raw is None:
            return None
        if not self.verify_inputs:
            line = self._by_stamps(raw, doc_id, path)
            if line is not None:
                self.by_stamp += 1
                return line
        return self._checked(raw, doc_id, path)

    def _by_stamps(self, raw: bytes, doc_id: str, path: str) -> bytes | None:
        """The kept line of a document whose stamps are both unchanged, read from the
        line's bytes; None when that does not decide it (then :meth:`_checked` does).

        Why bytes: parsing the whole line was the largest part of a resume's time. The
        line is this package's own (:func:`ocrlab.output.journal.record_line`); in JSON
        every quote inside a string is escaped, so a key found with its quotes is a key.
        Only top-level keys are looked for, and only ones no nested object has.
        """
        cut = raw.rfind(_STAMPS)
        if cut < 0 or not raw.endswith(b"]}\n") or self._key_field not in raw:
            return None
        try:
            text = raw.decode("utf-8")
            stamps = json.loads(text[cut + len(_STAMPS) - 1 : -2])
            if _DECODER.raw_decode(text, len(_DOC_PREFIX) - 1)[0] != doc_id:
                return None
            artifact = _field(text, "artifact")
            source = _field(text, "source")
            files = _field(text, "formats") if self.formats else None
        except ValueError:
            return None
        if not (isinstance(stamps, list) and len(stamps) in (2, 3) and isinstance(artifact, str)):
            return None
        if source != path or parse_stamp(stamps[0]) != file_stamp(path):
            return None
        if parse_stamp(stamps[1]) != file_stamp(os.path.join(self._root, artifact)):
            return None
        if self.formats and not self._formats_stamped(files, stamps):
            return None
        if _KEPT in raw:
            return raw
        return raw[:cut] + _KEPT + raw[cut:]  # as _checked puts it: last, before the stamps

    def _formats_stamped(self, files: Any, stamps: list[Any]) -> bool:
        """True when the record lists a file of every asked format and each file's stamp
        is the recorded one (the stamps' third item: ``{format: stamp}``)."""
        marks = stamps[2] if len(stamps) == 3 else None
        if not isinstance(files, dict) or not isinstance(marks, dict):
            return False
        for fmt in self.formats:
            entry = files.get(fmt)
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                return False
            if parse_stamp(marks.get(fmt)) != file_stamp(os.path.join(self._root, entry["path"])):
                return False
        return True

    def _checked(self, raw: bytes, doc_id: str, path: str) -> bytes | None:
        """The kept line of a document after hashing what its stamps do not vouch for."""
        rec = _loads(raw)
        if rec.get("doc_id") != doc_id:
            return None  # another id with the same key (see _key)
        stamps = rec.get("stamps")
        if not isinstance(stamps, list) or len(stamps) not in (2, 3):
            stamps = [None, None]
        if (
            rec.get("status") != "ok"
            or rec.get("settings_key") != self.key
            or not rec.get("artifact")
        ):
            self.changed += 1
            return None
        same, read_input, input_stamp = self._check(
            path, stamps[0], rec.get("input_sha256"), input_digest
        )
        artifact = os.path.join(self._root, str(rec.get("artifact")))
        same, read_artifact, artifact_stamp = (
            self._check(artifact, stamps[1], rec.get("sha256"), sha256_file)
            if same
            else (False, False, None)
        )
        marks = stamps[2] if len(stamps) == 3 and isinstance(stamps[2], dict) else {}
        same, read_formats, marks = (
            self._check_formats(rec.get("formats"), marks)
            if same
            else (
                False,
                False,
                {},
            )
        )
        if not same:
            self.changed += 1
            return None
        if not (read_input or read_artifact or read_formats):
            self.by_stamp += 1
        rec.pop("stamps", None)
        rec["source"] = path  # the tree may have moved; the id is what matched
        rec["kept_from_previous_run"] = True
        if input_stamp is not None or artifact_stamp is not None or marks:
            # last: results.json cuts it there
            rec["stamps"] = [input_stamp, artifact_stamp, *([marks] if marks else [])]
        return (_dumps(rec) + "\n").encode("utf-8")

    def _check_formats(
        self, files: Any, marks: dict[str, Any]
    ) -> tuple[bool, bool, dict[str, Any]]:
        """(all unchanged, any hashed, the stamps to record) for the files of the asked
        formats; a format the record lacks is a change (the document is redone)."""
        marks, read_any = dict(marks), False
        for fmt in self.formats:
            entry = files.get(fmt) if isinstance(files, dict) else None
            if not isinstance(entry, dict) or not entry.get("path"):
                return False, read_any, {}
            where = os.path.join(self._root, str(entry["path"]))
            same, read, stamp = self._check(where, marks.get(fmt), entry.get("sha256"), sha256_file)
            if not same:
                return False, True, {}
            read_any, marks[fmt] = read_any or read, stamp
        return True, read_any, {k: v for k, v in marks.items() if v is not None}

    def _check(
        self, path: str, recorded: Any, digest: Any, hashed: Callable[[str], str | None]
    ) -> tuple[bool, bool, Stamp | None]:
        """(unchanged, hashed to know it, the stamp to record) for one file: an input
        (``hashed`` is :func:`input_digest`) or an artifact (:func:`sha256_file`).

        The stamp is taken before the file is read, so a write while it is hashed
        shows as a new stamp next time; an input's is not recorded while racy.
        """
        now = file_stamp(path)
        if now is None:
            return False, False, None
        if not self.verify_inputs and parse_stamp(recorded) == now:
            return True, False, now
        self.hashed += 1
        if not digest or hashed(path) != digest:
            return False, True, None
        return True, True, None if hashed is input_digest and is_racy(now) else now

    def summary_line(self) -> str:
        """The log's line for the whole resume: kept documents are counted, not listed."""
        return (
            f"resume: {self.kept:,} document(s) kept ({self.by_stamp:,} by unchanged stamps, "
            f"{self.kept - self.by_stamp:,} after hashing), {self.changed:,} changed and "
            f"redone; {self.hashed:,} file(s) hashed; the checks took {self.check_s:.1f} s"
        )

    def figures(self) -> dict[str, Any]:
        """The same figures for the trace's ``run_end``."""
        return {
            "kept": self.kept,
            "by_stamp": self.by_stamp,
            "changed": self.changed,
            "hashed": self.hashed,
            "check_s": round(self.check_s, 3),
            "verify_inputs": self.verify_inputs,
        }

    def finish(self, complete: bool = False, whole: bool = True) -> dict[str, Any]:
        """Log how many were kept (one line, not one per document), remove what documents
        no longer among the inputs left (:meth:`discard_vanished`, only after a complete
        run of every document: ``whole`` is False for a shard), release the index, and
        return the figures for the trace's ``run_end``."""
        log.info(self.summary_line())
        if complete and whole:
            self.discard_vanished()
        self.lines.close()
        return {**self.figures(), "vanished": self.vanished}

    def discard_vanished(self) -> int:
        """Remove the files of the previous run's documents this run never met (their
        input was deleted, moved out of the inputs, excluded or is no longer a document);
        return how many documents. Why: a resumed run's folder must be what a fresh run
        of the same inputs writes, and its manifest lists only this run's documents, so
        their artifacts would be files no record lists (the audit's one failure). Only
        files inside the output folder that the old record names are removed."""
        root = os.path.realpath(self._root)
        removed_files = 0
        for doc_id, files in self.lines.unasked():
            gone = 0
            for rel in files:
                where = os.path.realpath(os.path.join(root, rel))
                if os.path.commonpath([root, where]) != root or where == root:
                    continue  # a record naming a file outside the folder: never touched
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(where)
                    gone += 1
                _remove_empty_folders(os.path.dirname(where), root)
            if gone:
                self.vanished += 1
                removed_files += gone
                log.info("%s: no longer among the inputs; its %d file(s) removed", doc_id, gone)
        if self.vanished:
            log.info(
                "resume: %d document(s) of the previous run no longer among the inputs: "
                "%d file(s) removed",
                self.vanished,
                removed_files,
            )
        return self.vanished
