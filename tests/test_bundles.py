"""Small pages in bundles: how they are formed, that the text is what each page gives alone,
and that every fault in a bundle ends as it would for the page alone."""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

import ocrlab
from ocrlab.bundles import MAX_PAGES, bundled, unit_pages
from ocrlab.engines.tesseract import pytesseract_engine, pytesseract_list
from ocrlab.executor import BoundedScheduler, InlineExecutor, ProcessPoolExecutor
from ocrlab.ordering import estimate_cost
from ocrlab.output.audit import audit_output
from ocrlab.output.manifest import load_manifest
from ocrlab.output.trace_reader import load_trace
from ocrlab.records import EngineSettings, PageResult, PageTask
from ocrlab.sources import discover
from ocrlab.worker import ocr_bundle, ocr_page
from tests.conftest import make_page
from tests.helpers import artifact_texts


def _task(name: str, cost: float | None, path: str | None = None) -> PageTask:
    return PageTask(name, path or f"/in/{name}", 1, 1, "png", cost=cost)


def _shape(units: Sequence[PageTask | tuple[PageTask, ...]]) -> list[list[str]]:
    return [[t.doc_id for t in unit_pages(u)] for u in units]


def test_small_pages_are_grouped_up_to_the_budget_in_order() -> None:
    tasks = [_task(f"s{i}", 2.0) for i in range(5)] + [_task("big", 8.0), _task("s5", 2.0)]
    units = list(bundled(tasks, bundle_mp=6.0, workers=1))
    # 2 + 2 + 2 <= 6; a 3 MP page is not small for a 6 MP budget (above half of it)
    assert _shape(units) == [["s0", "s1", "s2"], ["s3", "s4"], ["big"], ["s5"]]
    assert [t.doc_id for u in units for t in unit_pages(u)] == [t.doc_id for t in tasks]
    assert isinstance(units[2], PageTask) and isinstance(units[0], tuple)


def test_unknown_costs_and_unlistable_paths_run_alone() -> None:
    tasks = [
        _task("a", 1.0),
        _task("unknown", None),
        _task("b", 1.0),
        _task("zero", 0.0),
        _task("nl", 1.0, path="/in/line\nbreak.png"),
        _task("c", 1.0),
        _task("d", 1.0),
    ]
    units = list(bundled(tasks, bundle_mp=10.0, workers=1))
    assert _shape(units) == [["a"], ["unknown"], ["b"], ["zero"], ["nl"], ["c", "d"]]


def test_zero_budget_keeps_every_page_alone() -> None:
    tasks = [_task(f"s{i}", 0.1) for i in range(5)]
    assert list(bundled(tasks, bundle_mp=0.0, workers=2)) == tasks


def test_the_end_of_a_batch_is_spread_over_the_workers() -> None:
    # 8 tiny pages, 2 workers: one bundle of 8 would leave a worker idle
    tasks = [_task(f"s{i}", 0.5) for i in range(8)]
    units = list(bundled(tasks, bundle_mp=100.0, workers=2))
    sizes = [len(unit_pages(u)) for u in units]
    assert sum(sizes) == 8 and len(units) >= 2 and max(sizes) <= 4
    assert sizes == sorted(sizes, reverse=True)  # shares shrink towards the end


def test_bundling_looks_ahead_a_bounded_number_of_pages() -> None:
    drawn = 0

    def source() -> Iterator[PageTask]:
        nonlocal drawn
        for i in range(100_000):
            drawn += 1
            yield _task(f"s{i}", 0.1)

    units = bundled(source(), bundle_mp=10.0, workers=2)
    first = next(units)
    assert len(unit_pages(first)) == MAX_PAGES  # a full bundle: the end is not in sight
    assert drawn <= 2 * MAX_PAGES + 1


def _real_pages(shared_corpus: Path, data_dir: Path) -> list[PageTask]:
    """Real scans Tesseract reads directly, with their cost estimates."""
    found = discover([str(shared_corpus / "real"), str(data_dir)])
    docs = [d for d in found if d.ok and "broken" not in Path(d.path).parts]
    tasks = [t for d in docs for t in d.tasks if t.fmt != "pdf" and t.n_pages == 1]
    return [PageTask(**{**t.__dict__, "cost": estimate_cost(t, 300)}) for t in tasks]


def test_a_list_gives_each_page_the_text_it_gives_alone(
    shared_corpus: Path, data_dir: Path, tmp_path: Path
) -> None:
    """Real scans through Tesseract's list mode, against each page in a process of its own."""
    tasks = _real_pages(shared_corpus, data_dir)[:8]
    assert len(tasks) >= 5
    settings = EngineSettings(tmp_dir=str(tmp_path))
    together = pytesseract_list([t.path for t in tasks], settings)
    assert together is not None
    alone = [pytesseract_engine(t.path, t, settings) for t in tasks]
    assert together == alone
    assert sum(len(t.strip()) for t in alone) > 500  # real text, not empty pages
    assert os.listdir(tmp_path) == []  # the list file is gone


def test_a_bundle_reports_each_page_with_shared_measurements(
    shared_corpus: Path, data_dir: Path, tmp_path: Path
) -> None:
    tasks = _real_pages(shared_corpus, data_dir)[:4]
    settings = EngineSettings(tmp_dir=str(tmp_path), main_pid=os.getpid())
    results = ocr_bundle(tasks, settings)
    assert [(r.doc_id, r.page) for r in results] == [t.key for t in tasks]
    assert all(r.ok and r.text for r in results)
    assert len({r.extra["bundle"] for r in results}) == 1
    assert {r.extra["bundle_pages"] for r in results} == {4}
    # spans follow one another within the bundle; the shares add up to the bundle's CPU
    for before, after in itertools.pairwise(results):
        assert before.end_ns <= after.start_ns + 1
    assert sum(r.engine_cpu_ns for r in results) > 0
    assert results[0].width > 0 and results[0].height > 0


def test_a_bundle_that_times_out_comes_back_empty(
    shared_corpus: Path, data_dir: Path, tmp_path: Path
) -> None:
    tasks = _real_pages(shared_corpus, data_dir)[:3]
    settings = EngineSettings(tmp_dir=str(tmp_path), main_pid=os.getpid(), timeout_s=0.01)
    assert ocr_bundle(tasks, settings) == []


def test_a_broken_page_in_a_bundle_gets_its_own_error_and_the_others_their_text(
    tmp_path: Path,
) -> None:
    good = [make_page(tmp_path / "in" / f"p{i}.png", f"page {i}") for i in range(4)]
    bad = tmp_path / "in" / "p2-truncated.png"
    bad.write_bytes(good[0].read_bytes()[:200])
    docs = [d for d in discover([str(tmp_path / "in")]) if d.ok]
    tasks = [PageTask(**{**t.__dict__, "cost": 0.05}) for d in docs for t in d.tasks]
    units = list(bundled(tasks, bundle_mp=10.0, workers=1))
    assert len(units) == 1 and len(unit_pages(units[0])) == 5  # all five in one bundle
    settings = EngineSettings(tmp_dir=str(tmp_path), main_pid=os.getpid())
    done = {
        d.task.doc_id: d.result for d in BoundedScheduler(InlineExecutor(), settings, 1).run(units)
    }
    assert set(done) == {t.doc_id for t in tasks}
    assert not done["p2-truncated.png"].ok
    alone = ocr_page(next(t for t in tasks if t.doc_id == "p2-truncated.png"), settings)
    assert (done["p2-truncated.png"].error_type, done["p2-truncated.png"].error) == (
        alone.error_type,
        alone.error,
    )
    assert all(done[f"p{i}.png"].ok for i in range(4))
    assert all("bundle" not in r.extra for r in done.values())  # the bundle was split


def kill_own_worker(tasks: Sequence[PageTask], settings: EngineSettings) -> list[PageResult]:
    """A bundle function that dies like an OOM-killed worker (module level: it is pickled)."""
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


def test_a_bundle_that_kills_its_worker_is_rerun_page_by_page(tmp_path: Path) -> None:
    """A real loky pool: the bundle's pages become suspects, each run alone, all recovered."""
    paths = [make_page(tmp_path / "in" / f"p{i}.png", f"page {i}") for i in range(4)]
    tasks = [PageTask(p.name, str(p), 1, 1, "png", cost=0.05) for p in paths]
    events: list[str] = []
    settings = EngineSettings(engine="ocrlab.engines.fakes:echo", main_pid=os.getpid())
    pool = ProcessPoolExecutor(max_workers=2)
    scheduler = BoundedScheduler(
        pool,
        settings,
        2,
        restart=lambda: ProcessPoolExecutor(max_workers=2),
        on_event=lambda kind, info: events.append(kind),
        bundle_fn=kill_own_worker,
    )
    try:
        done = list(scheduler.run(bundled(tasks, bundle_mp=10.0, workers=1)))  # one bundle
    finally:
        scheduler.executor.shutdown(wait=True)
        pool.shutdown(wait=True)
    assert sorted(d.task.doc_id for d in done) == sorted(t.doc_id for t in tasks)
    assert all(d.result.ok for d in done)
    assert all(d.attempt == 2 for d in done)  # every page ran again, alone
    assert "worker_died" in events and scheduler.restarts >= 1


@pytest.mark.slow
def test_a_run_with_bundles_writes_what_a_run_without_them_writes(
    shared_corpus: Path, data_dir: Path, tmp_path: Path
) -> None:
    """Whole runs on the bundled data and the real scans: bundles on (the default) and off."""
    inputs = [str(data_dir), str(shared_corpus / "real")]
    with_bundles = ocrlab.run(inputs, tmp_path / "on", workers=2, progress=False)
    without = ocrlab.run(inputs, tmp_path / "off", workers=2, progress=False, bundle_mp=0)
    assert with_bundles.documents == without.documents > 20
    assert artifact_texts(tmp_path / "on") == artifact_texts(tmp_path / "off")
    assert audit_output(tmp_path / "on").ok
    bundles = {
        e["args"]["bundle"]
        for e in load_trace(tmp_path / "on" / "trace.json")
        if e.get("cat") == "page" and "bundle" in e.get("args", {})
    }
    assert bundles  # bundles were used
    assert not any(
        "bundle" in e.get("args", {}) for e in load_trace(tmp_path / "off" / "trace.json")
    )


def test_a_documents_clock_starts_at_its_first_real_submission(tmp_path: Path) -> None:
    """With bundles the look-ahead pulls pages long before they are submitted (a bundle
    waits for its slot); a document's ``seconds.wall`` and its trace span start when its
    first page is really submitted. (They started at the pull: small documents showed
    7-11 s for 0.13 s of OCR.) Real Tesseract in list mode, two workers."""
    for i in range(40):
        make_page(tmp_path / "in" / f"p{i:02d}.png", f"page {i}", size=(200, 60))
    out = tmp_path / "out"
    summary = ocrlab.run(tmp_path / "in", out, workers=2, progress=False, bundle_mp=4.0)
    assert summary.documents_ok == 40
    events = load_trace(out / "trace.json")
    pages = [e for e in events if e.get("cat") == "page"]
    assert any("bundle" in e["args"] for e in pages), "bundles were used"
    submitted = {e["args"]["doc_id"]: e["ts"] - e["args"]["queue_wait_us"] for e in pages}
    ended = {e["args"]["doc_id"]: e["ts"] + e["dur"] for e in pages}
    spans = {e["args"]["doc_id"]: e for e in events if e.get("cat") == "document"}
    records = {d["doc_id"]: d for d in load_manifest(out)["documents"]}
    for doc_id, span in spans.items():
        assert abs(span["ts"] - submitted[doc_id]) < 2000, (doc_id, span, submitted[doc_id])
        own = (ended[doc_id] - submitted[doc_id]) / 1e6
        wall = records[doc_id]["seconds"]["wall"]
        assert wall <= own + 0.01, f"{doc_id}: wall {wall} s for {own:.3f} s since submission"
