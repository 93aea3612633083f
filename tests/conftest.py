"""Shared fixtures: corpora, small generated pages, a clean environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
SHARED_CORPUS = Path(os.environ.get("OCRLAB_SHARED_CORPUS", ROOT.parent / "shared" / "corpus"))

OCR_ENV = ("OCR_WORKERS", "OCR_MAX_WORKERS", "OCR_PARALLEL_DISABLED", "OCR_ENGINE", "OCR_LANG",
           "OCR_PSM", "OCR_DPI", "OCR_PAGE_TIMEOUT", "OCR_MAX_MEGAPIXELS",
           "OCR_INFLIGHT_PER_WORKER", "OCR_MONITOR_INTERVAL", "OCR_EXECUTOR", "OCR_PROGRESS",
           "OCR_LIVE_VIEW")


@pytest.fixture(autouse=True)
def clean_ocr_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from the defaults, whatever the developer's shell exports."""
    for name in OCR_ENV:
        monkeypatch.delenv(name, raising=False)


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
    paths = [make_page(tmp_path / "in" / ("a" if i % 2 else "b") / f"p{i:02d}.png", f"page {i}")
             for i in range(12)]
    yield paths
