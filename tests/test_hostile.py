"""Hostile inputs: each gets a clear error entry or a correct result, never a crash or a hang."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

import ocrlab
from ocrlab import PipelineError
from ocrlab.output.layout import OutputLayout
from ocrlab.output.manifest import load_manifest
from ocrlab.records import EngineSettings
from ocrlab.sources import discover
from ocrlab.worker import ocr_page
from tests.conftest import make_page


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A valid PNG header announcing ``width`` x ``height`` with almost no data (a bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )
    return path


def encrypted_pdf(path: Path) -> Path:
    """A minimal PDF with a standard security handler and an unknown password."""
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
        b"<< /Filter /Standard /V 1 /R 2 /O <"
        + b"11" * 32
        + b"> /U <"
        + b"22" * 32
        + b"> /P -4 >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += (
        b"trailer\n<< /Size %d /Root 1 0 R /Encrypt 4 0 R /ID [<%s><%s>] >>\n"
        b"startxref\n%d\n%%%%EOF\n" % (len(objs) + 1, b"ab" * 16, b"ab" * 16, xref)
    )
    path.write_bytes(bytes(out))
    return path


def huge_pdf(path: Path) -> Path:
    """A PDF whose page is 200 x 200 inches: 3600 megapixels at 300 dpi."""
    import pypdfium2

    pdf = pypdfium2.PdfDocument.new()
    pdf.new_page(14400, 14400)
    pdf.save(str(path))
    return path


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile") / "in"
    root.mkdir()
    png_bomb(root / "bomb.png", 100_000, 100_000)
    encrypted_pdf(root / "locked.pdf")
    huge_pdf(root / "poster.pdf")
    (root / "zero.tif").write_bytes(b"")
    (root / "letter.jpg").write_text("Dear reader, this is text.")
    make_page(root / "with space é 名前.png", "Unicode names work", (700, 120))
    make_page(root / "a" / "same.png", "First folder text", (700, 120))
    make_page(root / "b" / "same.png", "Second folder text", (700, 120))
    good = (root / "a" / "same.png").read_bytes()
    (root / "cut.png").write_bytes(good[: len(good) // 3])
    os.symlink(root / "loop2.png", root / "loop1.png")
    os.symlink(root / "loop1.png", root / "loop2.png")
    os.symlink(root, root / "a" / "back-to-root")
    return root


@pytest.fixture(scope="module")
def hostile_run(
    hostile: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, dict[str, Any]]]:
    out = tmp_path_factory.mktemp("hostile-out")
    summary = ocrlab.run(hostile, out, workers=2, max_megapixels=100, progress=False)
    assert summary.exit_code == 1
    return out, {d["doc_id"]: d for d in load_manifest(out)["documents"]}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("doc_id", "error_type", "needle"),
    [
        ("bomb.png", "PageTooLargeError", "100000x100000 px = 10000.0 MP, above the limit of 100"),
        ("poster.pdf", "PageTooLargeError", "at 300 dpi"),
        ("locked.pdf", "PdfiumError", "password"),
        ("zero.tif", "UnsupportedFormat", "empty (0 bytes)"),
        ("letter.jpg", "UnsupportedFormat", "not PNG, JPEG"),
        ("cut.png", "TesseractError", ""),
        ("loop1.png", "BrokenLink", "symbolic link to nothing"),
    ],
)
def test_hostile_inputs_become_error_entries(
    hostile_run: tuple[Path, dict[str, dict[str, Any]]], doc_id: str, error_type: str, needle: str
) -> None:
    doc = hostile_run[1][doc_id]
    assert doc["status"] == "failed" and doc["artifact"] is None
    [err] = doc["errors"]
    assert err["type"] == error_type and needle in err["message"], err


@pytest.mark.slow
def test_good_neighbours_of_hostile_inputs_are_correct(
    hostile_run: tuple[Path, dict[str, dict[str, Any]]],
) -> None:
    out, docs = hostile_run
    ok = {k for k, d in docs.items() if d["status"] == "ok"}
    assert ok == {"with space é 名前.png", "a/same.png", "b/same.png"}
    assert "Unicode" in (out / "text" / "with space é 名前.png.txt").read_text()
    assert "First" in (out / "text" / "a" / "same.png.txt").read_text()
    assert "Second" in (out / "text" / "b" / "same.png.txt").read_text()
    assert not any("back-to-root" in k for k in docs), "directory links are not followed"


def test_artifacts_never_escape_the_output_folder(tmp_path: Path) -> None:
    layout = OutputLayout(tmp_path / "out")
    layout.prepare()
    assert layout.artifact_path("a/b.png") == tmp_path / "out" / "text" / "a" / "b.png.txt"
    for evil in ("../x.png", "a/../../x.png", "", "/"):
        with pytest.raises(PipelineError):
            layout.artifact_path(evil)
    os.symlink(tmp_path, layout.text_dir / "link")
    with pytest.raises(PipelineError, match="escape"):
        layout.artifact_path("link/x.png")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can list any directory")
def test_unreadable_directory_is_reported(tmp_path: Path) -> None:
    make_page(tmp_path / "in" / "ok.png", "x")
    locked = tmp_path / "in" / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        docs = {d.doc_id: d for d in discover([tmp_path / "in"])}
    finally:
        locked.chmod(0o755)
    assert docs["locked"].error_type == "UnreadableDirectory"


# -- fuzzing the input side ------------------------------------------------------------------

SUFFIXES = [".png", ".tif", ".jpg", ".pdf", ".gif", ".bmp", ".webp"]


def _tiny_image(fmt: str) -> bytes:
    """A valid 16 x 16 image: random bytes almost never decode, so the readable case
    is given as an explicit example."""
    buffer = io.BytesIO()
    Image.new("L", (16, 16), 255).save(buffer, fmt)
    return buffer.getvalue()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=2048), suffix=st.sampled_from(SUFFIXES))
@example(data=_tiny_image("PNG"), suffix=".png")
@example(data=_tiny_image("TIFF"), suffix=".jpg")  # mislabelled: the content decides
def test_random_bytes_never_crash_discovery_or_a_worker(
    tmp_path: Path, data: bytes, suffix: str
) -> None:
    """Whatever the bytes, the file is one document: pages to OCR, or an error entry that
    names the file; and each page comes back as its own text or its own error."""
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    (doc,) = discover([path])  # an image or PDF extension is never skipped
    assert doc.doc_id == path.name
    if doc.ok:
        assert doc.error_type is None and doc.fmt is not None
        assert [t.page for t in doc.tasks] == list(range(1, doc.n_pages + 1)) != []
    else:
        assert doc.error_type and doc.tasks == ()
        assert path.name in (doc.error or ""), doc.error
    for task in doc.tasks:
        result = ocr_page(
            task, EngineSettings(engine="ocrlab.engines.fakes:echo", max_megapixels=5)
        )
        assert result.key == (doc.doc_id, task.page)
        if result.ok:  # the echo engine's text, whole: the page was decoded and read
            assert result.text == f"{doc.doc_id} page {task.page}\n" and result.error is None
        else:
            assert result.text is None and result.error_type and result.error, result


@pytest.mark.slow
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    flips=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=8
    ),
    cut=st.one_of(st.none(), st.integers(min_value=1)),
)
def test_mutated_real_images_never_crash_the_batch(
    tmp_path_factory: pytest.TempPathFactory, flips: list[tuple[int, int]], cut: int | None
) -> None:
    root = tmp_path_factory.mktemp("mut")
    good = make_page(root / "in" / "good.png", "Still readable", (500, 100))
    data = bytearray(good.read_bytes())
    for pos, value in flips:
        data[pos % len(data)] = value
    if cut is not None:
        data = data[: cut % len(data)]
    (root / "in" / "mutant.png").write_bytes(bytes(data))
    summary = ocrlab.run(
        root / "in", root / "out", workers=1, max_megapixels=5, page_timeout=30, progress=False
    )
    docs = {d["doc_id"]: d for d in load_manifest(root / "out")["documents"]}
    assert docs["good.png"]["status"] == "ok"
    assert docs["mutant.png"]["status"] in {"ok", "failed"}
    assert summary.documents == 2
