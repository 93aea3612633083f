"""What a file is, from its headers: the format by its magic number, the page size and
the page count by its header (or a PDF's cross-reference table), never a decode.

Content decides, not the extension: scanners and mail gateways rename files, and
a ``.tif`` that is really a PNG should still be read. The extension only says
whether a file that is none of these formats was meant as a document (an error
entry) or is something else (a ground-truth text, a note: skipped).
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

from .errors import UnsupportedFormatError

#: Magic numbers, checked in order; the format name is what the rest of ocrlab uses.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"BM", "bmp"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)

#: File name extensions that announce a document; a file with one of these whose
#: content is not a supported format is reported as an error rather than skipped.
DOCUMENT_EXTENSIONS = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".jpe",
        ".tif",
        ".tiff",
        ".bmp",
        ".dib",
        ".gif",
        ".webp",
        ".pdf",
        ".pbm",
        ".pgm",
        ".ppm",
        ".pnm",
        ".jp2",
    }
)


def sniff_format(head: bytes) -> str | None:
    """Name the format of a file from its first bytes, or ``None`` if unsupported.

    Content, not the extension, decides: scanners and mail gateways rename files,
    and a ``.tif`` that is really a PNG should still be read.
    """
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    # The PDF header may be preceded by junk within the first 1024 bytes.
    if b"%PDF-" in head[:1024]:
        return "pdf"
    return None


def header_size(head: bytes, fmt: str) -> tuple[int, int] | None:
    """(width, height) from a file's first bytes, for the formats that keep it there.

    PNG (IHDR), GIF (logical screen), BMP (info header) and JPEG (a start-of-frame
    marker within ``head``) give the size Pillow reports; anything else, or a
    header that does not parse, gives ``None`` and the estimate opens the file.
    """
    try:
        if fmt == "png" and head[12:16] == b"IHDR":
            width, height = struct.unpack(">II", head[16:24])
        elif fmt == "gif":
            width, height = struct.unpack("<HH", head[6:10])
        elif fmt == "bmp":
            if struct.unpack("<I", head[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER
                width, height = struct.unpack("<HH", head[18:22])
            else:
                width, height = struct.unpack("<ii", head[18:26])
        elif fmt == "jpeg":
            return _jpeg_size(head)
        else:
            return None
    except struct.error:  # a header shorter than its format says
        return None
    return (abs(width), abs(height)) if width and height else None


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    """Walk the JPEG markers in ``head`` to the first start-of-frame (SOF0-SOF15 but
    DHT, JPG and DAC, which share the range); ``None`` if it lies beyond ``head``."""
    pos = 2
    while pos + 9 <= len(head):
        if head[pos] != 0xFF:
            return None
        marker = head[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", head[pos + 5 : pos + 9])
            return (width, height) if width and height else None
        pos += 2 + struct.unpack(">H", head[pos + 2 : pos + 4])[0]
    return None


def count_pages(fh: BinaryIO, fmt: str) -> tuple[int, tuple[int, int] | None]:
    """Pages in a document, and the first page's size when the count opened it (a TIFF),
    from headers only; ``fh`` is the open input (what was checked is what is read)."""
    fh.seek(0)
    if fmt == "pdf":
        import pypdfium2

        _check_pdf_trailer(fh)
        pdf = pypdfium2.PdfDocument(fh)
        try:
            return len(pdf), None
        finally:
            pdf.close()
    if fmt == "tiff":
        from PIL import Image

        with Image.open(fh) as im:
            size = (int(im.size[0]), int(im.size[1]))
            return int(getattr(im, "n_frames", 1)), size
    return 1, None


#: a PDF larger than this must end with its trailer for PDFium to be asked (see below)
PDF_SCAN_LIMIT = 64 << 20


def _check_pdf_trailer(fh: BinaryIO) -> None:
    """Refuse a large PDF without ``%%EOF`` near its end, before PDFium reads it whole.

    Without a trailer PDFium rebuilds the cross-reference table by scanning every
    byte (measured: 44 s for a 2 GiB sparse file of zeros behind ``%PDF-``; a
    terabyte would hold discovery for hours). A small broken PDF is still tried,
    since the rebuild often saves it.
    """
    size = os.fstat(fh.fileno()).st_size
    if size <= PDF_SCAN_LIMIT:
        return
    fh.seek(size - 65536)
    if b"%%EOF" not in fh.read(65536):
        raise UnsupportedFormatError(
            f"a {size / 2**20:.0f} MB PDF without '%%EOF' in its last 64 KiB (truncated, or "
            "padded with something else); not scanned, since PDFium would read it whole"
        )
    fh.seek(0)
