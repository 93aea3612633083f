"""Output layout, atomic writes and the results manifest.

Layout of an output folder::

    OUT/
      text/<doc_id>.txt   one UTF-8 artifact per document (its relative path + ".txt"),
                          pages in page order, each ended by a form feed as Tesseract does
      results.json        the manifest: one record per document, run metadata, summary
      journal.jsonl       one line per finished document as the run goes (ocrlab.journal)
      ocrlab.log          one line per event, each naming its document and page
      trace.json          Chrome Trace Event Format (opens in Perfetto)

Everything is written by the main process, through :mod:`ocrlab.atomic`, so a
reader (or a run killed with ``kill -9``) sees a complete file or none.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .errors import PipelineError
from .journal import MANIFEST_SCHEMA, journal_documents

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

    def prepare(self) -> None:
        """Create the folder, prove it writable (or raise :class:`PipelineError`), and
        remove what a killed run may have left: its temporary folder and half-written
        temporary files (never a finished artifact)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.text_dir.mkdir(exist_ok=True)
            shutil.rmtree(self.root / ".ocrlab-tmp", ignore_errors=True)
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
