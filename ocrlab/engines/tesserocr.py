"""An in-process engine: one loaded Tesseract API per worker process (``--engine tesserocr``).

pytesseract starts a ``tesseract`` process per page, which loads the model and
goes through temporary files. tesserocr binds libtesseract: the API (and the
model) is created once per worker process, on its first page, and reused for
every page after. The PyPI wheels bundle their own libtesseract (5.5.x at the
time of writing) and Leptonica; the traineddata comes from the system
(``TESSDATA_PREFIX`` or where the ``tesseract`` command finds it).

Created lazily rather than in a pool initializer so that every executor (loky,
in-process, Dask) gets it the same way and the pool is still created with
``max_workers`` alone. The per-page timeout uses libtesseract's own deadline
(``Recognize(timeout=ms)``); a page stuck elsewhere is caught by the scheduler's
watchdog, which replaces the worker.

Install with ``pip install 'ocrlab[tesserocr]'``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from typing import Any

from ..errors import PageTimeoutError
from ..records import EngineSettings, PageTask
from .tesseract import tessdata_dir

_local = threading.local()  # one API per thread: Dask workers may run several threads


def version() -> str:
    """The libtesseract version the tesserocr wheel runs (first line of its banner)."""
    import tesserocr

    return str(tesserocr.tesseract_version()).split()[1]


def _api(settings: EngineSettings) -> Any:
    # The folder is part of the key: a sweep changes TESSDATA_PREFIX between runs.
    key = (settings.lang, settings.psm, os.environ.get("TESSDATA_PREFIX"))
    cached = getattr(_local, "api", None)
    if cached is not None and getattr(_local, "key", None) == key:
        return cached
    import tesserocr

    if cached is not None:
        cached.End()
    kwargs: dict[str, Any] = {"lang": settings.lang}
    path = tessdata_dir()
    if path:
        kwargs["path"] = path.rstrip("/") + "/"
    if settings.psm is not None:
        kwargs["psm"] = settings.psm
    _local.api = tesserocr.PyTessBaseAPI(**kwargs)
    _local.key = key
    return _local.api


def release() -> None:
    """End this thread's API and free its model (after a sequential run in the user's process).

    ``malloc_trim`` hands the freed heap back to the system (glibc keeps it
    otherwise); measured in one process: RSS 79 MB after a run, 57 MB after this.
    """
    api = getattr(_local, "api", None)
    if api is None:
        return
    api.End()
    _local.api = None
    _local.key = None
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def tesserocr_engine(
    source: str, task: PageTask, settings: EngineSettings
) -> str | dict[str, str | bytes]:
    """OCR ``source`` with this process's loaded API; same contract as the pytesseract engine.

    Formats from the same ``Recognize``: the TSV and hOCR the binding renders
    (``GetTSVText``, ``GetHOCRText``); ALTO and the PDF it cannot render from a result
    already recognised, and asking for them is refused at start-up
    (:func:`ocrlab.output.formats.check_formats`).
    """
    api = _api(settings)
    # A model with the legacy engine (the tessdata repository's, not Debian's tessdata_fast)
    # adapts its classifier to every page it reads, so one API's text for a page depended on
    # the pages its worker had read before: parallel output differed from sequential
    # (found by ``ocrlab sweep``). Forgetting before each page gives every page the text a
    # fresh process reads, whatever the worker count or order.
    api.ClearAdaptiveClassifier()
    try:
        api.SetImageFile(source)
    except RuntimeError:
        # The wheel's Leptonica lacks some formats (GIF): hand it decoded pixels instead.
        from PIL import Image

        with Image.open(source) as im:
            api.SetImage(im.convert("L") if im.mode not in {"1", "L", "RGB"} else im.copy())
    if not api.Recognize(timeout=int(settings.timeout_s * 1000)):
        api.Clear()
        raise PageTimeoutError(
            f"libtesseract ran longer than the page timeout ({settings.timeout_s:g} s) and "
            "stopped; raise page_timeout / OCR_PAGE_TIMEOUT if the page is legitimately slow."
        )
    text: str = api.GetUTF8Text()
    if all(f == "txt" for f in settings.formats):
        api.Clear()
        return text
    # The TSV whenever anything beyond the text is asked: the confidences come from it.
    outputs: dict[str, str | bytes] = {"txt": text, "tsv": api.GetTSVText(0)}
    if "hocr" in settings.formats:
        outputs["hocr"] = api.GetHOCRText(0)
    api.Clear()
    return outputs
