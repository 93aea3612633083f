"""Small helpers that several test files need: one copy each, imported from here.

Fixtures stay in ``conftest.py``; these are plain functions a test calls.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from tests.conftest import DATA, make_page


def artifact_texts(out: Path) -> dict[str, bytes]:
    """Every artifact of the run in ``out``, keyed by its path under ``text/``.

    Two runs wrote the same artifacts exactly when their ``texts`` are equal (the
    comparison the identity and resume tests make).
    """
    return {
        p.relative_to(out / "text").as_posix(): p.read_bytes()
        for p in sorted((out / "text").rglob("*.txt"))
    }


def file_tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative POSIX path -> bytes): a generated tree compared whole."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


#: Every run :func:`run_cli` started; what is still alive when its test ends (an assertion
#: failed before the test waited for it) is killed with its workers by
#: :func:`kill_leftover_runs`, so that one failure does not load the next tests.
_STARTED: list[subprocess.Popen[str]] = []


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``ocrlab run ARGS`` started in a process of its own (``env`` added to this one's);
    the caller waits, signals or kills it (and if it does not, the test's end does)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocrlab", "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    _STARTED.append(proc)
    return proc


def kill_leftover_runs() -> list[int]:
    """Kill every :func:`run_cli` run still alive, its workers and Tesseracts first; return
    their pids (an empty list when every test waited for its runs)."""
    import psutil

    killed = []
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is not None:
            continue
        try:
            tree = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            tree = []
        for child in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        proc.kill()
        proc.communicate()
        psutil.wait_procs(tree, timeout=10)
        killed.append(proc.pid)
    return killed


def run_to_end(
    *args: str, timeout: float = 300, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """``ocrlab ARGS`` to its end in a process of its own (``prefix`` runs it under another
    command, e.g. ``setpriv``), output captured; past ``timeout`` a hang fails the test."""
    return subprocess.run(
        [*prefix, sys.executable, "-m", "ocrlab", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def write_pages(root: Path, n: int, prefix: str = "p", size: tuple[int, int] | None = None) -> Path:
    """``n`` small readable PNG documents ``PREFIX000.png``... in ``root``; returns ``root``."""
    for i in range(n):
        path = root / f"{prefix}{i:03d}.png"
        text = f"{prefix} page {i}"
        if size is None:
            make_page(path, text)
        else:
            make_page(path, text, size)
    return root


def copy_data(dest: Path, rels: Iterable[str], ground_truth: bool = True) -> Path:
    """Copy files of the bundled ``data/`` (paths relative to it) into ``dest``, keeping
    their folders, with each one's ``NAME.gt.txt`` beside it when it has one."""
    for rel in rels:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DATA / rel, target)
        truth = (DATA / rel).with_name(Path(rel).name.rsplit(".", 1)[0] + ".gt.txt")
        if ground_truth and truth.exists():
            shutil.copy(truth, target.with_name(truth.name))
    return dest


def mixed_batch(folder: Path, shared: Path) -> Path:
    """The shared real scans and generated pages of four sizes, in sub-folders whose
    discovery order is not the cost order. Not the shared PDF: its second page holds a
    9000 x 9000 image that PDFium decodes whatever the dpi, 4-6 s of CPU on this loaded
    machine (measured in this test's traces), a page slower than its pixels by a factor no
    estimate knows: with it the test measured the machine's load, not the view."""
    for f in (shared / "real").iterdir():
        if f.suffix not in {".txt", ".pdf"}:
            (folder / "real").mkdir(parents=True, exist_ok=True)
            shutil.copy(f, folder / "real" / f.name)
    sizes = {"a-tiny": ((400, 120), 10), "b-a6": ((620, 877), 12), "c-a5": ((1240, 1754), 10)}
    sizes["d-a4"] = ((2480, 3508), 8)
    for name, (size, count) in sizes.items():
        for i in range(count):
            make_page(folder / name / f"p{i:02d}.png", f"{name} page {i}", size=size)
    return folder
