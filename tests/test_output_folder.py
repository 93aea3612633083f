"""The output folder belongs to one run: a lock, no mixture, a full disk stops.

Real processes throughout (``python -m ocrlab run`` subprocesses, real loky
workers, real Tesseract where the text matters) and a real small filesystem
(tmpfs, mounted by the test; skipped with the reason where mounting is not allowed).
"""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import ocrlab
from ocrlab.errors import OutputBusyError, OutputNotEmptyError
from ocrlab.output.audit import audit_output
from ocrlab.output.manifest import load_manifest
from ocrlab.output.scratch import TMP_PREFIX
from tests.helpers import artifact_texts, run_cli, run_to_end, write_pages

ECHO = "ocrlab.engines.fakes:echo"
SLEEPY = "ocrlab.engines.fakes:sleepy"


def _wait_for_lock_holder(out: Path, pid: int, timeout: float = 60.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            info: dict[str, object] = json.loads((out / ".ocrlab.lock").read_text() or "{}")
            if info.get("pid") == pid and (out / "trace.json").exists():
                return info
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"run {pid} never took the lock of {out}")


def test_second_run_on_a_busy_folder_is_refused_at_once(tmp_path: Path) -> None:
    # Long enough to still hold the folder when both refusals are tried: 36 real pages,
    # each in a Tesseract process of its own (bundles would finish them in about a second).
    inputs = write_pages(tmp_path / "in", 36)
    out = tmp_path / "same"
    first = run_cli(
        str(inputs), "--out", str(out), "--workers", "2", "--quiet", env={"OCR_BUNDLE_MP": "0"}
    )
    info = _wait_for_lock_holder(out, first.pid)
    t0 = time.monotonic()
    second = run_to_end("run", str(inputs), "--out", str(out), "--quiet", timeout=60)
    refused_in = time.monotonic() - t0
    assert second.returncode == 3, second.stderr
    assert str(out) in second.stderr and f"PID {first.pid}" in second.stderr
    assert str(info["started_at"]) in second.stderr
    assert refused_in < 10  # at once: no discovery, no pool (generous for a loaded machine)
    # In the same process too (two notebook cells): a clear exception.
    with pytest.raises(OutputBusyError, match=f"PID {first.pid}"):
        ocrlab.run(inputs, out, progress=False)
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    alone = tmp_path / "alone"
    ocrlab.run(inputs, alone, workers=2, progress=False)
    assert artifact_texts(out) == artifact_texts(alone) and len(artifact_texts(out)) == 36
    assert audit_output(out).ok
    assert load_manifest(out)["status"] == "complete"
    assert not list(Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}{first.pid}-*"))


def test_kill9_leaves_no_lock_and_its_temporary_folder_is_cleaned(tmp_path: Path) -> None:
    inputs = write_pages(tmp_path / "in", 8)
    out = tmp_path / "out"
    proc = run_cli(str(inputs), "--out", str(out), "--workers", "2", "--engine", SLEEPY, "--quiet")
    _wait_for_lock_holder(out, proc.pid)
    stale = list(Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}{proc.pid}-*"))
    assert len(stale) == 1
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    nxt = run_to_end(
        "run",
        str(inputs),
        "--out",
        str(out),
        "--engine",
        ECHO,
        "--overwrite",
        "--quiet",
        timeout=120,
    )
    assert nxt.returncode == 0, nxt.stderr
    assert not stale[0].exists()  # the dead run's folder, removed by the next run
    assert audit_output(out).ok and len(audit_output(out).on_disk) == 8


def test_a_live_runs_temporary_folder_is_never_removed(tmp_path: Path) -> None:
    from ocrlab.output.scratch import RunTempDir

    live = RunTempDir()
    try:
        (live.path / "page.pnm").write_bytes(b"P5")
        removed = RunTempDir.remove_stale()
        assert live.path not in removed and (live.path / "page.pnm").exists()
    finally:
        live.close()
    assert not live.path.exists()


def test_a_used_folder_is_refused_or_overwritten_never_mixed(tmp_path: Path) -> None:
    letters = write_pages(tmp_path / "letters", 3, "letter")
    forms = write_pages(tmp_path / "forms", 2, "form")
    out = tmp_path / "o"
    ocrlab.run(letters, out, engine=ECHO, progress=False)
    before = artifact_texts(out)
    with pytest.raises(OutputNotEmptyError, match=r"--resume.*--overwrite"):
        ocrlab.run(forms, out, engine=ECHO, progress=False)
    cli = run_to_end("run", str(forms), "--out", str(out), "--engine", ECHO, "--quiet", timeout=120)
    assert cli.returncode == 3 and "--overwrite" in cli.stderr and "--resume" in cli.stderr
    assert artifact_texts(out) == before  # refused before touching anything
    (out / "notes.md").write_text("a user's own file")
    ocrlab.run(forms, out, engine=ECHO, progress=False, overwrite=True)
    audit = audit_output(out)
    assert audit.ok and audit.on_disk == {"text/form000.png.txt", "text/form001.png.txt"}
    assert {d["doc_id"] for d in load_manifest(out)["documents"]} == {"form000.png", "form001.png"}
    assert (out / "notes.md").read_text() == "a user's own file"  # only ocrlab's files go
    with pytest.raises(ocrlab.ConfigError, match="exclude each other"):
        ocrlab.run(forms, out, engine=ECHO, progress=False, overwrite=True, resume=True)


@pytest.fixture
def small_fs() -> Iterator[Path]:
    """A 192 KiB tmpfs mounted for the test (root and mount permission needed)."""
    point = Path(tempfile.mkdtemp(prefix="ocrlab-fs-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        point.rmdir()
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip() or 'not root'})")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)
        point.rmdir()


@pytest.mark.slow
def test_disk_full_half_way_stops_then_resume_equals_an_uninterrupted_run(
    small_fs: Path, tmp_path: Path
) -> None:
    inputs = write_pages(tmp_path / "in", 60)
    out = small_fs / "out"
    args = ("run", str(inputs), "--out", str(out), "--engine", ECHO, "--workers", "2", "--quiet")
    full = run_to_end(*args, timeout=300)
    assert full.returncode == 4, full.stdout + full.stderr
    line = full.stderr.strip().splitlines()[-1]
    assert "no space left on the output filesystem after" in line and "--resume" in line
    done = int(line.split(" after ")[1].split()[0])
    manifest = load_manifest(out)
    assert manifest["status"] == "interrupted"
    assert manifest["run"]["stop_reason"].startswith("no space left")
    assert 0 < len(manifest["documents"]) == done < 60  # stopped early, not 60 failures
    assert all(d["status"] == "ok" for d in manifest["documents"])
    # text/ holds exactly the documents recorded: an artifact whose record could not be
    # written was removed with it
    assert audit_output(out).ok
    for rel in audit_output(out).on_disk:
        assert (out / rel).read_text().endswith("\f")  # never half-written
    subprocess.run(["mount", "-o", "remount,size=4m", str(small_fs)], check=True)
    resumed = run_to_end(*args, "--resume", timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"({done} kept" in resumed.stdout
    clean = tmp_path / f"clean-{uuid.uuid4().hex[:6]}"
    ocrlab.run(inputs, clean, engine=ECHO, workers=2, progress=False)
    assert artifact_texts(out) == artifact_texts(clean) and len(artifact_texts(out)) == 60
    assert load_manifest(out)["status"] == "complete" and audit_output(out).ok
    assert not (out / ".ocrlab-reserve").exists()


def test_a_run_left_behind_by_a_failed_test_is_killed_with_its_workers(tmp_path: Path) -> None:
    """What the autouse fixture does when a test fails before waiting for its run: the run,
    its loky workers and their children are gone, not left loading the next tests."""
    import psutil

    from tests.helpers import kill_leftover_runs

    inputs = write_pages(tmp_path / "in", 8)
    out = tmp_path / "out"
    proc = run_cli(str(inputs), "--out", str(out), "--workers", "2", "--engine", SLEEPY, "--quiet")
    _wait_for_lock_holder(out, proc.pid)
    deadline = time.monotonic() + 60
    while len(psutil.Process(proc.pid).children(recursive=True)) < 2:  # the workers
        assert time.monotonic() < deadline, "the run's workers did not start"
        time.sleep(0.05)
    tree = psutil.Process(proc.pid).children(recursive=True)
    assert kill_leftover_runs() == [proc.pid]
    assert proc.poll() is not None
    assert [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    assert kill_leftover_runs() == []  # nothing twice
