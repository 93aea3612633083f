"""``--resume``: unchanged stamps keep a document without reading it, anything else is
hashed or redone; kept documents are counted, not logged one by one; the earlier run's
log and trace are kept; the journal index, its collisions and a write cut by a full disk.

Real runs of the echo engine (``ocrlab.engines.fakes:echo``, whose text names the page)
on small trees; the inputs are made an hour old so that their stamps are recorded (a
file younger than ``RACY_NS`` is hashed on resume instead).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import ocrlab
from ocrlab.output import journal_index as index_mod
from ocrlab.output.journal import Journal, StreamingManifest
from ocrlab.output.journal_index import JournalIndex
from ocrlab.output.journal_lines import iter_journal
from ocrlab.output.layout import OutputLayout
from ocrlab.output.manifest import load_manifest
from ocrlab.output.resume import Resume
from ocrlab.output.trace_reader import load_trace
from ocrlab.records import DocumentRecord, RunSummary

ECHO = "ocrlab.engines.fakes:echo"
OPTIONS: dict[str, Any] = {"engine": ECHO, "workers": 1, "progress": False}
HOUR_AGO = time.time_ns() - 3600 * 10**9


def _png(path: Path, shade: int) -> None:
    """A PNG stored without compression: the same size whatever its shade."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (64, 24), shade).save(path, compress_level=0)


def _tree(root: Path, n: int = 4) -> Path:
    for i in range(n):
        _png(root / f"p{i}.png", 250 - i)
        os.utime(root / f"p{i}.png", ns=(HOUR_AGO, HOUR_AGO))
    return root


def _resume(root: Path, out: Path, **options: Any) -> tuple[RunSummary, dict[str, Any]]:
    """A resumed run and the figures of its keep decisions (the trace's run_end)."""
    summary = ocrlab.run(root, out, resume=True, **{**OPTIONS, **options})
    end = load_trace(out / "trace.json")[-1]
    assert end["name"] == "run_end"
    return summary, end["args"]["resume"]


def _comparable(out: Path) -> list[dict[str, Any]]:
    drop = {"seconds", "workers", "kept_from_previous_run"}
    docs = load_manifest(out)["documents"]
    return [{k: v for k, v in d.items() if k not in drop} for d in docs]


def test_an_unchanged_tree_is_kept_without_reading_a_file(tmp_path: Path) -> None:
    root, out = _tree(tmp_path / "in"), tmp_path / "out"
    first = ocrlab.run(root, out, **OPTIONS)
    assert first.documents_ok == 4
    lines = [o for _, o in iter_journal(out / "journal.jsonl") if "doc_id" in o]
    assert all(o["stamps"][0][1] == HOUR_AGO and o["stamps"][1] for o in lines)
    assert "stamps" not in (out / "results.json").read_text(), "stamps stay in the journal"
    before = _comparable(out)
    summary, figures = _resume(root, out)
    assert summary.documents_kept == 4 and summary.pages == 0
    assert figures["by_stamp"] == 4 and figures["hashed"] == 0
    assert _comparable(out) == before


def test_a_touched_input_is_hashed_and_kept_then_stamped_anew(tmp_path: Path) -> None:
    root, out = _tree(tmp_path / "in"), tmp_path / "out"
    ocrlab.run(root, out, **OPTIONS)
    os.utime(root / "p1.png")  # touch: mtime now, same content
    summary, figures = _resume(root, out)
    assert summary.documents_kept == 4 and summary.pages == 0
    assert figures["hashed"] == 1 and figures["by_stamp"] == 3
    # touched a moment ago: its new stamp is racy, not recorded, so it is hashed again
    assert _resume(root, out)[1]["hashed"] == 1
    os.utime(root / "p1.png", ns=(HOUR_AGO + 1, HOUR_AGO + 1))
    assert _resume(root, out)[1]["hashed"] == 1  # a stamp again, recorded this time
    final = _resume(root, out)[1]
    assert final["hashed"] == 0 and final["by_stamp"] == 4 and final["kept"] == 4


def test_a_rewritten_input_is_redone(tmp_path: Path) -> None:
    root, out = _tree(tmp_path / "in"), tmp_path / "out"
    ocrlab.run(root, out, **OPTIONS)
    _png(root / "p2.png", 3)  # other content, the same size
    summary, figures = _resume(root, out)
    assert summary.documents_kept == 3 and summary.pages == 1
    assert figures["changed"] == 1 and figures["hashed"] == 1


def _rewrite_keeping_size_and_mtime(path: Path, shade: int) -> None:
    st = os.stat(path)
    _png(path, shade)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    now = os.stat(path)
    assert (now.st_size, now.st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert now.st_ctime_ns != st.st_ctime_ns  # what no system call can set back


def test_a_same_size_same_mtime_change_is_caught_by_ctime_and_by_verify_inputs(
    tmp_path: Path,
) -> None:
    root, out = _tree(tmp_path / "in"), tmp_path / "out"
    ocrlab.run(root, out, **OPTIONS)
    _rewrite_keeping_size_and_mtime(root / "p3.png", 7)
    summary, figures = _resume(root, out)
    assert summary.documents_kept == 3 and summary.pages == 1  # ctime moved
    _rewrite_keeping_size_and_mtime(root / "p0.png", 9)
    summary, figures = _resume(root, out, verify_inputs=True)
    assert summary.documents_kept == 3 and summary.pages == 1
    assert figures["by_stamp"] == 0 and figures["hashed"] == 2 * 3 + 1


def test_verify_inputs_catches_a_change_the_stamps_cannot_see(tmp_path: Path) -> None:
    """A rewrite whose stamp stays the same (as on a file system without ctime, or with
    the clock set back) is simulated by recording the rewritten file's stamp: the stamps
    then vouch for it and it is kept unread, which only ``--verify-inputs`` catches."""
    root, out = _tree(tmp_path / "in"), tmp_path / "out"
    ocrlab.run(root, out, **OPTIONS)
    _png(root / "p1.png", 5)
    st = os.stat(root / "p1.png")
    journal = out / "journal.jsonl"
    lines = journal.read_bytes().splitlines(keepends=True)
    for i, raw in enumerate(lines):
        obj = json.loads(raw)
        if obj.get("doc_id") == "p1.png":
            obj["stamps"][0] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
            lines[i] = (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    journal.write_bytes(b"".join(lines))
    assert _resume(root, out)[0].documents_kept == 4  # the trade the fast path makes
    cli = subprocess.run(
        [sys.executable, "-m", "ocrlab", "run", str(root), "--out", str(out), "--engine", ECHO,
         "--workers", "1", "--quiet", "--resume", "--verify-inputs"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert "(3 kept from the previous run)" in cli.stdout
    figures = load_trace(out / "trace.json")[-1]["args"]["resume"]
    assert figures["verify_inputs"] is True and figures["changed"] == 1


def test_kept_documents_are_counted_in_the_log_which_goes_on_and_the_trace_is_kept(
    tmp_path: Path,
) -> None:
    root, out = _tree(tmp_path / "in"), tmp_path / "out"
    ocrlab.run(root, out, **OPTIONS)
    first_log = (out / "ocrlab.log").read_text()
    first_trace = (out / "trace.json").read_bytes()
    _resume(root, out)
    log = (out / "ocrlab.log").read_text()
    assert log.startswith(first_log), "the earlier run's log is continued, not replaced"
    added = log[len(first_log) :].splitlines()
    assert any("resuming the run(s) started" in line for line in added)
    assert any("resume: 4 document(s) kept (4 by unchanged stamps" in line for line in added)
    assert not any("kept from the previous run" in line for line in added)
    assert len(added) <= 5
    layout = OutputLayout(out)
    assert layout.earlier_traces() == [out / "trace.1.json"]
    assert (out / "trace.1.json").read_bytes() == first_trace
    events = load_trace(out / "trace.json")
    assert not [e for e in events if e["ph"] == "X"] and events[-1]["name"] == "run_end"
    ocrlab_log = logging.getLogger("ocrlab")
    level = ocrlab_log.level
    ocrlab_log.setLevel(logging.DEBUG)  # per-document lines, when asked for
    try:
        _resume(root, out)
    finally:
        ocrlab_log.setLevel(level)
    debug = (out / "ocrlab.log").read_text().count("kept from the previous run")
    assert debug == 4
    assert layout.earlier_traces() == [out / "trace.1.json", out / "trace.2.json"]
    assert "trace.2.json" in layout.previous_outputs()
    ocrlab.run(root, out, overwrite=True, **OPTIONS)
    assert layout.earlier_traces() == []


def test_index_key_collisions_redo_documents_never_mix_them_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, out = _tree(tmp_path / "in"), tmp_path / "out"
    ocrlab.run(root, out, **OPTIONS)
    layout = OutputLayout(out)
    key = load_manifest(out)["run"]["settings_key"]
    docs = [(f"p{i}.png", str(root / f"p{i}.png")) for i in range(4)]
    normal = Resume(layout, key)
    assert [normal.line(d, p) is not None for d, p in docs] == [True] * 4
    normal.finish()
    monkeypatch.setattr(index_mod, "_key", lambda doc_id: 7)  # every id on one key
    colliding = Resume(layout, key)
    assert len(colliding) == 1
    newest = next(o["doc_id"] for _, o in reversed(list(iter_journal(layout.journal))))
    kept = {d for d, p in docs if colliding.line(d, p) is not None}
    assert kept == {newest}
    colliding.finish()


def test_the_line_read_from_bytes_equals_the_line_from_the_parsed_record(
    tmp_path: Path,
) -> None:
    root, out = _tree(tmp_path / "in"), tmp_path / "out"
    ocrlab.run(root, out, **OPTIONS)
    resume = Resume(OutputLayout(out), load_manifest(out)["run"]["settings_key"])
    for i in range(4):
        doc_id, path = f"p{i}.png", str(root / f"p{i}.png")
        raw = resume.lines.line(doc_id)
        assert raw is not None
        fast = resume._by_stamps(raw, doc_id, path)
        assert fast is not None and fast == resume._checked(raw, doc_id, path)
        assert resume._by_stamps(fast, doc_id, path) == fast  # kept again: copied as is
        assert resume._by_stamps(raw, doc_id, path + "x") is None  # moved: decided slowly
    resume.finish()


def _record(doc_id: str, status: str = "ok") -> DocumentRecord:
    return DocumentRecord(doc_id, f"/in/{doc_id}", "png", 1, status, 1, int(status == "ok"))


def test_journal_index_newest_wins_and_a_failure_removes(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    j = Journal(path, "run 1")
    for doc_id, status in [("a", "ok"), ("b", "ok"), ("c", "failed"), ("a", "failed")]:
        j.add(_record(doc_id, status))
    j.close()
    j = Journal(path, "run 2", fresh=False)
    j.add(_record("c"))
    j.add_kept(b'{"doc_id":"b","status":"ok","pages":2}\n')
    j.close()
    index = JournalIndex(path)
    assert index.runs == ["run 1", "run 2"] and len(index) == 2
    assert index.line("a") is None
    assert json.loads(index.line("b") or b"")["pages"] == 2
    assert json.loads(index.line("c") or b"")["status"] == "ok"
    assert index.nbytes() == 2 * 20
    index.close()


def test_journal_index_knows_artifacts_written_without_a_record(tmp_path: Path) -> None:
    """A writing line followed by its document's record is nothing; one no record follows
    (the run killed between the rename and the record) names a stale artifact for the redo
    to remove, and hides an earlier ok line of that document (it was being redone)."""
    path = tmp_path / "journal.jsonl"
    j = Journal(path, "run 1")
    for doc_id in ("a", "b"):
        j.writing(doc_id, f"text/{doc_id}.txt")
        j.add(_record(doc_id))
    j.writing("c", "text/c.txt")  # killed here
    j.close()
    j = Journal(path, "run 2", fresh=False)
    j.writing("b", "text/b.txt")  # b redone, killed again before its record
    j.close()
    index = JournalIndex(path)
    assert index.stale == {"c": "text/c.txt", "b": "text/b.txt"}
    assert index.line("a") is not None and index.line("b") is None and len(index) == 1
    assert index.artifact("b") == "text/b.txt" and index.artifact("a") is None
    index.close()
    j = Journal(path, "run 3", fresh=False)
    j.writing("c", "text/c.txt")
    j.add(_record("c"))  # c redone to the end: nothing stale about it any more
    j.close()
    index = JournalIndex(path)
    assert index.stale == {"b": "text/b.txt"} and index.line("c") is not None
    index.close()


class _FullDisk:
    """A file whose first write lands half, as on a disk filling up, then fails."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.calls = 0

    def write(self, data: bytes) -> int:
        self.calls += 1
        if self.calls == 1:
            written: int = self.fh.write(data[: len(data) // 2])
            return written
        raise OSError(errno.ENOSPC, "No space left on device")

    def fileno(self) -> int:
        fileno: int = self.fh.fileno()
        return fileno

    def close(self) -> None:
        self.fh.close()


def test_a_journal_write_cut_by_a_full_disk_is_cut_back_to_whole_lines(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.jsonl"
    j = Journal(path, "t0")
    j.add(_record("a"))
    whole = path.read_bytes()
    j.add_kept(b'{"doc_id":"k","status":"ok"}\n')  # waits in the buffer
    j._fh = _FullDisk(j._fh)  # type: ignore[assignment]
    with pytest.raises(OSError, match="No space"):
        j.add(_record("b"))
    j.close()  # nothing left to complete the torn line
    assert path.read_bytes() == whole + b'{"doc_id":"k","status":"ok"}\n'
    assert [o["doc_id"] for _, o in iter_journal(path) if "doc_id" in o] == ["a", "k"]


def test_an_interrupted_resume_keeps_every_section_a_complete_one_compacts(
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "results.json"
    first = StreamingManifest(manifest, {}, "t1")
    for doc_id in "abc":
        first.add(_record(doc_id))
    first.write("complete")
    again = StreamingManifest(manifest, {}, "t2", fresh=False)
    again.add(_record("a", "failed"))
    again.write("interrupted")
    docs = {d["doc_id"]: d["status"] for d in load_manifest(tmp_path)["documents"]}
    assert docs == {"a": "failed", "b": "ok", "c": "ok"}
    assert sum(1 for _ in iter_journal(tmp_path / "journal.jsonl")) == 6  # both sections
    last = StreamingManifest(manifest, {}, "t3", fresh=False)
    for doc_id in "abc":
        last.add(_record(doc_id))
    last.write("complete")
    assert sum(1 for _ in iter_journal(tmp_path / "journal.jsonl")) == 4  # its own only
    assert [d["status"] for d in load_manifest(tmp_path)["documents"]] == ["ok"] * 3


def test_a_run_older_than_the_journal_is_resumed_from_its_results_json(tmp_path: Path) -> None:
    root, out = _tree(tmp_path / "in"), tmp_path / "out"
    ocrlab.run(root, out, **OPTIONS)
    (out / "journal.jsonl").unlink()  # as a run before the journal left its folder
    summary, figures = _resume(root, out)
    assert summary.documents_kept == 4 and figures["hashed"] == 8  # no stamps: all hashed
    assert _resume(root, out)[1]["by_stamp"] == 4  # the resumed run recorded them


def test_documents_whose_input_is_gone_leave_nothing_behind(tmp_path: Path) -> None:
    """A resumed run's folder is what a fresh run of the same inputs writes: the files of a
    document whose input was deleted (here the only one of a sub-folder) are removed with
    their empty folder, counted and logged; an interrupted resume removes nothing; a
    run older than the journal (its results.json) is handled alike."""
    from ocrlab.output.audit import audit_output
    from tests.helpers import artifact_texts

    root, out = _tree(tmp_path / "in"), tmp_path / "out"
    _png(root / "sub" / "q.png", 40)
    ocrlab.run(root, out, **OPTIONS)
    assert (out / "text" / "sub" / "q.png.txt").is_file()
    (root / "sub" / "q.png").unlink()
    (root / "p3.png").unlink()
    summary, figures = _resume(root, out)
    assert summary.documents_kept == 3 and summary.documents_vanished == 2
    assert figures["vanished"] == 2
    assert not (out / "text" / "sub").exists() and (out / "text").is_dir()
    audit = audit_output(out)
    assert audit.ok, audit
    fresh = tmp_path / "fresh"
    ocrlab.run(root, fresh, **OPTIONS)
    assert artifact_texts(out) == artifact_texts(fresh)
    assert "2 document(s) of the previous run no longer among the inputs" in (
        out / "ocrlab.log"
    ).read_text(encoding="utf-8")
    assert load_manifest(out)["summary"]["documents_vanished"] == 2
    # nothing left to remove the next time
    assert _resume(root, out)[0].documents_vanished == 0
    # the same from a results.json without a journal
    (root / "p2.png").unlink()
    (out / "journal.jsonl").unlink()
    assert _resume(root, out)[0].documents_vanished == 1
    assert audit_output(out).ok and not (out / "text" / "p2.png.txt").exists()


def test_an_interrupted_or_sharded_resume_removes_nothing(tmp_path: Path) -> None:
    layout_root = tmp_path / "out"
    root = _tree(tmp_path / "in")
    ocrlab.run(root, layout_root, **OPTIONS)
    (root / "p0.png").unlink()
    resume = Resume(OutputLayout(layout_root), "unused")
    assert resume.finish(complete=False)["vanished"] == 0
    resume = Resume(OutputLayout(layout_root), "unused")
    assert resume.finish(complete=True, whole=False)["vanished"] == 0
    assert (layout_root / "text" / "p0.png.txt").is_file()
    resume = Resume(OutputLayout(layout_root), "unused")
    assert resume.finish(complete=True)["vanished"] == 4  # nothing was asked: all gone
