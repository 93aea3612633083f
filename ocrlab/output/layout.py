"""Where a run's files go in its output folder, and which of them a run may find there.

Layout of an output folder::

    OUT/
      text/<doc_id>.txt   one UTF-8 artifact per document (its relative path + ".txt"),
                          pages in page order, each ended by a form feed as Tesseract does;
                          a name the filesystem cannot take is shortened with a hash
                          (output.names); the manifest records each artifact's path
      tsv/ hocr/ alto/ pdf/   the other asked ``formats``: a file per document named like
                          its artifact (text/a/b.png.txt -> hocr/a/b.png.hocr; .tsv, .xml
                          for ALTO, .pdf; written by output.documents)
      results.json        the manifest: one record per document, run metadata, summary
      journal.jsonl       one line per finished document as the run goes (output.journal)
      ocrlab.log          one line per event, each naming its document and page
      trace.json          Chrome Trace Event Format (opens in Perfetto; output.trace)
      trace.1.json ...    the traces of the earlier runs a --resume continued, oldest first
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
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import OutputNotEmptyError, PipelineError
from .formats import FOLDERS, SUFFIXES
from .names import fit_name, hashed_name

__all__ = ["JOURNAL_NAME", "LOCK_NAME", "RESERVE_NAME", "OutputLayout", "assemble_text"]

JOURNAL_NAME = "journal.jsonl"
LOCK_NAME = ".ocrlab.lock"
RESERVE_NAME = ".ocrlab-reserve"
#: bytes kept free below ``PATH_MAX`` for the atomic writer's temporary name beside a target
_TEMP_ROOM = 128


def assemble_text(pages: list[str]) -> str:
    """Join page texts the way Tesseract's text renderer does: each page ends with ``\\f``."""
    return "".join(p + "\f" for p in pages)


class OutputLayout:
    """Where a run's files go; refuses paths that would escape the output folder."""

    def __init__(self, out_dir: str | os.PathLike[str], formats: Sequence[str] = ("txt",)):
        self.root = Path(out_dir)
        #: the formats the run writes (``text/`` and the folders of the others)
        self.formats = tuple(formats)
        self.text_dir = self.root / "text"
        self.manifest = self.root / "results.json"
        self.journal = self.root / "journal.jsonl"
        self.log = self.root / "ocrlab.log"
        self.trace = self.root / "trace.json"
        self._limits_cache: tuple[int, int] | None = None
        self._real_text_dir: str | None = None  # text/'s real path, resolved once

    #: the files a run writes at the top of its folder (``text/`` besides)
    RUN_FILES = ("results.json", JOURNAL_NAME, "trace.json", "ocrlab.log")

    def earlier_traces(self) -> list[Path]:
        """The traces of the earlier runs ``--resume`` continued, oldest first.

        Each run keeps a ``trace.json`` of its own rather than appending to the earlier
        one: every reader (the live views, which tell a new trace from a stale one by
        its inode, the analysis, Perfetto) takes one trace as one run, with one clock.
        """
        numbered = []
        for path in self.root.glob("trace.*.json"):
            n = path.name[len("trace.") : -len(".json")]
            if n.isdigit():
                numbered.append((int(n), path))
        return [path for _, path in sorted(numbered)]

    def keep_trace(self) -> Path | None:
        """Move the trace of the run being resumed aside, as ``trace.N.json`` (N one past
        the newest kept), so the resumed run starts its own; None if there is none."""
        if not self.trace.exists():
            return None
        earlier = self.earlier_traces()
        n = int(earlier[-1].name.split(".")[1]) + 1 if earlier else 1
        target = self.root / f"trace.{n}.json"
        try:
            os.rename(self.trace, target)
        except OSError as exc:
            raise PipelineError(
                f"cannot keep the earlier run's trace {self.trace} as {target.name} "
                f"({exc.strerror or exc}); check the output folder's permissions."
            ) from exc
        return target

    def previous_outputs(self) -> list[str]:
        """What an earlier run left here (manifest, trace, log, artifacts), for the refusal
        message; empty for a new or empty folder, or one with only a user's own files."""
        found = [name for name in self.RUN_FILES if (self.root / name).exists()]
        found += [path.name for path in self.earlier_traces()]
        for folder in self.format_dirs():
            if folder.is_dir() and any(p.is_file() for p in folder.rglob("*")):
                found.append(f"{folder.name}/")
        return found

    def format_dirs(self) -> list[Path]:
        """``text/`` and the folder of every other format a run may write."""
        return [self.root / name for name in dict.fromkeys(FOLDERS.values())]

    def claim(self, *, resume: bool, overwrite: bool) -> None:
        """Refuse a folder a previous run used, unless resuming or overwriting; with
        ``overwrite``, empty it of ocrlab's files; with ``resume``, keep the earlier
        run's trace beside (:meth:`keep_trace`). Call only while holding the lock."""
        if resume:
            self.keep_trace()
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
        for path in self.earlier_traces():
            path.unlink(missing_ok=True)

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

    def _limits(self) -> tuple[int, int]:
        """(``NAME_MAX``, ``PATH_MAX``) of the filesystem ``text/`` is on (255 and 4096 on
        Linux's usual filesystems; less on some, e.g. eCryptfs), asked once."""
        if self._limits_cache is None:
            probe = self.text_dir if self.text_dir.is_dir() else self.root
            try:
                self._limits_cache = (
                    int(os.pathconf(probe, "PC_NAME_MAX")),
                    int(os.pathconf(probe, "PC_PATH_MAX")),
                )
            except (OSError, ValueError):
                self._limits_cache = (255, 4096)
        return self._limits_cache

    def _parts(self, doc_id: str) -> list[str]:
        parts = [p for p in doc_id.split("/") if p not in {"", "."}]
        if not parts or any(p == ".." for p in parts):
            raise PipelineError(f"document id {doc_id!r} cannot be mapped to an artifact path")
        return parts

    def _inside(self, doc_id: str, target: Path) -> Path:
        # text/'s own real path once per run (the folder is the run's, claimed under its
        # lock); the target's every time, since a link inside text/ would lead out of it.
        # Found by profiling a 20,000-document echo run: 6 realpaths a document, 17% of it.
        if self._real_text_dir is None:
            self._real_text_dir = os.path.realpath(self.text_dir)
        root = self._real_text_dir
        if os.path.commonpath([root, os.path.realpath(target)]) != root:
            raise PipelineError(f"artifact of {doc_id!r} would escape {self.text_dir}")
        return target

    def artifact_path(self, doc_id: str) -> Path:
        """``text/<doc_id>.txt``, guaranteed to stay inside the output folder.

        A component longer than the filesystem's ``NAME_MAX`` (a 250-byte file name
        plus ``.txt``) is shortened to a start of it, ``~`` and a hash of it
        (:func:`~ocrlab.output.names.fit_name`); a path longer than ``PATH_MAX`` goes
        to the top of ``text/`` with a hashed name. Pure: the same id on the same
        filesystem gives the same path.
        """
        parts = self._parts(doc_id)
        name_max, path_max = self._limits()
        dirs = [fit_name(p, name_max) for p in parts[:-1]]
        target = self.text_dir.joinpath(*dirs, fit_name(parts[-1], name_max, ".txt"))
        if len(os.fsencode(target)) + _TEMP_ROOM >= path_max:
            target = self.text_dir / hashed_name(doc_id, parts[-1], name_max)
        return self._inside(doc_id, target)

    def artifact_candidates(self, doc_id: str) -> Iterator[Path]:
        """Where the artifact of ``doc_id`` may go, in order: :meth:`artifact_path`, then a
        hashed portable name beside it, then one at the top of ``text/``. Lazily: nearly
        every artifact takes the first, and each candidate costs a ``realpath``.

        The writer takes the first it can create without replacing anything: the
        next ones are for a name the filesystem refuses (not UTF-8 on a UTF-8-only
        filesystem, a character FAT or SMB refuses) or already holds (another
        document's artifact on a filesystem that folds case or Unicode normalization;
        a folder ``x.txt/`` beside a document ``x``, whose artifact is ``x.txt``).
        """
        natural = self.artifact_path(doc_id)
        yield natural
        leaf = self._parts(doc_id)[-1]
        name_max = self._limits()[0]
        given = [natural]
        for folder in (natural.parent, self.text_dir):
            candidate = self._inside(doc_id, folder / hashed_name(doc_id, leaf, name_max))
            if candidate not in given:
                given.append(candidate)
                yield candidate

    def format_path(self, artifact: Path, fmt: str) -> Path:
        """The file of format ``fmt`` of the document whose text artifact is ``artifact``:
        the same path under the format's folder, ``.txt`` replaced by the format's suffix
        (shortened as the artifact's own name is, should the suffix make it too long)."""
        relative = artifact.relative_to(self.text_dir)
        stem = relative.name.removesuffix(".txt")
        name = fit_name(stem, self._limits()[0], SUFFIXES[fmt])
        return self.root / FOLDERS[fmt] / relative.parent / name

    def discard(self, artifact: str | None) -> None:
        """Remove a previous run's artifact (a path relative to the folder, as the manifest
        lists it) of a document being redone, and its files in the other formats; nothing
        outside ``text/`` and the formats' folders is touched."""
        if not artifact:
            return
        target = self.root / artifact
        root = os.path.realpath(self.text_dir)
        if os.path.commonpath([root, os.path.realpath(target)]) == root:
            target.unlink(missing_ok=True)
            for fmt in FOLDERS:
                if fmt != "txt":
                    self.format_path(target, fmt).unlink(missing_ok=True)

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
