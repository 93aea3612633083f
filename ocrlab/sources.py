"""Discovering inputs, sniffing their format from content, expanding them to pages.

This runs in the main process and reads only headers: a page count costs an
image header or a PDF cross-reference table, never a decode. Anything that goes
wrong with one file (unreadable, corrupt, empty, not an image) becomes a
:class:`Document` with an ``error``; it never stops discovery of the others.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PipelineError
from .records import PageTask

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


@dataclass(frozen=True)
class Document:
    """One input document: a file, its id, and its pages (or why it has none)."""

    doc_id: str
    path: str
    fmt: str | None = None
    n_pages: int = 0
    size: int = 0
    error_type: str | None = None
    error: str | None = None
    tasks: tuple[PageTask, ...] = field(default=(), repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None


_GROUP_RE = re.compile(r"^[A-Za-z0-9._-]+$")


def validate_group_name(name: str) -> str:
    """Group names become a path component of every artifact: keep them harmless."""
    if name and (not _GROUP_RE.match(name) or name in {".", ".."}):
        raise PipelineError(
            f"group name {name!r} is not allowed; use letters, digits, '.', '_' or '-' "
            "(it becomes a folder name in the output)."
        )
    return name


def _walk_files(root: Path, skip: Sequence[Path]) -> Iterator[tuple[str, str, str | None]]:
    """Yield (path, path relative to ``root`` in POSIX form, walk error) for every file
    under ``root``, sorted, not following links.

    Directory symlinks are not followed, so a symlink loop cannot trap the walk;
    a directory that cannot be listed is yielded with the error so it is reported.
    Paths are strings, made once per directory: pathlib per file was most of the
    time a resumed run spent on a million documents it kept.
    """
    errors: list[OSError] = []
    skip_resolved = {p.resolve() for p in skip}

    def failed(err: OSError, where: str) -> tuple[str, str, str]:
        path = Path(err.filename or where)
        rel = "/".join(path.relative_to(root).parts) if path != root else path.name
        return str(path), rel, f"cannot list directory: {err.strerror}"

    for dirpath, dirnames, filenames in os.walk(root, onerror=errors.append):
        while errors:
            yield failed(errors.pop(), dirpath)
        here = Path(dirpath)
        rel_dir = "/".join(here.relative_to(root).parts)
        prefix = rel_dir + "/" if rel_dir else ""
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".") and (here / d).resolve() not in skip_resolved
        )
        for name in sorted(filenames):
            if not name.startswith("."):
                yield os.path.join(dirpath, name), prefix + name, None
    while errors:
        yield failed(errors.pop(), str(root))


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


def _count_pages(path: str, fmt: str) -> tuple[int, tuple[int, int] | None]:
    """Pages in a document, and the first page's size when the count opened it (a TIFF),
    from headers only."""
    if fmt == "pdf":
        import pypdfium2

        pdf = pypdfium2.PdfDocument(path)
        try:
            return len(pdf), None
        finally:
            pdf.close()
    if fmt == "tiff":
        from PIL import Image

        with Image.open(path) as im:
            size = (int(im.size[0]), int(im.size[1]))
            return int(getattr(im, "n_frames", 1)), size
    return 1, None


def inspect_file(path: Path, doc_id: str) -> Document | None:
    """Sniff one file and count its pages; ``None`` means "not a document, skip it"."""
    announced = path.suffix.lower() in DOCUMENT_EXTENSIONS
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError as exc:
        return Document(
            doc_id,
            str(path),
            error_type="UnreadableFile",
            error=f"cannot read {path}: {exc.strerror or exc}",
        )
    fmt = sniff_format(head)
    if fmt is None:
        if not announced:
            return None  # ground truth, notes, manifests: not ours to OCR
        why = (
            "the file is empty (0 bytes)"
            if size == 0
            else (
                f"its content is not PNG, JPEG, TIFF, BMP, GIF, WebP or PDF "
                f"(first bytes {head[:8]!r})"
            )
        )
        return Document(
            doc_id,
            str(path),
            size=size,
            error_type="UnsupportedFormat",
            error=f"{path.name}: {why}",
        )
    try:
        n_pages, first_size = _count_pages(str(path), fmt)
    except Exception as exc:  # corrupt headers: PIL and pdfium raise many types
        return Document(
            doc_id,
            str(path),
            fmt=fmt,
            size=size,
            error_type=type(exc).__name__,
            error=f"cannot open {path.name} as {fmt.upper()}: {exc}",
        )
    if n_pages < 1:
        return Document(
            doc_id,
            str(path),
            fmt=fmt,
            size=size,
            error_type="EmptyDocument",
            error=f"{path.name}: the {fmt.upper()} has no pages",
        )
    dims = first_size or header_size(head, fmt)
    pixels = dims[0] * dims[1] if dims else None
    tasks = tuple(
        PageTask(doc_id, str(path), p, n_pages, fmt, pixels=pixels if p == 1 else None)
        for p in range(1, n_pages + 1)
    )
    return Document(doc_id, str(path), fmt=fmt, n_pages=n_pages, size=size, tasks=tasks)


def _check_roots(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    roots = [Path(p) for p in inputs]
    missing = [str(p) for p in roots if not p.exists()]
    if missing:
        raise PipelineError(
            f"input path(s) not found: {', '.join(missing)}; check the spelling, "
            "or give existing files or folders."
        )
    return roots


def _candidates(
    roots: Sequence[Path],
    group: str,
    skip: Sequence[Path],
) -> Iterator[tuple[str, str, str | None]]:
    """``(doc_id, path, walk error)`` of every file under ``roots``, root by root, sorted."""
    prefix = group + "/" if group else ""
    for root in roots:
        if root.is_dir():
            for path, rel, walk_error in _walk_files(root, skip):
                yield prefix + rel, path, walk_error
        else:
            yield prefix + root.name, str(root), None


def _collision(doc_id: str, first: str, second: str) -> PipelineError:
    return PipelineError(
        f"two inputs give the same document id {doc_id!r} ({first} and {second}); pass "
        "their common parent folder instead, or run them as separate groups."
    )


def check_inputs(
    inputs: Iterable[str | os.PathLike[str]],
    *,
    group: str = "",
    exclude: Sequence[str | os.PathLike[str]] = (),
) -> list[Path]:
    """Raise :class:`PipelineError` for a bad group name, a missing input or two inputs
    giving the same document id; return the inputs as paths.

    The id check is a names-only pre-pass, done only when there are several inputs
    (one input cannot collide with itself); it holds the ids in memory while it runs.
    """
    validate_group_name(group)
    roots = _check_roots(inputs)
    if len(roots) > 1:
        seen: dict[str, str] = {}
        for doc_id, path, _ in _candidates(roots, group, [Path(p) for p in exclude]):
            if doc_id in seen:
                raise _collision(doc_id, seen[doc_id], path)
            seen[doc_id] = path
    return roots


def iter_documents(
    inputs: Iterable[str | os.PathLike[str]],
    *,
    group: str = "",
    exclude: Sequence[str | os.PathLike[str]] = (),
    check: bool = True,
    known: Callable[[str, str], bool] | None = None,
) -> Iterator[Document]:
    """Documents one by one, as the walk finds them: the lazy form of :func:`discover`.

    Why lazy: a million-file tree must start OCR within seconds and the main
    process must not hold a million :class:`Document` s. Order: input by input,
    each walked sorted (a folder's files, then its sub-folders, as :func:`os.walk`
    goes); ids and errors are those of :func:`discover`. :func:`check_inputs` runs
    at the first ``next()`` unless ``check=False`` (the caller ran it already).
    ``known(doc_id, path)`` is asked before a file is opened; True means the caller
    has dealt with it (a document ``--resume`` keeps): it is neither inspected nor
    yielded.
    """
    roots = (
        check_inputs(inputs, group=group, exclude=exclude) if check else [Path(p) for p in inputs]
    )
    skip = [Path(p) for p in exclude]
    for doc_id, path, walk_error in _candidates(roots, group, skip):
        if walk_error is not None:
            yield Document(
                doc_id, path, error_type="UnreadableDirectory", error=f"{path}: {walk_error}"
            )
            continue
        if known is not None and known(doc_id, path):
            continue
        doc = inspect_file(Path(path), doc_id)
        if doc is not None:
            yield doc


def discover(
    inputs: Iterable[str | os.PathLike[str]],
    *,
    group: str = "",
    exclude: Sequence[str | os.PathLike[str]] = (),
) -> list[Document]:
    """Turn files and folders into documents, sorted and with stable ids.

    A document's id is its path relative to the input it was found under (a
    file given directly is its own root, so its id is its name), POSIX-style,
    prefixed by ``group`` when there is one. Two inputs that yield the same id
    are a :class:`PipelineError`, raised before any work, since their artifacts
    would overwrite each other. Missing inputs are a :class:`PipelineError` too.
    The run itself uses :func:`iter_documents`; this list form is for the lab and tests.
    """
    docs: dict[str, Document] = {}
    for doc in iter_documents(inputs, group=group, exclude=exclude):
        if doc.doc_id in docs:  # a walk error and a file under the same name
            raise _collision(doc.doc_id, docs[doc.doc_id].path, doc.path)
        docs[doc.doc_id] = doc
    return [docs[k] for k in sorted(docs)]
