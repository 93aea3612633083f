"""The journal's line format: how a document record becomes a line of ``journal.jsonl``,
and what is read back from a line's bytes without parsing it all.

A line is the document's results.json record (``doc_id`` its first key, as
:meth:`~ocrlab.records.DocumentRecord.as_dict` orders them) followed, last, by
``"stamps"``: the input's and the artifact's (:mod:`ocrlab.output.stamps`), then the other
formats' files' if any, which
``--resume`` compares instead of hashing. They are cut off when results.json is written
(:func:`without_stamps`): they differ from one output folder to another.

Why bytes: at a million documents, parsing each line again for its id (the sort, the
resume index) cost more than everything else the results.json sort did.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..records import DocumentRecord
from .names import json_dumps
from .stamps import Stamp

#: a document's input and artifact stamps, as the journal keeps them, and those of its
#: files in the other formats (``{format: stamp}``) when it has some
Stamps = (
    tuple[Stamp | None, Stamp | None]
    | tuple[Stamp | None, Stamp | None, dict[str, Stamp | None]]
    | None
)

#: how every document line begins (``doc_id`` is the first key of a record)
_DOC_PREFIX = b'{"doc_id":"'
_DECODER = json.JSONDecoder()
#: where a line's stamps begin; the last key, so cutting there leaves the record
_STAMPS = b',"stamps":['


def _dumps(obj: Mapping[str, Any]) -> str:
    return json_dumps(obj, separators=(",", ":"), default=str)


def record_line(record: DocumentRecord, stamps: Stamps = None) -> bytes:
    """The journal line of ``record`` (with its newline): its results.json record, then
    the stamps of its input and artifact (:mod:`ocrlab.output.stamps`), last."""
    obj = record.as_dict()
    if stamps is not None and stamps != (None, None):
        obj["stamps"] = list(stamps)
    return (_dumps(obj) + "\n").encode("utf-8")


def doc_id_of(raw: bytes) -> str | None:
    """The ``doc_id`` of a journal line, read from its first bytes (None: not a document).

    A line :func:`record_line` wrote begins with it; any other line is parsed whole.
    """
    if raw.startswith(_DOC_PREFIX):
        try:  # the string value alone, from its opening quote
            doc_id = _DECODER.raw_decode(raw.decode("utf-8"), len(_DOC_PREFIX) - 1)[0]
        except ValueError:  # UnicodeDecodeError is one
            return None
        return doc_id if isinstance(doc_id, str) else None
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(obj, dict) or obj.get("doc_id") is None:
        return None
    return str(obj["doc_id"])


def without_stamps(raw: bytes) -> bytes:
    """A journal line as its results.json record: the stamps (the last key) and newline cut.

    Inside a JSON string every quote is escaped, so ``,"stamps":[`` can only be the key.
    """
    raw = raw.rstrip(b"\n")
    cut = raw.rfind(_STAMPS)
    return raw if cut < 0 else raw[:cut] + b"}"


def whole_lines(path: Path, start: int = 0) -> Iterator[tuple[int, bytes]]:
    """``(offset, line)`` of every whole line from byte ``start`` on (none if no file).

    A last line without its newline, torn by ``kill -9``, ends the lines.
    """
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, also when the caller stops
    except FileNotFoundError:
        return
    with fh:
        fh.seek(start)
        offset = start
        for raw in fh:
            if not raw.endswith(b"\n"):
                return
            yield offset, raw
            offset += len(raw)


def iter_journal(path: Path, start: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(offset, object)`` for every whole line from byte ``start`` on that parses."""
    for offset, raw in whole_lines(path, start):
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if isinstance(obj, dict):
            yield offset, obj
