"""Two runs of the same inputs compared file by file, in every format they wrote.

The text is compared page by page by :func:`ocrlab.lab.analysis.compare_runs`
(a diff a reader can follow); the structured formats (TSV, hOCR, ALTO, PDF) must be
the same *bytes*: they are deterministic by construction (no temporary paths, no
dates, :mod:`ocrlab.output.formats`), so any difference is a defect to look at,
not noise. The identity notebook raises on one.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..output.formats import FORMATS
from ..output.manifest import load_manifest, sha256_file


def _files(out_dir: Path) -> dict[tuple[str, str], str]:
    """``(doc_id, format) -> path`` of every file a run's manifest lists."""
    found: dict[tuple[str, str], str] = {}
    for doc in load_manifest(out_dir)["documents"]:
        if doc.get("artifact"):
            found[(doc["doc_id"], "txt")] = str(doc["artifact"])
        for fmt, entry in (doc.get("formats") or {}).items():
            found[(doc["doc_id"], fmt)] = str(entry["path"])
    return found


def compare_formats(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per document and format either run wrote: identical bytes or not.

    A file only one run wrote counts as different (``sha256`` of the other is None).
    """
    ra, rb = Path(a), Path(b)
    fa, fb = _files(ra), _files(rb)
    rows = []
    for key in sorted(set(fa) | set(fb)):
        da = sha256_file(ra / fa[key]) if key in fa else None
        db = sha256_file(rb / fb[key]) if key in fb else None
        rows.append(
            {
                "doc_id": key[0],
                "format": key[1],
                "identical": da is not None and da == db,
                "bytes_a": (ra / fa[key]).stat().st_size if key in fa else None,
                "bytes_b": (rb / fb[key]).stat().st_size if key in fb else None,
            }
        )
    return pd.DataFrame(rows, columns=["doc_id", "format", "identical", "bytes_a", "bytes_b"])


def by_format(table: pd.DataFrame) -> pd.DataFrame:
    """Files per format and how many are identical: the summary the notebook shows."""
    if not len(table):
        return pd.DataFrame(columns=["format", "files", "identical"])
    summary = table.groupby("format")["identical"].agg(files="size", identical="sum")
    order = [f for f in FORMATS if f in summary.index]  # txt, tsv, hocr... as folders list them
    return summary.reindex(order).reset_index()
