"""The audit of an output folder: ``text/`` holds exactly what the manifest lists.

Used by the tests and the notebooks alike, so "the folder holds what one run
produced" is checked the same way everywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .manifest import load_manifest


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
    """Compare ``text/`` with the manifest: after every run the two sets must be equal."""
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
