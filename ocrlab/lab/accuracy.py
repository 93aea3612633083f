"""Character and word error rates against ground truth (``NAME.gt.txt`` beside a document).

Edit distances come from rapidfuzz (C++, well tested), not a hand-written loop.
Both texts are normalised the same way first: form feeds and runs of
whitespace become one space, because layout whitespace is not what an OCR
accuracy figure should measure.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from rapidfuzz.distance import Levenshtein

from ..output.manifest import load_manifest

_WS = re.compile(r"\s+")


def normalize(text: str) -> str:
    return _WS.sub(" ", text.replace("\f", " ")).strip()


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate: edits / reference characters (0 = identical)."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return Levenshtein.distance(ref, hyp) / len(ref)


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level edits / reference words."""
    ref, hyp = normalize(reference).split(), normalize(hypothesis).split()
    if not ref:
        return 0.0 if not hyp else 1.0
    return Levenshtein.distance(ref, hyp) / len(ref)


def ground_truth_path(path: str | os.PathLike[str]) -> Path | None:
    """``NAME.EXT.gt.txt`` if present, else ``NAME.gt.txt`` (Tesseract's convention)."""
    p = Path(path)
    for candidate in (
        p.with_name(p.name + ".gt.txt"),
        p.with_name(p.name.rsplit(".", 1)[0] + ".gt.txt"),
    ):
        if candidate.is_file():
            return candidate
    return None


def reference_pages(source: str | os.PathLike[str]) -> list[str] | None:
    """A document's ground truth, one text per page (pages separated by form feeds, as
    Tesseract writes them), or None when it has none."""
    gt = ground_truth_path(source)
    return None if gt is None else gt.read_text(encoding="utf-8").split("\f")


def score_run(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """CER and WER of every document of a run that has ground truth beside its source."""
    rows = []
    for doc in load_manifest(out_dir)["documents"]:
        gt = ground_truth_path(doc["source"])
        if gt is None or not doc.get("artifact"):
            continue
        text = (Path(out_dir) / doc["artifact"]).read_text(encoding="utf-8")
        reference = gt.read_text(encoding="utf-8")
        rows.append(
            {
                "doc_id": doc["doc_id"],
                "cer": cer(reference, text),
                "wer": wer(reference, text),
                "ref_chars": len(normalize(reference)),
            }
        )
    return rows
