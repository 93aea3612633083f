"""The worker side: everything that runs in a worker process, and nothing else.

Executors call three functions of it: :func:`ocr_page` for a page,
:func:`ocr_bundle` for several small pages in one engine call
(:mod:`ocrlab.bundles`), and :func:`warm_up` once per pool worker at start.
:func:`ocr_page` runs in a loky worker, a Dask worker, or (sequential mode) the
main process, and behaves the same in all three: it prepares the page
(:mod:`ocrlab.pages`), runs the engine (:mod:`ocrlab.engines.registry`), and
returns a small :class:`~ocrlab.records.PageResult`. It never logs to shared files, never
touches contextvars, and never returns pixels. Every failure is caught and
returned as a record with ``error_type`` set, so one bad page cannot take its
neighbours down.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import resource
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .engines.registry import list_engine, list_outputs_engine, resolve_engine, warm_engine
from .engines.tesseract import take_child_peak
from .output.formats import PageOutputs, page_outputs, structured
from .pages import page_source
from .records import EngineSettings, PageResult, PageTask
from .recycle import after_page


@contextlib.contextmanager
def _scoped_environment(settings: EngineSettings) -> Iterator[None]:
    """Tesseract single-threaded (``OMP_THREAD_LIMIT``) and temp files in the run's folder.

    In the run's own process (sequential mode: the user's process) the changes are
    undone afterwards. In a worker process they are kept: a Dask worker runs pages
    in several threads, and restoring the environment from one thread would let
    another thread's Tesseract start without the limit.
    """
    tmp_dir = settings.tmp_dir
    if os.getpid() != settings.main_pid:
        if settings.omp_thread_limit is not None:
            os.environ["OMP_THREAD_LIMIT"] = settings.omp_thread_limit
        if settings.pool_worker:  # a loky worker of this run: it lives for the run
            from .procs import die_with_parent  # here: psutil stays out of other workers

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


def _children_maxrss() -> int:
    """The largest peak RSS of any child this process reaped, ever (bytes)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


def _child_peak(children_before: int) -> int:
    """The peak RSS of the page's own engine process (bytes): the Tesseract that
    pytesseract ran, from its own ``wait4`` (:func:`~ocrlab.engines.tesseract.take_child_peak`);
    for another engine's children, how far the worker's all-time maximum rose during
    the page (their peak when it rose, else not knowable: 0); 0 for an engine that runs
    no process (tesserocr, the fakes)."""
    own = take_child_peak()
    if own is not None:
        return own
    after = _children_maxrss()
    return after if after > children_before else 0


def _memory_figures() -> dict[str, int]:
    """This process's RSS and high-water mark (the page's engine process is apart)."""
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
    return figures


def _errno(exc: BaseException | None) -> int | None:
    """The errno of the first OSError in ``exc``'s chain (the main process decides whether
    it is run-wide, e.g. ENOSPC in the temporary folder)."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc.errno
        # ``raise ... from None`` means the context is not the cause (an input that vanished
        # is reported so, and must not pass for the temporary folder's ENOENT)
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return None


def warm_up(engine: str) -> int:
    """Import what the first page needs (Pillow, the engine) before it arrives; return the pid.

    Called once per worker right after the pool is created, through
    :func:`ocrlab.warmup.warm_up_together`, so worker start-up overlaps the main
    process's discovery and start-up checks instead of delaying the first page.
    That caller, not this function, makes each worker wait at a rendezvous until
    every sibling has taken its own call (a worker that finished at once would
    otherwise take its siblings' calls too, leaving them cold).
    """
    from PIL import Image  # noqa: F401 - the import is the point

    warm_engine(engine)
    return os.getpid()


def _children_cpu_ns() -> int:
    """User + system CPU of this process's reaped children (the page's Tesseract)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return int((usage.ru_utime + usage.ru_stime) * 1e9)


def ocr_page(task: PageTask, settings: EngineSettings) -> PageResult:
    """OCR one page; never raises for a page-level problem (errors are values)."""
    start = time.monotonic_ns()
    prepare_ns = ocr_ns = engine_cpu_ns = child_maxrss = 0
    width = height = 0
    text: str | None = None
    error_type: str | None = None
    error: str | None = None
    os_errno: int | None = None
    extra: dict[str, Any] = {}
    outputs: PageOutputs = ((), None)
    if "distributed" in sys.modules:
        from .scaleout import worker_identity

        extra.update(worker_identity())
    try:
        engine = resolve_engine(settings.engine)
        with _scoped_environment(settings), page_source(task, settings) as (src, width, height):
            t_ready = time.monotonic_ns()
            prepare_ns = t_ready - start
            cpu_before, children_before = _children_cpu_ns(), _children_maxrss()
            take_child_peak()  # a peak left by an earlier call is not this page's
            raw = engine(src, task, settings)
            ocr_ns = time.monotonic_ns() - t_ready
            engine_cpu_ns = _children_cpu_ns() - cpu_before
            child_maxrss = _child_peak(children_before)
            raw_text, rendered = _split_rendered(raw, settings)
            if rendered:
                outputs = _page_outputs((task,), rendered, settings)[0]
        # Tesseract ends every page with a form feed; the artifact writer adds them back.
        text = raw_text[:-1] if raw_text.endswith("\f") else raw_text
    except Exception as exc:
        error_type = type(exc).__name__
        error = str(exc) or repr(exc)
        os_errno = _errno(exc)
        child_maxrss = child_maxrss or take_child_peak() or 0  # a Tesseract that failed
    memory = _memory_figures()
    if settings.pool_worker:
        extra.update(after_page(settings, memory["worker_rss"]))
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
        engine_cpu_ns=engine_cpu_ns,
        width=width,
        height=height,
        os_errno=os_errno,
        extra=extra,
        child_maxrss=child_maxrss,
        parts=outputs[0],
        confidence=outputs[1],
        **memory,
    )


def _split_rendered(
    raw: str | Mapping[str, str | bytes], settings: EngineSettings
) -> tuple[str, Mapping[str, str | bytes]]:
    """An engine's answer as (text, the other formats' outputs); an engine that returns
    only text when more was asked is an error of the page, said as such."""
    if isinstance(raw, str):
        if structured(settings.formats):
            raise TypeError(
                f"engine {settings.engine!r} returned only text, but formats "
                f"{','.join(settings.formats)!r} were asked; use engine 'pytesseract' or "
                "return a mapping of format to output"
            )
        return raw, {}
    return str(raw["txt"]), raw


def _page_outputs(
    tasks: Sequence[PageTask], rendered: Mapping[str, str | bytes], settings: EngineSettings
) -> list[PageOutputs]:
    found = page_outputs(tasks, rendered, settings)
    if found is None:
        raise ValueError(
            f"Tesseract's {', '.join(sorted(rendered))} output for page {tasks[0].page} of "
            f"{tasks[0].doc_id} does not hold exactly one page"
        )
    return found


_bundle_ids = itertools.count(1)


def ocr_bundle(tasks: Sequence[PageTask], settings: EngineSettings) -> list[PageResult]:
    """OCR several small pages in one engine call (:mod:`ocrlab.bundles`); one result each.

    Returns ``[]`` when the bundle does not come back whole: a page that cannot be
    prepared, an engine error or timeout, or text that does not split into one part
    per page. The scheduler then runs those pages one by one through
    :func:`ocr_page`, so every error is reported for its own page exactly as it would
    be without bundles, and this call never runs more than one engine call (the hang
    watchdog's deadline holds for a bundle as for a page).

    Times and Tesseract's CPU are measured for the bundle and shared among its pages
    in proportion to their cost estimates; each page's trace span says so
    (``bundle``: an id shared by the bundle's pages, ``bundle_pages``).
    """
    if len(tasks) == 1:
        return [ocr_page(tasks[0], settings)]
    rich = structured(settings.formats)  # then the list's other formats come back too
    with_outputs = list_outputs_engine(settings.engine) if rich else None
    engine = None if rich else list_engine(settings.engine)
    if (engine is None and with_outputs is None) or not tasks:
        return []
    start = time.monotonic_ns()
    try:
        with _scoped_environment(settings), contextlib.ExitStack() as stack:
            prepared = [stack.enter_context(page_source(task, settings)) for task in tasks]
            t_ready = time.monotonic_ns()
            cpu_before, children_before = _children_cpu_ns(), _children_maxrss()
            take_child_peak()
            sources = [src for src, _, _ in prepared]
            texts: list[str] | None = None
            rendered: dict[str, str | bytes] | None = None
            if with_outputs is not None:
                found = with_outputs(sources, settings, _textonly(tasks, settings))
                texts, rendered = found if found is not None else (None, None)
            elif engine is not None:
                texts = engine(sources, settings)
            ocr_ns = time.monotonic_ns() - t_ready
            engine_cpu_ns = _children_cpu_ns() - cpu_before
            child_maxrss = _child_peak(children_before)  # the bundle's one process
            outputs = page_outputs(tasks, rendered, settings) if rendered is not None else None
    except Exception:
        return []
    if texts is None or (rich and outputs is None):
        return []
    end = time.monotonic_ns()
    memory = _memory_figures()
    extra: dict[str, Any] = {"bundle": f"{os.getpid()}-{next(_bundle_ids)}"}
    extra["bundle_pages"] = len(tasks)
    if "distributed" in sys.modules:
        from .scaleout import worker_identity

        extra.update(worker_identity())
    last_extra = (
        after_page(settings, memory["worker_rss"], len(tasks)) if settings.pool_worker else {}
    )
    weights = [max(task.cost or 0.0, 1e-9) for task in tasks]
    total = sum(weights)
    results: list[PageResult] = []
    done = 0.0
    for i, (task, text, (_, width, height)) in enumerate(zip(tasks, texts, prepared, strict=True)):
        share = weights[i] / total
        begin, done = done, done + share
        results.append(
            PageResult(
                doc_id=task.doc_id,
                page=task.page,
                text=text,
                pid=os.getpid(),
                host=socket.gethostname(),
                start_ns=start + int((end - start) * begin),
                end_ns=start + int((end - start) * done),
                prepare_ns=int((t_ready - start) * share),
                ocr_ns=int(ocr_ns * share),
                engine_cpu_ns=int(engine_cpu_ns * share),
                width=width,
                height=height,
                extra={**extra, **(last_extra if i == len(tasks) - 1 else {})},
                worker_rss=memory["worker_rss"],
                worker_hwm=memory["worker_hwm"],
                child_maxrss=child_maxrss,
                parts=outputs[i][0] if outputs else (),
                confidence=outputs[i][1] if outputs else None,
            )
        )
    return results


def _textonly(tasks: Sequence[PageTask], settings: EngineSettings) -> bool:
    """Whether a list's PDF pages are text layers only (pages of PDF inputs, which keep
    their own page under the layer); a list mixing both kinds cannot be one call."""
    kinds = {task.fmt == "pdf" for task in tasks}
    if "pdf" in settings.formats and len(kinds) > 1:
        raise ValueError("a list mixes PDF pages and images; its PDF pages differ in kind")
    return kinds == {True}
