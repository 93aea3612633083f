"""The worker side: open one page, run the OCR engine on it, return a small record.

:func:`ocr_page` is the only function executors call. It runs in a loky worker,
a Dask worker, or (sequential mode) the main process, and behaves the same in
all three: it never logs to shared files, never touches contextvars, and never
returns pixels. Every failure is caught and returned as a :class:`PageResult`
with ``error_type`` set, so one bad page cannot take its neighbours down.

Page sources, cheapest first:

* a single-page PNG/JPEG/TIFF/BMP/GIF/WebP in a mode Tesseract's image library
  (Leptonica) reads: the path itself goes to Tesseract, nothing is re-encoded;
* a page of a multi-page TIFF, a file in an unusual colour mode: decoded with
  Pillow and written as PNM (a raw header plus the pixels; no compression,
  so it costs a memory copy: 10 ms for an A4 page, where PNG encoding costs 143 ms);
* a PDF page: rendered by PDFium at the configured dpi, grayscale, as PNM.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import resource
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import (
    PageTimeoutError,
    PageTooLargeError,
    TesseractError,
    UnsupportedFormatError,
)
from .records import EngineSettings, PageResult, PageTask

#: An engine turns a page file into text. ``source`` is a path Tesseract can read.
Engine = Callable[[str, PageTask, EngineSettings], str]

#: Pillow modes Leptonica reads directly from the original file.
_DIRECT_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "I;16", "I;16B"})
_DIRECT_FORMATS = frozenset({"png", "jpeg", "tiff", "bmp", "gif", "webp"})

_ENGINES: dict[str, Engine] = {}


def import_pytesseract() -> ModuleType:
    """Import pytesseract without letting it import pandas, unless pandas is already loaded.

    pytesseract imports pandas at import time when it is installed, only to offer
    DataFrame output, which ocrlab never asks for. In a worker that is ~30 MB of
    RSS per process (measured: 77 MB -> 47 MB per loky worker), multiplied by the
    worker count. A ``None`` entry in ``sys.modules`` makes that optional import
    fail cleanly; it is removed again at once, so later ``import pandas`` works.
    """
    blocked = "pandas" not in sys.modules and "pytesseract" not in sys.modules
    if blocked:
        sys.modules["pandas"] = None  # type: ignore[assignment]
    try:
        module = importlib.import_module("pytesseract")
    finally:
        if blocked and sys.modules.get("pandas", 0) is None:
            del sys.modules["pandas"]
    return module


def pytesseract_engine(source: str, task: PageTask, settings: EngineSettings) -> str:
    """The default engine: one ``tesseract`` process per page through pytesseract."""
    pytesseract = import_pytesseract()

    config = settings.tesseract_config
    if settings.psm is not None:
        config = f"--psm {settings.psm} {config}".strip()
    try:
        text: str = pytesseract.image_to_string(
            source, lang=settings.lang, config=config, timeout=settings.timeout_s
        )
    except pytesseract.TesseractError as exc:
        detail = " ".join(str(exc.message).split()) or "no message"
        raise TesseractError(
            f"Tesseract could not read page {task.page} of {task.doc_id} (exit status "
            f"{exc.status}): {detail}") from None
    except RuntimeError as exc:
        if "timeout" in str(exc).lower():
            raise PageTimeoutError(
                f"Tesseract ran longer than the page timeout ({settings.timeout_s:g} s) "
                "and was killed; raise page_timeout / OCR_PAGE_TIMEOUT if the page is "
                "legitimately slow."
            ) from None
        raise
    return text


def resolve_engine(name: str) -> Engine:
    """Find the engine function: a built-in name or an import path ``module:function``."""
    if name in _ENGINES:
        return _ENGINES[name]
    if name == "pytesseract":
        engine: Engine = pytesseract_engine
    elif name == "tesserocr":
        from .tesserocr_engine import tesserocr_engine

        engine = tesserocr_engine
    elif ":" in name:
        module_name, _, attr = name.partition(":")
        engine = getattr(importlib.import_module(module_name), attr)
    else:
        raise ValueError(
            f"engine {name!r} is unknown; use 'pytesseract', 'tesserocr' or an import path "
            "'package.module:function'."
        )
    _ENGINES[name] = engine
    return engine


def release_engines() -> None:
    """Free what in-process engines keep loaded (tesserocr's API and model).

    Called after a sequential run: there the process is the user's own (a
    notebook kernel), and the model should not outlive the run.
    """
    module = sys.modules.get("ocrlab.tesserocr_engine")
    if module is not None:
        module.release()


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
        if task.fmt == "pdf":
            yield _render_pdf_page(path, task, settings, stack)
            return
        if task.fmt not in _DIRECT_FORMATS:
            raise UnsupportedFormatError(f"format {task.fmt!r} is not supported")
        im = stack.enter_context(Image.open(path))
        if task.page > 1 or getattr(im, "n_frames", 1) > 1:
            im.seek(task.page - 1)
        width, height = im.size
        _check_size(width, height, settings, f"page {task.page}")
        if task.n_pages == 1 and task.fmt != "gif" and im.mode in _DIRECT_MODES:
            yield path, width, height
            return
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="ocrlab-page-"))
        out = os.path.join(tmp, "page.pnm")
        frame = im if im.mode in {"1", "L", "RGB"} else im.convert(
            "L" if im.mode in {"LA", "I;16", "I;16B", "I", "F"} else "RGB")
        frame.save(out, format="PPM")
        yield out, width, height


def _render_pdf_page(
    path: str, task: PageTask, settings: EngineSettings, stack: contextlib.ExitStack
) -> tuple[str, int, int]:
    import pypdfium2

    pdf = pypdfium2.PdfDocument(path)
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


@contextlib.contextmanager
def _scoped_environment(settings: EngineSettings) -> Iterator[None]:
    """Tesseract single-threaded (``OMP_THREAD_LIMIT``) and temp files in the run's folder.

    In the run's own process (sequential mode: the user's process) the changes are
    undone afterwards. In a worker process they are kept: a Dask worker runs pages
    in several threads, and restoring the environment from one thread would let
    another thread's Tesseract start without the limit.
    """
    tmp_dir = settings.option("tmp_dir")
    if os.getpid() != settings.option("main_pid"):
        if settings.omp_thread_limit is not None:
            os.environ["OMP_THREAD_LIMIT"] = settings.omp_thread_limit
        if settings.option("pool_worker"):  # a loky worker of this run: it lives for the run
            from .procs import die_with_parent

            die_with_parent()
            if tmp_dir and os.path.isdir(tmp_dir):
                tempfile.tempdir = tmp_dir
        yield
        return
    saved_omp = os.environ.get("OMP_THREAD_LIMIT")
    saved_tmp = tempfile.tempdir
    try:
        if settings.omp_thread_limit is not None:
            os.environ["OMP_THREAD_LIMIT"] = settings.omp_thread_limit
        if tmp_dir and os.path.isdir(tmp_dir):
            tempfile.tempdir = tmp_dir
        yield
    finally:
        if saved_omp is None:
            os.environ.pop("OMP_THREAD_LIMIT", None)
        else:
            os.environ["OMP_THREAD_LIMIT"] = saved_omp
        tempfile.tempdir = saved_tmp


def _memory_figures() -> dict[str, int]:
    """This process's RSS and high-water mark, and the largest reaped child's peak."""
    figures = {"worker_rss": 0, "worker_hwm": 0}
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    figures["worker_rss"] = int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    figures["worker_hwm"] = int(line.split()[1]) * 1024
    except OSError:
        pass
    figures["child_maxrss"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return figures


def ocr_page(task: PageTask, settings: EngineSettings) -> PageResult:
    """OCR one page; never raises for a page-level problem (errors are values)."""
    start = time.monotonic_ns()
    prepare_ns = ocr_ns = 0
    width = height = 0
    text: str | None = None
    error_type: str | None = None
    error: str | None = None
    extra: dict[str, Any] = {}
    if "distributed" in sys.modules:
        from .scaleout import worker_identity

        extra.update(worker_identity())
    try:
        engine = resolve_engine(settings.engine)
        with _scoped_environment(settings), page_source(task, settings) as (src, width, height):
            t_ready = time.monotonic_ns()
            prepare_ns = t_ready - start
            raw = engine(src, task, settings)
            ocr_ns = time.monotonic_ns() - t_ready
        # Tesseract ends every page with a form feed; the artifact writer adds them back.
        text = raw[:-1] if raw.endswith("\f") else raw
    except Exception as exc:
        error_type = type(exc).__name__
        error = str(exc) or repr(exc)
    return PageResult(
        doc_id=task.doc_id,
        page=task.page,
        text=text,
        error_type=error_type,
        error=error,
        pid=os.getpid(),
        host=socket.gethostname(),
        start_ns=start,
        end_ns=time.monotonic_ns(),
        prepare_ns=prepare_ns,
        ocr_ns=ocr_ns,
        width=width,
        height=height,
        extra=extra,
        **_memory_figures(),
    )
