"""Tesseract's word confidences: per page from its TSV word rows, per document aggregated.

Why the TSV: it carries each word's confidence as Tesseract computed it (a float,
0-100). ALTO's ``WC`` is the same number written as ``"0." + int(conf)`` by
Tesseract up to 5.5 (tesseract#4615: 9 becomes ``0.9``, 100 becomes ``0.100``), so it
is never read back; :func:`fixed_alto_wc` corrects it in the ALTO files ocrlab writes.

Per page and per document: ``conf_mean`` (the mean of the words' confidences, the
rows whose ``conf`` is not -1), ``conf_p10`` (their 10th percentile, linear
interpolation between the closest ranks as NumPy's default does), ``words`` and
``words_low`` (words below the ``conf_low`` setting, default 60). A page without
words has ``conf_mean`` and ``conf_p10`` ``None``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from ..parts import PageConfidence
from ..records import PageResult

#: The TSV columns (Tesseract 4 and 5): conf is the 11th, the text the 12th.
_CONF_COLUMN = 10


def tsv_confidences(tsv: str) -> list[float]:
    """Every word's confidence in a TSV output, in reading order (header and -1 rows out)."""
    values = []
    for line in tsv.splitlines():
        fields = line.split("\t")
        if len(fields) <= _CONF_COLUMN or fields[0] == "level":
            continue
        try:
            conf = float(fields[_CONF_COLUMN])
        except ValueError:
            continue
        if conf != -1:
            values.append(conf)
    return values


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile of ``values`` by linear interpolation (NumPy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(rank), math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def confidence(values: Sequence[float], low: float) -> PageConfidence:
    """The figures of one page (or document) from its words' confidences."""
    return PageConfidence(
        conf_mean=_round(math.fsum(values) / len(values)) if values else None,
        conf_p10=_round(percentile(values, 10)),
        words=len(values),
        words_low=sum(1 for v in values if v < low),
        values=tuple(values),
    )


def page_confidence(tsv: str, low: float) -> PageConfidence:
    """A page's confidence figures from its TSV output."""
    return confidence(tsv_confidences(tsv), low)


def document_confidence(
    pages: Iterable[tuple[int, PageConfidence]], low: float
) -> dict[str, Any] | None:
    """The manifest's ``confidence`` of a document: its words' figures, the threshold, and
    each read page's figures (``pages``); ``None`` when no page has confidences."""
    pages = list(pages)
    if not pages:
        return None
    every = [v for _, c in pages for v in c.values]
    whole = confidence(every, low)
    return {
        **whole.as_dict(),
        "conf_low": low,
        "pages": [{"page": page, **c.as_dict()} for page, c in pages],
    }


def span_confidence(pages: Sequence[PageResult]) -> dict[str, Any]:
    """A document span's confidence figures (its words' mean, its words), for the trace."""
    values = [v for r in pages if r.confidence is not None for v in r.confidence.values]
    if not any(r.confidence is not None for r in pages):
        return {}
    return {
        "conf_mean": round(sum(values) / len(values), 4) if values else None,
        "words": len(values),
    }


_WC = re.compile(r' WC="0\.(\d+)"')


def fixed_alto_wc(alto: str, version: str | None) -> str:
    """ALTO with ``WC`` as the fraction Tesseract meant (its percentage / 100, two decimals).

    Tesseract up to 5.5 writes ``"0." + int(confidence)``; from the digits after
    ``0.`` the percentage is exact, so the fix loses nothing. Later versions write the
    fraction themselves and are left alone.
    """
    numbers = tuple(int(n) for n in re.findall(r"\d+", version or "")[:3])
    if not numbers or numbers > (5, 5, 2):
        return alto
    return _WC.sub(lambda m: f' WC="{int(m.group(1)) / 100:.2f}"', alto)
