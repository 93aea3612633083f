"""Small pages travel in bundles: one Tesseract process, one model load, for several pages.

Why: every ``tesseract`` process loads its model before it reads a pixel, about
0.1 s on this machine (``time tesseract blank-50x50.png stdout``: 0.09-0.12 s),
which is a quarter of the time of an A6 scan and 2% of a dense letter page. The
command line pays it for every file; ocrlab knows each page's size before OCR
(:mod:`ocrlab.ordering`) and can hand Tesseract several small pages at once in
its own list mode (:func:`ocrlab.engines.tesseract.pytesseract_list`), paying it
once. Large pages still run alone: for them the saving is small and a bundle
would only make the units of work uneven.

The rules (:func:`bundled`):

* a page is *small* when its cost estimate is at most half of ``bundle_mp``;
  consecutive small pages are grouped while their estimates add up to at most
  ``bundle_mp`` megapixels (and at most :data:`MAX_PAGES` pages);
* the end of a batch is spread over the workers: once the stream of pages is
  exhausted, a bundle takes at most its share of the small pages left
  (``ceil(left / workers)``), so the last pages are not one worker's bundle while
  the others idle;
* pages whose cost is unknown, and paths Tesseract's list could not name (a line
  break in the path), are never bundled.

A bundle is one unit of work for the scheduler (one slot in flight); when it does
not come back whole (a page that fails, a timeout) its pages are run again one by
one (:func:`ocrlab.worker.ocr_bundle`), so errors and output are those of pages
run alone. Output is identical with and without bundles (tested on real scans:
``tests/test_bundles.py``); ``bundle_mp = 0`` turns them off.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator

from .engines.registry import list_engine
from .records import PageTask

#: At most this many pages in one bundle (one Tesseract list).
MAX_PAGES = 32

#: A unit of work: one page, or a bundle of small pages run by one engine call.
Unit = PageTask | tuple[PageTask, ...]


def is_small(task: PageTask, bundle_mp: float) -> bool:
    """Whether ``task`` may share a Tesseract process with other small pages."""
    cost = task.cost or 0.0
    return 0.0 < cost <= bundle_mp / 2 and "\n" not in task.path and "\r" not in task.path


def bundled(
    tasks: Iterable[PageTask], bundle_mp: float, workers: int, pdf_apart: bool = False
) -> Iterator[Unit]:
    """``tasks`` in the same order, consecutive small pages grouped into bundles.

    Lazy with a bounded look-ahead (``workers`` x :data:`MAX_PAGES` pages), so a
    generator of a million pages is consumed as it is submitted; the look-ahead
    is how the end of the stream is seen coming (see the module doc).
    ``bundle_mp <= 0`` yields every page alone. ``pdf_apart``: pages of PDF inputs and
    of images never share a bundle (with ``formats`` ``pdf``, a PDF input's pages get a
    text-only layer and an image's the image too: two kinds of Tesseract call); a bundle
    then steps over the small pages of the other kind in the look-ahead, which start the
    next bundle, so splitting the kinds costs few extra Tesseract processes.
    """
    if bundle_mp <= 0:
        yield from tasks
        return
    workers = max(1, workers)
    ahead: deque[PageTask] = deque()
    source = iter(tasks)
    exhausted = False
    while True:
        while not exhausted and len(ahead) < workers * MAX_PAGES:
            nxt = next(source, None)
            if nxt is None:
                exhausted = True
            else:
                ahead.append(nxt)
        if not ahead:
            return
        first = ahead.popleft()
        if not is_small(first, bundle_mp):
            yield first
            continue
        cap = MAX_PAGES
        if exhausted:  # the end of the batch: at most this bundle's share of what is left
            left = 1 + sum(1 for t in ahead if is_small(t, bundle_mp))
            cap = min(cap, math.ceil(left / workers))
        group = [first]
        total = first.cost or 0.0
        i = 0  # with pdf_apart, small pages of the other kind are stepped over, not ended at
        while i < len(ahead) and len(group) < cap and is_small(ahead[i], bundle_mp):
            task = ahead[i]
            if pdf_apart and (task.fmt == "pdf") != (first.fmt == "pdf"):
                i += 1
                continue
            if total + (task.cost or 0.0) > bundle_mp:
                break
            del ahead[i]
            group.append(task)
            total += task.cost or 0.0
        yield group[0] if len(group) == 1 else tuple(group)


def bundle_budget(bundle_mp: float, engine: str) -> float:
    """``bundle_mp`` where the engine can OCR a list of pages that stay independent, else 0."""
    return bundle_mp if list_engine(engine) is not None else 0.0


def unit_pages(unit: Unit) -> tuple[PageTask, ...]:
    """The pages of a unit of work, in order."""
    return unit if isinstance(unit, tuple) else (unit,)
