"""``--resume``'s journal index measured three ways, on a real journal.

* ``dict``: what the index was, a dict ``doc_id -> offset`` built by parsing every line,
  each lookup opening the journal to read its line;
* ``arrays``: :class:`ocrlab.output.journal_index.JournalIndex`, 64-bit keys in sorted
  ``array`` buckets, a line read with one ``pread``;
* ``sqlite``: the same keys in an SQLite table on disk (the standard library's
  ``sqlite3``), one ``SELECT`` and one ``pread`` a lookup.

Each in a fresh process, so its memory (``VmHWM`` over the process's size before the
index) is its own; the ids looked up are those :func:`ocrlab.lab.scale.make_corpus`
made, in its order. Used by :mod:`ocrlab.lab.million` (``--steps index``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .scale import PER_FOLDER

_CHILD = r"""
import json, os, sqlite3, sys, time
from pathlib import Path
variant, journal, tmp = sys.argv[1], Path(sys.argv[2]), sys.argv[5]
n, per = int(sys.argv[3]), int(sys.argv[4])
from ocrlab.output.journal_lines import iter_journal
from ocrlab.output.journal_index import JournalIndex, _doc_status, _key

def status(field):
    text = Path("/proc/self/status").read_text()
    return int(text.split(field + ":")[1].split()[0]) / 1024

def ids():
    return (f"d{i // per:05d}/p{i:07d}.png" for i in range(n))

base = status("VmRSS")
t = time.perf_counter()
if variant == "dict":
    index = {}
    for offset, obj in iter_journal(journal):
        doc_id = obj.get("doc_id")
        if doc_id is None:
            continue
        if obj.get("status") == "ok":
            index[str(doc_id)] = offset
        else:
            index.pop(str(doc_id), None)

    def look(doc_id):
        offset = index.get(doc_id)
        if offset is None:
            return None
        with open(journal, "rb") as fh:
            fh.seek(offset)
            return fh.readline()
elif variant == "arrays":
    look = JournalIndex(journal).line
else:
    db = sqlite3.connect(tmp)
    db.execute("create table i (k integer primary key, off integer, len integer)")
    offset = 0
    with open(journal, "rb") as fh:
        for raw in fh:
            here, offset = offset, offset + len(raw)
            doc_id, ok = _doc_status(raw)
            if doc_id is None:
                continue
            k = _key(doc_id) - 2**63
            if ok:
                db.execute("insert or replace into i values (?, ?, ?)", (k, here, len(raw)))
            else:
                db.execute("delete from i where k = ?", (k,))
    db.commit()
    fd = os.open(journal, os.O_RDONLY)

    def look(doc_id):
        row = db.execute("select off, len from i where k = ?", (_key(doc_id) - 2**63,)).fetchone()
        return None if row is None else os.pread(fd, row[1], row[0])
built = time.perf_counter() - t
t = time.perf_counter()
found = sum(1 for doc_id in ids() if look(doc_id))
looked = time.perf_counter() - t
t = time.perf_counter()
sum(1 for _ in ids())
ids_only = time.perf_counter() - t
print(json.dumps({
    "variant": variant, "found": found, "build_s": round(built, 2),
    "lookup_us": round((looked - ids_only) / n * 1e6, 2),
    "memory_mb": round(status("VmHWM") - base, 1),
    "disk_mb": round(os.path.getsize(tmp) / 2**20, 1) if os.path.exists(tmp) else 0,
}))
"""


def index_bench(journal: Path, n: int) -> list[dict[str, Any]]:
    """Build time, time per lookup and memory of each index on ``journal`` (``n`` ids)."""
    rows = []
    for variant in ("dict", "arrays", "sqlite"):
        with tempfile.TemporaryDirectory(prefix="ocrlab-index-") as tmp:
            db = str(Path(tmp) / "index.sqlite")
            proc = subprocess.run(
                [sys.executable, "-c", _CHILD, variant, str(journal), str(n), str(PER_FOLDER), db],
                capture_output=True,
                text=True,
                check=True,
            )
        row: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        row["load"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


if __name__ == "__main__":
    for line in index_bench(Path(sys.argv[1]), int(sys.argv[2])):
        print(json.dumps(line))
