"""The structured formats beside the text: TSV, hOCR and ALTO, named, split and assembled here.

Tesseract writes every format from one recognition (its renderers run after it); in
list mode (a bundle of small pages, :mod:`ocrlab.bundles`) it writes one file per
format for the whole list. ocrlab wants one file per *document*, whatever pages
shared a Tesseract process, so every output goes through two steps:

1. **per page, in the worker** (:func:`page_fragments`): the list output is cut
   into pages (TSV by ``page_num``, hOCR by ``ocr_page``, ALTO by ``Page``, PDF by
   page: :mod:`ocrlab.output.pdf`) and each page is *normalised*: numbered as the
   page of its document (not of the list) and named by its document id instead of
   the temporary file Tesseract read. A page alone and the same page in a list give
   the same fragment, byte for byte.
2. **per document, in the main process** (:func:`document_text`): the fragments of
   the pages that were read, in page order, between a head and a tail made from the
   document id and the engine's version only. No path, no date: the file is the same
   for every worker count, order, executor, bundling and ``--resume``.

The document is what Tesseract itself writes for a multi-page input (ALTO ids
restart on every page, as Tesseract 5.3 numbers them), named by the document id.
"""

from __future__ import annotations

import html
import io
import os
import re
from collections.abc import Mapping, Sequence

from ..errors import ConfigError
from ..parts import PageConfidence, PagePart
from ..records import EngineSettings, PageTask
from .atomic import atomic_write_bytes
from .confidence import fixed_alto_wc, page_confidence
from .scratch import part_path

#: Every format ``formats`` accepts, in the order folders and fields list them.
FORMATS = ("txt", "tsv", "hocr", "alto", "pdf", "page")
#: The folder of each format in the output folder, beside ``text/``.
FOLDERS = {f: ("text" if f == "txt" else f) for f in FORMATS}
#: What each format's file name ends with (the text artifact's ``.txt``, Tesseract's others).
SUFFIXES = {"txt": ".txt", "tsv": ".tsv", "hocr": ".hocr", "alto": ".xml", "pdf": ".pdf"}
SUFFIXES["page"] = ".page.xml"
#: The setting's bounds in words (``--help``, README).
FORMATS_BOUNDS = "a comma list of " + ", ".join(FORMATS[:-1]) + " (page: refused, docs/formats.md)"
#: The markup formats assembled here (the PDF is :mod:`ocrlab.output.pdf`'s).
MARKUP = ("tsv", "hocr", "alto")

#: What each engine can write from its one recognition (anything else is refused at start).
ENGINE_FORMATS = {
    "pytesseract": frozenset({"txt", "tsv", "hocr", "alto", "pdf", "page"}),
    "tesserocr": frozenset({"txt", "tsv", "hocr"}),
}
#: The Tesseract that first wrote PAGE XML (its ``page`` renderer).
PAGE_XML_SINCE = (5, 4, 0)

TSV_HEADER = (
    "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\t"
    "left\ttop\twidth\theight\tconf\ttext\n"
)


class Formats(tuple[str, ...]):
    """Output formats in their canonical order, written out as the setting is spelled
    (``txt,tsv,hocr``): how the environment or a command line would give them back."""

    __slots__ = ()

    def __str__(self) -> str:
        return ",".join(self)


def parse_formats(name: str, raw: object) -> Formats:
    """A list of output formats (``"txt,tsv,hocr"``, or a list) in the canonical order,
    ``txt`` always first: the text artifact is what the manifest, ``--resume`` and the
    identity checks stand on, so it is written whatever else is asked."""
    items = raw if isinstance(raw, (list, tuple, set, frozenset)) else str(raw).split(",")
    asked = {str(item).strip().lower() for item in items} - {""}
    unknown = sorted(asked - set(FORMATS))
    if unknown or not asked:
        what = f"has unknown format(s) {', '.join(unknown)}" if unknown else "is empty"
        raise ConfigError(
            f"{name}={raw!r} {what}; use a comma-separated list of {', '.join(FORMATS)} "
            "(e.g. 'txt,tsv,hocr,alto,pdf')."
        )
    return Formats(f for f in FORMATS if f in asked or f == "txt")


def structured(formats: Sequence[str]) -> bool:
    """Whether anything beyond the text is asked (then confidences are recorded too)."""
    return any(f != "txt" for f in formats)


def _version_tuple(version: str | None) -> tuple[int, ...]:
    numbers = re.findall(r"\d+", version or "")
    return tuple(int(n) for n in numbers[:3])


def check_formats(formats: Sequence[str], engine: str) -> None:
    """Refuse at start-up, with what to do, formats this engine or installation cannot write."""
    asked = [f for f in formats if f != "txt"]
    if not asked:
        return
    can = ENGINE_FORMATS.get(engine)
    if can is not None and set(asked) - can:
        missing = ", ".join(f for f in asked if f not in can)
        raise ConfigError(
            f"formats={','.join(formats)!r}: engine {engine!r} cannot write {missing} from "
            f"its one recognition (it writes {', '.join(f for f in FORMATS if f in can)}); "
            "use engine 'pytesseract' for every format, or drop those formats."
        )
    if "page" in asked:
        from ..engines.registry import engine_version

        version = engine_version(engine)
        if _version_tuple(version) < PAGE_XML_SINCE:
            raise ConfigError(
                f"formats 'page' (PAGE XML) needs Tesseract "
                f"{'.'.join(map(str, PAGE_XML_SINCE))} or newer, and the installed "
                f"Tesseract is {version or 'unknown'}; upgrade Tesseract or drop 'page'."
            )
        raise ConfigError(
            f"formats 'page' (PAGE XML): Tesseract {version} can write it, but a PAGE XML "
            "file holds one page (its schema allows one Page per PcGts) and ocrlab writes "
            "one file per document; use 'alto' (same layout, one file per document)."
        )
    if "pdf" in asked:
        try:
            import pikepdf  # noqa: F401 - the check is the import
        except ImportError:
            raise ConfigError(
                "formats 'pdf' needs pikepdf (it assembles the pages and places the text "
                "layer under PDF inputs' own pages); install it with "
                "pip install 'ocrlab[pdf]', or drop 'pdf'."
            ) from None


# -- cutting a list's output into pages ---------------------------------------------------------

_HOCR_PAGE = "  <div class='ocr_page'"
_ALTO_PAGE = "\t\t<Page "
_ALTO_PAGE_END = "\t\t</Page>\n"


def split_tsv(text: str) -> dict[int, str]:
    """TSV rows (header dropped) by their ``page_num``, each page's rows in their order."""
    pages: dict[int, list[str]] = {}
    for line in text.splitlines(keepends=True):
        fields = line.split("\t", 2)
        if len(fields) < 3 or not fields[1].isdigit():
            continue  # the header, or a torn line
        pages.setdefault(int(fields[1]), []).append(line if line.endswith("\n") else line + "\n")
    return {page: "".join(rows) for page, rows in pages.items()}


def split_hocr(text: str) -> list[str]:
    """The ``ocr_page`` divs of an hOCR file (or of one ``GetHOCRText`` fragment)."""
    starts = [m.start() for m in re.finditer(re.escape(_HOCR_PAGE), text)]
    if not starts:
        return []
    end = text.find(" </body>", starts[-1])
    bounds = [*starts[1:], end if end >= 0 else len(text)]
    return [text[a:b] for a, b in zip(starts, bounds, strict=True)]


def split_alto(text: str) -> list[str]:
    """The ``Page`` elements of an ALTO file, each with its closing tag and line end."""
    pages = []
    pos = text.find(_ALTO_PAGE)
    while pos >= 0:
        end = text.find(_ALTO_PAGE_END, pos)
        if end < 0:
            return []  # a torn file: not a page we can vouch for
        end += len(_ALTO_PAGE_END)
        pages.append(text[pos:end])
        pos = text.find(_ALTO_PAGE, end)
    return pages


def split_markup(fmt: str, text: str, n_pages: int) -> list[str] | None:
    """``text`` (one Tesseract output for ``n_pages`` pages) cut into one fragment per page,
    in list order; ``None`` when it does not cut into exactly that many."""
    if fmt == "tsv":
        rows = split_tsv(text)
        if sorted(rows) != list(range(1, n_pages + 1)):
            return None
        return [rows[i] for i in range(1, n_pages + 1)]
    pages = split_hocr(text) if fmt == "hocr" else split_alto(text)
    return pages if len(pages) == n_pages else None


# -- one page, numbered and named as the page of its document ----------------------------------

_HOCR_ID = re.compile(r"(id='[a-z]+(?:_[a-z]+)*_)\d+")
_HOCR_IMAGE = re.compile(r"image \"[^\"]*\"")
_HOCR_PPAGENO = re.compile(r"ppageno \d+")
_ALTO_HEAD = re.compile(r'PHYSICAL_IMG_NR="\d+" ID="page_\d+"')


def normalized_page(fmt: str, fragment: str, page: int, doc_id: str) -> str:
    """One page's fragment numbered as page ``page`` of document ``doc_id``.

    hOCR: every id carries the page (``page_2``, ``word_2_17``), ``ppageno`` counts
    from 0, the image is named by the document id. ALTO: the ``Page`` element's id and
    ``PHYSICAL_IMG_NR`` (from 0). TSV: the ``page_num`` column.
    """
    if fmt == "tsv":
        rows = []
        for line in fragment.splitlines(keepends=True):
            fields = line.split("\t")
            fields[1] = str(page)
            rows.append("\t".join(fields))
        return "".join(rows)
    if fmt == "hocr":
        name = html.escape(doc_id, quote=True)
        out = _HOCR_ID.sub(lambda m: f"{m.group(1)}{page}", fragment)
        out = _HOCR_IMAGE.sub(lambda m: f'image "{name}"', out, count=1)
        return _HOCR_PPAGENO.sub(f"ppageno {page - 1}", out, count=1)
    if fmt == "alto":
        return _ALTO_HEAD.sub(f'PHYSICAL_IMG_NR="{page - 1}" ID="page_{page - 1}"', fragment, 1)
    raise ValueError(f"format {fmt!r} has no page fragments; expected one of {MARKUP}")


# -- a document from its pages' fragments --------------------------------------------------------

_HOCR_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
    "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>{title}</title>
  <meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>
  <meta name='ocr-system' content='{software}' />
  <meta name='ocr-capabilities' content='ocr_page ocr_carea ocr_par ocr_line ocrx_word ocrp_wconf'/>
 </head>
 <body>
"""
_HOCR_TAIL = " </body>\n</html>\n"

_ALTO_HEAD_TEXT = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<alto xmlns="http://www.loc.gov/standards/alto/ns-v3#" '
    'xmlns:xlink="http://www.w3.org/1999/xlink" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="http://www.loc.gov/standards/alto/ns-v3# '
    'http://www.loc.gov/alto/v3/alto-3-0.xsd">\n'
    "\t<Description>\n"
    "\t\t<MeasurementUnit>pixel</MeasurementUnit>\n"
    "\t\t<sourceImageInformation>\n"
    "\t\t\t<fileName>{title}</fileName>\n"
    "\t\t</sourceImageInformation>\n"
    '\t\t<OCRProcessing ID="OCR_0">\n'
    "\t\t\t<ocrProcessingStep>\n"
    "\t\t\t\t<processingSoftware>\n"
    "\t\t\t\t\t<softwareName>{software}</softwareName>\n"
    "\t\t\t\t</processingSoftware>\n"
    "\t\t\t</ocrProcessingStep>\n"
    "\t\t</OCRProcessing>\n"
    "\t</Description>\n"
    "\t<Layout>\n"
)
_ALTO_TAIL = "\t</Layout>\n</alto>\n"


def document_text(fmt: str, fragments: Sequence[str], doc_id: str, version: str | None) -> str:
    """The document file of ``fmt`` from its read pages' normalised fragments, in page order.

    ``version`` is the engine's Tesseract version, named in the head as Tesseract
    names itself (``tesseract 5.3.0``); nothing else in the head varies.
    """
    title = html.escape(doc_id, quote=True)
    software = html.escape(f"tesseract {version or 'unknown'}", quote=True)
    if fmt == "tsv":
        return TSV_HEADER + "".join(fragments)
    if fmt == "hocr":
        return _HOCR_HEAD.format(title=title, software=software) + "".join(fragments) + _HOCR_TAIL
    if fmt == "alto":
        head = _ALTO_HEAD_TEXT.format(title=title, software=software)
        return head + "".join(fragments) + _ALTO_TAIL
    raise ValueError(f"format {fmt!r} is not assembled from text fragments; expected {MARKUP}")


# -- the worker's side: an engine's outputs as page parts -----------------------------------------

_ALTO_SOFTWARE = re.compile(r"<softwareName>tesseract ([^<]*)</softwareName>")

#: One page's parts (its files of each asked format) and its word confidences.
PageOutputs = tuple[tuple[PagePart, ...], PageConfidence | None]


def _pieces(
    fmt: str, output: str | bytes, tasks: Sequence[PageTask]
) -> Sequence[str | bytes] | None:
    if fmt == "pdf":
        if not isinstance(output, bytes):
            return None
        from .pdf import split_pdf  # a page alone goes through it too: the same bytes either way

        return split_pdf(output, len(tasks), [_pdf_size(task) for task in tasks])
    return split_markup(fmt, output, len(tasks)) if isinstance(output, str) else None


def _pdf_size(task: PageTask) -> tuple[float, float] | None:
    """The size in points of an image page Tesseract got as a PNM (a page of a multi-page
    file, an unusual mode; see :mod:`ocrlab.pages`), from the resolution its file states;
    ``None`` where Tesseract read the file itself (and its resolution with it)."""
    if task.fmt == "pdf":
        return None
    from PIL import Image

    from ..pages import reads_directly
    from .pdf import CREDIBLE_DPI

    source = task.payload if task.payload is not None else task.path
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
        if task.page > 1:
            im.seek(task.page - 1)
        if reads_directly(task, im.mode):
            return None
        dpi = float((im.info.get("dpi") or (0, 0))[1])
        width, height = im.size
    if not CREDIBLE_DPI[0] <= dpi <= CREDIBLE_DPI[1]:
        return None  # Tesseract's 70 dpi then, as for a file it reads itself
    return (width * 72 / dpi, height * 72 / dpi)


def _store(task: PageTask, fmt: str, data: bytes, tmp_dir: str | None) -> PagePart:
    """A part in the run's temporary folder, or inline where that folder is not here."""
    if tmp_dir and os.path.isdir(tmp_dir):
        path = part_path(tmp_dir, task.doc_id, task.page, SUFFIXES[fmt])
        atomic_write_bytes(path, data)
        return PagePart(fmt, path=str(path))
    return PagePart(fmt, data=data)


def page_outputs(
    tasks: Sequence[PageTask], outputs: Mapping[str, str | bytes], settings: EngineSettings
) -> list[PageOutputs] | None:
    """An engine's outputs for ``tasks`` (one page, or a list's pages in list order) as each
    page's normalised parts of the asked formats and its confidences.

    ``None`` when an output does not cut into one piece per page (the pages then run one
    by one). Raises :class:`ValueError` when an asked format was not rendered at all.
    """
    per_page: list[dict[str, str | bytes]] = [{} for _ in tasks]
    for fmt, output in outputs.items():
        if fmt == "txt":
            continue
        pieces = _pieces(fmt, output, tasks)
        if pieces is None:
            return None
        for piece, page in zip(pieces, per_page, strict=True):
            page[fmt] = piece
    alto = outputs.get("alto")
    found = _ALTO_SOFTWARE.search(alto) if isinstance(alto, str) else None
    version = found.group(1) if found else None
    result: list[PageOutputs] = []
    for task, page in zip(tasks, per_page, strict=True):
        tsv = page.get("tsv")
        conf = page_confidence(tsv, settings.conf_low) if isinstance(tsv, str) else None
        parts = []
        for fmt in settings.formats:
            if fmt == "txt":
                continue
            found_piece = page.get(fmt)
            if found_piece is None:
                raise ValueError(
                    f"the engine wrote no {fmt} output for page {task.page} of {task.doc_id}; "
                    f"it must return every asked format ({', '.join(settings.formats)})"
                )
            data = found_piece if isinstance(found_piece, bytes) else b""
            if isinstance(found_piece, str):
                text = normalized_page(fmt, found_piece, task.page, task.doc_id)
                data = (fixed_alto_wc(text, version) if fmt == "alto" else text).encode()
            parts.append(_store(task, fmt, data, settings.tmp_dir))
        result.append((tuple(parts), conf))
    return result
