"""The notebooks' side of the formats: word boxes and low words in the page viewer, the
lowest-confidence pages, Spearman's rho between confidence and CER, format identity."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

import ocrlab
from ocrlab.bundles import bundled, unit_pages
from ocrlab.lab import confidence, identity, pageview, plots
from ocrlab.lab.analysis import trace_frames
from ocrlab.output.manifest import load_manifest
from ocrlab.records import PageTask
from tests.conftest import make_page


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A clean page, a noisy scan (low-confidence words) and a two-page TIFF, with TSV+hOCR."""
    root = tmp_path_factory.mktemp("lab")
    inputs = root / "in"
    make_page(inputs / "clean.png", "Plain words on a clean page", (800, 140))
    shutil.copy(data_dir / "scans" / "noise-0.85-01.png", inputs / "noisy.png")
    shutil.copy(data_dir / "scans" / "noise-0.85-01.gt.txt", inputs / "noisy.gt.txt")
    summary = ocrlab.run(inputs, root / "out", workers=2, formats="txt,tsv,hocr", progress=False)
    assert summary.exit_code == 0
    return root / "out"


def _pixels(im: Image.Image) -> list[tuple[int, int, int]]:
    raw = im.tobytes()
    return list(zip(raw[0::3], raw[1::3], raw[2::3], strict=True))


def _doc(out: Path, doc_id: str) -> dict[str, object]:
    return next(d for d in load_manifest(out)["documents"] if d["doc_id"] == doc_id)


def test_words_come_with_their_boxes_from_the_tsv_and_the_hocr(run_dir: Path) -> None:
    doc = _doc(run_dir, "noisy.png")
    words, size = confidence.page_words(run_dir, doc, 1)
    assert size is not None and len(words) == doc["confidence"]["words"] > 20
    only_hocr = {**doc, "formats": {"hocr": doc["formats"]["hocr"]}}
    from_hocr, hocr_size = confidence.page_words(run_dir, only_hocr, 1)
    assert hocr_size == size and [w.text for w in from_hocr] == [w.text for w in words]
    assert [(w.left, w.top, w.width, w.height) for w in from_hocr] == [
        (w.left, w.top, w.width, w.height) for w in words
    ]
    assert [int(w.conf) for w in from_hocr] == [int(w.conf) for w in words]
    assert confidence.page_words(run_dir, {**doc, "formats": {}}, 1) == ([], None)


def test_the_viewer_draws_boxes_coloured_by_confidence_and_lists_low_words(run_dir: Path) -> None:
    doc = _doc(run_dir, "noisy.png")
    info = pageview.page_info(run_dir, doc, 1)
    plain = Image.open(io.BytesIO(pageview.page_png(info.source, 1, info.fmt, 600))).convert("RGB")
    boxed = Image.open(io.BytesIO(pageview.page_png_with_words(info, 600))).convert("RGB")
    assert boxed.size == plain.size
    low = [w for w in confidence.page_words(run_dir, doc, 1)[0] if w.conf < 60]
    assert low, "the noisy scan has words below 60"
    # the page is grey; the boxes are colour: green-ish where sure, red-ish where not
    assert not [px for px in _pixels(plain) if not px[0] == px[1] == px[2]]
    pixels = _pixels(boxed)
    assert sum(1 for r, g, b in pixels if g > r + 60) > 100
    assert sum(1 for r, g, b in pixels if r > g + 60 and r > b + 60) > 20
    html = pageview.low_words(info)
    assert f"{len(low)} of" in html and "below confidence 60" in html
    assert "below confidence" in pageview.page_html(info)
    clean = pageview.page_info(run_dir, _doc(run_dir, "clean.png"), 1)
    assert "no word below confidence 60" in pageview.low_words(clean)
    assert confidence.colour(0) == (200, 30, 30) and confidence.colour(100) == (40, 160, 60)


def test_lowest_confidence_pages_come_from_the_trace(run_dir: Path) -> None:
    frames = trace_frames(run_dir / "trace.json")
    table = confidence.lowest_confidence_pages(frames.pages, 5)
    assert isinstance(table, pd.DataFrame) and table["doc_id"].iloc[0] == "noisy.png"
    assert table["conf_mean"].is_monotonic_increasing
    txt_only = frames.pages.assign(conf_mean=None)
    assert "no confidences" in str(confidence.lowest_confidence_pages(txt_only))


def test_spearman_is_pearson_on_ranks_ties_shared() -> None:
    x = [1.0, 2.0, 2.0, 3.0, 10.0, 4.0]
    y = [0.9, 0.5, 0.6, 0.3, 0.1, 0.2]
    expected = pd.Series(x).rank().corr(pd.Series(y).rank())  # Pearson on average ranks
    assert confidence.spearman(x, y) == pytest.approx(expected)
    assert confidence.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert confidence.spearman([1, 1, 1], [1, 2, 3]) is None
    assert confidence.spearman([1, 2], [1, 2]) is None
    rows = [{"label": "a", "conf_mean": c, "cer": e} for c, e in zip(x, y, strict=True)]
    rows.append({"label": "b", "conf_mean": 1.0, "cer": None})
    found = confidence.confidence_cer_correlation(rows, "a")
    assert found["pages"] == 6 and found["spearman"] == pytest.approx(expected, abs=1e-4)
    figure = plots.confidence_vs_cer(rows, "a")
    assert "Spearman rho" in figure.axes[0].get_title()


def test_format_identity_is_file_by_file(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    same = identity.compare_formats(run_dir, copy)
    assert len(same) == 2 * 3 and same["identical"].all()
    assert identity.by_format(same).to_dict("list") == {
        "format": ["txt", "tsv", "hocr"],
        "files": [2, 2, 2],
        "identical": [2, 2, 2],
    }
    (copy / "hocr" / "clean.png.hocr").write_text("changed")
    changed = identity.compare_formats(run_dir, copy)
    assert changed.loc[~changed["identical"], ["doc_id", "format"]].values.tolist() == [
        ["clean.png", "hocr"]
    ]


def test_pdf_pages_and_image_pages_share_no_bundle_when_a_pdf_is_asked() -> None:
    tasks = [
        PageTask(f"d{i}", f"/in/{i}", 1, 1, "pdf" if i % 2 else "png", cost=1.0) for i in range(6)
    ]
    mixed = [[t.fmt for t in unit_pages(u)] for u in bundled(tasks, 10.0, 1)]
    apart = [[t.fmt for t in unit_pages(u)] for u in bundled(tasks, 10.0, 1, pdf_apart=True)]
    assert any(len(set(u)) > 1 for u in mixed) and len(mixed) == 1
    # apart, but as few bundles as the kinds need: one of each, not six pages alone
    assert sorted(apart) == [["pdf"] * 3, ["png"] * 3]
