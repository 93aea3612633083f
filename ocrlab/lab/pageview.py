"""One page of a run, seen whole: its image, its OCR text, the ground truth and the diff.

The data side of the page viewer (:class:`ocrlab.lab.widgets.PageViewer`) and its
static twin for HTML reports (:func:`worst_pages_html`), kept apart from the
widgets so it is tested without a kernel and works where no kernel runs.

Why per page: a document's CER hides *where* the errors are; the reader wants
the page that went wrong, its image beside the text, and the errors marked.
Ground truth is ``NAME.gt.txt`` beside the input (see :mod:`ocrlab.accuracy`),
its pages separated by form feeds; a one-page document's whole file is its page.
The OCR time comes from the page's span in ``trace.json`` (the last attempt).
"""

from __future__ import annotations

import base64
import difflib
import html
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..output import trace_schema as ts
from ..output.manifest import load_manifest
from ..output.trace_reader import load_trace
from .accuracy import cer, ground_truth_path
from .confidence import Word, draw_words, low_words_html, page_words

_TOKENS = re.compile(r"\s+|[^\s]+")

#: Shared by the widget and the static report, so both look the same.
STYLE = """<style>
.ocrlab-page{display:flex;gap:12px;align-items:flex-start;flex-wrap:wrap;margin:8px 0}
.ocrlab-page img{max-width:420px;border:1px solid #ccc}
.ocrlab-page pre{white-space:pre-wrap;max-width:420px;margin:0;font-size:12px}
.ocrlab-diff del{background:#fdd;color:#900}.ocrlab-diff ins{background:#dfd;color:#060}
</style>"""


@dataclass(frozen=True)
class PageInfo:
    """Everything the viewer shows about one page of a run."""

    out_dir: Path
    doc_id: str
    page: int
    n_pages: int
    source: str
    fmt: str
    text: str | None  # None: the page failed or the document has no artifact
    truth: str | None  # None: no ground truth for this page
    ocr_s: float | None
    wall_s: float | None
    error: str | None

    @property
    def cer(self) -> float | None:
        if self.truth is None or self.text is None:
            return None
        return cer(self.truth, self.text)


def find_runs(root: str | os.PathLike[str]) -> list[Path]:
    """Output folders (a ``results.json``) at ``root`` or up to three levels below it."""
    base = Path(root)
    found = [
        p.parent
        for depth in ("", "*/", "*/*/", "*/*/*/")
        for p in base.glob(f"{depth}results.json")
    ]
    return sorted(found)


def documents(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The manifest's documents that have pages (unreadable ones have nothing to show)."""
    return [d for d in load_manifest(out_dir)["documents"] if d.get("pages")]


def page_times(out_dir: str | os.PathLike[str]) -> dict[tuple[str, int], tuple[float, float]]:
    """(OCR seconds, span seconds) per (document, page), from the trace (last attempt wins)."""
    times: dict[tuple[str, int], tuple[float, float]] = {}
    trace = Path(out_dir) / "trace.json"
    if not trace.is_file():
        return times
    for e in load_trace(trace):
        if ts.is_page(e):
            a = e.get("args", {})
            times[(a.get("doc_id"), a.get("page"))] = (
                a.get("ocr_us", 0) / 1e6,
                e.get("dur", 0) / 1e6,
            )
    return times


def page_info(
    out_dir: str | os.PathLike[str],
    doc: dict[str, Any],
    page: int,
    times: dict[tuple[str, int], tuple[float, float]] | None = None,
) -> PageInfo:
    """One page of manifest record ``doc`` (see :func:`documents`)."""
    out = Path(out_dir)
    n_pages = int(doc["pages"])
    errors = {
        e.get("page"): f"{e.get('type')}: {e.get('message')}" for e in doc.get("errors") or []
    }
    text = None
    if doc.get("artifact") and page not in errors:
        body = (out / doc["artifact"]).read_text(encoding="utf-8").split("\f")
        text = body[page - 1] if page - 1 < len(body) else None
    truth = None
    gt = ground_truth_path(doc["source"])
    if gt is not None:
        parts = gt.read_text(encoding="utf-8").split("\f")
        if n_pages == 1:
            truth = "\f".join(parts)
        elif len(parts) >= n_pages:
            truth = parts[page - 1]
    ocr_s, wall_s = (times if times is not None else page_times(out)).get(
        (doc["doc_id"], page), (None, None)
    )
    return PageInfo(
        out,
        doc["doc_id"],
        page,
        n_pages,
        doc["source"],
        doc.get("format", ""),
        text,
        truth,
        ocr_s,
        wall_s,
        errors.get(page) or errors.get(None),
    )


def page_png(source: str, page: int, fmt: str = "", max_width: int = 800) -> bytes:
    """The page as PNG bytes, scaled down to ``max_width`` (PDF pages rendered at 100 dpi)."""
    from PIL import Image

    if fmt == "pdf" or source.lower().endswith(".pdf"):
        import pypdfium2 as pdfium

        pdf = pdfium.PdfDocument(source)
        try:
            im = pdf[page - 1].render(scale=100 / 72).to_pil()
        finally:
            pdf.close()
    else:
        with Image.open(source) as opened:
            if page > 1 or getattr(opened, "n_frames", 1) > 1:
                opened.seek(page - 1)
            im = opened.convert("RGB") if opened.mode not in {"L", "RGB"} else opened.copy()
    if im.width > max_width:
        im = im.resize((max_width, round(im.height * max_width / im.width)))
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def diff_html(truth: str, text: str) -> str:
    """Word-level diff: ``<del>`` what the ground truth has and the OCR missed, ``<ins>`` what
    the OCR added. Whitespace differences are layout, not errors (as in the CER)."""
    a = [t for t in _TOKENS.findall(truth.replace("\f", " ")) if not t.isspace()]
    b = [t for t in _TOKENS.findall(text.replace("\f", " ")) if not t.isspace()]
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(html.escape(" ".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(f"<del>{html.escape(' '.join(a[i1:i2]))}</del>")
        if j2 > j1:
            out.append(f"<ins>{html.escape(' '.join(b[j1:j2]))}</ins>")
    return '<div class="ocrlab-diff">' + " ".join(out) + "</div>"


def caption(info: PageInfo) -> str:
    """One line: document, page, CER and OCR time."""
    parts = [f"<b>{html.escape(info.doc_id)}</b> page {info.page} of {info.n_pages}"]
    if info.cer is not None:
        parts.append(f"CER {info.cer:.1%}")
    if info.ocr_s is not None:
        parts.append(f"OCR {info.ocr_s:.2f} s")
    if info.error:
        parts.append(f"<span style='color:#b00'>failed: {html.escape(info.error)}</span>")
    return " &middot; ".join(parts)


def text_html(info: PageInfo) -> str:
    """The OCR text and, with ground truth, the marked differences."""
    text = info.text if info.text is not None else ""
    cells = [
        f'<div><div><i>OCR text</i></div><pre class="ocrlab-page-text">'
        f"{html.escape(text) or '(no text)'}</pre></div>"
    ]
    if info.truth is not None:
        cells.append(
            f"<div><div><i>against ground truth</i> (<del>missed</del> "
            f"<ins>added</ins>)</div><pre>{diff_html(info.truth, text)}</pre></div>"
        )
    return STYLE + '<div class="ocrlab-page">' + "".join(cells) + "</div>"


def _words(info: PageInfo) -> tuple[list[Word], tuple[int, int] | None, float]:
    """The page's words and OCR size from its run's TSV or hOCR, and the run's threshold."""
    doc = next((d for d in documents(info.out_dir) if d["doc_id"] == info.doc_id), None)
    if doc is None:
        return [], None, 60.0
    words, size = page_words(info.out_dir, doc, info.page)
    return words, size, float((doc.get("confidence") or {}).get("conf_low", 60.0))


def page_png_with_words(info: PageInfo, max_width: int = 800) -> bytes:
    """The page image with its word boxes coloured by confidence (where the run wrote a TSV
    or hOCR; the plain image otherwise)."""
    words, size, _ = _words(info)
    return draw_words(page_png(info.source, info.page, info.fmt, max_width), words, size)


def low_words(info: PageInfo) -> str:
    """The page's words below the run's confidence threshold ('' without confidences)."""
    words, _, threshold = _words(info)
    return low_words_html(words, threshold)


def page_html(info: PageInfo, max_width: int = 420) -> str:
    """Static HTML of one page: caption, image (data URI), text and diff."""
    try:
        png = base64.b64encode(page_png_with_words(info, max_width))
        img = f'<img alt="page image" src="data:image/png;base64,{png.decode()}">'
    except Exception as exc:  # an unreadable page still shows its text and error
        img = f"<i>no image: {html.escape(str(exc))}</i>"
    return f"<div>{caption(info)}</div>" + (text_html(info) + low_words(info)).replace(
        '<div class="ocrlab-page">', f'<div class="ocrlab-page">{img}', 1
    )


def worst_pages(out_dir: str | os.PathLike[str], n: int = 3) -> list[PageInfo]:
    """The ``n`` pages with the highest CER (failed pages first), for static reports."""
    times = page_times(out_dir)
    pages = [
        page_info(out_dir, d, p, times)
        for d in documents(out_dir)
        for p in range(1, int(d["pages"]) + 1)
    ]
    scored = [p for p in pages if p.cer is not None or p.error]
    scored.sort(key=lambda p: (p.error is None, -(p.cer or 0.0), p.doc_id, p.page))
    return scored[:n]


def worst_pages_html(out_dir: str | os.PathLike[str], n: int = 3) -> str:
    """The worst pages by CER as one HTML fragment (images inline): the report's viewer."""
    pages = worst_pages(out_dir, n)
    if not pages:
        return "<p>No page with ground truth or errors to show.</p>"
    head = f"<h4>The {len(pages)} page(s) with the highest character error rate</h4>"
    return head + "<hr>".join(page_html(p) for p in pages)
