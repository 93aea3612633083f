"""Where a run's files go in its output folder, and which of them a run may find there.

Layout of an output folder::

    OUT/
      text/<doc_id>.txt   one UTF-8 artifact per document (its relative path + ".txt"),
                          pages in page order, each ended by a form feed as Tesseract does
      tsv/ hocr/ alto/ pdf/   the other asked ``formats``, a file per document named like
                          its artifact (<doc_id>.tsv, .hocr, .xml, .pdf; output.formats)
      results.json        the manifest: one record per document, run metadata, summary
      journal.jsonl       one line per finished document as the run goes (output.journal)
      ocrlab.log          one line per event, each naming its document and page
      trace.json          Chrome Trace Event Format (opens in Perfetto; output.trace)
      .ocrlab.lock        the run's lock (output.lock); .ocrlab-reserve its reserve
                          (output.stops)

This module only names the files and prepares the folder; each file has its
writer elsewhere in :mod:`ocrlab.output`: the artifacts through
:mod:`ocrlab.output.atomic` (the collector writes them), the manifest in
:mod:`ocrlab.output.journal`, the trace in :mod:`ocrlab.output.trace`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..errors import OutputNotEmptyError, PipelineError
from .formats import FOLDERS, SUFFIXES

__all__ = ["JOURNAL_NAME", "LOCK_NAME", "RESERVE_NAME", "OutputLayout", "assemble_text"]

JOURNAL_NAME = "journal.jsonl"
LOCK_NAME = ".ocrlab.lock"
RESERVE_NAME = ".ocrlab-reserve"


def assemble_text(pages: list[str]) -> str:
    """Join page texts the way Tesseract's text renderer does: each page ends with ``\\f``."""
    return "".join(p + "\f" for p in pages)


class OutputLayout:
    """Where a run's files go; refuses paths that would escape the output folder."""

    def __init__(self, out_dir: str | os.PathLike[str]):
        self.root = Path(out_dir)
        self.text_dir = self.root / "text"
        self.manifest = self.root / "results.json"
        self.journal = self.root / "journal.jsonl"
        self.log = self.root / "ocrlab.log"
        self.trace = self.root / "trace.json"

    #: the files a run writes at the top of its folder (``text/`` besides)
    RUN_FILES = ("results.json", JOURNAL_NAME, "trace.json", "ocrlab.log")

    def previous_outputs(self) -> list[str]:
        """What an earlier run left here (manifest, trace, log, artifacts), for the refusal
        message; empty for a new or empty folder, or one with only a user's own files."""
        found = [name for name in self.RUN_FILES if (self.root / name).exists()]
        for folder in self.format_dirs():
            if folder.is_dir() and any(p.is_file() for p in folder.rglob("*")):
                found.append(f"{folder.name}/")
        return found

    def format_dirs(self) -> list[Path]:
        """``text/`` and the folder of every other format a run may write."""
        return [self.root / name for name in dict.fromkeys(FOLDERS.values())]

    def claim(self, *, resume: bool, overwrite: bool) -> None:
        """Refuse a folder a previous run used, unless resuming or overwriting; with
        ``overwrite``, empty it of ocrlab's files. Call only while holding the lock."""
        if resume:
            return
        found = self.previous_outputs()
        if found and not overwrite:
            raise not_empty_error(self.root, found)
        if found:
            self.clear()

    def clear(self) -> None:
        """Remove a previous run's files (``--overwrite``), and only those: a user's other
        files in the folder stay. Call only while holding the folder's lock."""
        for folder in self.format_dirs():
            shutil.rmtree(folder, ignore_errors=True)
        for name in self.RUN_FILES:
            (self.root / name).unlink(missing_ok=True)

    def prepare(self) -> None:
        """Create the folder, prove it writable (or raise :class:`PipelineError`), and
        remove what a killed run may have left: its temporary folder and half-written
        temporary files (never a finished artifact). Call only while holding the
        folder's lock (:func:`ocrlab.output.lock.hold_output`): nothing here may belong
        to a live run then."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.text_dir.mkdir(exist_ok=True)
            (self.root / RESERVE_NAME).unlink(missing_ok=True)  # a killed run's reserve
            for folder in self.format_dirs():
                for stale in folder.rglob(".*.tmp") if folder.is_dir() else ():
                    stale.unlink(missing_ok=True)
            for stale in self.root.glob(".*.tmp*"):
                stale.unlink(missing_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".ocrlab-write-test-", dir=self.root)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise PipelineError(
                f"output folder {str(self.root)!r} is not writable ({exc.strerror or exc}); "
                "choose another --out folder or fix its permissions."
            ) from exc

    def artifact_path(self, doc_id: str) -> Path:
        """``text/<doc_id>.txt``, guaranteed to stay inside the output folder."""
        return self.format_path(doc_id, "txt")

    def format_path(self, doc_id: str, fmt: str) -> Path:
        """The file of format ``fmt`` for ``doc_id`` (``text/<doc_id>.txt``,
        ``hocr/<doc_id>.hocr``...), guaranteed to stay inside its folder."""
        parts = [p for p in doc_id.split("/") if p not in {"", "."}]
        if not parts or any(p == ".." for p in parts):
            raise PipelineError(f"document id {doc_id!r} cannot be mapped to an artifact path")
        folder = self.root / FOLDERS[fmt]
        target = folder.joinpath(*parts[:-1], parts[-1] + SUFFIXES[fmt])
        root = os.path.realpath(folder)
        if os.path.commonpath([root, os.path.realpath(target)]) != root:
            raise PipelineError(f"artifact of {doc_id!r} would escape {folder}")
        return target

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def not_empty_error(root: Path, found: list[str]) -> OutputNotEmptyError:
    """The refusal of a used folder, naming what is there and the two ways on."""
    return OutputNotEmptyError(
        f"output folder {str(root)!r} holds a previous run's {', '.join(found)}; run again "
        "with --resume to keep its finished documents and do the rest, or with --overwrite "
        "to start from an empty folder (ocrlab.run(..., resume=True) / overwrite=True), or "
        "choose another --out."
    )
