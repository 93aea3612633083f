"""What the notebooks read from Tesseract's word confidences: boxes, low words, bad pages.

A run with any format beyond the text records each page's confidences in its
manifest and beside its span in the trace (:mod:`ocrlab.output.confidence`), and
the TSV (when asked) keeps every word with its box. Here they become what a reader
looks at: the words of a page with their boxes (:func:`page_words`), drawn over the
page coloured by confidence (:func:`draw_words`), the words below the threshold
(:func:`low_words_html`), the pages a run was least sure of
(:func:`lowest_confidence_pages`), and whether confidence predicts errors at all:
Spearman's rank correlation between page confidence and page CER
(:func:`confidence_cer_correlation`).
"""

from __future__ import annotations

import html
import io
import itertools
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

#: Colours of a word box by confidence, red (0) to green (100), through amber at 60.
_STOPS = ((0.0, (200, 30, 30)), (60.0, (235, 160, 20)), (100.0, (40, 160, 60)))


@dataclass(frozen=True)
class Word:
    """One recognised word: its text, its box in the OCR image's pixels, its confidence."""

    text: str
    left: int
    top: int
    width: int
    height: int
    conf: float


def _tsv_words(tsv: str, page: int) -> tuple[list[Word], tuple[int, int] | None]:
    words, size = [], None
    for line in tsv.splitlines()[1:]:
        f = line.split("\t")
        if len(f) < 12 or f[1] != str(page):
            continue
        if f[0] == "1":
            size = (int(f[8]), int(f[9]))
        elif f[0] == "5" and float(f[10]) != -1:
            words.append(Word(f[11], int(f[6]), int(f[7]), int(f[8]), int(f[9]), float(f[10])))
    return words, size


_HOCR_WORD = re.compile(
    r"class='ocrx_word'[^>]*title='bbox (\d+) (\d+) (\d+) (\d+); x_wconf (\d+)'>(.*?)</span>"
)
_HOCR_PAGE = re.compile(r"class='ocr_page' id='page_(\d+)' title='[^']*bbox 0 0 (\d+) (\d+)")


def _hocr_words(hocr: str, page: int) -> tuple[list[Word], tuple[int, int] | None]:
    starts = [(int(m.group(1)), m) for m in _HOCR_PAGE.finditer(hocr)]
    for i, (number, match) in enumerate(starts):
        if number != page:
            continue
        end = starts[i + 1][1].start() if i + 1 < len(starts) else len(hocr)
        words = [
            Word(
                html.unescape(text),
                int(x0),
                int(y0),
                int(x1) - int(x0),
                int(y1) - int(y0),
                float(c),
            )
            for x0, y0, x1, y1, c, text in _HOCR_WORD.findall(hocr, match.start(), end)
        ]
        return words, (int(match.group(2)), int(match.group(3)))
    return [], None


def page_words(
    out_dir: str | os.PathLike[str], doc: Mapping[str, Any], page: int
) -> tuple[list[Word], tuple[int, int] | None]:
    """The words of ``page`` of manifest record ``doc`` and the page's size in OCR pixels,
    from the run's TSV (exact confidences) or else its hOCR; ``([], None)`` without either."""
    formats = doc.get("formats") or {}
    for fmt, reader in (("tsv", _tsv_words), ("hocr", _hocr_words)):
        entry = formats.get(fmt)
        if entry:
            return reader((Path(out_dir) / entry["path"]).read_text("utf-8"), page)
    return [], None


def colour(conf: float) -> tuple[int, int, int]:
    """A word's box colour: red below the threshold's neighbourhood, green when sure."""
    for (c0, rgb0), (c1, rgb1) in itertools.pairwise(_STOPS):
        if conf <= c1:
            t = (max(conf, c0) - c0) / (c1 - c0)
            return (
                round(rgb0[0] + (rgb1[0] - rgb0[0]) * t),
                round(rgb0[1] + (rgb1[1] - rgb0[1]) * t),
                round(rgb0[2] + (rgb1[2] - rgb0[2]) * t),
            )
    return _STOPS[-1][1]


def draw_words(png: bytes, words: Sequence[Word], size: tuple[int, int] | None) -> bytes:
    """``png`` (the page as the viewer shows it) with every word's box drawn in its colour;
    the boxes are scaled from the OCR image (``size``) to the picture."""
    if not words or size is None:
        return png
    from PIL import Image, ImageDraw

    with Image.open(io.BytesIO(png)) as opened:
        im = opened.convert("RGB")
    sx, sy = im.width / size[0], im.height / size[1]
    draw = ImageDraw.Draw(im)
    for w in words:
        box = (w.left * sx, w.top * sy, (w.left + w.width) * sx, (w.top + w.height) * sy)
        draw.rectangle(box, outline=colour(w.conf), width=2 if w.conf >= 60 else 3)
    out = io.BytesIO()
    im.save(out, format="PNG", optimize=True)
    return out.getvalue()


def low_words_html(words: Sequence[Word], threshold: float = 60.0, limit: int = 40) -> str:
    """The words below ``threshold``, least sure first, as a short HTML list."""
    low = sorted((w for w in words if w.conf < threshold), key=lambda w: w.conf)
    if not words:
        return ""
    if not low:
        return f"<div><i>no word below confidence {threshold:g} ({len(words)} words)</i></div>"
    items = ", ".join(
        f"<span style='color:rgb{colour(w.conf)}'>{html.escape(w.text)}</span> ({w.conf:.0f})"
        for w in low[:limit]
    )
    more = f" and {len(low) - limit} more" if len(low) > limit else ""
    return (
        f"<div><i>{len(low)} of {len(words)} words below confidence {threshold:g}:</i> "
        f"{items}{more}</div>"
    )


def lowest_confidence_pages(pages: pd.DataFrame, n: int = 10) -> pd.DataFrame | str:
    """The ``n`` pages a run was least sure of (a trace's page table, see
    :func:`ocrlab.lab.analysis.trace_frames`); a sentence when it recorded no confidences."""
    if "conf_mean" not in pages or pages["conf_mean"].isna().all():
        return "no confidences in this trace (run with formats beyond txt, e.g. 'txt,tsv')"
    last = pages.sort_values("attempt").drop_duplicates(["doc_id", "page"], keep="last")
    columns = ["doc_id", "page", "conf_mean", "conf_p10", "words", "words_low", "chars"]
    return last.dropna(subset=["conf_mean"]).nsmallest(n, "conf_mean")[columns]


def _ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their mean rank (as Spearman's coefficient needs)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation of ``x`` and ``y`` (Pearson's on the ranks); ``None`` for
    fewer than three pairs or a constant series."""
    if len(x) != len(y) or len(x) < 3:
        return None
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    sy = math.sqrt(sum((b - my) ** 2 for b in ry))
    return None if sx == 0 or sy == 0 else cov / (sx * sy)


def confidence_cer_correlation(
    pages: Iterable[Mapping[str, Any]], label: str | None = None
) -> dict[str, Any]:
    """Does a page's confidence predict its errors? Spearman's rho between page
    ``conf_mean`` and page ``cer`` over the scored pages (of setting ``label``, when the
    rows are a sweep's); strongly negative means low confidence flags the bad pages."""
    rows = [
        p
        for p in pages
        if (label is None or p.get("label") == label)
        and p.get("conf_mean") is not None
        and p.get("cer") is not None
    ]
    rho = spearman([float(p["conf_mean"]) for p in rows], [float(p["cer"]) for p in rows])
    return {"label": label, "pages": len(rows), "spearman": None if rho is None else round(rho, 4)}
