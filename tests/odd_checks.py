"""What every run over an odd input tree must hold, checked one way for named and generated trees.

Every entry the walk reaches ends as exactly one of: a manifest record (read, or an
error entry) or a counted skip; the manifest is ``complete`` and ``text/`` holds what it
lists; the trace has every document; the log has one line per event and names every
document; ids give back the files' own bytes.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

from PIL import Image

from ocrlab.output.audit import audit_output
from ocrlab.output.manifest import load_manifest
from ocrlab.output.names import printable
from ocrlab.output.trace_reader import load_trace

ECHO = "ocrlab.engines.fakes:echo"
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR) +doc=")


def png_bytes(size: tuple[int, int] = (40, 20)) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, 255).save(buf, format="PNG")
    return buf.getvalue()


def entries_reached(root: Path) -> int:
    """How many entries the walk reports for ``root``: each file or special file, each
    hidden name and link to a folder once (not entered), each folder it cannot list once."""
    try:
        items = list(os.scandir(root))
    except OSError:
        return 1
    count = 0
    for entry in items:
        if entry.name.startswith(".") or (entry.is_symlink() and _is_dir(entry.path)):
            count += 1
        elif entry.is_dir(follow_symlinks=False):
            count += entries_reached(Path(entry.path))
        else:
            count += 1
    return count


def _is_dir(path: str) -> bool:
    try:
        return os.path.isdir(path)
    except OSError:
        return False


def check_run(out: Path, inputs: Path, summary: Any, *, echo: bool = True) -> dict[str, Any]:
    """Assert the invariants of a run over ``inputs`` written to ``out``; the records by id."""
    manifest = load_manifest(out)
    assert manifest["status"] == "complete", manifest["status"]
    assert summary.exit_code in (0, 1)
    raw = (out / "results.json").read_bytes()
    raw.decode("utf-8")  # strict: the manifest is UTF-8 whatever the names hold
    records = {d["doc_id"]: d for d in manifest["documents"]}
    skipped = manifest["summary"]["skipped"]
    assert len(records) + sum(skipped.values()) == entries_reached(inputs), (
        sorted(records),
        skipped,
    )
    audit = audit_output(out)
    assert audit.ok, f"unlisted {sorted(audit.unlisted)}, missing {sorted(audit.missing)}"
    base = os.fsencode(inputs.parent if inputs.is_file() else inputs)
    for doc_id, record in records.items():
        source = os.fsencode(record["source"])
        assert source == base + b"/" + os.fsencode(doc_id), (doc_id, record["source"])
        if record["artifact"]:
            path = out / record["artifact"]
            assert all(len(os.fsencode(p)) <= 255 for p in Path(record["artifact"]).parts)
            if echo and record["status"] == "ok":
                expected = f"{doc_id} page 1\n\f".encode("utf-8", "backslashreplace")
                assert path.read_bytes() == expected, doc_id
    events = load_trace(out / "trace.json")
    traced = {e["args"]["doc_id"] for e in events if e.get("cat") == "document"}
    traced |= {e["args"]["doc_id"] for e in events if e.get("name") == "document_failed"}
    recorded = {k for k, v in records.items() if not v.get("kept_from_previous_run")}
    assert traced == recorded, recorded ^ traced
    lines = (out / "ocrlab.log").read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and all(_LOG_LINE.match(line) for line in lines[:-1]), [
        line for line in lines[:-1] if not _LOG_LINE.match(line)
    ][:3]
    logged = "\n".join(lines)
    for doc_id in records:
        assert f"doc={printable(doc_id)} " in logged, doc_id
    return records
