"""The audit of an output folder: ``text/`` and every format's folder hold exactly what the
manifest lists.

Used by the tests and the notebooks alike, so "the folder holds what one run
produced" is checked the same way everywhere, for every format written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .formats import FOLDERS, SUFFIXES
from .manifest import load_manifest


@dataclass(frozen=True)
class OutputAudit:
    """How the artifacts on disk compare with what the manifest says was written."""

    listed: frozenset[str]  #: artifacts the manifest lists (paths relative to the folder)
    on_disk: frozenset[str]  #: the files under ``text/`` and every format's folder

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
    """Compare the format folders (``text/``, ``tsv/``, ``hocr/``...) with the manifest:
    after every run the two sets must be equal."""
    root = Path(out_dir)
    listed: set[str] = set()
    for doc in load_manifest(root)["documents"]:
        if doc.get("artifact"):
            listed.add(str(doc["artifact"]))
        listed.update(str(entry["path"]) for entry in (doc.get("formats") or {}).values())
    on_disk: set[str] = set()
    for fmt, folder in FOLDERS.items():
        if (root / folder).is_dir():
            on_disk.update(
                p.relative_to(root).as_posix()
                for p in (root / folder).rglob("*" + SUFFIXES[fmt])
                if p.is_file() and not p.name.startswith(".")
            )
    return OutputAudit(frozenset(listed), frozenset(on_disk))
