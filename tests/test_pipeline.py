"""The pipeline end to end with real Tesseract and real worker processes."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
from pathlib import Path

import pytest

import ocrlab
from ocrlab import PipelineError
from ocrlab.output.manifest import load_manifest
from ocrlab.output.trace_reader import load_trace
from tests.conftest import make_page
from tests.helpers import artifact_texts

LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR) +doc=(\S+) page=(\S+) .+$"
)


@pytest.fixture(scope="module")
def mixed_batch(tmp_path_factory: pytest.TempPathFactory, shared_corpus: Path) -> Path:
    """Real scans, same-named files in two folders, and broken files side by side."""
    root = tmp_path_factory.mktemp("mixed") / "in"
    shutil.copytree(shared_corpus / "real", root / "real")
    (root / "broken").mkdir()
    shutil.copy(shared_corpus / "bad" / "invalid.pdf", root / "broken" / "invalid.pdf")
    make_page(root / "x" / "note.png", "Alpha bravo charlie", (600, 120))
    make_page(root / "y" / "note.png", "Delta echo foxtrot", (600, 120))
    png = (root / "x" / "note.png").read_bytes()
    (root / "broken" / "truncated.png").write_bytes(png[: len(png) // 2])
    (root / "broken" / "empty.tif").write_bytes(b"")
    (root / "broken" / "words.jpg").write_text("plain text, not a JPEG")
    return root


@pytest.fixture(scope="module")
def mixed_run(mixed_batch: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mixed-out")
    summary = ocrlab.run(mixed_batch, out, workers=2, progress=False)
    assert summary.exit_code == 1
    return out


@pytest.mark.slow
def test_mixed_batch_partial_success(mixed_run: Path) -> None:
    manifest = load_manifest(mixed_run)
    docs = {d["doc_id"]: d for d in manifest["documents"]}
    assert manifest["status"] == "complete"
    failed = {k for k, d in docs.items() if d["status"] == "failed"}
    assert failed == {
        "broken/invalid.pdf",
        "broken/truncated.png",
        "broken/empty.tif",
        "broken/words.jpg",
    }
    for name in failed:
        [err] = docs[name]["errors"]
        assert err["message"], f"{name} failed without a reason"
        assert docs[name]["artifact"] is None
    assert "empty" in docs["broken/empty.tif"]["errors"][0]["message"]
    assert docs["broken/truncated.png"]["errors"][0]["page"] == 1
    ok = {k for k, d in docs.items() if d["status"] == "ok"}
    assert ok == {
        "real/eurotext.tif",
        "real/linn.png",
        "real/multipage.pdf",
        "real/phototest.tif",
        "x/note.png",
        "y/note.png",
    }
    summary = manifest["summary"]
    assert summary["documents_failed"] == 4 and summary["documents_ok"] == 6


@pytest.mark.slow
def test_artifacts_right_place_utf8_no_cross_contamination(mixed_run: Path) -> None:
    texts = artifact_texts(mixed_run)
    assert set(texts) == {
        "real/eurotext.tif.txt",
        "real/linn.png.txt",
        "real/multipage.pdf.txt",
        "real/phototest.tif.txt",
        "x/note.png.txt",
        "y/note.png.txt",
    }
    decoded = {k: v.decode("utf-8") for k, v in texts.items()}  # raises if not UTF-8
    assert "Alpha" in decoded["x/note.png.txt"] and "Delta" not in decoded["x/note.png.txt"]
    assert "Delta" in decoded["y/note.png.txt"] and "Alpha" not in decoded["y/note.png.txt"]
    assert "quick" in decoded["real/eurotext.tif.txt"]
    assert "LinnSequencer" in decoded["real/linn.png.txt"]
    assert decoded["real/multipage.pdf.txt"].count("\f") == 6
    # A distinctive line of each document appears in no other artifact.
    for name, text in decoded.items():
        line = max(text.split("\n"), key=len)
        others = [k for k, t in decoded.items() if k != name and line in t]
        assert not others, f"{line!r} of {name} leaked into {others}"


@pytest.mark.slow
def test_trace_has_a_span_for_every_page(mixed_run: Path) -> None:
    events = load_trace(mixed_run / "trace.json")
    manifest = load_manifest(mixed_run)
    pages = [e for e in events if e["ph"] == "X" and "page" in e["cat"]]
    # Every page that reached a worker; documents refused at discovery have 0 pages.
    expected = {(d["doc_id"], p) for d in manifest["documents"] for p in range(1, d["pages"] + 1)}
    assert {(e["args"]["doc_id"], e["args"]["page"]) for e in pages} == expected
    assert len(pages) == len(expected), "one span per page, no duplicates"
    main_pid = manifest["run"]["pid"]
    worker_pids = {e["pid"] for e in pages}
    assert main_pid not in worker_pids and len(worker_pids) <= 2
    for e in pages:
        assert e["tid"] == e["pid"] and e["dur"] > 0 and e["ts"] >= 0
    # Spans never overlap on one worker's track.
    for pid in worker_pids:
        spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in pages if e["pid"] == pid)
        assert all(a[1] <= b[0] + 1 for a, b in itertools.pairwise(spans))
    docs = [e for e in events if e["ph"] == "X" and e["cat"] == "document"]
    assert {e["name"] for e in docs} == {d["doc_id"] for d in manifest["documents"] if d["pages"]}
    assert all(e["pid"] == main_pid for e in docs)
    names = [e for e in events if e["ph"] == "M" and e["name"] == "process_name"]
    assert {e["pid"] for e in names} >= worker_pids | {main_pid}
    [meta] = [e for e in events if e["name"] == "run_metadata"]
    assert meta["args"]["config"]["workers"] == 2 and meta["args"]["versions"]["tesseract"]
    # The trace is streamed, not sorted at the end (Perfetto sorts on load), but each track
    # is in time order: a worker's pages, a document lane, each counter series.
    tracks: dict[tuple[object, ...], list[float]] = {}
    for e in events:
        if e["ph"] == "X":
            tracks.setdefault(("X", e["pid"], e["tid"]), []).append(e["ts"])
        elif e["ph"] == "C":
            tracks.setdefault(("C", e["name"]), []).append(e["ts"])
    for track, stamps in tracks.items():
        assert stamps == sorted(stamps), f"track {track} is not in time order"
    assert events[-1]["name"] == "run_end" and json.loads((mixed_run / "trace.json").read_text()), (
        "the closed trace is one valid JSON array"
    )


@pytest.mark.slow
def test_log_lines_are_whole_and_name_their_page(mixed_run: Path) -> None:
    lines = (mixed_run / "ocrlab.log").read_text("utf-8").splitlines()
    assert lines and all(LOG_LINE.match(line) for line in lines), [
        line for line in lines if not LOG_LINE.match(line)
    ]
    page_lines = [
        LOG_LINE.match(line).groups()
        for line in lines  # type: ignore[union-attr]
        if " page=-" not in line
    ]
    assert ("INFO", "real/multipage.pdf", "6") in page_lines
    assert any(doc == "broken/truncated.png" and level == "ERROR" for level, doc, _ in page_lines)
    # Within a document, page lines come in page order.
    pages = [int(p) for _, doc, p in page_lines if doc == "real/multipage.pdf"]
    assert pages == [1, 2, 3, 4, 5, 6]


@pytest.mark.slow
def test_no_temporary_files_left(mixed_run: Path) -> None:
    leftovers = [
        p
        for p in mixed_run.rglob("*")
        if (p.name.startswith(".") or ".tmp" in p.name) and p.name != ".ocrlab.lock"
    ]  # the lock file stays: see ocrlab.output.lock
    assert leftovers == []


@pytest.mark.slow
def test_parallel_output_identical_to_sequential(data_dir: Path, tmp_path: Path) -> None:
    """12+ real pages: byte-identical artifacts with 1 worker (in-process) and 2 workers."""
    seq = ocrlab.run(data_dir, tmp_path / "seq", workers=1, progress=False)
    par = ocrlab.run(data_dir, tmp_path / "par", workers=2, progress=False)
    assert seq.sequential and not par.sequential
    good_pages = seq.pages - seq.pages_failed
    assert good_pages >= 12
    assert seq.pages_failed == par.pages_failed
    a, b = artifact_texts(tmp_path / "seq"), artifact_texts(tmp_path / "par")
    assert a.keys() == b.keys() and len(a) >= 8
    assert a == b
    docs_a = {d["doc_id"]: d["sha256"] for d in load_manifest(tmp_path / "seq")["documents"]}
    docs_b = {d["doc_id"]: d["sha256"] for d in load_manifest(tmp_path / "par")["documents"]}
    assert docs_a == docs_b


def test_main_process_descriptors_return_to_start(small_pages: list[Path], tmp_path: Path) -> None:
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    ocrlab.run(
        small_pages[0].parent.parent,
        tmp_path / "warm",
        workers=2,
        engine="ocrlab.engines.fakes:echo",
        progress=False,
    )
    before = fds()
    for i in range(3):
        ocrlab.run(
            small_pages[0].parent.parent,
            tmp_path / f"o{i}",
            workers=2,
            engine="ocrlab.engines.fakes:echo",
            progress=False,
        )
    assert fds() <= before + 2  # loky may keep one resource-tracker pipe


def test_run_temp_folder_removed(
    small_pages: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    ocrlab.run(small_pages[0].parent.parent, tmp_path / "out", workers=1, progress=False)
    assert list(tmp.iterdir()) == []


def test_missing_input_and_unwritable_output(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="not found"):
        ocrlab.run(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "in").mkdir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(PipelineError, match="not writable"):
        ocrlab.run(tmp_path / "in", tmp_path / "file" / "out")


def test_sequential_kill_switch_same_path(
    small_pages: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCR_PARALLEL_DISABLED", "true")
    summary = ocrlab.run(
        small_pages[0].parent.parent,
        tmp_path / "o",
        workers=2,
        engine="ocrlab.engines.fakes:echo",
        progress=False,
    )
    assert summary.sequential and summary.workers == 1 and summary.documents_ok == 12
    pids = {e["pid"] for e in load_trace(tmp_path / "o" / "trace.json") if e["ph"] == "X"}
    assert pids == {os.getpid()}


def test_cli_run_exit_codes(small_pages: list[Path], tmp_path: Path) -> None:
    import subprocess
    import sys

    src = small_pages[0].parent.parent
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "ocrlab",
            "run",
            str(src),
            "--out",
            str(tmp_path / "ok"),
            "--engine",
            "ocrlab.engines.fakes:echo",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "12 documents: 12 ok" in ok.stdout
    (src / "bad.png").write_bytes(b"")
    some = subprocess.run(
        [
            sys.executable,
            "-m",
            "ocrlab",
            "run",
            str(src),
            "--out",
            str(tmp_path / "some"),
            "--engine",
            "ocrlab.engines.fakes:echo",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert some.returncode == 1 and "FAILED bad.png" in some.stderr
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "ocrlab",
            "run",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 3 and "not found" in missing.stderr
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "ocrlab",
            "run",
            str(src),
            "--out",
            str(tmp_path / "x"),
            "--workers",
            "0",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "--workers='0' is out of range" in bad.stderr
    manifest = json.loads((tmp_path / "some" / "results.json").read_text())
    assert [d["doc_id"] for d in manifest["documents"] if d["status"] == "failed"] == ["bad.png"]
