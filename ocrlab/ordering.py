"""Cost-aware submission order: the most expensive pages first, on a stream of tasks.

Why: pages submitted in discovery order end a mixed batch with its large pages
running alone (one worker busy, the others idle), the tail that makes a pool
no faster than ``xargs -P N tesseract``. Longest-processing-time-first (LPT)
puts the large pages at the start, where the small ones fill in around them.
ocrlab can do this and the command line cannot because it knows a page's size
before OCR: from the image header, or a PDF page's box times the dpi.

Why a bounded window rather than a sort: discovery may be a generator over a
million files, whose pages cannot all be held. :func:`cost_order` holds at most ``window`` pages in
a heap and releases the most expensive one each time the scheduler asks, so
memory stays bounded and the first page is submitted after ``window`` header
reads at most. With fewer pages than ``window`` the order is exact LPT.

Ties (and every page when estimates are missing) keep discovery order, so the
order is deterministic. Output identity does not depend on the order:
artifacts are assembled per document in page order (:mod:`ocrlab.collector`).
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO, TypeVar

from .inputfiles import open_input
from .records import PageTask

#: Pages held back to choose the most expensive from (default of ``order_window``).
DEFAULT_WINDOW = 2000

#: Cost per megapixel relative to an image Tesseract reads directly. A PDF page is
#: rendered by PDFium and written as PNM first; a page of a multi-page TIFF (or an
#: unusual mode) is decoded and re-encoded as PNM. Both add work proportional to the
#: pixels; 1.1 is a conservative guess (the render costs ~5-10% of the OCR of a
#: page on this machine), refined in the trace explorer's estimate-vs-measured plot.
FORMAT_FACTOR: dict[str, float] = {"pdf": 1.1}

T = TypeVar("T")
D = TypeVar("D")


class _OpenPdf:
    """The PDF whose pages are being estimated, kept open across its consecutive pages:
    opening it again per page would parse its cross-reference table once per page."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.doc: Any = None
        self.fh: BinaryIO | None = None

    def page_size(self, path: str, index: int) -> tuple[float, float]:
        if path != self.path:
            self.close()
            import pypdfium2

            self.fh = open_input(path)  # never a wait on a FIFO put there since discovery
            self.doc, self.path = pypdfium2.PdfDocument(self.fh), path
        w_pt, h_pt = self.doc.get_page_size(index)
        return float(w_pt), float(h_pt)

    def close(self) -> None:
        if self.doc is not None:
            self.doc.close()
        if self.fh is not None:
            self.fh.close()
        self.doc = self.path = self.fh = None


def page_pixels(task: PageTask, dpi: int, pdf: _OpenPdf | None = None) -> int | None:
    """Width x height of ``task``'s page from headers only, or ``None`` if unreadable.

    Images: the size discovery read already (:attr:`PageTask.pixels`), else
    Pillow's lazy open reads the header (for a multi-page TIFF, the page's
    directory). PDF: the page box in points x ``dpi`` / 72, what
    :mod:`ocrlab.pages` will render (``pdf`` keeps the document open between
    calls; without it the file is opened and closed here). Never decodes pixels.
    """
    if task.pixels is not None and task.fmt != "pdf":
        return task.pixels
    try:
        if task.fmt == "pdf":
            own = pdf is None
            opened = _OpenPdf() if pdf is None else pdf
            try:
                w_pt, h_pt = opened.page_size(task.path, task.page - 1)
            finally:
                if own:
                    opened.close()
            scale = dpi / 72.0
            return int(w_pt * scale + 0.5) * int(h_pt * scale + 0.5)
        from PIL import Image

        with open_input(task.path) as fh, Image.open(fh) as im:
            if task.page > 1:
                im.seek(task.page - 1)
            width, height = im.size
            return int(width) * int(height)
    except Exception:  # an unreadable header: the worker will report it as the page's error
        return None


def estimate_cost(task: PageTask, dpi: int, pdf: _OpenPdf | None = None) -> float:
    """The page's expected OCR cost in megapixel-equivalents (0.0 when unknown).

    Unknown pages cost 0: they go last, where a page that fails at once does no
    harm, and a wrong guess about one page cannot delay the others.
    """
    pixels = page_pixels(task, dpi, pdf)
    if pixels is None:
        return 0.0
    return round(pixels / 1e6 * FORMAT_FACTOR.get(task.fmt, 1.0), 4)


def with_estimates(pairs: Iterable[tuple[D, PageTask]], dpi: int) -> Iterator[tuple[D, PageTask]]:
    """(document, page) pairs with :attr:`PageTask.cost` filled in: one header read per
    page, a PDF opened once for its consecutive pages (closed when the stream ends)."""
    pdf = _OpenPdf()
    try:
        for doc, task in pairs:
            yield doc, dataclasses.replace(task, cost=estimate_cost(task, dpi, pdf))
    finally:
        pdf.close()


def cost_order(
    items: Iterable[T], cost: Callable[[T], float], window: int = DEFAULT_WINDOW
) -> Iterator[T]:
    """Yield ``items`` most expensive first, looking at most ``window`` items ahead.

    ``cost(item)`` gives a number; equal costs keep their input order. Lazy: an
    item is drawn from ``items`` only when the window has room, so a generator
    of discovered pages is consumed as fast as pages are submitted, plus the window.
    """
    if window < 1:
        raise ValueError(f"window={window!r} must be at least 1 (1 keeps discovery order exactly)")
    heap: list[tuple[float, int, T]] = []
    counter = itertools.count()
    source = iter(items)
    for item in itertools.islice(source, window):
        heapq.heappush(heap, (-float(cost(item)), next(counter), item))
    for item in source:
        # Release the most expensive page held, then take in the next one.
        yield heapq.heappushpop(heap, (-float(cost(item)), next(counter), item))[2]
    while heap:
        yield heapq.heappop(heap)[2]
