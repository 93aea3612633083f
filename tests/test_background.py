"""``ocrlab.start``: runs in their own process; cancel is Ctrl-C; results equal ``ocrlab.run``'s.

Real Tesseract where the claim is about Tesseract (nothing left after cancel);
the processes checked are only this run's descendants, never every Tesseract
on the machine (other runs may share it).
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import tempfile
import time
from pathlib import Path

import psutil
import pytest

import ocrlab
from ocrlab.errors import ConfigError
from ocrlab.output.manifest import load_manifest
from ocrlab.output.scratch import TMP_PREFIX
from ocrlab.output.trace_reader import load_trace
from tests.helpers import write_pages

COUNTS = (
    "documents",
    "documents_ok",
    "documents_partial",
    "documents_failed",
    "pages",
    "pages_failed",
    "workers",
    "sequential",
    "restarts",
    "documents_kept",
)


def _pages(folder: Path, n: int) -> Path:
    """``n`` readable pages and one truncated PNG (a run over them exits 1)."""
    write_pages(folder, n, size=(900, 300))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n-truncated")
    return folder


def test_start_returns_at_once_and_result_equals_run(tmp_path: Path) -> None:
    corpus = _pages(tmp_path / "in", 4)
    t = time.monotonic()
    handle = ocrlab.start(corpus, tmp_path / "bg", workers=2, progress=False)
    assert time.monotonic() - t < 5, "start must not wait for the run"
    background = handle.result(timeout=300)
    assert handle.done() and handle.status == "complete"
    blocking = ocrlab.run(corpus, tmp_path / "fg", workers=2, progress=False)
    a, b = background.as_dict(), blocking.as_dict()
    assert {k: a[k] for k in COUNTS} == {k: b[k] for k in COUNTS}
    assert background.exit_code == blocking.exit_code == 1  # the broken file
    assert background.out_dir == (tmp_path / "bg").absolute()
    docs = {
        d["doc_id"]: (d["status"], d["sha256"]) for d in load_manifest(tmp_path / "bg")["documents"]
    }
    assert docs == {
        d["doc_id"]: (d["status"], d["sha256"]) for d in load_manifest(tmp_path / "fg")["documents"]
    }
    state = handle.state()
    assert state.status == "complete" and state.pages_done == state.total == 5


def test_bad_configuration_raises_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="workers"):
        ocrlab.start(tmp_path, tmp_path / "out", workers=0)


def test_missing_input_raises_from_result(tmp_path: Path) -> None:
    handle = ocrlab.start(tmp_path / "nope", tmp_path / "out", progress=False)
    with pytest.raises(ocrlab.PipelineError):
        handle.result(timeout=120)
    assert handle.status == "failed"


def test_cancel_mid_run_is_ctrl_c(tmp_path: Path) -> None:
    corpus = _pages(tmp_path / "in", 12)
    out = tmp_path / "out"
    handle = ocrlab.start(corpus, out, workers=2, progress=False)
    seen: dict[int, str] = {}
    deadline = time.monotonic() + 240
    while handle.state().pages_done < 2:  # mid-run: some pages done, Tesseracts running
        assert not handle.done(), handle.log_text()
        assert time.monotonic() < deadline
        try:
            for p in psutil.Process(handle.pid).children(recursive=True):
                seen[p.pid] = p.name()
        except psutil.Error:
            pass
        time.sleep(0.05)
    assert "tesseract" in seen.values(), seen
    assert handle.cancel() is True
    assert handle.done() and handle.status == "interrupted"
    with pytest.raises(cf.CancelledError):
        handle.result()
    assert handle.cancel() is False  # already over
    manifest = load_manifest(out)
    assert manifest["status"] == "interrupted"
    finished = {d["doc_id"]: d for d in manifest["documents"]}
    assert 0 < len(finished) < 13
    # Nothing half-written: every artifact is a finished document's, byte for byte.
    for path in (out / "text").rglob("*"):
        assert not path.name.startswith("."), f"temporary file left: {path}"
        if path.is_file():
            doc_id = path.relative_to(out / "text").as_posix()[: -len(".txt")]
            assert hashlib.sha256(path.read_bytes()).hexdigest() == finished[doc_id]["sha256"]
    # The run's own temporary folder (on $TMPDIR, named by its pid) is gone, and the
    # output folder holds the run's files and its lock, nothing else (no reserve file).
    assert not list(Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}{handle.pid}-*"))
    assert sorted(p.name for p in out.iterdir()) == [
        ".ocrlab.lock",
        "journal.jsonl",
        "ocrlab.log",
        "results.json",
        "text",
        "trace.json",
    ]
    names = [e.get("name") for e in load_trace(out / "trace.json")]
    assert "run_end" in names
    # No Tesseract (nor worker) of this run is left; resource trackers exit on their own.
    until = time.monotonic() + 20
    while True:
        alive = [
            p
            for p in seen
            if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
        ]
        if not alive or time.monotonic() > until:
            break
        time.sleep(0.2)
    assert not alive, [(p, psutil.Process(p).cmdline()) for p in alive]


def test_two_handles_share_nothing(tmp_path: Path) -> None:
    corpus = _pages(tmp_path / "in", 3)
    opts = {
        "workers": 2,
        "progress": False,
        "engine": "ocrlab.engines.fakes:sleepy",
        "engine_options": {"sleep": 0.2},
    }
    a = ocrlab.start(corpus, tmp_path / "a", **opts)
    b = ocrlab.start(corpus, tmp_path / "b", **opts)
    assert a.pid != b.pid
    ra, rb = a.result(timeout=120), b.result(timeout=120)
    assert ra.pages == rb.pages == 4 and ra.out_dir != rb.out_dir
    pids_a = {
        e["pid"]
        for e in load_trace(tmp_path / "a" / "trace.json")
        if e.get("ph") == "X" and "page" in e.get("cat", "")
    }
    pids_b = {
        e["pid"]
        for e in load_trace(tmp_path / "b" / "trace.json")
        if e.get("ph") == "X" and "page" in e.get("cat", "")
    }
    assert pids_a and pids_b and not pids_a & pids_b, "each run has its own pool"
