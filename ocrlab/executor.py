"""The executors: loky's process pool, the in-process executor, and the async helper.

The executor is reached only through the :class:`concurrent.futures.Executor`
protocol (``submit``, futures, ``shutdown``), so loky's process pool, the
in-process :class:`InlineExecutor` and a ``dask.distributed`` executor are
interchangeable. How pages are fed to one, bounded and recovered after a
worker's death, is :mod:`ocrlab.scheduler` (:class:`BoundedScheduler` is
re-exported here, beside the executors it drives).
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from loky import ProcessPoolExecutor as _LokyPool
from loky.backend.context import ctx_loky

from .procs import watch_parent
from .records import EngineSettings, PageResult, PageTask
from .scheduler import BoundedScheduler, Completion
from .worker import ocr_page

__all__ = [
    "BoundedScheduler",
    "Completion",
    "InlineExecutor",
    "ProcessPoolExecutor",
    "gather_ocr_pages",
]


class ProcessPoolExecutor(_LokyPool):  # type: ignore[misc]  # loky is untyped
    """loky's process pool (the standalone package), pinned to its own process context.

    Why standalone loky: joblib vendors the same code, but a worker started by
    joblib's copy imports joblib and with it NumPy, and so does its resource
    tracker (measured: 42 MB RSS per worker and 41 MB for the tracker, against 20
    and 19 MB). Why pinned: both copies register their context under the same
    name, ``"loky"``, in ``multiprocessing``; whichever is imported last wins, so
    once anything in the process imports joblib (a notebook, scikit-learn) an
    unpinned pool would start joblib's heavy workers again.

    Every worker first runs :func:`ocrlab.procs.watch_parent`, so a ``kill -9`` of
    the main process never leaves workers behind, even while they are booting.
    """

    def __init__(self, max_workers: int | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("context", ctx_loky)
        if "initializer" not in kwargs:
            kwargs["initializer"], kwargs["initargs"] = watch_parent, (os.getpid(),)
        super().__init__(max_workers=max_workers, **kwargs)


class InlineExecutor(cf.Executor):
    """Runs each submitted call at once, in the calling thread.

    Sequential mode (``OCR_PARALLEL_DISABLED=true`` or one worker) goes through
    this, so it shares every line of scheduling and recording with parallel mode.
    """

    def __init__(self) -> None:
        self._shutdown = False
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot submit to an InlineExecutor after shutdown()")
        future: cf.Future[Any] = cf.Future()
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn(*args, **kwargs))
            except (KeyboardInterrupt, SystemExit):
                # Ctrl-C / SIGTERM (the CLI turns it into KeyboardInterrupt) stops the run,
                # as it does with a pool, where it reaches the main thread and not a worker:
                # carried by the future it became that page's failure and the run went on.
                raise
            except BaseException as exc:  # the future carries it, as a pool would
                future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True


async def gather_ocr_pages(
    pages: Sequence[PageTask],
    executor: cf.Executor,
    max_workers: int,
    settings: EngineSettings | None = None,
) -> list[PageResult | BaseException]:
    """OCR ``pages`` on ``executor``, at most ``max_workers`` in flight, results in input order.

    A page the engine fails on yields its error record (``result.ok`` is False);
    a page whose future itself failed (worker died, unpicklable task) yields the
    exception, in its slot. Nothing is raised for a single page.
    """
    import asyncio  # here: 5 MB of RSS that a run through the pipeline never needs

    if max_workers < 1:
        raise ValueError(f"max_workers={max_workers} must be at least 1")
    engine_settings = settings or EngineSettings()
    gate = asyncio.Semaphore(max_workers)

    async def one(task: PageTask) -> PageResult | BaseException:
        async with gate:
            try:
                fut = executor.submit(ocr_page, task, engine_settings)
                result: PageResult = await asyncio.wrap_future(fut)
                return result
            except Exception as exc:
                return exc

    return list(await asyncio.gather(*(one(p) for p in pages)))
