"""Discovery, format sniffing by content, document ids, page expansion."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from ocrlab import PipelineError
from ocrlab.sources import discover, sniff_format
from tests.conftest import make_page


def test_sniff_by_content_not_extension(tmp_path: Path) -> None:
    png_named_tif = tmp_path / "scan.tif"
    Image.new("L", (10, 10), 255).save(png_named_tif, format="PNG")
    assert sniff_format(png_named_tif.read_bytes()[:16]) == "png"
    assert sniff_format(b"%PDF-1.7\n") == "pdf"
    assert sniff_format(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"
    assert sniff_format(b"hello world") is None
    [doc] = discover([png_named_tif])
    assert doc.ok and doc.fmt == "png" and doc.n_pages == 1


def test_doc_ids_are_relative_paths_and_same_names_stay_apart(tmp_path: Path) -> None:
    make_page(tmp_path / "a" / "page.tif", "a")
    make_page(tmp_path / "b" / "page.tif", "b")
    make_page(tmp_path / "b" / "page.png", "b png")
    (tmp_path / "b" / "page.gt.txt").write_text("ground truth is not a document")
    ids = [d.doc_id for d in discover([tmp_path])]
    assert ids == ["a/page.tif", "b/page.png", "b/page.tif"]


def test_multipage_tiff_expands_to_pages(tmp_path: Path) -> None:
    frames = [Image.new("1", (200, 100), 1) for _ in range(3)]
    path = tmp_path / "multi.tif"
    frames[0].save(path, save_all=True, append_images=frames[1:], compression="group4")
    [doc] = discover([path])
    assert doc.n_pages == 3
    assert [(t.doc_id, t.page, t.n_pages) for t in doc.tasks] == [
        ("multi.tif", 1, 3),
        ("multi.tif", 2, 3),
        ("multi.tif", 3, 3),
    ]


def test_broken_files_become_error_documents(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("I am not a JPEG")
    (tmp_path / "cut.pdf").write_bytes(b"%PDF-1.4\n%%EOF")
    (tmp_path / "notes.txt").write_text("not a document, skipped")
    docs = {d.doc_id: d for d in discover([tmp_path])}
    assert set(docs) == {"cut.pdf", "empty.png", "text.jpg"}
    assert "empty (0 bytes)" in (docs["empty.png"].error or "")
    assert "not PNG, JPEG" in (docs["text.jpg"].error or "")
    assert docs["cut.pdf"].fmt == "pdf" and not docs["cut.pdf"].ok


def test_shared_corpus_invalid_pdf(shared_corpus: Path) -> None:
    docs = {d.doc_id: d for d in discover([shared_corpus])}
    assert not docs["bad/invalid.pdf"].ok
    assert docs["real/multipage.pdf"].n_pages == 6
    assert all(docs[k].ok for k in docs if k.startswith("real/"))


def test_missing_input_is_a_pipeline_error(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"not found: .*nope"):
        discover([tmp_path / "nope"])


def test_colliding_ids_are_refused(tmp_path: Path) -> None:
    make_page(tmp_path / "x" / "p.png", "x")
    make_page(tmp_path / "y" / "p.png", "y")
    with pytest.raises(PipelineError, match=r"same document id 'p\.png'"):
        discover([tmp_path / "x" / "p.png", tmp_path / "y" / "p.png"])


def test_two_inputs_with_the_same_non_document_do_not_collide(tmp_path: Path) -> None:
    """A README.txt (or a ground truth) in each of two inputs is passed over, not a clash;
    a real document under the same id as another still is, whichever side has the note."""
    for side in ("x", "y"):
        make_page(tmp_path / side / f"{side}.png", side)
        (tmp_path / side / "README.txt").write_text("scanned 2019", encoding="utf-8")
    docs = discover([tmp_path / "x", tmp_path / "y"])
    assert sorted(d.doc_id for d in docs) == ["x.png", "y.png"]
    for side in ("z", "w"):  # images named like notes: documents (content decides)
        make_page(tmp_path / side / "note.png", f"image {side}")
        (tmp_path / side / "note.png").rename(tmp_path / side / "README.txt")
    named = [d.doc_id for d in discover([tmp_path / "x", tmp_path / "z", tmp_path / "y"])]
    assert sorted(named) == ["README.txt", "x.png", "y.png"]  # one document of that id
    with pytest.raises(PipelineError, match=r"same document id 'README\.txt'.*z.*w"):
        discover([tmp_path / "x", tmp_path / "z", tmp_path / "y", tmp_path / "w"])


def test_symlink_loop_and_output_folder_are_skipped(tmp_path: Path) -> None:
    make_page(tmp_path / "in" / "p.png", "x")
    os.symlink(tmp_path / "in", tmp_path / "in" / "loop")
    make_page(tmp_path / "in" / "out" / "old.png", "previous output")
    docs = discover([tmp_path / "in"], exclude=[tmp_path / "in" / "out"])
    assert [d.doc_id for d in docs] == ["p.png"]


def test_group_prefix_and_bad_group_names(tmp_path: Path) -> None:
    make_page(tmp_path / "p.png", "x")
    assert [d.doc_id for d in discover([tmp_path], group="g1")] == ["g1/p.png"]
    with pytest.raises(PipelineError, match="group name"):
        discover([tmp_path], group="../up")
