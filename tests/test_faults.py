"""Nothing lost under faults: dead workers, hung pages, Ctrl-C / SIGTERM, kill -9 and --resume.

Real worker processes throughout; faults are injected by ``ocrlab.engines.fakes:faulty``
(by import path, as a user would configure an engine) or by killing real
processes from outside.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

import ocrlab
from ocrlab.output.manifest import load_manifest
from ocrlab.output.trace_reader import load_trace
from tests.conftest import DATA, make_page, own_tesseracts
from tests.helpers import artifact_texts, run_cli


def _tesseracts() -> list[psutil.Process]:
    """This test session's live Tesseracts (another program's on the host do not count)."""
    return own_tesseracts()


def _zombie_children() -> list[psutil.Process]:
    return [c for c in psutil.Process().children() if c.status() == psutil.STATUS_ZOMBIE]


@pytest.fixture
def six_docs(tmp_path: Path) -> Path:
    for i in range(6):
        make_page(tmp_path / "in" / f"p{i}.png", f"page {i}")
    return tmp_path / "in"


def _instants(out: Path) -> list[str]:
    return [e["name"] for e in load_trace(out / "trace.json") if e["ph"] == "i"]


@pytest.mark.parametrize(
    ("option", "signal_name"), [("kill_on", "SIGKILL"), ("segv_on", "SIGSEGV")]
)
def test_worker_death_retires_only_the_culprit(
    six_docs: Path, tmp_path: Path, option: str, signal_name: str
) -> None:
    out = tmp_path / "out"
    summary = ocrlab.run(
        six_docs,
        out,
        workers=2,
        engine="ocrlab.engines.fakes:faulty",
        engine_options={option: "p3.png"},
        progress=False,
    )
    docs = {d["doc_id"]: d for d in load_manifest(out)["documents"]}
    assert {k for k, d in docs.items() if d["status"] == "ok"} == {
        f"p{i}.png" for i in range(6) if i != 3
    }
    [error] = docs["p3.png"]["errors"]
    assert error["type"] == "WorkerDiedError"
    assert signal_name in error["message"] and "twice" in error["message"]
    assert "peak process-tree memory" in error["message"]
    for i in (0, 1, 2, 4, 5):  # the neighbours' text is theirs, untouched
        assert (out / "text" / f"p{i}.png.txt").read_text() == f"p{i}.png page 1\n\f"
    assert summary.restarts >= 2  # the batch death, then the culprit alone
    names = _instants(out)
    assert "worker_died" in names and "pool_restarted" in names


def test_worker_death_in_flight_neighbours_are_resubmitted(six_docs: Path, tmp_path: Path) -> None:
    """A page in flight beside the culprit is rerun, not blamed."""
    out = tmp_path / "out"
    ocrlab.run(
        six_docs,
        out,
        workers=2,
        inflight_per_worker=3,
        engine="ocrlab.engines.fakes:faulty",
        engine_options={"kill_on": "p0.png"},
        progress=False,
    )
    docs = {d["doc_id"]: d for d in load_manifest(out)["documents"]}
    assert [k for k, d in docs.items() if d["status"] != "ok"] == ["p0.png"]
    events = [e for e in load_trace(out / "trace.json") if e["ph"] == "X" and "page" in e["cat"]]
    assert len(events) == 6  # one span per page, retries included only once
    assert max(e["args"]["attempt"] for e in events) == 2


@pytest.mark.slow
def test_hung_page_is_killed_and_neighbours_finish(six_docs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    t = time.monotonic()
    ocrlab.run(
        six_docs,
        out,
        workers=2,
        inflight_per_worker=1,
        page_timeout=2,
        engine="ocrlab.engines.fakes:faulty",
        engine_options={"hang_on": "p2.png"},
        progress=False,
    )
    assert time.monotonic() - t < 60
    docs = {d["doc_id"]: d for d in load_manifest(out)["documents"]}
    assert [k for k, d in docs.items() if d["status"] != "ok"] == ["p2.png"]
    assert docs["p2.png"]["errors"][0]["type"] == "PageTimeoutError"
    assert "page_hung" in _instants(out)


@pytest.mark.slow
def test_tesseract_timeout_kills_tesseract(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    ocrlab.run(
        data_dir / "letters" / "letter-01.png", out, workers=2, page_timeout=1, progress=False
    )
    [doc] = load_manifest(out)["documents"]
    assert doc["errors"][0]["type"] == "PageTimeoutError"
    assert "page timeout (1 s)" in doc["errors"][0]["message"]
    assert _tesseracts() == [] and _zombie_children() == []


@pytest.mark.slow
def test_worker_killed_mid_tesseract_loses_nothing(data_dir: Path, tmp_path: Path) -> None:
    """SIGKILL a real worker while its Tesseract runs: no orphan, same artifacts."""
    pages = tmp_path / "in"
    for rel in ("letters/letter-01.png", "reports/memo.tif", "letters/letter-02.jpg"):
        (pages / rel).parent.mkdir(parents=True, exist_ok=True)
        (pages / rel).write_bytes((data_dir / rel).read_bytes())
    killed: list[int] = []

    def assassin() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            for proc in psutil.Process().children(recursive=True):
                try:
                    if proc.name() == "tesseract":
                        parent = proc.parent()
                        if parent is not None and parent.pid != os.getpid():
                            os.kill(parent.pid, signal.SIGKILL)
                            killed.append(proc.pid)
                            return
                except psutil.Error:
                    continue
            time.sleep(0.05)

    thread = threading.Thread(target=assassin)
    thread.start()
    summary = ocrlab.run(pages, tmp_path / "out", workers=2, progress=False)
    thread.join()
    assert killed, "the test never saw a Tesseract process to orphan"
    assert summary.restarts >= 1 and summary.documents_ok == 3
    assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == "zombie"
    assert _tesseracts() == [] and _zombie_children() == []
    clean = ocrlab.run(pages, tmp_path / "clean", workers=1, progress=False)
    assert clean.documents_ok == 3
    assert artifact_texts(tmp_path / "out") == artifact_texts(tmp_path / "clean")


def _wait_for(predicate: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _ocr_running(tree: psutil.Process) -> bool:
    """A page's Tesseract is running (not the start-up ``tesseract --version``)."""
    for p in tree.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if p.name() == "tesseract" and "--version" not in p.cmdline():
                return True
    return False


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["2", "1"], ids=["pool", "inline"])
def test_sigterm_stops_cleanly(tmp_path: Path, workers: str) -> None:
    """Also with one worker, where pages run in the main process (InlineExecutor): the
    signal used to become that page's failure and the run went on (exit 1, not 130)."""
    out = tmp_path / "out"
    proc = run_cli(str(DATA), "--out", str(out), "--workers", workers)
    tree = psutil.Process(proc.pid)

    def ocr_running() -> bool:
        return _ocr_running(tree)

    _wait_for(ocr_running)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert time.monotonic() - started < 20, "interrupt must not wait for all pages"
    assert "interrupted" in stderr
    time.sleep(0.5)
    assert _tesseracts() == []
    manifest = load_manifest(out)
    assert manifest["status"] == "interrupted"
    assert load_trace(out / "trace.json")[-1]["name"] == "run_end"
    import tempfile

    from ocrlab.output.scratch import TMP_PREFIX

    assert not list(Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}{proc.pid}-*"))


@pytest.mark.slow
def test_kill9_then_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli(str(DATA), "--out", str(out), "--workers", "2")

    def some_done() -> bool:
        try:
            return len(load_manifest(out)["documents"]) >= 6
        except (OSError, ValueError):
            return False

    _wait_for(some_done, timeout=120)
    helpers = psutil.Process(proc.pid).children(recursive=True)  # loky workers and trackers
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # Nothing of the killed run lingers: workers die with their parent, trackers follow.
    _, alive = psutil.wait_procs(helpers, timeout=60)
    assert alive == [], [p.cmdline() for p in alive]
    # What a kill -9 leaves: complete artifacts or none, a loadable manifest and trace.
    manifest = load_manifest(out)
    assert manifest["status"] == "running"
    events = load_trace(out / "trace.json")
    assert any(e["ph"] == "X" for e in events)
    recorded = {d["artifact"]: d["sha256"] for d in manifest["documents"] if d["artifact"]}
    import hashlib

    for rel, digest in recorded.items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest
    _wait_for(lambda: _tesseracts() == [], timeout=60)  # orphaned workers finish and exit
    resumed = run_cli(str(DATA), "--out", str(out), "--workers", "2", "--resume")
    stdout, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 1, stderr  # data/broken/ holds corrupt files on purpose
    kept = int(stdout.split("(")[1].split(" kept")[0])
    assert kept >= 3, stdout
    final = load_manifest(out)
    assert final["status"] == "complete" and final["summary"]["documents_kept"] == kept
    clean = tmp_path / "clean"
    ocrlab.run(DATA, clean, workers=2, progress=False)
    assert artifact_texts(out) == artifact_texts(clean)
    # only the lock file stays (deleting it would race a run that opened it: ownership.py)
    assert [p.name for p in out.rglob("*") if p.name.startswith(".")] == [".ocrlab.lock"]
    statuses = {d["doc_id"]: d["status"] for d in final["documents"]}
    assert statuses == {d["doc_id"]: d["status"] for d in load_manifest(clean)["documents"]}


def test_resume_redoes_changed_inputs_and_settings(six_docs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    options = {"engine": "ocrlab.engines.fakes:echo", "progress": False, "workers": 1}
    ocrlab.run(six_docs, out, **options)
    assert ocrlab.run(six_docs, out, resume=True, **options).documents_kept == 6
    make_page(six_docs / "p1.png", "changed content")
    again = ocrlab.run(six_docs, out, resume=True, **options)
    assert again.documents_kept == 5 and again.pages == 1
    (out / "text" / "p2.png.txt").write_text("tampered")
    assert ocrlab.run(six_docs, out, resume=True, **options).documents_kept == 5
    other = ocrlab.run(six_docs, out, resume=True, **{**options, "dpi": 150})
    assert other.documents_kept == 0  # settings changed: everything is redone
