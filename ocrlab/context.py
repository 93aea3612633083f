"""What a run is asked to do: which inputs, in which groups, into which folder.

Re-exported by :mod:`ocrlab.records` (where these used to live) and by
:mod:`ocrlab.pipeline`; kept apart because they cross no process boundary and fill no
manifest: they are the run's question, the records its answers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Group:
    """A named set of inputs; the name prefixes its document ids (``""``: no prefix)."""

    name: str
    inputs: tuple[str, ...]


@dataclass(frozen=True)
class RunContext:
    """What to OCR and where to write it."""

    groups: tuple[Group, ...]
    out_dir: str
    #: keep what a previous run in ``out_dir`` finished with the same input and settings
    resume: bool = False
    #: start from an empty folder: remove a previous run's artifacts, manifest, trace, log
    overwrite: bool = False

    @classmethod
    def single(
        cls,
        inputs: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
        out_dir: str | os.PathLike[str],
        resume: bool = False,
        overwrite: bool = False,
    ) -> RunContext:
        items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
        return cls(
            (Group("", tuple(os.fspath(p) for p in items)),),
            os.fspath(out_dir),
            resume,
            overwrite,
        )
