"""The searchable PDF: Tesseract's pages assembled per document, checked by reading them back.

Two kinds of input, two ways (the way OCRmyPDF grafts):

* **images**: Tesseract's PDF renderer writes each page as the image with the
  recognised text, invisible, on top; the document is those pages in page order
  (:func:`assemble_pdf`), sized by the image's resolution as Tesseract sizes them.
* **PDF inputs**: the page was rendered to pixels for Tesseract, whose renderer ran
  with ``textonly_pdf=1`` (the text layer without the image). The layer becomes a
  form XObject drawn *before* the original page's content, scaled (and turned, for a
  rotated page) onto its visible box; the original content streams, resources and
  boxes stay as they are, only one small stream is put in front.

Deterministic: a new document gets fixed metadata (producer, title = the document
id, a creation date only from ``SOURCE_DATE_EPOCH``), a PDF input keeps its own, and
the file identifier is derived from the content (``deterministic_id``), so the file
is the same byte for byte run after run. Afterwards the text is extracted back with
PDFium (:func:`layer_cer`): a layer that does not read back is an error, not a PDF.

Needs pikepdf (the ``pdf`` extra); pypdfium2 is a core dependency.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rapidfuzz.distance import Levenshtein

#: A layer whose extracted text differs from the text artifact by more than this
#: character error rate is refused: it does not carry the document's text.
MAX_LAYER_CER = 0.10


class PdfLayerError(RuntimeError):
    """The searchable PDF could not be made, or its text layer does not read back."""


#: Resolutions Tesseract believes (its kMinCredibleResolution .. kMaxCredibleResolution);
#: outside them, or with none, it takes 70 dpi.
CREDIBLE_DPI = (70.0, 2400.0)


def split_pdf(
    data: bytes, n_pages: int, sizes: Sequence[tuple[float, float] | None] | None = None
) -> list[bytes] | None:
    """A list's PDF (one page per listed image) as one PDF per page; ``None`` when it does
    not hold exactly ``n_pages`` pages. ``sizes``: each page's size in points where it is
    known and Tesseract could not know it (a page handed over as a PNM, which states no
    resolution: Tesseract sized it at 70 dpi); the page is scaled to it, drawing and all."""
    import pikepdf

    with pikepdf.open(io.BytesIO(data)) as whole:
        if len(whole.pages) != n_pages:
            return None
        out = []
        for page, size in zip(whole.pages, sizes or [None] * n_pages, strict=True):
            single = pikepdf.new()
            single.pages.append(page)
            if size is not None:
                _scale_to(single, single.pages[0], size)
            buffer = io.BytesIO()
            single.save(buffer, deterministic_id=True)
            out.append(buffer.getvalue())
    return out


def _scale_to(pdf: Any, page: Any, size: tuple[float, float]) -> None:
    import pikepdf

    box = [float(v) for v in page.mediabox]
    sx, sy = size[0] / (box[2] - box[0]), size[1] / (box[3] - box[1])
    if abs(sx - 1) < 1e-6 and abs(sy - 1) < 1e-6:
        return
    page.mediabox = pikepdf.Array([0, 0, round(size[0], 4), round(size[1], 4)])
    page.contents_add(
        pikepdf.Stream(pdf, f"q {sx:.6f} 0 0 {sy:.6f} 0 0 cm\n".encode()), prepend=True
    )
    page.contents_add(pikepdf.Stream(pdf, b"Q\n"))


def _docinfo(pdf: Any, doc_id: str, producer: str) -> None:
    import pikepdf

    info: dict[str, Any] = {"/Producer": producer, "/Title": doc_id}
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch.isdigit():
        stamp = time.strftime("D:%Y%m%d%H%M%SZ", time.gmtime(int(epoch)))
        info.update({"/CreationDate": stamp, "/ModDate": stamp})
    pdf.docinfo = pdf.make_indirect(
        pikepdf.Dictionary({k: pikepdf.String(v) for k, v in info.items()})
    )


def _placement(page: Any, layer_box: Sequence[float]) -> list[float]:
    """The matrix that puts a text layer of ``layer_box`` (as PDFium rendered the page:
    its visible box, turned by ``/Rotate``) onto ``page``'s own coordinates."""
    box = [float(v) for v in page.obj.get("/CropBox", page.mediabox)]
    x0, y0 = min(box[0], box[2]), min(box[1], box[3])
    cw, ch = abs(box[2] - box[0]), abs(box[3] - box[1])
    rotate = int(page.obj.get("/Rotate", 0)) % 360
    lw, lh = float(layer_box[2]) - float(layer_box[0]), float(layer_box[3]) - float(layer_box[1])
    shown_w, shown_h = (ch, cw) if rotate in (90, 270) else (cw, ch)
    sx, sy = shown_w / lw, shown_h / lh
    if rotate == 90:
        return [0, sx, -sy, 0, x0 + cw, y0]
    if rotate == 180:
        return [-sx, 0, 0, -sy, x0 + cw, y0 + ch]
    if rotate == 270:
        return [0, -sx, sy, 0, x0, y0 + ch]
    return [sx, 0, 0, sy, x0, y0]


def _open(source: str | bytes) -> Any:
    import pikepdf

    return pikepdf.open(io.BytesIO(source) if isinstance(source, bytes) else source)


def _graft(pdf: Any, page: Any, layer: Any) -> None:
    """Draw ``layer``'s one page (a text-only layer) under ``page``'s own content."""
    import pikepdf

    source = layer.pages[0]
    form = pdf.copy_foreign(source.as_form_xobject())
    box = [float(v) for v in source.mediabox]
    # A fixed name, not pikepdf's random prefix: the file must be the same run after run.
    taken = set(page.resources.get("/XObject", {}).keys())
    name = next(n for i in range(len(taken) + 1) if (n := f"/OcrText{i or ''}") not in taken)
    page.add_resource(form, pikepdf.Name.XObject, pikepdf.Name(name))
    matrix = " ".join(f"{v:.6f}".rstrip("0").rstrip(".") or "0" for v in _placement(page, box))
    stream = f"q {matrix} cm {name} Do Q\n".encode("ascii")
    page.contents_add(pikepdf.Stream(pdf, stream), prepend=True)


def assemble_pdf(
    parts: Sequence[tuple[int, str | bytes]],
    doc_id: str,
    producer: str,
    source_pdf: str | None = None,
) -> bytes:
    """The searchable PDF of a document from its read pages' PDFs (``(page, path or
    bytes)``, page order). ``source_pdf``: the document is a PDF; its pages get the
    layers and keep everything else; pages that were not read are left out, as in every
    format. The pages' files stay open until the document is saved (their streams are
    copied then, not before)."""
    import pikepdf

    try:
        with contextlib.ExitStack() as stack:
            opened = [(page, stack.enter_context(_open(data))) for page, data in parts]
            if source_pdf is None:
                pdf = stack.enter_context(pikepdf.new())
                for _, single in opened:
                    pdf.pages.append(single.pages[0])
                _docinfo(pdf, doc_id, producer)
            else:
                pdf = stack.enter_context(pikepdf.open(source_pdf))
                for page, layer in opened:
                    _graft(pdf, pdf.pages[page - 1], layer)
                read = {page for page, _ in parts}
                for index in reversed(range(len(pdf.pages))):
                    if index + 1 not in read:
                        del pdf.pages[index]
            buffer = io.BytesIO()
            # A PDF input's streams are written as they were (qpdf would compress the
            # uncompressed ones); Tesseract's pages come compressed already.
            pdf.save(buffer, deterministic_id=True, compress_streams=source_pdf is None)
    except (pikepdf.PdfError, OSError, IndexError, ValueError) as exc:
        raise PdfLayerError(f"the searchable PDF of {doc_id!r} could not be made: {exc}") from exc
    return buffer.getvalue()


def extracted_pages(data: bytes) -> list[str]:
    """The text PDFium reads from each page of a PDF (what a viewer's search finds)."""
    import pypdfium2

    pdf = pypdfium2.PdfDocument(data)
    try:
        texts = []
        for index in range(len(pdf)):
            page = pdf[index]
            textpage = page.get_textpage()
            texts.append(textpage.get_text_bounded())
            textpage.close()
            page.close()
        return texts
    finally:
        pdf.close()


def _normal(text: str) -> str:
    # PDFium joins a line ending in a hyphen to the next with \x02 (its mark for a
    # hyphen it took for a soft one); the text artifact has the hyphen and the line break.
    return " ".join(text.replace("\x02", "- ").split())


def layer_cer(
    data: bytes, pages_text: Sequence[tuple[int, str]], doc_id: str, source_pdf: str | None = None
) -> float:
    """The character error rate of the PDF's extracted text against the text artifact's
    read pages (``(page, text)``; whitespace folded: PDFium places its own line breaks).
    For a PDF input, each page's own text (drawn after the layer) is expected after the
    layer's. Raises :class:`PdfLayerError` when the layer cannot be read back or reads
    back wrong."""
    try:
        texts = extracted_pages(data)
        before = extracted_pages(Path(source_pdf).read_bytes()) if source_pdf else None
    except Exception as exc:  # PDFium's errors have no common base worth naming
        raise PdfLayerError(f"the text layer of {doc_id!r} cannot be extracted: {exc}") from exc
    if len(texts) != len(pages_text):
        raise PdfLayerError(
            f"the searchable PDF of {doc_id!r} has {len(texts)} pages, expected "
            f"{len(pages_text)} (one per page read)"
        )
    expected = [f"{text} {before[page - 1] if before else ''}" for page, text in pages_text]
    reference = _normal(" ".join(expected))
    found = _normal(" ".join(texts))
    if not reference:
        return 0.0 if not found else 1.0
    cer = Levenshtein.distance(reference, found) / len(reference)
    if cer > MAX_LAYER_CER:
        raise PdfLayerError(
            f"the text layer of {doc_id!r} does not read back: its extracted text differs "
            f"from the text artifact by {cer:.1%} of characters (more than "
            f"{MAX_LAYER_CER:.0%}); the PDF was not written"
        )
    return round(cer, 5)
