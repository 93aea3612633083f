"""The generated corpus: deterministic, as described, small, and readable by Tesseract."""

from __future__ import annotations

from pathlib import Path

import pypdfium2
import pytest
from PIL import Image

import ocrlab
from ocrlab.lab.accuracy import cer, ground_truth_path, score_run, wer
from ocrlab.lab.corpus import generate_bench_corpus, generate_corpus
from tests.conftest import DATA
from tests.helpers import file_tree


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    generate_corpus(out)
    return out


def test_same_seed_same_bytes_other_seed_other_text(generated: Path, tmp_path: Path) -> None:
    generate_corpus(tmp_path / "again")
    assert file_tree(generated) == file_tree(tmp_path / "again")
    generate_corpus(tmp_path / "other", seed=7)
    gt = "letters/letter-01.gt.txt"
    assert (tmp_path / "other" / gt).read_text() != (generated / gt).read_text()


def test_committed_data_matches_generator(generated: Path) -> None:
    """data/ is the generator's output: the ground truth (pure RNG output) must agree."""
    committed = {k: v for k, v in file_tree(DATA).items() if k.endswith((".gt.txt", ".md"))}
    fresh = {k: v for k, v in file_tree(generated).items() if k.endswith((".gt.txt", ".md"))}
    assert committed == fresh, "data/ is stale: run 'ocrlab corpus data'"
    assert set(file_tree(DATA)) == set(file_tree(generated))


def test_contents_formats_and_size(generated: Path) -> None:
    docs = {d.doc_id: d for d in ocrlab.discover([generated])}
    good = {k: d for k, d in docs.items() if not k.startswith("broken/")}
    assert sum(d.n_pages for d in good.values()) >= 12
    assert {d.fmt for d in good.values()} == {"png", "jpeg", "tiff", "bmp", "gif", "webp", "pdf"}
    with Image.open(generated / "reports/report.tif") as im:
        assert im.n_frames == 3 and im.info["compression"] == "group4"
    with Image.open(generated / "reports/memo.tif") as im:
        assert im.info["compression"] == "tiff_lzw"
    assert len(pypdfium2.PdfDocument(generated / "books/chapter.pdf")) == 3
    with Image.open(generated / "letters/letter-01.png") as im:
        assert im.size == (2480, 3508)  # A4 at 300 dpi
    for doc in good.values():
        assert ground_truth_path(doc.path) is not None, f"{doc.doc_id} has no ground truth"
    assert ground_truth_path(generated / "reports/memo.png").name == "memo.png.gt.txt"
    assert {k for k, d in docs.items() if not d.ok} == {
        "broken/empty.png",
        "broken/not-an-image.tif",
    }
    assert docs["broken/truncated.png"].fmt == "png"  # header intact, body cut
    assert sum(len(v) for v in file_tree(generated).values()) < 5 * 2**20
    scans = [k for k in file_tree(generated) if k.startswith("scans/") and k.endswith(".png")]
    assert 6 <= len(scans) <= 9 and "scans/clean-0-01.png" in scans
    assert sum(len(v) for k, v in file_tree(generated).items() if k.startswith("scans/")) < 2**20


@pytest.mark.parametrize("name", ["truncated.png", "not-an-image.tif", "empty.png"])
def test_broken_files_are_unreadable_by_pil(generated: Path, name: str) -> None:
    """Each broken file must fail to decode, or it would not exercise error handling."""
    # UnidentifiedImageError is an OSError; a truncated PNG raises OSError on load().
    with pytest.raises((OSError, SyntaxError)), Image.open(generated / "broken" / name) as im:
        im.load()
    assert ground_truth_path(generated / "broken" / name) is None


def test_error_rates() -> None:
    assert cer("hello world", "hello world") == 0.0
    assert cer("abcd", "abed") == pytest.approx(0.25)
    assert wer("one two three four", "one two tree four") == pytest.approx(0.25)
    assert cer("a\n\nb\f", "a b") == 0.0  # layout whitespace does not count


@pytest.mark.slow
def test_tesseract_reads_the_corpus(generated: Path, tmp_path: Path) -> None:
    summary = ocrlab.run(generated, tmp_path / "out", workers=2, progress=False)
    assert summary.documents_failed == 3  # the three broken files, and nothing else
    scores = score_run(tmp_path / "out")
    assert (
        len(scores) == summary.documents_ok == 11 + len(list((generated / "scans").glob("*.png")))
    )
    clean = [
        s
        for s in scores
        if not s["doc_id"].startswith("scans/") or s["doc_id"].startswith("scans/clean-")
    ]
    worst = max(clean, key=lambda s: s["cer"])
    assert worst["cer"] < 0.02, worst
    degraded = sorted(s["cer"] for s in scores if s not in clean)
    assert degraded[-1] > 0.2 and len({round(c, 3) for c in degraded}) >= 4, degraded


@pytest.mark.slow
def test_pytesseract_reads_each_kind_of_page(generated: Path) -> None:
    """Without the pipeline: a grayscale PNG, a G4 TIFF page, a PDF page rendered at 300 dpi."""
    import pytesseract

    def gt_page(doc: Path, page: int) -> str:
        gt = ground_truth_path(doc)
        assert gt is not None
        return gt.read_text(encoding="utf-8").split("\f")[page]

    png = generated / "letters/letter-01.png"
    tif = generated / "reports/report.tif"
    pdf_path = generated / "books/chapter.pdf"
    with Image.open(png) as im:
        cases = [(im.copy(), gt_page(png, 0))]
    with Image.open(tif) as im:
        im.seek(1)
        assert im.mode == "1" and im.info["compression"] == "group4"
        cases.append((im.copy(), gt_page(tif, 1)))
    pdf = pypdfium2.PdfDocument(pdf_path)
    try:
        cases.append((pdf[2].render(scale=300 / 72).to_pil(), gt_page(pdf_path, 2)))
    finally:
        pdf.close()
    for image, reference in cases:
        assert image.width >= 2480  # a full A4 page at 300 dpi
        assert cer(reference, pytesseract.image_to_string(image, lang="eng")) < 0.05


def test_bench_corpus_pages(tmp_path: Path) -> None:
    paths = generate_bench_corpus(tmp_path, pages=2)
    assert [p.name for p in paths] == ["a4-001.gt.txt", "a4-001.png", "a4-002.gt.txt", "a4-002.png"]
