"""TSV, hOCR, ALTO and searchable PDFs from the one Tesseract call per page, with real Tesseract.

What is proven here: the setting and its start-up refusals; a page's fragments are
the same alone and in a list (what bundles rely on); the files of a real run are
well-formed, numbered by document page, free of temporary paths, and their
confidences are the TSV's; every format is byte-identical across worker counts,
bundles, orders and ``--resume``; ``text/`` does not change with ``formats``; the PDF
layer reads back (and a layer that does not is an error); a failed page leaves its
document's files with the pages that were read.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import stat
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

import ocrlab
from ocrlab.config import load_config
from ocrlab.engines.tesseract import pytesseract_engine, pytesseract_list_outputs
from ocrlab.errors import ConfigError
from ocrlab.output.audit import audit_output
from ocrlab.output.confidence import fixed_alto_wc, percentile, tsv_confidences
from ocrlab.output.documents import write_formats
from ocrlab.output.formats import check_formats, page_outputs
from ocrlab.output.layout import OutputLayout
from ocrlab.output.manifest import load_manifest
from ocrlab.output.pdf import PdfLayerError, layer_cer
from ocrlab.output.trace_reader import load_trace
from ocrlab.output.trace_schema import is_page
from ocrlab.parts import PagePart
from ocrlab.records import EngineSettings, PageResult, PageTask
from tests.conftest import make_page

ALL = "txt,tsv,hocr,alto,pdf"
STRUCTURED = ("tsv", "hocr", "alto", "pdf")
PYTHON = sys.executable


def _tiff_pages(path: Path, lines: list[str]) -> Path:
    """A multi-page TIFF, one line of text per page (its pages go to Tesseract as PNM)."""
    frames = []
    for line in lines:
        im = Image.new("L", (900, 200), 255)
        ImageDraw.Draw(im).text((20, 70), line, fill=0, font_size=36)
        frames.append(im)
    frames[0].save(path, save_all=True, append_images=frames[1:], dpi=(200, 200))
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, shared_corpus: Path, data_dir: Path) -> Path:
    """Real scans, a PDF input, a multi-page TIFF and small pages that travel in bundles."""
    root = tmp_path_factory.mktemp("formats") / "in"
    root.mkdir()
    for name in ("phototest.tif", "eurotext.tif"):
        shutil.copy(shared_corpus / "real" / name, root / name)
    shutil.copy(data_dir / "books" / "chapter.pdf", root / "chapter.pdf")
    _tiff_pages(
        root / "three.tiff",
        ["The first page of three", "A second page follows", "And the third one ends it"],
    )
    make_page(root / "small" / "a.png", "Alpha bravo charlie delta", (700, 140))
    make_page(root / "small" / "b.png", "Echo foxtrot golf hotel", (700, 140))
    return root


def _run(corpus: Path, out: Path, **options: object) -> ocrlab.RunSummary:
    options.setdefault("workers", 2)
    summary = ocrlab.run(corpus, out, dpi=150, progress=False, overwrite=True, **options)
    assert summary.exit_code == 0, summary.failures
    return summary


@pytest.fixture(scope="module")
def full_run(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("all-formats")
    _run(corpus, out, formats=ALL)
    return out


def _digests(out: Path) -> dict[str, str]:
    """Every file of every format folder, by relative path: its SHA-256."""
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in ("text", *STRUCTURED)
        if (out / folder).is_dir()
        for p in sorted((out / folder).rglob("*"))
        if p.is_file()
    }


def _docs(out: Path) -> dict[str, dict[str, object]]:
    return {d["doc_id"]: d for d in load_manifest(out)["documents"]}


# -- the setting and its refusals -----------------------------------------------------------------


def test_formats_setting_is_canonical_and_always_has_the_text() -> None:
    assert load_config().formats == ("txt",)
    assert load_config(formats="pdf, hocr ,TSV").formats == ("txt", "tsv", "hocr", "pdf")
    assert load_config(env={"OCR_FORMATS": "alto"}).formats == ("txt", "alto")
    assert load_config(formats=["txt", "tsv"]).formats == ("txt", "tsv")
    with pytest.raises(ConfigError, match=r"unknown format\(s\) docx.*txt, tsv, hocr"):
        load_config(formats="txt,docx")
    with pytest.raises(ConfigError, match=r"OCR_FORMATS.*empty"):
        load_config(env={"OCR_FORMATS": " , "})
    with pytest.raises(ConfigError, match="conf_low"):
        load_config(conf_low=101)


def test_what_cannot_be_written_is_refused_at_start_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"PAGE XML\) needs Tesseract 5\.4\.0 or newer.*5\.3"):
        check_formats(("txt", "page"), "pytesseract")
    with pytest.raises(ConfigError, match="'tesserocr' cannot write alto, pdf"):
        check_formats(("txt", "alto", "pdf"), "tesserocr")
    check_formats(("txt", "tsv", "hocr"), "tesserocr")
    monkeypatch.setitem(sys.modules, "pikepdf", None)  # as if the pdf extra were missing
    with pytest.raises(ConfigError, match=r"pikepdf.*ocrlab\[pdf\]"):
        check_formats(("txt", "pdf"), "pytesseract")
    monkeypatch.undo()
    page = make_page(tmp_path / "in" / "p.png", "refused before any page")
    result = subprocess.run(
        [
            PYTHON,
            "-m",
            "ocrlab.cli",
            "run",
            str(page.parent),
            "--out",
            str(tmp_path / "o"),
            "--formats",
            "txt,page",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "configuration error" in result.stderr and "5.4.0" in result.stderr
    assert not (tmp_path / "o" / "text").exists()


# -- a page's fragments: alone or in a list, the same bytes ---------------------------------------


def _tasks(corpus: Path) -> list[PageTask]:
    paths = [corpus / "phototest.tif", corpus / "small" / "a.png", corpus / "small" / "b.png"]
    return [PageTask(f"doc{i}/{p.name}", str(p), 1, 1, "png") for i, p in enumerate(paths)]


def test_a_page_in_a_list_gives_the_fragments_it_gives_alone(corpus: Path, tmp_path: Path) -> None:
    settings = EngineSettings(formats=("txt", "tsv", "hocr", "alto", "pdf"))
    alone_dir, list_dir = tmp_path / "alone", tmp_path / "list"
    tasks = _tasks(corpus)
    alone = []
    for task in tasks:
        raw = pytesseract_engine(task.path, task, settings)
        assert isinstance(raw, dict) and set(raw) == {"txt", "tsv", "hocr", "alto", "pdf"}
        found = page_outputs(
            [task], raw, EngineSettings(**{**settings.__dict__, "tmp_dir": str(alone_dir)})
        )
        assert found is not None
        alone.append(found[0])
    listed = pytesseract_list_outputs([t.path for t in tasks], settings)
    assert listed is not None
    together = page_outputs(
        tasks, listed[1], EngineSettings(**{**settings.__dict__, "tmp_dir": str(list_dir)})
    )
    assert together is not None
    for (parts_a, conf_a), (parts_b, conf_b) in zip(alone, together, strict=True):
        assert [p.fmt for p in parts_a] == ["tsv", "hocr", "alto", "pdf"]
        assert [p.read() for p in parts_a] == [p.read() for p in parts_b]
        assert conf_a == conf_b and conf_a is not None and conf_a.words > 2
    hocr = alone[2][0][1].read().decode()
    assert "id='page_1'" in hocr and 'image "doc2/b.png"' in hocr and str(tmp_path) not in hocr


def test_a_pages_result_stays_small_when_its_parts_wait_in_the_temporary_folder(
    corpus: Path, tmp_path: Path
) -> None:
    """The PDF page is ~40 KB here and MBs for a scan: by path it costs ~100 bytes."""
    task = _tasks(corpus)[0]
    settings = EngineSettings(formats=("txt", "tsv", "hocr", "alto", "pdf"))
    raw = pytesseract_engine(task.path, task, settings)
    assert isinstance(raw, dict)
    on_disk = page_outputs(
        [task], raw, EngineSettings(**{**settings.__dict__, "tmp_dir": str(tmp_path)})
    )
    inline = page_outputs(
        [task], raw, EngineSettings(**{**settings.__dict__, "tmp_dir": str(tmp_path / "elsewhere")})
    )
    assert on_disk is not None and inline is not None
    by_path = pickle.dumps(PageResult(task.doc_id, 1, "x", parts=on_disk[0][0]))
    by_value = pickle.dumps(PageResult(task.doc_id, 1, "x", parts=inline[0][0]))
    weight = sum(len(p.read()) for p in on_disk[0][0])
    assert len(by_path) < 2000 < weight <= len(by_value)
    assert all(p.data is None and Path(str(p.path)).is_file() for p in on_disk[0][0])


# -- the files of a real run ----------------------------------------------------------------------


def test_every_format_has_its_file_per_document_in_page_order(full_run: Path) -> None:
    docs = _docs(full_run)
    assert len(docs) == 6 and all(d["status"] == "ok" for d in docs.values())
    for doc_id, doc in docs.items():
        formats = doc["formats"]
        assert isinstance(formats, dict) and list(formats) == ["txt", *STRUCTURED], doc_id
        for entry in formats.values():
            path = full_run / entry["path"]
            assert (
                path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
            )
        assert formats["hocr"]["path"] == f"hocr/{doc_id}.hocr"
        assert formats["alto"]["path"] == f"alto/{doc_id}.xml"
    three = (full_run / "hocr" / "three.tiff.hocr").read_text("utf-8")
    assert [three.index(f"id='page_{n}'") for n in (1, 2, 3)] == sorted(
        three.index(f"id='page_{n}'") for n in (1, 2, 3)
    )
    assert three.index("first") < three.index("second") < three.index("third")
    tsv_pages = [
        line.split("\t")[1]
        for line in (full_run / "tsv" / "three.tiff.tsv").read_text().splitlines()[1:]
    ]
    assert sorted(set(tsv_pages)) == ["1", "2", "3"] and tsv_pages == sorted(tsv_pages)
    assert audit_output(full_run).ok


def test_markup_is_well_formed_names_the_document_and_holds_no_temporary_path(
    full_run: Path,
) -> None:
    alto_ns = "{http://www.loc.gov/standards/alto/ns-v3#}"
    for doc_id, doc in _docs(full_run).items():
        for fmt in ("hocr", "alto"):
            raw = (full_run / doc["formats"][fmt]["path"]).read_bytes()
            root = ET.fromstring(raw)  # well-formed XML, or this raises
            text = raw.decode("utf-8")
            assert "/tmp" not in text and "ocrlab-run-" not in text and "tess_" not in text
            assert doc_id in text
        alto = ET.fromstring((full_run / doc["formats"]["alto"]["path"]).read_bytes())
        pages = alto.findall(f".//{alto_ns}Page")
        assert len(pages) == doc["pages"]
        assert [p.get("ID") for p in pages] == [f"page_{i}" for i in range(doc["pages"])]
        wc = [float(s.get("WC", "nan")) for s in alto.iter(f"{alto_ns}String")]
        assert wc and all(0.0 <= v <= 1.0 for v in wc)
        # ...and they are Tesseract's word confidences (its TSV), not 5.3's "0." + int
        confs = tsv_confidences((full_run / doc["formats"]["tsv"]["path"]).read_text("utf-8"))
        assert [round(v, 2) for v in wc] == [int(c) / 100 for c in confs]
        root = ET.fromstring((full_run / doc["formats"]["hocr"]["path"]).read_bytes())
        assert root.find(".//{http://www.w3.org/1999/xhtml}title").text == doc_id


def test_confidences_in_the_manifest_and_the_trace_are_the_tsvs(full_run: Path) -> None:
    spans = {
        (e["args"]["doc_id"], e["args"]["page"]): e["args"]
        for e in load_trace(full_run / "trace.json")
        if is_page(e)
    }
    for doc_id, doc in _docs(full_run).items():
        tsv = (full_run / doc["formats"]["tsv"]["path"]).read_text("utf-8")
        confs = tsv_confidences(tsv)
        conf = doc["confidence"]
        assert conf["words"] == len(confs) and conf["conf_low"] == 60.0
        assert conf["conf_mean"] == pytest.approx(statistics.fmean(confs), abs=1e-4)
        assert conf["conf_p10"] == pytest.approx(percentile(confs, 10), abs=1e-4)
        assert conf["words_low"] == sum(1 for c in confs if c < 60)
        assert [p["page"] for p in conf["pages"]] == list(range(1, doc["pages"] + 1))
        for page in conf["pages"]:
            rows = [
                line for line in tsv.splitlines()[1:] if line.split("\t")[1] == str(page["page"])
            ]
            mine = tsv_confidences("\n".join(rows))
            assert page["words"] == len(mine)
            if mine:
                assert page["conf_mean"] == pytest.approx(statistics.fmean(mine), abs=1e-4)
            span = spans[(doc_id, page["page"])]
            assert {k: span[k] for k in ("conf_mean", "conf_p10", "words", "words_low")} == {
                k: page[k] for k in ("conf_mean", "conf_p10", "words", "words_low")
            }
    assert sum(d["confidence"]["words"] for d in _docs(full_run).values()) > 100


def test_the_searchable_pdf_keeps_pages_and_sizes_and_reads_back(
    full_run: Path, corpus: Path
) -> None:
    import pikepdf

    docs = _docs(full_run)
    for doc_id, doc in docs.items():
        entry = doc["formats"]["pdf"]
        assert entry["layer_cer"] < 0.01, doc_id
        data = (full_run / entry["path"]).read_bytes()
        texts = (full_run / doc["artifact"]).read_text("utf-8").split("\f")[: doc["pages"]]
        assert (
            layer_cer(
                data,
                list(enumerate(texts, 1)),
                doc_id,
                None if doc["format"] != "pdf" else str(corpus / doc_id),
            )
            == entry["layer_cer"]
        )
        with pikepdf.open(io.BytesIO(data)) as pdf:
            assert len(pdf.pages) == doc["pages"]
            if doc["format"] == "pdf":  # a PDF input keeps its own metadata
                with pikepdf.open(corpus / doc_id) as original:
                    assert dict(pdf.docinfo) == dict(original.docinfo)
            else:  # a new document: fixed metadata, no date without SOURCE_DATE_EPOCH
                assert str(pdf.docinfo["/Title"]) == doc_id
                assert "/CreationDate" not in pdf.docinfo
    # image inputs: sized by the resolution they state, also a multi-page TIFF's pages
    # (Tesseract gets those as PNM, which states none: it sized them at 70 dpi)
    with pikepdf.open(full_run / "pdf" / "phototest.tif.pdf") as pdf:
        assert [float(v) for v in pdf.pages[0].mediabox] == [0, 0, 640 * 72 / 200, 480 * 72 / 200]
    with pikepdf.open(full_run / "pdf" / "three.tiff.pdf") as pdf:
        for page in pdf.pages:
            assert [float(v) for v in page.mediabox] == [0, 0, 900 * 72 / 200, 200 * 72 / 200]
    # a PDF input: its own pages, boxes and content streams untouched, the layer in front
    with (
        pikepdf.open(corpus / "chapter.pdf") as original,
        pikepdf.open(full_run / "pdf" / "chapter.pdf.pdf") as made,
    ):
        assert len(made.pages) == len(original.pages)
        for before, after in zip(original.pages, made.pages, strict=True):
            assert list(after.mediabox) == list(before.mediabox)
            contents = after.obj.Contents
            assert isinstance(contents, pikepdf.Array) and len(contents) == 2
            assert contents[1].read_raw_bytes() == before.obj.Contents.read_raw_bytes()
            assert (
                contents[0].read_bytes().startswith(b"q ")
                and b"/OcrText Do Q" in contents[0].read_bytes()
            )


def test_text_does_not_change_with_formats(corpus: Path, full_run: Path, tmp_path: Path) -> None:
    _run(corpus, tmp_path / "txt")
    assert _digests(tmp_path / "txt") == {
        k: v for k, v in _digests(full_run).items() if k.startswith("text/")
    }
    assert "formats" not in next(iter(_docs(tmp_path / "txt").values()))  # txt alone: as before


@pytest.mark.slow
def test_every_format_is_identical_across_workers_bundles_and_order(
    corpus: Path, full_run: Path, tmp_path: Path
) -> None:
    reference = _digests(full_run)
    assert len(reference) == 6 * 5
    trace = load_trace(full_run / "trace.json")
    assert any("bundle" in e["args"] for e in trace if is_page(e))  # the small pages shared one
    _run(corpus, tmp_path / "seq", workers=1, bundle_mp=0, order="discovery", formats=ALL)
    assert _digests(tmp_path / "seq") == reference
    _run(corpus, tmp_path / "nobundle", workers=2, bundle_mp=0, formats=ALL)
    assert _digests(tmp_path / "nobundle") == reference


@pytest.mark.slow
def test_resume_redoes_documents_lacking_an_asked_format(
    corpus: Path, full_run: Path, tmp_path: Path
) -> None:
    """A change of ``formats`` is a change of settings for the documents that lack one: they
    are redone (every format from one recognition); those that have every asked format
    are kept, also when they have more than is asked now."""
    out = tmp_path / "resumed"
    _run(corpus, out, formats="txt,tsv")
    summary = ocrlab.run(corpus, out, dpi=150, progress=False, resume=True, formats="txt,tsv")
    assert summary.documents_kept == 6
    assert _resume_figures(out)["by_stamp"] == 6  # every file's stamp recorded: none read
    os.utime(out / "tsv" / "three.tiff.tsv")  # touched, the same content: hashed, kept
    summary = ocrlab.run(corpus, out, dpi=150, progress=False, resume=True, formats="txt,tsv")
    assert summary.documents_kept == 6
    assert {k: _resume_figures(out)[k] for k in ("by_stamp", "hashed")} == {
        "by_stamp": 5,
        "hashed": 1,
    }
    summary = ocrlab.run(corpus, out, dpi=150, progress=False, resume=True, formats=ALL)
    assert summary.documents_kept == 0 and summary.exit_code == 0
    assert _digests(out) == _digests(full_run)
    summary = ocrlab.run(corpus, out, dpi=150, progress=False, resume=True, formats="txt,hocr")
    assert summary.documents_kept == 6  # hOCR is there (and the rest stays listed)
    assert _digests(out) == _digests(full_run) and audit_output(out).ok
    (out / "hocr" / "three.tiff.hocr").write_text("changed")
    summary = ocrlab.run(corpus, out, dpi=150, progress=False, resume=True, formats="txt,hocr")
    assert summary.documents_kept == 5
    docs = _docs(out)
    assert list(docs["three.tiff"]["formats"]) == ["txt", "hocr"]  # what was asked, no more
    assert not (out / "pdf" / "three.tiff.pdf").exists() and audit_output(out).ok
    assert (out / "hocr" / "three.tiff.hocr").read_bytes() == (
        full_run / "hocr" / "three.tiff.hocr"
    ).read_bytes()
    hocr = out / "hocr" / "three.tiff.hocr"
    before = hocr.stat()
    hocr.write_bytes(hocr.read_bytes().replace(b"<", b"{", 1))  # same size, mtime set back
    os.utime(hocr, ns=(before.st_atime_ns, before.st_mtime_ns))
    summary = ocrlab.run(corpus, out, dpi=150, progress=False, resume=True, formats="txt,hocr")
    assert summary.documents_kept == 5, "the format file's ctime gives the rewrite away"
    assert hocr.read_bytes() == (full_run / "hocr" / "three.tiff.hocr").read_bytes()


def _resume_figures(out: Path) -> dict[str, Any]:
    """The keep decisions of the resumed run in ``out`` (its trace's run_end)."""
    end = load_trace(out / "trace.json")[-1]
    assert end["name"] == "run_end"
    figures: dict[str, Any] = end["args"]["resume"]
    return figures


# -- what Tesseract starts: one process per page (or bundle), whatever the formats ----------------


def test_extra_formats_start_no_extra_tesseract(corpus: Path, tmp_path: Path) -> None:
    real = shutil.which("tesseract")
    assert real is not None
    log = tmp_path / "starts.log"
    wrapper = tmp_path / "bin" / "tesseract"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho "$1" >> {log}\nexec {real} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    inputs = tmp_path / "in"
    shutil.copytree(corpus / "small", inputs)
    shutil.copy(corpus / "three.tiff", inputs)
    os.environ["PATH"] = f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}"
    try:
        counts = []
        for formats in ("txt", "txt,tsv,hocr,alto"):
            log.unlink(missing_ok=True)
            _run(inputs, tmp_path / formats, formats=formats)
            started = [line for line in log.read_text().splitlines() if not line.startswith("--")]
            counts.append(len(started))
    finally:
        os.environ["PATH"] = os.environ["PATH"].split(os.pathsep, 1)[1]
    assert counts[0] == counts[1] and 1 <= counts[0] <= 5  # 5 pages, some in one list


# -- failures -------------------------------------------------------------------------------------


def test_a_failed_page_leaves_the_pages_read_and_the_manifest_says_so(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    big = Image.new("L", (2600, 2600), 255)
    ImageDraw.Draw(big).text((40, 40), "too large", fill=0, font_size=40)
    small = [Image.new("L", (900, 200), 255) for _ in range(2)]
    for im, line in zip(small, ("Before the large page", "After the large page"), strict=True):
        ImageDraw.Draw(im).text((20, 70), line, fill=0, font_size=36)
    small[0].save(inputs / "mixed.tiff", save_all=True, append_images=[big, small[1]])
    big.save(inputs / "only-large.png")
    out = tmp_path / "out"
    summary = ocrlab.run(inputs, out, workers=2, formats=ALL, max_megapixels=5, progress=False)
    assert summary.exit_code == 1
    docs = _docs(out)
    mixed = docs["mixed.tiff"]
    assert mixed["status"] == "partial" and mixed["pages_ok"] == 2
    assert list(mixed["formats"]) == ["txt", *STRUCTURED]
    hocr = (out / "hocr" / "mixed.tiff.hocr").read_text()
    assert "id='page_1'" in hocr and "id='page_3'" in hocr and "id='page_2'" not in hocr
    assert {
        line.split("\t")[1]
        for line in (out / "tsv" / "mixed.tiff.tsv").read_text().splitlines()[1:]
    } == {"1", "3"}
    assert [p["page"] for p in mixed["confidence"]["pages"]] == [1, 3]
    import pikepdf

    with pikepdf.open(out / "pdf" / "mixed.tiff.pdf") as pdf:
        assert len(pdf.pages) == 2
    failed = docs["only-large.png"]
    assert failed["status"] == "failed" and failed["formats"] == {} and "confidence" not in failed
    assert not any(p.name.startswith("only-large") for p in out.rglob("*") if p.is_file())
    assert audit_output(out).ok
    assert not any(p.name.endswith(".tmp") for p in out.rglob("*"))


def test_a_pdf_whose_layer_does_not_read_back_is_an_error_not_a_file(tmp_path: Path) -> None:
    """An image-only page (no text layer) in place of Tesseract's: refused, not written."""
    page = Image.new("L", (600, 200), 255)
    ImageDraw.Draw(page).text((20, 70), "Only pixels here", fill=0, font_size=36)
    blank = io.BytesIO()
    page.save(blank, format="PDF", resolution=72)
    result = PageResult(
        "doc.png", 1, "Only pixels here", parts=(PagePart("pdf", data=blank.getvalue()),)
    )
    layout = OutputLayout(tmp_path)
    with pytest.raises(PdfLayerError, match="does not read back"):
        layer_cer(blank.getvalue(), [(1, "Only pixels here")], "doc.png")
    artifact = layout.artifact_path("doc.png")
    written = write_formats(layout, artifact, [result], ("txt", "pdf"), "5.3.0")
    assert written.formats == {} and not (tmp_path / "pdf" / "doc.png.pdf").exists()
    assert [e.type for e in written.errors] == ["PdfLayerError"]
    assert "does not read back" in str(written.errors[0].message)


def test_alto_confidences_are_corrected_only_where_tesseract_wrote_them_wrong() -> None:
    alto = '<String WC="0.9" CONTENT="a"/><String WC="0.100" CONTENT="b"/><String WC="0.96"/>'
    assert fixed_alto_wc(alto, "5.3.0") == (
        '<String WC="0.09" CONTENT="a"/><String WC="1.00" CONTENT="b"/><String WC="0.96"/>'
    )
    assert fixed_alto_wc(alto, "5.6.0") == alto


def test_tesserocr_writes_tsv_and_hocr_from_its_one_recognize(corpus: Path, tmp_path: Path) -> None:
    pytest.importorskip("tesserocr")
    inputs = tmp_path / "in"
    shutil.copytree(corpus / "small", inputs)
    summary = ocrlab.run(
        inputs,
        tmp_path / "out",
        engine="tesserocr",
        formats="txt,tsv,hocr",
        workers=1,
        progress=False,
    )
    assert summary.exit_code == 0
    for doc in _docs(tmp_path / "out").values():
        assert list(doc["formats"]) == ["txt", "tsv", "hocr"] and doc["confidence"]["words"] >= 3
        hocr = (tmp_path / "out" / doc["formats"]["hocr"]["path"]).read_bytes()
        ET.fromstring(hocr)
        assert doc["doc_id"].encode() in hocr and b"unknown" not in hocr
