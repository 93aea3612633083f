"""Progress in estimated work and the time left: the clock's arithmetic, and what the live
view says over a real run against the time the run really had left."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

import ocrlab
from ocrlab.output.trace_reader import load_trace
from ocrlab.timeleft import Estimate, WorkClock, duration
from tests.conftest import make_page
from tests.helpers import mixed_batch


def test_progress_counts_estimated_work_not_pages() -> None:
    """Most expensive first: one large page done of eleven is most of the work."""
    clock = WorkClock(workers=1)
    clock.found(11, work=20.0, final=True)  # one page of 10 MP, ten of 1 MP
    clock.page_done(10.0, 0.0, 5.0, "w1")
    assert clock.fraction() == pytest.approx(0.5)
    left = clock.time_left(5.0)
    assert left is not None and left.seconds == pytest.approx(5.0)  # 10 MP at 0.5 s/MP
    assert not left.settled and left.text() == "about 5 s"
    # counting pages (the old way) would have said 10 pages x 5 s = 50 s


def test_pages_in_flight_count_as_partly_done() -> None:
    clock = WorkClock(workers=2)
    clock.found(6, work=6.0, final=True)
    for i in range(4):  # two workers, pages of 1 MP taking 1 s each
        clock.page_done(1.0, float(i // 2), 1.0, f"w{i % 2}")
    # at t=2.5 both workers are half way through their last page
    left = clock.time_left(2.5)
    assert left is not None and left.seconds == pytest.approx(0.5)
    assert left.settled and left.low <= 0.5 * 0.9 + 1e-9 and left.high >= 0.5 * 1.1 - 1e-9


def test_one_badly_estimated_page_does_not_carry_the_rate() -> None:
    """A large nearly blank page (81 MP in 10 s) among text pages (1 s per MP)."""
    clock = WorkClock(workers=1)
    clock.found(10, work=81.0 + 9 * 4.0, final=True)
    clock.page_done(81.0, 0.0, 10.0, "w")
    t = 10.0
    for _ in range(4):
        clock.page_done(4.0, t, 4.0, "w")
        t += 4.0
    left = clock.time_left(t)
    assert left is not None and left.seconds == pytest.approx(5 * 4.0, rel=0.05)


def test_tail_is_shared_only_among_the_pages_left() -> None:
    clock = WorkClock(workers=4)
    clock.found(5, work=5.0, final=True)
    for w in range(4):
        clock.page_done(1.0, 0.0, 2.0, f"w{w}")
    left = clock.time_left(2.0)  # one page left: one worker runs it, the others idle
    assert left is not None and left.seconds == pytest.approx(2.0)


def test_the_last_page_runs_on_the_worker_that_finished_first() -> None:
    """Three pages, two workers: the one that finished first took the last page, the other
    found nothing left. Once the page runs longer than its size says, the view says so."""
    from ocrlab.timeleft import SizeCount

    sizes = SizeCount()
    for _ in range(3):
        sizes.add(1.0)
    clock = WorkClock(workers=2)
    clock.found(sizes.pages, sizes.work, True, sizes)
    clock.page_done(1.0, 0.0, 1.0, "w0")  # then took the third page at 1.0
    clock.page_done(1.0, 0.0, 1.2, "w1")  # idle from 1.2
    left = clock.time_left(1.5)
    # pages of 1 MP took 1.1 s on average; the third has run for 0.5 s
    assert left is not None and left.seconds == pytest.approx(0.6) and not left.overdue
    late = clock.time_left(11.0)
    assert late is not None and late.overdue and late.text().startswith("any moment")


def test_without_estimates_pages_are_counted() -> None:
    clock = WorkClock(workers=1)
    clock.found(4, work=None, final=True)
    clock.page_done(None, 0.0, 2.0, "w")
    assert not clock.by_work and clock.fraction() == 0.25
    left = clock.time_left(2.0)
    assert left is not None and left.seconds == pytest.approx(6.0)


def test_time_left_texts() -> None:
    assert duration(42.4) == "42 s" and duration(185) == "3:05" and duration(3723) == "1:02:03"
    assert Estimate(42, 35, 50, True, True).text() == "42 s (35 s - 50 s)"
    assert Estimate(130, 100, 160, False, True).text() == "about 2:10"
    assert Estimate(40, 30, 50, True, False).text() == "at least 40 s (still finding pages)"


@pytest.mark.slow
def test_live_view_time_left_is_near_the_truth_from_a_quarter_of_the_work_on(
    tmp_path: Path, shared_corpus: Path
) -> None:
    """What the live view shows, sampled four times a second over a real run of a mixed
    batch in cost order, against the time the run really had left.

    The engine is the sleep fake with a cost proportional to each page's pixels as
    prepared (the PDF's pages as rendered): real Tesseract's time is not proportional
    to pixels (the shared PDF's 81-MP, nearly blank page takes 0.12 s per MP, text pages
    0.7-1.4), so on it this test would measure the cost model of ``ocrlab.ordering``,
    and CPU contention on a loaded machine, rather than the view (docs/jupyter.md has
    the figures on real Tesseract). The bound: within
    30% of the truth, or 2 s (the view's half-second refresh plus the run's own finish:
    manifest, trace, pool shutdown), at every sample from 25% of the estimated work on.
    """
    pytest.importorskip("ipywidgets")
    from ocrlab.lab.widgets import LiveView

    corpus = mixed_batch(tmp_path / "in", shared_corpus)
    out = tmp_path / "out"
    view = LiveView(out / "trace.json")
    # (trace seconds, work done, time left shown, what pages-left / pages-per-second said)
    samples: list[tuple[float, float, float, float]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.25):
            state = view.refresh()
            found = re.search(r'data-time-left="([0-9.]+)"', view.info.value)
            if found and state.fraction is not None and state.total:
                now = state.now_s()
                by_pages = (state.total - state.pages_done) * now / max(1, state.pages_done)
                samples.append((now, state.fraction, float(found.group(1)), by_pages))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        summary = ocrlab.run(
            corpus,
            out,
            workers=2,
            engine="ocrlab.engines.fakes:sleepy",
            engine_options={"sleep": 0.02, "sleep_per_mp": 0.3},
            progress=False,
        )
    finally:
        stop.set()
        watcher.join(timeout=10)
    view.finish()
    assert summary.pages == 43 and summary.pages_failed == 0
    [end] = [e["ts"] / 1e6 for e in load_trace(out / "trace.json") if e["name"] == "run_end"]
    checked = [(t, f, shown, old, end - t) for t, f, shown, old in samples if f >= 0.25]
    assert len(checked) >= 10, samples  # a run of ~20 s: most of it is past a quarter

    def off(shown: float, truth: float) -> bool:
        return abs(shown - truth) > max(0.3 * truth, 2.0)

    wrong = [
        f"at {t:.1f} s ({f:.0%} done): shown {shown:.1f} s, truth {truth:.1f} s"
        for t, f, shown, _, truth in checked
        if off(shown, truth)
    ]
    assert not wrong, wrong
    # the estimate in pages (pages left over pages per second so far) fails the same bound
    assert any(off(old, truth) for *_, old, truth in checked)


def test_the_bar_ends_with_the_runs_average_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """tqdm's own rate is a moving average of the last updates (pages arriving together at
    the end read 8.46 page/s for a run of 1.68); the bar's last line is the run's average."""
    for i in range(6):
        make_page(tmp_path / "in" / f"p{i}.png", f"page {i}", size=(400 + 200 * i, 300))
    summary = ocrlab.run(
        tmp_path / "in",
        tmp_path / "out",
        workers=2,
        engine="ocrlab.engines.fakes:sleepy",
        engine_options={"sleep": 0.05, "sleep_per_mp": 2.0},
        progress=True,
    )
    lines = capsys.readouterr().err.replace("\r", "\n").splitlines()
    last = [line for line in lines if "on average" in line][-1]
    found = re.search(r"6/6 pages in [0-9:s ]+, ([0-9.]+) pages/s on average", last)
    assert found, last
    assert float(found.group(1)) == pytest.approx(summary.pages / summary.wall_s, rel=0.05)
    assert any(" left, " in line for line in lines), "a time left while it ran"
