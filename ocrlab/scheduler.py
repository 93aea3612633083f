"""Bounded scheduling and crash recovery: how units of work reach an executor.

Why bounded submission: handing a pool 10,000 pages at once pickles them all
into its queue and gives no back-pressure; keeping at most ``limit`` units in
flight (a couple per worker) keeps the workers busy while the main process
stays small, and is what makes "live Tesseract processes <= workers" hold when
many groups share one executor. A unit is a page or a bundle of small pages
(:mod:`ocrlab.bundles`).

Why recovery lives here: when a worker process dies (OOM killer, segfault),
loky marks the pool broken and fails *every* pending future. The scheduler
starts a fresh pool, resubmits the pages that were innocent bystanders, and
re-runs each page that was in flight at the death alone: a page that kills a
worker again, alone, is the culprit and is retired with an error naming the
signal.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .bundles import Unit, unit_pages
from .errors import PageTimeoutError, WorkerDiedError
from .procs import kill_workers
from .records import EngineSettings, PageResult, PageTask
from .worker import ocr_bundle, ocr_page

log = logging.getLogger(__name__)

#: seconds between asks of the memory guard while it holds submission back
_HOLD_POLL_S = 0.02


@dataclass(frozen=True)
class Completion:
    """A finished page as the scheduler hands it to the collector."""

    task: PageTask
    result: PageResult
    submit_ns: int  #: when the attempt that gave ``result`` was submitted
    attempt: int
    #: when the page was first submitted (its first attempt, or its bundle's): where the
    #: document's clock starts, not when the look-ahead pulled it from discovery
    first_submit_ns: int = 0


@dataclass
class _InFlight:
    """A unit of work in flight: one page, or a bundle of small pages (:mod:`ocrlab.bundles`)."""

    tasks: tuple[PageTask, ...]
    submit_ns: int
    attempt: int
    first_ns: int = 0  #: the first submission of these pages, kept across retries

    @property
    def task(self) -> PageTask:
        return self.tasks[0]

    def alone(self) -> list[_InFlight]:
        """Each page of this unit as a unit of its own (same attempt)."""
        return [_InFlight((t,), 0, self.attempt, self.first_ns) for t in self.tasks]

    def again(self, tasks: tuple[PageTask, ...], attempt: int) -> _InFlight:
        """``tasks`` of this unit queued again, as attempt ``attempt``."""
        return _InFlight(tasks, 0, attempt, self.first_ns)

    def completion(self, task: PageTask, result: PageResult) -> Completion:
        return Completion(task, result, self.submit_ns, self.attempt, self.first_ns)


def _death_reason(exc: BaseException) -> str:
    """Say what killed the worker, in words a user can act on."""
    text = str(exc)
    if "SIGKILL" in text or "-9" in text:
        return (
            "the worker process was killed by SIGKILL, most likely by the kernel's "
            "out-of-memory killer"
        )
    if "SIGSEGV" in text or "-11" in text:
        return "the worker process crashed with SIGSEGV (segmentation fault)"
    return f"the worker process died ({type(exc).__name__}: {text.splitlines()[0] if text else ''})"


class BoundedScheduler:
    """Feeds tasks to an executor with at most ``limit`` in flight; survives worker deaths.

    ``restart`` builds a fresh executor after a crash (``None``: a crash is final
    for the pages in flight, which become error records). ``on_event`` receives
    ``("worker_died", info)`` / ``("pool_restarted", info)`` / ``("page_hung", info)``
    for the trace and log. ``deadline_s``: a page submitted longer ago than this is
    presumed hung outside Tesseract (whose own timeout is enforced in the worker);
    the pool's workers are killed, the page is retired with a timeout error and
    its neighbours are resubmitted. ``memory_note`` adds the peak memory seen so
    far to the error of a page that killed its worker. ``admit(pages_in_flight)``,
    asked before each submission, may hold submission back (the memory guard,
    :class:`ocrlab.guard.MemoryGuard`); the scheduler then polls it every
    :data:`_HOLD_POLL_S` while pages complete.

    A unit of work is a page or a bundle of small pages (a tuple, run by ``bundle_fn``);
    a bundle that does not come back whole, or breaks with its worker, is split and
    its pages run again one by one, so every fault is handled as for a page alone.
    """

    def __init__(
        self,
        executor: cf.Executor,
        settings: EngineSettings,
        limit: int,
        *,
        restart: Callable[[], cf.Executor] | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        fn: Callable[[PageTask, EngineSettings], PageResult] = ocr_page,
        bundle_fn: Callable[[Sequence[PageTask], EngineSettings], list[PageResult]] = ocr_bundle,
        deadline_s: float | None = None,
        memory_note: Callable[[], str] | None = None,
        admit: Callable[[int], bool] | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit={limit} must be at least 1")
        self.executor = executor
        self.settings = settings
        self.limit = limit
        self.restart = restart
        self.on_event = on_event or (lambda kind, info: None)
        self.fn = fn
        self.bundle_fn = bundle_fn
        self.deadline_ns = None if deadline_s is None else int(deadline_s * 1e9)
        self.memory_note = memory_note or (lambda: "")
        self.admit = admit
        self.restarts = 0
        self._hung: set[tuple[str, int]] = set()
        self._killed_by_watchdog = False

    def _submit(self, item: _InFlight, inflight: dict[cf.Future[Any], _InFlight]) -> None:
        item.submit_ns = time.monotonic_ns()
        item.first_ns = item.first_ns or item.submit_ns
        fut: cf.Future[Any]
        try:
            if len(item.tasks) == 1:
                fut = self.executor.submit(self.fn, item.task, self.settings)
            else:
                fut = self.executor.submit(self.bundle_fn, item.tasks, self.settings)
        except cf.BrokenExecutor as exc:
            # A worker died since the last wait and loky refuses new work: the page becomes
            # one more future of the broken pool, recovered with the others.
            fut = cf.Future()
            fut.set_exception(exc)
        inflight[fut] = item

    def run(self, tasks: Iterable[Unit]) -> Iterator[Completion]:
        """Yield one :class:`Completion` per page, in completion order."""
        todo: deque[_InFlight] = deque()
        source = iter(tasks)
        suspects: deque[_InFlight] = deque()  # in flight at a death: each re-runs alone
        inflight: dict[cf.Future[Any], _InFlight] = {}
        exhausted = False
        while True:
            held = False
            if suspects:
                if not inflight:  # isolation: a suspect runs with nothing beside it
                    self._submit(suspects.popleft(), inflight)
            else:
                while len(inflight) < self.limit:
                    if not todo and not exhausted:
                        nxt = next(source, None)
                        if nxt is None:
                            exhausted = True
                        else:
                            todo.append(_InFlight(unit_pages(nxt), 0, 1))
                    if not todo:
                        break
                    if self.admit is not None and not self.admit(len(inflight)):
                        held = True  # the memory guard: wait for pages to finish
                        break
                    self._submit(todo.popleft(), inflight)
            if not inflight:
                if suspects or todo:
                    continue
                return
            timeout = self._wait_timeout(inflight)
            if held:  # poll: the guard may admit again before a page completes
                timeout = _HOLD_POLL_S if timeout is None else min(timeout, _HOLD_POLL_S)
            done, _ = cf.wait(inflight, timeout=timeout, return_when=cf.FIRST_COMPLETED)
            if not done:
                if self.deadline_ns is not None:
                    self._watchdog(inflight)
                continue
            broken: list[tuple[_InFlight, BaseException]] = []
            for fut in done:
                item = inflight.pop(fut)
                exc = fut.exception()
                if exc is None:
                    yield from self._completed(item, fut.result(), todo)
                elif isinstance(exc, cf.BrokenExecutor):
                    broken.append((item, exc))
                elif len(item.tasks) > 1:
                    todo.extendleft(reversed(item.alone()))
                else:
                    yield item.completion(item.task, _error_result(item.task, exc))
            if broken:
                yield from self._recover(broken, inflight, suspects, todo)

    def _completed(
        self, item: _InFlight, result: PageResult | list[PageResult], todo: deque[_InFlight]
    ) -> Iterator[Completion]:
        """A unit's results, page by page; a bundle that came back empty goes back to the
        front of the queue as single pages."""
        results = result if isinstance(result, list) else [result]
        if len(results) != len(item.tasks):
            todo.extendleft(reversed(item.alone()))
            return
        for task, page in zip(item.tasks, results, strict=True):
            yield item.completion(task, page)

    def _wait_timeout(self, inflight: dict[cf.Future[Any], _InFlight]) -> float | None:
        if self.deadline_ns is None or self._killed_by_watchdog:
            return None
        oldest = min(item.submit_ns for item in inflight.values())
        return max(0.0, (oldest + self.deadline_ns - time.monotonic_ns()) / 1e9) + 0.01

    def _watchdog(self, inflight: dict[cf.Future[Any], _InFlight]) -> None:
        """Pages past the deadline: kill the pool's workers; ``_recover`` sorts out the rest."""
        assert self.deadline_ns is not None
        now = time.monotonic_ns()
        overdue = [i for i in inflight.values() if now - i.submit_ns >= self.deadline_ns]
        if not overdue or not kill_workers(self.executor):
            return  # cannot kill this executor's workers: keep waiting
        self._hung.update(t.key for i in overdue for t in i.tasks)
        self._killed_by_watchdog = True
        self.on_event(
            "page_hung",
            {
                "pages": [f"{t.doc_id}#{t.page}" for i in overdue for t in i.tasks],
                "deadline_s": self.deadline_ns / 1e9,
            },
        )

    def _recover(
        self,
        broken: list[tuple[_InFlight, BaseException]],
        inflight: dict[cf.Future[Any], _InFlight],
        suspects: deque[_InFlight],
        todo: deque[_InFlight],
    ) -> Iterator[Completion]:
        """A worker died: every unfinished future of the pool is failed; sort them out."""
        # The pool is broken as a whole: its other futures fail too, collect them now.
        for fut in list(inflight):
            item = inflight.pop(fut)
            try:
                result = fut.result()
            except BaseException as exc:
                broken.append((item, exc))
            else:
                yield from self._completed(item, result, todo)
        watchdog, self._killed_by_watchdog = self._killed_by_watchdog, False
        reason = (
            "killed by ocrlab: a page exceeded its deadline"
            if watchdog
            else _death_reason(broken[0][1])
        )
        alone = len(broken) == 1 and broken[0][0].attempt > 1 and len(broken[0][0].tasks) == 1
        self.on_event(
            "worker_died",
            {
                "reason": reason,
                "pages": [f"{t.doc_id}#{t.page}" for i, _ in broken for t in i.tasks],
            },
        )
        for item, _exc in broken:
            action = recovery_action(
                pages=len(item.tasks),
                hung=item.task.key in self._hung,
                watchdog=watchdog,
                restartable=self.restart is not None,
                alone_again=alone,
            )
            self._hung.difference_update(t.key for t in item.tasks)
            if action == "split":  # a bundle: which page was it? Each runs alone to tell
                suspects.extend(item.again((t,), item.attempt + 1) for t in item.tasks)
            elif action == "requeue":  # an innocent bystander of the watchdog
                todo.appendleft(item.again(item.tasks, item.attempt))
            elif action == "suspect":
                suspects.append(item.again(item.tasks, item.attempt + 1))
            else:
                error = (
                    self._timeout_error(item.task)
                    if action == "timed_out"
                    else self._culprit_error(item.task, reason, alone)
                )
                yield item.completion(item.task, _error_result(item.task, error))
        if self.restart is not None:
            try:
                self.executor.shutdown(wait=False)
            except Exception:  # a broken pool may complain while shutting down
                log.debug("shutdown of broken executor failed", exc_info=True)
            self.executor = self.restart()
            self.restarts += 1
            self.on_event("pool_restarted", {"restarts": self.restarts, "suspects": len(suspects)})

    def _timeout_error(self, task: PageTask) -> PageTimeoutError:
        assert self.deadline_ns is not None
        return PageTimeoutError(
            f"page {task.page} of {task.doc_id} was still running after "
            f"{self.deadline_ns / 1e9:g} s (hung outside Tesseract); its worker was killed. "
            "Raise page_timeout / OCR_PAGE_TIMEOUT if the page is legitimately slow."
        )

    def _culprit_error(self, task: PageTask, reason: str, alone: bool) -> WorkerDiedError:
        note = self.memory_note()
        return WorkerDiedError(
            f"{reason}; page {task.page} of {task.doc_id} killed its worker "
            f"{'twice' if alone else 'and the pool cannot be restarted'}"
            f"{'; ' + note if note else ''}"
            " (check max_megapixels and the memory available per worker)"
        )


#: What becomes of a unit that was in flight when its pool broke (see :func:`recovery_action`).
Recovery = Literal["split", "timed_out", "requeue", "culprit", "suspect"]


def recovery_action(
    *, pages: int, hung: bool, watchdog: bool, restartable: bool, alone_again: bool
) -> Recovery:
    """The decision for one unit of a broken pool, apart from the I/O that acts on it.

    ``pages``: pages in the unit (more than one: a bundle); ``hung``: the watchdog found
    this page past its deadline; ``watchdog``: the pool was killed by the watchdog, not
    by a crash; ``restartable``: a fresh pool can be started; ``alone_again``: the unit
    was the only one in flight and had already been re-run alone.

    ============================================  ==========================================
    the unit                                      becomes
    ============================================  ==========================================
    a bundle                                      ``split``: each page re-runs alone
    a page past its deadline                      ``timed_out``: an error, no re-run
    in flight when the watchdog killed the pool   ``requeue``: run again, same attempt
    alone again, or the pool cannot restart       ``culprit``: an error naming the death
    any other page                                ``suspect``: re-run alone, next attempt
    ============================================  ==========================================
    """
    if pages > 1:
        return "split"
    if hung:
        return "timed_out"
    if watchdog and restartable:
        return "requeue"
    if alone_again or not restartable:
        return "culprit"
    return "suspect"


def _error_result(task: PageTask, exc: BaseException) -> PageResult:
    """An error record for a page whose future failed outside :func:`ocr_page`."""
    now = time.monotonic_ns()
    return PageResult(
        doc_id=task.doc_id,
        page=task.page,
        text=None,
        error_type=type(exc).__name__,
        error=str(exc) or repr(exc),
        start_ns=now,
        end_ns=now,
    )
