"""Shared fixtures: corpora, small generated pages, a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from PIL import Image, ImageDraw

from ocrlab.settings import ENV_VARS

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
SHARED_CORPUS = Path(os.environ.get("OCRLAB_SHARED_CORPUS", ROOT.parent / "shared" / "corpus"))


#: Every process this test session starts inherits this variable (pytest itself, loky
#: workers, ``ocrlab`` subprocesses, their Tesseracts), so tests can tell their own
#: Tesseracts from another program's on the same host, even after a ``kill -9`` has
#: re-parented them away from the test's process tree.
SESSION_TOKEN = f"OCRLAB_TEST_SESSION={uuid.uuid4().hex}"
os.environ["OCRLAB_TEST_SESSION"] = SESSION_TOKEN.partition("=")[2]


def own_tesseracts() -> list[psutil.Process]:
    """Live (non-zombie) Tesseract processes started by this test session, and no others."""
    token = SESSION_TOKEN.encode()
    out = []
    for proc in psutil.process_iter(["name", "status"]):
        if proc.info["name"] != "tesseract" or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            with open(f"/proc/{proc.pid}/environ", "rb") as fh:
                if token in fh.read().split(b"\0"):
                    out.append(proc)
        except OSError:  # gone, or not ours to read: not ours either way
            continue
    return out


@pytest.fixture(autouse=True)
def clean_ocr_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from the defaults, whatever the developer's shell exports: every
    variable of the settings table is cleared."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _no_run_outlives_its_test() -> Iterator[None]:
    """A run a test started with ``tests.helpers.run_cli`` and did not wait for (its
    assertion failed first) is killed with its workers when the test ends."""
    yield
    from tests.helpers import kill_leftover_runs

    kill_leftover_runs()


@pytest.fixture(scope="session")
def shared_corpus() -> Path:
    if not (SHARED_CORPUS / "real").is_dir():
        pytest.skip(f"shared corpus not found at {SHARED_CORPUS} (set OCRLAB_SHARED_CORPUS)")
    return SHARED_CORPUS


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not any(DATA.rglob("*.gt.txt")):
        pytest.skip("data/ is empty; run 'ocrlab corpus data' first")
    return DATA


def ocrlab_command(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``python -m ocrlab ARGS...`` as a user runs it: its own process, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "ocrlab", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def make_page(path: Path, text: str, size: tuple[int, int] = (400, 120)) -> Path:
    """A small real image with ``text`` drawn on it (readable by Tesseract)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("L", size, 255)
    ImageDraw.Draw(im).text((10, 40), text, fill=0, font_size=28)
    im.save(path)
    return path


@pytest.fixture
def small_pages(tmp_path: Path) -> Iterator[list[Path]]:
    """Twelve tiny PNG documents under tmp_path/in/, in two sub-folders."""
    paths = [
        make_page(tmp_path / "in" / ("a" if i % 2 else "b") / f"p{i:02d}.png", f"page {i}")
        for i in range(12)
    ]
    yield paths
