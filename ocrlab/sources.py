"""Discovering inputs, sniffing their format from content, expanding them to pages.

This runs in the main process and reads only headers: a page count costs an
image header or a PDF cross-reference table, never a decode. Anything that goes
wrong with one file (unreadable, corrupt, empty, not an image) becomes a
:class:`Document` with an ``error``; it never stops discovery of the others.
What is not a document (hidden names, other files, FIFOs, sockets, devices, links
to folders or to nothing) is a skip of a kind (:data:`SKIP_KINDS`) that a run
counts and logs. Names are whatever bytes the filesystem holds (see
:mod:`ocrlab.output.names` for how they are written out).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .errors import PipelineError
from .inputfiles import InputFileError, file_kind, open_input
from .records import PageTask
from .sniff import DOCUMENT_EXTENSIONS, count_pages, header_size, sniff_format

__all__ = [
    "DOCUMENT_EXTENSIONS",
    "SKIP_KINDS",
    "Document",
    "check_inputs",
    "discover",
    "inspect_file",
    "iter_documents",
    "sniff_format",
]


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
    #: not a document, and why (``skip`` is the kind counted in the summary, one of
    #: :data:`SKIP_KINDS`); such an entry is counted and logged, never read nor an error
    skip: str | None = None
    skip_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.skip is None


_GROUP_RE = re.compile(r"^[A-Za-z0-9._-]+$")


def validate_group_name(name: str) -> str:
    """Group names become a path component of every artifact: keep them harmless."""
    if name and (not _GROUP_RE.match(name) or name in {".", ".."}):
        raise PipelineError(
            f"group name {name!r} is not allowed; use letters, digits, '.', '_' or '-' "
            "(it becomes a folder name in the output)."
        )
    return name


#: What discovery passes over, counted by kind in the summary (``skipped``):
SKIP_KINDS = {
    "hidden": "a hidden file or folder (its name starts with '.'), as ls and glob do",
    "not_a_document": "a file whose content is not an image or PDF and whose name does "
    "not announce one (ground truth, notes, manifests)",
    "special_file": "a FIFO, socket or device: not a file to read (opening a FIFO waits "
    "for a writer forever)",
    "folder_link": "a symbolic link to a folder, not followed (links can loop or lead "
    "out of the tree); give the folder itself to read it",
    "broken_link": "a symbolic link to nothing (dangling or looping) whose name does "
    "not announce a document",
}


@dataclass(frozen=True)
class Found:
    """One entry of a walk: a file to inspect, a folder that could not be listed
    (``error``), or something passed over (``skip``, a kind of :data:`SKIP_KINDS`).

    ``rel`` is the entry's path relative to the walked root, POSIX-style: its document
    id but for the group. Both are strings, made once per folder: pathlib per file was
    most of the time a resumed run spent on the million documents it kept.
    """

    path: str
    rel: str
    error: str | None = None
    skip: str | None = None
    reason: str | None = None


def _walk_files(root: Path, skip: Sequence[Path]) -> Iterator[Found]:
    """Every entry under ``root``, sorted, not following links to folders.

    Folder symlinks are not followed, so a symlink loop cannot trap the walk (each is
    reported as a ``folder_link`` skip); a folder that cannot be listed (unreadable,
    removed during the walk, a path past ``PATH_MAX``) is reported with the error;
    hidden names are reported as ``hidden`` skips, a hidden folder once.
    """
    errors: list[OSError] = []
    skip_resolved = {p.resolve() for p in skip}

    def failed(err: OSError, where: str) -> Found:
        path = Path(err.filename or where)
        rel = "/".join(path.relative_to(root).parts) if path != root else path.name
        return Found(str(path), rel, f"cannot list folder: {err.strerror}")

    for dirpath, dirnames, filenames in os.walk(root, onerror=errors.append):
        while errors:
            yield failed(errors.pop(), dirpath)
        rel_dir = "/".join(Path(dirpath).relative_to(root).parts)
        prefix = rel_dir + "/" if rel_dir else ""
        walk_into = []
        for d in sorted(dirnames):
            path = os.path.join(dirpath, d)
            if d.startswith("."):
                yield Found(path, prefix + d, skip="hidden", reason="hidden folder, not searched")
            elif os.path.islink(path):
                yield Found(
                    path, prefix + d, skip="folder_link", reason="symbolic link to a folder"
                )
            elif Path(path).resolve() not in skip_resolved:
                walk_into.append(d)
        dirnames[:] = walk_into
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if name.startswith("."):
                yield Found(path, prefix + name, skip="hidden", reason="hidden file")
            else:
                yield Found(path, prefix + name)
    while errors:
        yield failed(errors.pop(), str(root))


def _unopened(path: Path, doc_id: str, announced: bool) -> Document:
    """An entry that is not a regular file, or that ``stat`` cannot reach: a skip or an error."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if os.path.islink(path):  # the link is there, its target is not (or loops)
            why = f"symbolic link to nothing ({exc.strerror})"
            if not announced:
                return Document(doc_id, str(path), skip="broken_link", skip_reason=why)
            return Document(doc_id, str(path), error_type="BrokenLink", error=f"{path}: {why}")
        return Document(
            doc_id,
            str(path),
            error_type="UnreadableFile",
            error=f"cannot read {path}: {exc.strerror or exc} (removed during the run, or "
            "a path longer than the system allows)",
        )
    kind = file_kind(st.st_mode)
    return Document(doc_id, str(path), skip="special_file", skip_reason=f"{kind}, not read")


def inspect_file(path: Path, doc_id: str) -> Document:
    """Sniff one file and count its pages; a skip (:attr:`Document.skip`) when it is not a
    document, an error entry when it should be and cannot be read.

    Only a regular file (or a link to one) is opened, and never so that the open
    could wait (:func:`ocrlab.inputfiles.open_input`): a FIFO, socket or device is
    skipped by kind, also when it replaced a file after the walk listed it.
    """
    announced = path.suffix.lower() in DOCUMENT_EXTENSIONS
    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        regular = False
    if not regular:
        return _unopened(path, doc_id, announced)
    try:
        fh = open_input(path)
    except InputFileError as exc:
        if "not a regular file" in str(exc):  # replaced since the stat just above
            return _unopened(path, doc_id, announced)
        return Document(doc_id, str(path), error_type="UnreadableFile", error=str(exc))
    with fh:
        return _sniffed(fh, path, doc_id, announced)


def _sniffed(fh: BinaryIO, path: Path, doc_id: str, announced: bool) -> Document:
    """The document in the open regular file ``fh``: format by content, pages by header."""
    try:
        size = os.fstat(fh.fileno()).st_size
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
            why = "an empty file" if size == 0 else "content is not an image or PDF"
            return Document(doc_id, str(path), size=size, skip="not_a_document", skip_reason=why)
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
        n_pages, first_size = count_pages(fh, fmt)
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
) -> Iterator[tuple[str, Found]]:
    """``(doc_id, entry)`` of every entry under ``roots``, root by root, sorted."""
    prefix = group + "/" if group else ""
    for root in roots:
        if root.is_dir():
            for entry in _walk_files(root, skip):
                yield prefix + entry.rel, entry
        else:
            yield prefix + root.name, Found(str(root), root.name)


def _collision(doc_id: str, first: str, second: str) -> PipelineError:
    return PipelineError(
        f"two inputs give the same document id {doc_id!r} ({first} and {second}); pass "
        "their common parent folder instead, or run them as separate groups."
    )


def _passed_over(path: str, doc_id: str) -> bool:
    """Whether discovery will pass over the file at ``path`` (not a document)."""
    return inspect_file(Path(path), doc_id).skip is not None


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
        for doc_id, entry in _candidates(roots, group, [Path(p) for p in exclude]):
            if entry.skip is not None:  # hidden names, links to folders: never documents
                continue
            if doc_id in seen:
                # the walk's names alone cannot tell a README.txt or a ground truth from a
                # document: only a clash of two documents is one (sniffed, rarely needed)
                if _passed_over(entry.path, doc_id):
                    continue
                if not _passed_over(seen[doc_id], doc_id):
                    raise _collision(doc_id, seen[doc_id], entry.path)
            seen[doc_id] = entry.path
    return roots


def iter_documents(
    inputs: Iterable[str | os.PathLike[str]],
    *,
    group: str = "",
    exclude: Sequence[str | os.PathLike[str]] = (),
    check: bool = True,
    skips: bool = False,
    known: Callable[[str, str], bool] | None = None,
) -> Iterator[Document]:
    """Documents one by one, as the walk finds them: the lazy form of :func:`discover`.

    Why lazy: a million-file tree must start OCR within seconds and the main
    process must not hold a million :class:`Document` s. Order: input by input,
    each walked sorted (a folder's files, then its sub-folders, as :func:`os.walk`
    goes); ids and errors are those of :func:`discover`. :func:`check_inputs` runs
    at the first ``next()`` unless ``check=False`` (the caller ran it already).
    ``skips=True`` yields what is passed over too (:attr:`Document.skip` set), so a
    run can count and log it. ``known(doc_id, path)`` is asked before a file is
    opened; True means the caller has dealt with it (a document ``--resume`` keeps):
    it is neither inspected nor yielded.
    """
    roots = (
        check_inputs(inputs, group=group, exclude=exclude) if check else [Path(p) for p in inputs]
    )
    for doc_id, entry in _candidates(roots, group, [Path(p) for p in exclude]):
        if entry.error is not None:
            doc = Document(
                doc_id,
                entry.path,
                error_type="UnreadableDirectory",
                error=f"{entry.path}: {entry.error}",
            )
        elif entry.skip is not None:
            doc = Document(doc_id, entry.path, skip=entry.skip, skip_reason=entry.reason)
        elif known is not None and known(doc_id, entry.path):
            continue
        else:
            doc = inspect_file(Path(entry.path), doc_id)
        if skips or doc.skip is None:
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
