"""Page preparation: turn one page of a document into a file Tesseract can read.

Runs where the page is OCRed (a worker process, or the main process in
sequential mode) and in the lab's benchmark, which hands the Tesseract command
line the very same files. Sources, cheapest first:

* a single-page PNG/JPEG/TIFF/BMP/GIF/WebP in a mode Tesseract's image library
  (Leptonica) reads: the path itself goes to Tesseract, nothing is re-encoded;
* a page of a multi-page TIFF, a file in an unusual colour mode: decoded with
  Pillow and written as PNM (a raw header plus the pixels; no compression,
  so it costs a memory copy: 10 ms for an A4 page, where PNG encoding costs 143 ms);
* a PDF page: rendered by PDFium at the configured dpi, grayscale, as PNM.

The page's size is checked from its header against ``max_megapixels`` before
anything is decoded (the decompression-bomb guard).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import PageTooLargeError, UnsupportedFormatError
from .inputfiles import open_input
from .records import EngineSettings, PageTask

#: Pillow modes Leptonica reads directly from the original file.
_DIRECT_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "I;16", "I;16B"})
_DIRECT_FORMATS = frozenset({"png", "jpeg", "tiff", "bmp", "gif", "webp"})


def reads_directly(task: PageTask, mode: str) -> bool:
    """Whether Tesseract gets the page's own file (and the resolution it states) rather
    than a PNM of its pixels."""
    return task.n_pages == 1 and task.fmt in _DIRECT_FORMATS - {"gif"} and mode in _DIRECT_MODES


def _check_size(width: int, height: int, settings: EngineSettings, what: str) -> None:
    megapixels = width * height / 1e6
    if megapixels > settings.max_megapixels:
        raise PageTooLargeError(
            f"{what} is {width}x{height} px = {megapixels:.1f} MP, above the limit of "
            f"{settings.max_megapixels:g} MP; raise max_megapixels / OCR_MAX_MEGAPIXELS "
            "if the page is genuine."
        )


@contextlib.contextmanager
def page_source(task: PageTask, settings: EngineSettings) -> Iterator[tuple[str, int, int]]:
    """Yield (path Tesseract can read, width, height) for ``task``'s page.

    Temporary files live in a private directory removed on exit, also when the
    engine fails.
    """
    from PIL import Image

    # Our explicit check (from the header, before any decode) replaces Pillow's bomb
    # check, whose limit is process-global; it is restored on exit, since in sequential
    # mode this is the user's own process.
    stack = contextlib.ExitStack()
    saved_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    stack.callback(setattr, Image, "MAX_IMAGE_PIXELS", saved_limit)
    with stack:
        path = task.path
        if task.payload is not None:  # the file travelled with the task (remote executors)
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="ocrlab-page-"))
            path = os.path.join(tmp, "input." + task.fmt)
            Path(path).write_bytes(task.payload)
        if task.fmt not in _DIRECT_FORMATS and task.fmt != "pdf":
            raise UnsupportedFormatError(f"format {task.fmt!r} is not supported")
        # Checked and read through one descriptor: a file replaced since discovery (by a
        # FIFO, whose open would wait forever) or removed is this page's error.
        fh = stack.enter_context(open_input(path))
        if task.fmt == "pdf":
            yield _render_pdf_page(fh, task, settings, stack)
            return
        im = stack.enter_context(Image.open(fh))
        if task.page > 1 or getattr(im, "n_frames", 1) > 1:
            im.seek(task.page - 1)
        width, height = im.size
        _check_size(width, height, settings, f"page {task.page}")
        if reads_directly(task, im.mode):
            yield path, width, height
            return
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="ocrlab-page-"))
        out = os.path.join(tmp, "page.pnm")
        frame = (
            im
            if im.mode in {"1", "L", "RGB"}
            else im.convert("L" if im.mode in {"LA", "I;16", "I;16B", "I", "F"} else "RGB")
        )
        frame.save(out, format="PPM")
        yield out, width, height


def _render_pdf_page(
    fh: BinaryIO, task: PageTask, settings: EngineSettings, stack: contextlib.ExitStack
) -> tuple[str, int, int]:
    import pypdfium2

    pdf = pypdfium2.PdfDocument(fh)
    stack.callback(pdf.close)
    page = pdf[task.page - 1]
    stack.callback(page.close)
    w_pt, h_pt = page.get_size()
    scale = settings.dpi / 72.0
    width, height = round(w_pt * scale), round(h_pt * scale)
    _check_size(width, height, settings, f"PDF page {task.page} at {settings.dpi} dpi")
    bitmap = page.render(scale=scale, grayscale=True)
    stack.callback(bitmap.close)
    image = bitmap.to_pil()
    tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="ocrlab-page-"))
    out = os.path.join(tmp, "page.pnm")
    image.save(out, format="PPM")
    return out, image.width, image.height
