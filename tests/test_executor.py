"""Executor lifecycle (mocked: one pool with max_workers=N, shut down with wait=True) and
real-process scheduling."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from unittest import mock

import pytest

import ocrlab
from ocrlab import PipelineError, RunContext, gather_ocr_pages, run_groups
from ocrlab.executor import BoundedScheduler, InlineExecutor, ProcessPoolExecutor
from ocrlab.records import EngineSettings, PageTask
from ocrlab.sources import discover


@pytest.fixture
def empty_context(tmp_path: Path) -> RunContext:
    """Inputs exist but hold no documents: the executor lifecycle alone is exercised."""
    (tmp_path / "in").mkdir()
    return RunContext.single(tmp_path / "in", tmp_path / "out")


@pytest.fixture
def failing_context(tmp_path: Path) -> RunContext:
    """An input that does not exist: PipelineError after the executor exists (the output
    folder's lock is taken first, then the executor, then inputs are discovered)."""
    return RunContext.single(tmp_path / "no-such-input", tmp_path / "out")


def test_executor_created_with_correct_worker_count(empty_context: RunContext) -> None:
    with mock.patch("ocrlab.executor.ProcessPoolExecutor") as MockExecutor:
        run_groups(empty_context, config={"ocr_workers": 3})
    MockExecutor.assert_called_once_with(max_workers=3)


def test_executor_default_workers(empty_context: RunContext) -> None:
    with mock.patch("ocrlab.executor.ProcessPoolExecutor") as MockExecutor:
        run_groups(empty_context, config={})
    MockExecutor.assert_called_once_with(max_workers=2)


def test_executor_shutdown_after_processing(empty_context: RunContext) -> None:
    mock_executor = mock.MagicMock()
    with mock.patch("ocrlab.executor.ProcessPoolExecutor", return_value=mock_executor):
        run_groups(empty_context, config={})
    mock_executor.shutdown.assert_called_once_with(wait=True)


def test_executor_shutdown_on_exception(failing_context: RunContext) -> None:
    mock_executor = mock.MagicMock()
    with (
        mock.patch("ocrlab.executor.ProcessPoolExecutor", return_value=mock_executor),
        pytest.raises(PipelineError, match="not found"),
    ):
        run_groups(failing_context, config={})
    mock_executor.shutdown.assert_called_once_with(wait=True)


def test_kill_switch_creates_no_pool(
    empty_context: RunContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCR_PARALLEL_DISABLED", "true")
    with mock.patch("ocrlab.executor.ProcessPoolExecutor") as MockExecutor:
        summary = run_groups(empty_context, config={"ocr_workers": 4})
    MockExecutor.assert_not_called()
    assert summary.sequential and summary.workers == 1


def test_groups_share_one_executor(tmp_path: Path) -> None:
    from tests.conftest import make_page

    groups = []
    for g in range(3):
        make_page(tmp_path / f"g{g}" / "page.png", f"group {g}")
        groups.append(ocrlab.Group(f"g{g}", (str(tmp_path / f"g{g}"),)))
    context = RunContext(tuple(groups), str(tmp_path / "out"))
    real = ProcessPoolExecutor
    with mock.patch("ocrlab.executor.ProcessPoolExecutor", side_effect=real) as spy:
        summary = run_groups(
            context,
            {"ocr_workers": 2, "engine": "ocrlab.engines.fakes:echo", "monitor_interval": 0},
        )
    spy.assert_called_once_with(max_workers=2)
    assert summary.documents_ok == 3
    for g in range(3):
        text = (tmp_path / "out" / "text" / f"g{g}" / "page.png.txt").read_text()
        assert text == f"g{g}/page.png page 1\n\f"


# -- real processes -------------------------------------------------------------------------


def _tasks(paths: list[Path]) -> list[PageTask]:
    return [t for d in discover([str(paths[0].parent.parent)]) for t in d.tasks]


def _intervals(results: list[object]) -> list[tuple[int, int, int]]:
    out = []
    for r in results:
        assert isinstance(r, ocrlab.PageResult) and r.ok, r
        stamp = json.loads(r.text or "")
        out.append((stamp["start_ns"], stamp["end_ns"], stamp["pid"]))
    return out


def _max_overlap(intervals: list[tuple[int, int, int]]) -> int:
    edges = sorted([(s, 1) for s, _, _ in intervals] + [(e, -1) for _, e, _ in intervals])
    live = peak = 0
    for _, step in edges:
        live += step
        peak = max(peak, live)
    return peak


@pytest.fixture(scope="module")
def pool4() -> ProcessPoolExecutor:
    pool = ProcessPoolExecutor(max_workers=4)
    list(pool.map(abs, range(8)))  # start the workers before anything is timed
    yield pool
    pool.shutdown(wait=True)


def test_multiple_ocr_calls_run_concurrently(
    small_pages: list[Path], pool4: ProcessPoolExecutor
) -> None:
    settings = EngineSettings(engine="ocrlab.engines.fakes:sleepy", options=(("sleep", 1.0),))
    results = asyncio.run(
        gather_ocr_pages(_tasks(small_pages)[:2], pool4, max_workers=2, settings=settings)
    )
    (s1, e1, pid1), (s2, e2, pid2) = _intervals(results)
    assert pid1 != pid2, "two pages should run in two worker processes"
    # Sequential would need >= 2.0 s from first start to last end; concurrent ~1.0 s.
    assert max(e1, e2) - min(s1, s2) < 1.8e9
    assert max(s1, s2) < min(e1, e2), "the two sleeps must overlap in time"


def test_backpressure_limits_concurrent_workers(
    small_pages: list[Path], pool4: ProcessPoolExecutor
) -> None:
    settings = EngineSettings(engine="ocrlab.engines.fakes:sleepy", options=(("sleep", 0.15),))
    results = asyncio.run(
        gather_ocr_pages(_tasks(small_pages), pool4, max_workers=2, settings=settings)
    )
    intervals = _intervals(results)
    assert len(intervals) == 12
    # The pool has 4 workers; only the gather's bound can keep the overlap at 2.
    assert _max_overlap(intervals) <= 2
    assert [(r.doc_id, r.page) for r in results] == [
        (t.doc_id, t.page)  # type: ignore[union-attr]
        for t in _tasks(small_pages)
    ]


def test_single_file_failure_doesnt_crash_batch(
    small_pages: list[Path], pool4: ProcessPoolExecutor
) -> None:
    tasks = _tasks(small_pages)[:3]
    settings = EngineSettings(
        engine="ocrlab.engines.fakes:faulty", options=(("fail_on", tasks[1].doc_id),)
    )
    results = asyncio.run(gather_ocr_pages(tasks, pool4, max_workers=2, settings=settings))
    assert [r.text for r in results] == [  # type: ignore[union-attr]
        f"{tasks[0].doc_id} page 1\n",
        None,
        f"{tasks[2].doc_id} page 1\n",
    ]
    failed = results[1]
    assert isinstance(failed, ocrlab.PageResult) and not failed.ok
    assert failed.error_type == "FakeTesseractError" and tasks[1].doc_id in (failed.error or "")


def test_bounded_scheduler_limits_inflight(small_pages: list[Path]) -> None:
    """The scheduler never has more than ``limit`` futures submitted and unfinished."""
    tasks = _tasks(small_pages)
    live = peak = 0
    inner = InlineExecutor()

    class Counting(InlineExecutor):
        def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal live, peak
            live += 1
            peak = max(peak, live)
            return inner.submit(fn, *args, **kwargs)

    scheduler = BoundedScheduler(Counting(), EngineSettings(engine="ocrlab.engines.fakes:echo"), 3)
    seen = []
    for done in scheduler.run(tasks):
        live -= 1
        seen.append(done.task.key)
    assert sorted(seen) == sorted(t.key for t in tasks)
    assert peak <= 3


def test_submit_to_a_pool_broken_since_the_last_wait_is_recovered(small_pages: list[Path]) -> None:
    """loky raises from submit() once a worker died; the page joins the recovery."""
    import concurrent.futures as cf

    tasks = _tasks(small_pages)[:4]
    calls = 0

    class BreaksOnce(InlineExecutor):
        def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            if calls == 2:
                raise cf.BrokenExecutor("a worker died (simulated)")
            return super().submit(fn, *args, **kwargs)

    events: list[str] = []
    scheduler = BoundedScheduler(
        BreaksOnce(),
        EngineSettings(engine="ocrlab.engines.fakes:echo"),
        2,
        restart=InlineExecutor,
        on_event=lambda kind, info: events.append(kind),
    )
    done = list(scheduler.run(tasks))
    assert sorted(d.task.key for d in done) == sorted(t.key for t in tasks)
    assert all(d.result.ok for d in done)
    assert scheduler.restarts == 1 and events == ["worker_died", "pool_restarted"]
