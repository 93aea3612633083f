"""A fast start: facts remembered between runs, the pool started first, the
warm-up meeting, sizes from discovery; and the start-up errors still come before any page."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from importlib import metadata
from pathlib import Path

import psutil
import pytest
from PIL import Image

from ocrlab.config import load_config
from ocrlab.engines import facts as facts_mod
from ocrlab.engines.facts import tesseract_facts
from ocrlab.engines.registry import engine_version
from ocrlab.engines.tesseract import tesseract_version
from ocrlab.errors import ConfigError, OutputBusyError, PipelineError
from ocrlab.executor import ProcessPoolExecutor
from ocrlab.ordering import with_estimates
from ocrlab.output.lock import hold_output
from ocrlab.pipeline import run_groups
from ocrlab.pool import Pool
from ocrlab.records import RunContext
from ocrlab.runinfo import check_engine, run_metadata
from ocrlab.sources import discover
from ocrlab.warmup import warm, warm_up_together
from tests.conftest import ROOT
from tests.helpers import write_pages

FAKE_TESSERACT = """#!/bin/sh
echo "$1" >> "{log}"
case "$1" in
  --version) echo "tesseract {version}" ;;
  --list-langs)
    echo 'List of available languages in "{tessdata}/" (1):'
    for f in "{tessdata}"/*.traineddata; do f="${{f##*/}}"; echo "${{f%.traineddata}}"; done ;;
esac
"""


def _fake_tesseract(where: Path, version: str = "9.9.9") -> Path:
    """A ``tesseract`` that answers --version and --list-langs and logs every call."""
    tessdata = where / "tessdata"
    tessdata.mkdir(parents=True, exist_ok=True)
    (tessdata / "eng.traineddata").write_bytes(b"")
    exe = where / "bin" / "tesseract"
    exe.parent.mkdir(parents=True, exist_ok=True)
    exe.write_text(
        FAKE_TESSERACT.format(log=where / "calls.log", version=version, tessdata=tessdata)
    )
    exe.chmod(0o755)
    return exe


def _calls(where: Path) -> int:
    log = where / "calls.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.fixture()
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TESSDATA_PREFIX", raising=False)
    return tmp_path / "cache"


def test_facts_are_remembered_until_the_binary_or_its_traineddata_changes(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exe = _fake_tesseract(tmp_path)
    first = tesseract_facts(str(exe))
    assert first is not None and first.version == "9.9.9" and first.languages == {"eng"}
    assert _calls(tmp_path) == 2 and (cache_home / "ocrlab" / "tesseract-facts.json").exists()

    assert tesseract_facts(str(exe)) == first
    assert _calls(tmp_path) == 2, "asked again although nothing changed"

    (tmp_path / "tessdata" / "deu.traineddata").write_bytes(b"")  # a language pack installed
    assert tesseract_facts(str(exe)).languages == {"eng", "deu"}  # type: ignore[union-attr]
    assert _calls(tmp_path) == 4

    _fake_tesseract(tmp_path, version="9.9.10")  # the binary replaced (an upgrade)
    assert tesseract_facts(str(exe)).version == "9.9.10"  # type: ignore[union-attr]
    assert _calls(tmp_path) == 6

    os.utime(exe, ns=(time.time_ns(), time.time_ns() - 10**9))  # same size, new mtime
    tesseract_facts(str(exe))
    assert _calls(tmp_path) == 8

    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path / "tessdata"))
    tesseract_facts(str(exe))
    assert _calls(tmp_path) == 10
    tesseract_facts(str(exe))
    assert _calls(tmp_path) == 10

    monkeypatch.setattr(facts_mod, "MAX_AGE_S", -1.0)  # too old
    tesseract_facts(str(exe))
    assert _calls(tmp_path) == 12


def test_facts_survive_a_broken_or_unwritable_cache(tmp_path: Path, cache_home: Path) -> None:
    exe = _fake_tesseract(tmp_path)
    (cache_home / "ocrlab").mkdir(parents=True)
    (cache_home / "ocrlab" / "tesseract-facts.json").write_text("{not json")
    assert tesseract_facts(str(exe)).version == "9.9.9"  # type: ignore[union-attr]
    assert tesseract_facts(str(exe)).version == "9.9.9"  # type: ignore[union-attr]
    assert _calls(tmp_path) == 2  # the broken file was replaced
    shutil.rmtree(cache_home)
    cache_home.write_text("a file where the cache folder should be")
    assert tesseract_facts(str(exe)).version == "9.9.9"  # type: ignore[union-attr]
    assert tesseract_facts(str(tmp_path / "no-such-tesseract")) is None


def test_check_engine_with_the_remembered_facts(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exe = _fake_tesseract(tmp_path)
    monkeypatch.setenv("PATH", str(exe.parent))
    check_engine(load_config(lang="eng"))
    check_engine(load_config(lang="eng"))
    assert _calls(tmp_path) == 2
    with pytest.raises(ConfigError, match="no traineddata for fra"):
        check_engine(load_config(lang="eng+fra"))
    assert _calls(tmp_path) == 4  # a missing language is asked again before it is refused
    assert engine_version("pytesseract") == "9.9.9"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(PipelineError, match="Tesseract was not found"):
        check_engine(load_config())
    assert engine_version("pytesseract") is None


def test_remembered_version_is_the_binarys() -> None:
    if shutil.which("tesseract") is None:
        pytest.skip("no tesseract")
    facts = tesseract_facts()
    assert facts is not None and facts.version == tesseract_version()
    assert engine_version("pytesseract") == tesseract_version()


def test_run_metadata_versions_match_importlib_metadata() -> None:
    versions = run_metadata(load_config())["versions"]
    for dist in ("ocrlab", "joblib", "loky", "pytesseract", "Pillow", "pypdfium2", "psutil"):
        try:
            expected: str | None = metadata.version(dist)
        except metadata.PackageNotFoundError:
            expected = None
        assert versions[dist] == expected, dist


# -- the warm-up meeting ----------------------------------------------------------------


def test_every_worker_takes_one_warm_up_and_the_meeting_folder_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    pool = ProcessPoolExecutor(max_workers=2)
    try:
        meeting = warm(pool, 2, "ocrlab.engines.fakes:echo")
        assert meeting is not None
        [folder] = tmp_path.glob("ocrlab-warm-*")
        assert folder == Path(meeting.folder)
        meeting.go()
        pids = [f.result(timeout=120) for f in meeting.futures]
    finally:
        pool.shutdown(wait=True)
    # Both workers took a call unless one started over WARM_UP_HOLD_S after the other
    # (a loaded machine): then the early one took both, which is allowed.
    assert len(pids) == 2 and all(pids)
    deadline = time.monotonic() + 10
    while list(tmp_path.glob("ocrlab-warm-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not folder.exists()
    meeting.go()  # the meeting is over: nothing to tell


def test_meeting_folders_of_dead_runs_are_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (tmp_path / f"ocrlab-warm-{dead}-abc").mkdir()
    (tmp_path / f"ocrlab-warm-{os.getpid()}-abc").mkdir()  # a live run's
    pool = Pool.open(
        RunContext.single(write_pages(tmp_path / "in", 3), tmp_path / "out"),
        load_config(workers=2, engine="ocrlab.engines.fakes:echo"),
    )
    pool.close()
    left = sorted(p.name for p in tmp_path.glob("ocrlab-warm-*"))
    assert left == [f"ocrlab-warm-{os.getpid()}-abc"]  # the dead one's and the run's own gone


def test_warm_up_waits_for_the_siblings_never_twice(tmp_path: Path) -> None:
    engine = "ocrlab.engines.fakes:echo"
    alone = tmp_path / "alone"
    alone.mkdir()
    assert warm_up_together(engine, str(alone), 2, hold_s=0.2) == os.getpid()  # gives up
    t = time.monotonic()
    warm_up_together(engine, str(alone), 2, hold_s=60)  # this process came before: at once
    met = tmp_path / "met"
    met.mkdir()
    (met / "12345").touch()  # the sibling is there already
    warm_up_together(engine, str(met), 2, hold_s=60)
    coming = tmp_path / "coming"
    coming.mkdir()
    (coming / "go").touch()  # Meeting.go: no sibling is waited for
    warm_up_together(engine, str(coming), 2, hold_s=60)
    warm_up_together(engine, str(tmp_path / "gone"), 2, hold_s=60)  # the run ended
    assert time.monotonic() - t < 30  # generous: each waited 60 s if broken


# -- sizes from discovery ----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "TIFF"])
def test_discovery_keeps_the_size_it_read(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"page.{fmt.lower()}"
    Image.new("L", (613, 419), 255).save(path, fmt)
    [doc] = discover([str(path)])
    assert doc.tasks[0].pixels == 613 * 419
    path.unlink()  # the estimate must not need the file again
    [(_, task)] = list(with_estimates([(doc, doc.tasks[0])], 300))
    assert task.cost == round(613 * 419 / 1e6, 4)


def test_a_size_beyond_the_first_bytes_is_read_by_the_estimate(tmp_path: Path) -> None:
    path = tmp_path / "exif.jpg"
    exif = Image.Exif()
    exif[0x010E] = "x" * 3000  # ImageDescription: pushes the frame header past 1 KB
    Image.new("L", (300, 200), 255).save(path, "JPEG", exif=exif)
    [doc] = discover([str(path)])
    assert doc.tasks[0].pixels is None
    [(_, task)] = list(with_estimates([(doc, doc.tasks[0])], 300))
    assert task.cost == round(300 * 200 / 1e6, 4)


def test_a_multipage_tiff_keeps_the_first_size_only(tmp_path: Path) -> None:
    path = tmp_path / "two.tif"
    frames = [Image.new("L", (100, 50), 255), Image.new("L", (200, 80), 255)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    [doc] = discover([str(path)])
    assert [t.pixels for t in doc.tasks] == [5000, None]
    costs = [t.cost for _, t in with_estimates([(doc, t) for t in doc.tasks], 300)]
    assert costs == [0.005, 0.016]
    assert dataclasses.replace(doc.tasks[1], pixels=None) == doc.tasks[1]


# -- start-up order: refused runs stop before any page, and leave no process -------------


def _cli(*args: str, path_env: str | None = None) -> subprocess.CompletedProcess[str]:
    """``ocrlab run ARGS --workers 2``; asserts that none of its processes outlived it."""
    mark = uuid.uuid4().hex
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OCR_PROGRESS": "false",
        "OCRLAB_START_MARK": mark,
    }
    if path_env is not None:
        env["PATH"] = path_env
    proc = subprocess.run(
        [sys.executable, "-m", "ocrlab", "run", *args, "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert _marked(mark) == [], "a process of the refused run outlived it"
    return proc


def _marked(mark: str) -> list[int]:
    token = f"OCRLAB_START_MARK={mark}".encode()
    found = []
    for proc in psutil.process_iter():
        try:
            with open(f"/proc/{proc.pid}/environ", "rb") as fh:
                if token in fh.read().split(b"\0"):
                    found.append(proc.pid)
        except OSError:
            continue
    return found


def _no_run_output(out: Path) -> None:
    assert not (out / "trace.json").exists() and not (out / "results.json").exists()
    assert not (out / "text").exists()


def test_missing_tesseract_is_refused_before_any_page(tmp_path: Path) -> None:
    out = tmp_path / "out"
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    proc = _cli(str(write_pages(tmp_path / "in", 3)), "--out", str(out), path_env=str(empty))
    assert proc.returncode == 3, proc.stderr
    assert "Tesseract was not found" in proc.stderr
    _no_run_output(out)


def test_missing_input_is_refused_before_any_page(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_pages(tmp_path / "in", 3)
    proc = _cli(str(tmp_path / "in"), str(tmp_path / "missing"), "--out", str(out))
    assert proc.returncode == 3, proc.stderr
    assert "not found" in proc.stderr and "missing" in proc.stderr
    _no_run_output(out)


def test_busy_output_folder_is_refused_before_any_page(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with hold_output(out):
        proc = _cli(str(write_pages(tmp_path / "in", 3)), "--out", str(out))
    assert proc.returncode == 3, proc.stderr
    assert "in use" in proc.stderr
    _no_run_output(out)


def test_a_run_refused_after_its_pool_started_closes_the_pool(tmp_path: Path) -> None:
    out = tmp_path / "out"
    context = RunContext.single(write_pages(tmp_path / "in", 3), out)
    pool = Pool.open(context, load_config(workers=2, progress=False))
    assert pool.plan.kind == "pool" and pool.plan.workers == 2
    with hold_output(out), pytest.raises(OutputBusyError):
        run_groups(context, pool=pool)
    with pytest.raises(RuntimeError):  # shut down: takes no more work
        pool.executor.submit(os.getpid)
    pool.close()  # idempotent


def test_settings_that_cannot_run_start_no_process(tmp_path: Path) -> None:
    context = RunContext.single(
        write_pages(tmp_path / "in", 3), tmp_path / "out", resume=True, overwrite=True
    )
    before = {p.pid for p in psutil.Process().children()}
    with pytest.raises(ConfigError, match="exclude each other"):
        Pool.open(context, load_config(workers=2))
    with pytest.raises(ConfigError, match="need about"):
        Pool.open(
            RunContext.single(tmp_path / "in", tmp_path / "out"),
            load_config(workers=2, memory_budget_mb=100),
        )
    assert {p.pid for p in psutil.Process().children()} == before


def test_kill9_while_the_workers_start_leaves_no_process(tmp_path: Path) -> None:
    """The pool starts before the output lock: a main process killed once it has opened
    its trace, while its workers are still booting, must not leave them idle forever (a
    worker that finds its parent gone exits: see also the test below, killed earlier)."""
    mark = uuid.uuid4().hex
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OCRLAB_START_MARK": mark}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ocrlab",
            "run",
            str(write_pages(tmp_path / "in", 3)),
            "--out",
            str(out),
            "--workers",
            "2",
            "--quiet",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "trace.json").exists():
                break
            time.sleep(0.002)
        proc.kill()
    finally:
        proc.wait(timeout=60)
    deadline = time.monotonic() + 20
    while _marked(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _marked(mark) == [], "processes of the killed run are still alive"


def test_kill9_before_any_call_reaches_the_workers_leaves_no_process() -> None:
    """Killed right after the pool was asked to start, before a worker has had a call: each
    worker's first act (loky's initializer, ``procs.watch_parent``) sees its parent gone.
    Without the initializer the workers and loky's resource tracker stayed idle forever."""
    mark = uuid.uuid4().hex
    script = (
        "import os, signal\n"
        "from ocrlab.executor import ProcessPoolExecutor\n"
        "pool = ProcessPoolExecutor(max_workers=2)\n"
        "pool.submit(os.getpid)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OCRLAB_START_MARK": mark}
    for _ in range(3):  # the race is the point: try it a few times
        proc = subprocess.run([sys.executable, "-c", script], env=env, check=False, timeout=60)
        assert proc.returncode == -9
    deadline = time.monotonic() + 20
    while _marked(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _marked(mark) == [], "workers of the killed process are still alive"
