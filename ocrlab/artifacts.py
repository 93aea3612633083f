"""The output folder's layout: where each file goes, what a previous run left, reading it back.

Layout of an output folder::

    OUT/
      text/<doc_id>.txt   one UTF-8 artifact per document (its relative path + ".txt"),
                          pages in page order, each ended by a form feed as Tesseract does
      results.json        the manifest: one record per document, run metadata, summary
      journal.jsonl       one line per finished document as the run goes (ocrlab.journal)
      ocrlab.log          one line per event, each naming its document and page
      trace.json          Chrome Trace Event Format (opens in Perfetto)

Only the main process writes there, and none of it is written here: artifacts and
``results.json`` go through :mod:`ocrlab.atomic` (a reader, or a run killed with
``kill -9``, sees a complete file or none), the journal (:mod:`ocrlab.journal`)
and the trace (:mod:`ocrlab.trace`) are appended line by line, their readers
skipping a torn last line. This module names the paths (and refuses one that
would leave the folder), clears and prepares the folder, reads a manifest back
(:func:`load_manifest`, from the journal while a run goes on) and compares the
artifacts on disk with it (:func:`audit_output`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import PipelineError
from .journal import JOURNAL_NAME, MANIFEST_SCHEMA, journal_documents

__all__ = ["MANIFEST_SCHEMA", "OutputLayout", "assemble_text", "load_manifest"]


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
        if self.text_dir.is_dir() and any(p.is_file() for p in self.text_dir.rglob("*")):
            found.append("text/")
        return found

    def clear(self) -> None:
        """Remove a previous run's files (``--overwrite``), and only those: a user's other
        files in the folder stay. Call only while holding the folder's lock."""
        shutil.rmtree(self.text_dir, ignore_errors=True)
        for name in self.RUN_FILES:
            (self.root / name).unlink(missing_ok=True)

    def prepare(self) -> None:
        """Create the folder, prove it writable (or raise :class:`PipelineError`), and
        remove what a killed run may have left: its temporary folder and half-written
        temporary files (never a finished artifact). Call only while holding the
        folder's lock (:func:`ocrlab.ownership.hold_output`): nothing here may belong
        to a live run then."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.text_dir.mkdir(exist_ok=True)
            shutil.rmtree(self.root / ".ocrlab-tmp", ignore_errors=True)  # ocrlab < 0.2's
            (self.root / ".ocrlab-reserve").unlink(missing_ok=True)  # a killed run's ballast
            for stale in self.text_dir.rglob(".*.tmp"):
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
        parts = [p for p in doc_id.split("/") if p not in {"", "."}]
        if not parts or any(p == ".." for p in parts):
            raise PipelineError(f"document id {doc_id!r} cannot be mapped to an artifact path")
        target = self.text_dir.joinpath(*parts[:-1], parts[-1] + ".txt")
        root = os.path.realpath(self.text_dir)
        if os.path.commonpath([root, os.path.realpath(target)]) != root:
            raise PipelineError(f"artifact of {doc_id!r} would escape {self.text_dir}")
        return target

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def load_manifest(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``results.json`` from an output folder.

    While a run goes on (or after it was killed) results.json is a stub with status
    ``running``; its documents are then read from the journal (see :mod:`ocrlab.journal`).
    """
    root = Path(out_dir)
    data: dict[str, Any] = json.loads((root / "results.json").read_text("utf-8"))
    if data.get("status") == "running" and data.get("journal"):
        data["documents"] = journal_documents(root)
    return data


@dataclass(frozen=True)
class OutputAudit:
    """How the artifacts on disk compare with what the manifest says was written."""

    listed: frozenset[str]  #: artifacts the manifest lists (paths relative to the folder)
    on_disk: frozenset[str]  #: ``*.txt`` files under ``text/``

    @property
    def unlisted(self) -> frozenset[str]:
        """Artifacts on disk that no record of this run lists (a mixture)."""
        return self.on_disk - self.listed

    @property
    def missing(self) -> frozenset[str]:
        """Artifacts the manifest lists that are not on disk."""
        return self.listed - self.on_disk

    @property
    def ok(self) -> bool:
        return self.listed == self.on_disk


def audit_output(out_dir: str | os.PathLike[str]) -> OutputAudit:
    """Compare ``text/`` with the manifest: after every run the two sets must be equal.

    Used by the tests and the notebooks alike, so "the folder holds what one run
    produced" is checked the same way everywhere.
    """
    root = Path(out_dir)
    listed = frozenset(
        str(d["artifact"]) for d in load_manifest(root)["documents"] if d.get("artifact")
    )
    text = root / "text"
    on_disk = (
        frozenset(p.relative_to(root).as_posix() for p in text.rglob("*.txt") if p.is_file())
        if text.is_dir()
        else frozenset()
    )
    return OutputAudit(listed, on_disk)
