"""Progress where the user is, the trace follower, the live view's figures, the page viewer's data.

Real runs with the echo engine (no Tesseract) in real worker processes; the
widgets' HTML is rendered from states without a kernel (the kernel and browser
checks are in test_jupyterlab.py).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import types
from pathlib import Path

import pytest

import ocrlab
from ocrlab import progress
from ocrlab.config import load_config
from ocrlab.follow import RunState
from ocrlab.output import trace_schema as ts
from ocrlab.output.trace_reader import TraceFollower, load_trace, stat_key
from ocrlab.records import Failure
from tests.conftest import DATA, make_page

ECHO = {"engine": "ocrlab.engines.fakes:echo", "progress": False, "monitor_interval": 0.02}


@pytest.fixture
def fake_kernel(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """A stand-in for ipykernel's kernel object, as ``get_ipython().kernel``."""
    import IPython

    kernel = types.SimpleNamespace(_allow_stdin=True)
    shell = types.SimpleNamespace(kernel=kernel)
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    monkeypatch.delenv("CI", raising=False)
    return kernel


def test_frontend_and_defaults(
    fake_kernel: types.SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    auto = load_config()
    assert progress.frontend() == "notebook"
    assert progress.progress_enabled(auto) and progress.live_view_enabled(auto)
    # papermill / nbclient send cells with allow_stdin=False: quiet
    fake_kernel._allow_stdin = False
    assert progress.frontend() == "headless"
    assert not progress.progress_enabled(auto) and not progress.live_view_enabled(auto)
    # ...unless asked for explicitly (the kernel-level test stores the widget state)
    assert progress.live_view_enabled(load_config(live_view=True))
    fake_kernel._allow_stdin = True
    assert not progress.live_view_enabled(load_config(progress=False)), "quiet means quiet"
    assert not progress.live_view_enabled(load_config(live_view=False))
    monkeypatch.setenv("OCR_LIVE_VIEW", "false")
    assert not progress.live_view_enabled(load_config())
    monkeypatch.setenv("CI", "true")
    assert progress.frontend() == "ci"
    assert not progress.progress_enabled(auto) and not progress.live_view_enabled(auto)


def test_terminal_and_pipes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(sys, "stderr", types.SimpleNamespace(isatty=lambda: True))
    assert progress.frontend() == "terminal"
    assert progress.progress_enabled(load_config())
    assert not progress.live_view_enabled(load_config(live_view=True)), "no widgets there"
    monkeypatch.setattr(sys, "stderr", types.SimpleNamespace(isatty=lambda: False))
    assert progress.frontend() == "plain" and not progress.progress_enabled(load_config())


def test_follower_reads_increments_and_keeps_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    path.write_text('[\n{"ph":"i","name":"run_start","ts":0,"args":{"pages":2}},\n{"ph":"X"')
    follower = TraceFollower(path)
    state = RunState()
    state.apply(follower.poll())
    assert state.total == 2 and state.pages_done == 0
    with open(path, "a") as fh:  # the torn line completes, a page follows
        fh.write(',"cat":"page","ts":1000,"dur":5000,"args":{"ok":true}},\n')
    state.apply(follower.poll())
    assert state.pages_done == 1 and state.t_s == pytest.approx(0.006)
    assert follower.skipped == 0
    # A stale trace (an earlier run's) is not read until it is replaced.
    stale = TraceFollower(path, stale=stat_key(path))
    assert stale.poll() == []
    time.sleep(0.01)
    path.write_text('[\n{"ph":"i","name":"run_start","ts":0,"args":{"pages":7}},\n')
    fresh = RunState()
    fresh.apply(stale.poll())
    assert fresh.total == 7


def test_state_of_a_real_run_matches_its_summary(tmp_path: Path) -> None:
    for i in range(5):
        make_page(tmp_path / "in" / f"p{i}.png", f"page {i}")
    (tmp_path / "in" / "bad.png").write_bytes(b"")
    summary = ocrlab.run(
        tmp_path / "in",
        tmp_path / "out",
        workers=2,
        engine_options={"fail_on": "p2.png"},
        **{**ECHO, "engine": "ocrlab.engines.fakes:faulty"},
    )
    follower = TraceFollower(tmp_path / "out" / "trace.json")
    state = RunState()
    state.apply(follower.poll())
    assert state.status == "complete" and state.finished
    assert state.total == 5 == state.pages_done == summary.pages
    assert state.pages_failed == 1 == summary.pages_failed
    assert {f.doc_id for f in state.failures} == {"p2.png", "bad.png"}
    assert state.rss_peak_mb and state.rss_peak_mb > 10
    assert state.tesseract is not None  # the counter is there (0: the echo engine)
    assert state.summary["documents_failed"] == summary.documents_failed
    events = load_trace(tmp_path / "out" / "trace.json")
    [failed] = [e for e in events if e.get("name") == "document_failed"]
    assert failed["args"]["doc_id"] == "bad.png"
    found = [e["args"] for e in events if e.get("name") == "pages_found"]
    # lazy discovery's final total, in pages and in estimated work (5 pages of 400 x 120)
    assert found[-1] == {
        "pages": 5,
        "work": pytest.approx(0.24),
        "sizes": {"-5": [5, 0.24]},
        "final": True,
    }
    assert state.clock.by_work and state.clock.work_done == pytest.approx(5 * 0.048)
    assert state.fraction == 1.0 and state.time_left() is None  # complete


def test_follower_sees_the_run_while_it_goes(tmp_path: Path) -> None:
    """The live view's source: events appear during the run, not only at the end."""
    for i in range(8):
        make_page(tmp_path / "in" / f"p{i}.png", f"page {i}")
    seen: list[int] = []
    out = tmp_path / "out"

    def watch() -> None:
        while not (out / "trace.json").exists():
            time.sleep(0.01)
        follower, state = TraceFollower(out / "trace.json"), RunState()
        while not state.finished:
            state.apply(follower.poll())
            seen.append(state.pages_done)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    ocrlab.run(
        tmp_path / "in",
        out,
        workers=2,
        engine="ocrlab.engines.fakes:sleepy",
        engine_options={"sleep": 0.3},
        progress=False,
    )
    watcher.join(timeout=30)
    assert seen[-1] == 8
    assert any(0 < n < 8 for n in seen), seen


def test_render_state_shows_what_exists() -> None:
    pytest.importorskip("ipywidgets")
    from ocrlab.lab.widgets import render_failures, render_state

    state = RunState(
        total=10,
        pages_done=4,
        t_s=2.0,
        rss_mb=300.0,
        rss_peak_mb=350.0,
        tesseract=2,
        tesseract_peak=2,
        status="running",
    )
    state.failures.append(Failure("a.png", 3, "TesseractError", "bad <page>"))
    page = render_state(state)
    assert "4 / 10" in page and "2.00" in page and "peak 350 MB RSS" in page
    assert "PSS" not in page, "no PSS figure unless the monitor records one"
    assert "time left" in page and "bad" not in page, "failures have a widget of their own"
    assert "bad &lt;page&gt;" in render_failures(state.failures)
    state.pss_mb, state.pss_at_peak_mb = 200.0, 220.0
    assert "300 MB RSS, 200 MB PSS now" in render_state(state)
    assert "peak 350 MB RSS, 220 MB PSS at that moment" in render_state(state)


def test_now_and_peak_figures_each_come_from_one_sample() -> None:
    """PSS is read every few samples: a "now" PSS from an older sample beside this
    sample's RSS once showed PSS above RSS; now each figure says its moment."""
    pytest.importorskip("ipywidgets")
    from ocrlab.lab.widgets import render_state

    def memory(t_s: float, rss: float, pss: float | None = None) -> dict[str, object]:
        args: dict[str, object] = {ts.TREE_RSS: rss}
        if pss is not None:
            args[ts.TREE_PSS] = pss
        return {"ph": "C", "name": ts.MEMORY, "ts": t_s * 1e6, "args": args}

    state = RunState(status="running")
    state.apply([memory(1.0, 400.0, 300.0), memory(1.1, 800.0, 690.0), memory(1.2, 282.0)])
    assert (state.rss_mb, state.pss_mb) == (282.0, None), "no PSS in the latest sample"
    assert (state.pss_read_mb, state.pss_read_at_s) == (690.0, 1.1)
    assert (state.rss_peak_mb, state.pss_at_peak_mb) == (800.0, 690.0)
    page = render_state(state)
    assert "282 MB RSS now (PSS 690 MB 0.1 s earlier)" in page
    assert "peak 800 MB RSS, 690 MB PSS at that moment" in page
    state.apply([memory(1.3, 900.0)])  # a peak whose sample read no PSS (an old trace)
    assert (state.rss_peak_mb, state.pss_at_peak_mb) == (900.0, None)
    assert "peak 900 MB RSS" in render_state(state) and "at that moment" not in render_state(state)


def test_page_viewer_data_and_static_report(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    from ocrlab.lab import pageview as pages

    corpus = tmp_path / "in"
    corpus.mkdir()
    for name in ("note.png", "note.gt.txt"):
        (corpus / name).write_bytes((DATA / "letters" / name).read_bytes())
    for name in ("chapter.pdf", "chapter.gt.txt"):
        (corpus / name).write_bytes((DATA / "books" / name).read_bytes())
    # Wrong ground truth for the note: its page must be the worst.
    (corpus / "note.gt.txt").write_text("completely different words here\n")
    out = tmp_path / "out"
    ocrlab.run(corpus, out, workers=1, progress=False)
    assert pages.find_runs(tmp_path) == [out]
    docs = {d["doc_id"]: d for d in pages.documents(out)}
    info = pages.page_info(out, docs["chapter.pdf"], 2)
    assert info.n_pages == 3 and info.text and info.truth and info.ocr_s and info.ocr_s > 0
    assert info.cer is not None and info.cer < 0.05
    png = pages.page_png(info.source, 2, info.fmt, max_width=300)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    worst = pages.worst_pages(out, 2)
    assert worst[0].doc_id == "note.png" and (worst[0].cer or 0) > 0.5
    report = pages.worst_pages_html(out, 2)
    assert report.count("data:image/png;base64,") == 2
    assert "<del>completely" in report and "<ins>" in report


def test_diff_marks_insertions_and_deletions() -> None:
    from ocrlab.lab.pageview import diff_html

    page = diff_html("the quick brown fox", "the quick brovvn fox jumps")
    assert "<del>brown</del>" in page and "<ins>brovvn</ins>" in page
    assert "<ins>jumps</ins>" in page and "the quick" in page


def test_bench_shows_which_run_of_how_many(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep's outer bar names run i of n; each run's bar is labelled beneath it."""
    from ocrlab.lab.bench import bench

    labels: list[str] = []
    real = progress.make_bar

    def spy(
        total: int,
        enabled: bool,
        where: str,
        desc: str = "OCR",
        leave: bool = True,
        unit: str = "page",
    ) -> object:
        labels.append(f"{unit}:{desc}")
        return real(total, False, where, desc, leave, unit)

    monkeypatch.setattr(progress, "make_bar", spy)
    make_page(tmp_path / "in" / "a.png", "a")
    bench(
        tmp_path / "in",
        tmp_path / "b",
        workers=[1, 2],
        repeats=1,
        cli_reference=False,
        engines=["ocrlab.engines.fakes:echo"],
        log=lambda m: None,
        progress=True,
    )
    runs = [x for x in labels if x.startswith("page:")]
    assert labels[0] == "run:sweep" and len(runs) == 2
    assert runs[0].startswith("page:run 1/2: ocrlab.engines.fakes:echo, 1 worker(s)")
    assert runs[1].startswith("page:run 2/2:")
    assert json.loads((tmp_path / "b" / "bench.json").read_text())["table"]
    assert os.environ.get("OCR_LIVE_VIEW") is None


def _in_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run ``python -m ocrlab ARGS`` on a pseudo-terminal (120 columns); return its output."""
    import fcntl
    import pty
    import struct
    import subprocess
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocrlab", *args], stdin=slave, stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    proc.wait(timeout=60)
    return out.decode(errors="replace")


def test_terminal_bar_on_a_tty_and_none_under_ci(tmp_path: Path) -> None:
    make_page(tmp_path / "in" / "a.png", "a")
    make_page(tmp_path / "in" / "b.png", "b")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    args = ["run", str(tmp_path / "in"), "--engine", "ocrlab.engines.fakes:echo", "--workers", "1"]
    shown = _in_a_terminal([*args, "--out", str(tmp_path / "o1")], env)
    assert "OCR: 100%" in shown and "2/2" in shown
    quiet = _in_a_terminal([*args, "--out", str(tmp_path / "o2")], {**env, "CI": "true"})
    assert "OCR:" not in quiet and "2 documents" in quiet


def test_a_trace_just_created_reads_as_no_events(tmp_path: Path) -> None:
    """A live run's trace exists before its first line: readers polling it see no event yet
    (found: a test polling a run's trace read the empty file and failed on JSON)."""
    from ocrlab.output.trace_reader import load_trace

    path = tmp_path / "trace.json"
    path.write_text("")
    assert load_trace(path) == []
    path.write_text("[")
    assert load_trace(path) == []
    path.write_text('[\n{"ph":"i","name":"run_start","ts":0,"args":{}},\n')
    assert [e["name"] for e in load_trace(path)] == ["run_start"]
