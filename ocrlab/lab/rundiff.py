"""Two runs' outputs compared page by page: ``ocrlab diff RUN_A RUN_B``.

Three steps, kept apart so that a notebook widget can reuse the middle one:

1. :func:`~ocrlab.lab.snapshot.load_run` reads an output folder (its manifest
   ``results.json`` and text artifacts) into a :class:`RunSnapshot`, or raises
   :class:`NotAnOutputFolder` naming what is wrong (the command's exit code 2);
2. :func:`compare_runs` compares two snapshots (or folders) and returns a
   :class:`RunDiff`: for every document and page, whether the text is identical, the
   CER / WER of each run against the ground truth where there is some (``NAME.gt.txt``
   beside the input, found from the manifest's ``source``), failures that appear or
   disappear, and the mean word confidence of each run where the manifest records one;
   plus what differs between the runs themselves (Tesseract version, host, settings);
3. :func:`judge` decides, without any I/O, whether run B reads worse than run A under
   the user's thresholds (the command's exit code 0 or 1).

Runs from other machines compare as well as runs from this one: only the manifest
and the artifacts are read. Ground truth is looked up from each document's ``source``
path as the run recorded it (relative paths are relative to where that run started):
run the diff from the same folder, or documents simply have no CER.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .accuracy import cer, normalize, wer
from .snapshot import TEXT_SETTINGS, NotAnOutputFolder, PageRead, RunSnapshot, load_run

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DiffVerdict",
    "NotAnOutputFolder",
    "PageDiff",
    "RunDiff",
    "RunSnapshot",
    "compare_runs",
    "judge",
    "load_run",
    "write_json",
]


#: CER changes below this are rounding, not reading (edits / characters in floating point)
_EPS = 1e-9


@dataclass(frozen=True)
class PageDiff:
    """One page in both runs. ``state_*``: ``ok``, ``failed`` or ``missing`` (not in the run)."""

    doc_id: str
    page: int  #: 0: a document that failed before it had pages
    state_a: str
    state_b: str
    identical: bool
    chars_a: int | None = None
    chars_b: int | None = None
    cer_a: float | None = None
    cer_b: float | None = None
    wer_a: float | None = None
    wer_b: float | None = None
    ref_chars: int | None = None
    conf_a: float | None = None
    conf_b: float | None = None
    error_a: str | None = None
    error_b: str | None = None

    @property
    def where(self) -> str:
        return self.doc_id if self.page == 0 else f"{self.doc_id} p{self.page}"

    @property
    def change(self) -> str:
        """``same``, ``changed``, ``newly failed``, ``fixed``, ``still failing``,
        ``only in A`` or ``only in B``."""
        a, b = self.state_a, self.state_b
        if b == "missing":
            return "only in A"
        if a == "missing":
            return "only in B"
        if a == "ok" and b == "failed":
            return "newly failed"
        if a == "failed" and b == "ok":
            return "fixed"
        if a == "failed":
            return "still failing"
        return "same" if self.identical else "changed"

    @property
    def cer_change(self) -> float | None:
        if self.cer_a is None or self.cer_b is None:
            return None
        return self.cer_b - self.cer_a


@dataclass(frozen=True)
class RunDiff:
    """Run B against run A, page by page (see :func:`compare_runs`)."""

    a: str
    b: str
    pages: tuple[PageDiff, ...]
    #: what differs between the runs themselves: Tesseract, host, settings, status
    context: tuple[str, ...] = ()
    texts_a: dict[tuple[str, int], str] = field(default_factory=dict, repr=False)
    texts_b: dict[tuple[str, int], str] = field(default_factory=dict, repr=False)

    @property
    def identical(self) -> bool:
        """Every page in both runs, with the same text (or failing in both)."""
        return all(p.change in ("same", "still failing") for p in self.pages)

    def by_change(self, *changes: str) -> list[PageDiff]:
        return [p for p in self.pages if p.change in changes]

    def total_cer(self) -> tuple[float | None, float | None, int]:
        """(CER of A, CER of B, pages) over the pages scored in both runs: edits over
        reference characters of all of them, so long pages weigh as much as they read."""
        both = [p for p in self.pages if p.cer_a is not None and p.cer_b is not None]
        chars = sum(p.ref_chars or 0 for p in both)
        if not both or not chars:
            return None, None, len(both)
        edits_a = sum((p.cer_a or 0) * (p.ref_chars or 0) for p in both)
        edits_b = sum((p.cer_b or 0) * (p.ref_chars or 0) for p in both)
        return edits_a / chars, edits_b / chars, len(both)

    @property
    def diffs(self) -> dict[tuple[str, int], str]:
        """Unified diffs of the pages whose text changed."""
        return {
            (p.doc_id, p.page): self.text_diff(p.doc_id, p.page) for p in self.by_change("changed")
        }

    def text_diff(self, doc_id: str, page: int) -> str:
        """A unified diff of one page's text, A to B."""
        x, y = self.texts_a.get((doc_id, page), ""), self.texts_b.get((doc_id, page), "")
        return "".join(
            difflib.unified_diff(
                x.splitlines(keepends=True),
                y.splitlines(keepends=True),
                fromfile=f"{Path(self.a).name}/{doc_id}#{page}",
                tofile=f"{Path(self.b).name}/{doc_id}#{page}",
            )
        )

    def table(self) -> pd.DataFrame:
        """One row per page (pandas), with ``change`` and ``cer_change`` columns."""
        import pandas as pd

        rows = [{**asdict(p), "change": p.change, "cer_change": p.cer_change} for p in self.pages]
        return pd.DataFrame(rows, columns=[*PageDiff.__dataclass_fields__, "change", "cer_change"])

    def as_dict(self) -> dict[str, Any]:
        cer_a, cer_b, scored = self.total_cer()
        return {
            "a": self.a,
            "b": self.b,
            "context": list(self.context),
            "identical": self.identical,
            "cer_a": cer_a,
            "cer_b": cer_b,
            "scored_pages": scored,
            "pages": [
                {**asdict(p), "change": p.change, "cer_change": p.cer_change} for p in self.pages
            ],
        }


def _state(read: PageRead | None) -> str:
    if read is None:
        return "missing"
    return "failed" if read.error else "ok"


def _scores(ref: str | None, read: PageRead | None) -> tuple[float | None, float | None]:
    if ref is None or read is None or read.text is None:
        return None, None
    return cer(ref, read.text), wer(ref, read.text)


def _context(a: RunSnapshot, b: RunSnapshot) -> list[str]:
    out = []
    if a.tesseract != b.tesseract:
        out.append(f"Tesseract versions differ: {a.tesseract} (A) against {b.tesseract} (B)")
    if a.host != b.host:
        out.append(f"hosts differ: {a.host} (A) against {b.host} (B)")
    for key in TEXT_SETTINGS:
        if a.settings.get(key) != b.settings.get(key):
            out.append(f"setting {key}: {a.settings.get(key)!r} (A), {b.settings.get(key)!r} (B)")
    for label, snap in (("A", a), ("B", b)):
        if snap.status != "complete":
            out.append(f"run {label} is {snap.status or 'of unknown status'}, not complete")
    return out


def compare_runs(
    a: RunSnapshot | str | os.PathLike[str], b: RunSnapshot | str | os.PathLike[str]
) -> RunDiff:
    """Compare run B with run A page by page (folders are read with :func:`load_run`)."""
    sa = a if isinstance(a, RunSnapshot) else load_run(a)
    sb = b if isinstance(b, RunSnapshot) else load_run(b)
    pages = []
    texts_a: dict[tuple[str, int], str] = {}
    texts_b: dict[tuple[str, int], str] = {}
    for doc_id in sorted(set(sa.documents) | set(sb.documents)):
        da, db = sa.documents.get(doc_id), sb.documents.get(doc_id)
        refs = (da.references if da else None) or (db.references if db else None)
        numbers = sorted(set(da.pages if da else {}) | set(db.pages if db else {}))
        for number in numbers:
            ra = da.pages.get(number) if da else None
            rb = db.pages.get(number) if db else None
            ref = refs[number - 1] if refs is not None and 0 < number <= len(refs) else None
            if ref is None and refs is not None and number > 0:
                ref = ""  # ground truth has fewer pages: this one should be blank
            cer_a, wer_a = _scores(ref, ra)
            cer_b, wer_b = _scores(ref, rb)
            for read, store in ((ra, texts_a), (rb, texts_b)):
                if read is not None and read.text is not None:
                    store[(doc_id, number)] = read.text
            pages.append(
                PageDiff(
                    doc_id,
                    number,
                    _state(ra),
                    _state(rb),
                    identical=ra is not None
                    and rb is not None
                    and ra.text == rb.text
                    and (ra.error is None) == (rb.error is None),
                    chars_a=None if ra is None or ra.text is None else len(ra.text),
                    chars_b=None if rb is None or rb.text is None else len(rb.text),
                    cer_a=cer_a,
                    cer_b=cer_b,
                    wer_a=wer_a,
                    wer_b=wer_b,
                    ref_chars=None if ref is None else len(normalize(ref)),
                    conf_a=ra.conf if ra else None,
                    conf_b=rb.conf if rb else None,
                    error_a=ra.error if ra else None,
                    error_b=rb.error if rb else None,
                )
            )
    return RunDiff(sa.folder, sb.folder, tuple(pages), tuple(_context(sa, sb)), texts_a, texts_b)


@dataclass(frozen=True)
class DiffVerdict:
    """Whether B reads worse than A: ``code`` 0 (no) or 1 (yes), and why."""

    code: int
    reasons: tuple[str, ...]
    notes: tuple[str, ...] = ()


def _names(pages: Sequence[PageDiff], limit: int = 8) -> str:
    shown = ", ".join(p.where for p in pages[:limit])
    return shown + (f" and {len(pages) - limit} more" if len(pages) > limit else "")


def judge(
    diff: RunDiff, *, max_cer_increase: float = 0.0, allow_text_changes: bool = False
) -> DiffVerdict:
    """Worse: a page that failed or vanished in B, a page (or the whole) whose CER rose by
    more than ``max_cer_increase`` (a fraction: 0.01 is one point), or, unless
    ``allow_text_changes``, any page whose text changed."""
    reasons, notes = [], []
    lost = diff.by_change("newly failed", "only in A")
    if lost:
        reasons.append(f"{len(lost)} page(s) failed or missing in B: {_names(lost)}")
    worse = [p for p in diff.pages if (p.cer_change or 0.0) > max_cer_increase + _EPS]
    if worse:
        worse.sort(key=lambda p: -(p.cer_change or 0.0))
        reasons.append(
            f"{len(worse)} page(s) with CER up by more than {max_cer_increase:.2%}: "
            + ", ".join(f"{p.where} (+{p.cer_change:.2%})" for p in worse[:8])
            + (f" and {len(worse) - 8} more" if len(worse) > 8 else "")
        )
    cer_a, cer_b, scored = diff.total_cer()
    if cer_a is not None and cer_b is not None and cer_b - cer_a > max_cer_increase + _EPS:
        reasons.append(f"CER over {scored} scored page(s) rose from {cer_a:.2%} to {cer_b:.2%}")
    changed = diff.by_change("changed")
    if changed and not allow_text_changes:
        reasons.append(
            f"{len(changed)} page(s) read differently: {_names(changed)} "
            "(--allow-text-changes accepts changed text that is not worse)"
        )
    elif changed:
        notes.append(f"{len(changed)} page(s) read differently (allowed)")
    fixed = diff.by_change("fixed")
    if fixed:
        notes.append(f"{len(fixed)} page(s) fixed in B: {_names(fixed)}")
    added = diff.by_change("only in B")
    if added:
        notes.append(f"{len(added)} page(s) only in B: {_names(added)}")
    return DiffVerdict(1 if reasons else 0, tuple(reasons), tuple(notes))


def write_json(diff: RunDiff, verdict: DiffVerdict, path: str | os.PathLike[str]) -> None:
    """The diff and its verdict as JSON (``--json FILE``), written atomically."""
    from ..output.atomic import atomic_write_text

    payload = {**diff.as_dict(), "verdict": asdict(verdict)}
    atomic_write_text(Path(path), json.dumps(payload, indent=1) + "\n")
