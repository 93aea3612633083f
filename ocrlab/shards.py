"""Sharded runs without a scheduler: each of N runs takes its own share of the documents.

For batch schedulers (a SLURM job array, a CI matrix, cron on several machines):
``ocrlab run data --out s3 --shard 3/4`` OCRs one quarter of ``data``, and
``ocrlab merge s0 s1 s2 s3 --into all`` (:mod:`ocrlab.output.merge`) makes the
four outputs one. ``--shard slurm`` takes I/N from the job array's variables.

How a shard knows its share without holding every document: discovery is lazy
and its order is fixed (a sorted walk, :mod:`ocrlab.sources`), the same on every
machine given the same tree. Every shard walks all of it, estimates each
document's cost from its headers (:mod:`ocrlab.ordering`: pixels, a PDF page's box
times the dpi; integers, so no float rounding can differ between machines) and
plays the same game on windows of :data:`WINDOW` documents: the window's
documents, most expensive first, each go to the shard with the least cost so far
(the lowest index on a tie), the loads carried from window to window
(longest-processing-time-first, as :mod:`ocrlab.ordering` orders pages). A shard
keeps the documents the game gives it and skips the others after their header
read. Memory: one window of documents and a total per shard.

Why not simpler: a hash of the document id balances counts in expectation only,
blind to cost; the same greedy in discovery order (no window) lets a large
document arriving late land on a shard that is already full. Measured on
``data/`` at 4 shards, the largest shard's cost against the mean: 1.67x hashed,
1.52x greedy, 1.18x with the window (its largest document alone is 1.18x the
mean); on 10,000 documents hashing is 3.5% off, the others exact. A contiguous
split by cumulative cost needs the total first, a second pass over every header.
docs/scale.md ("Sharded runs") has the figures and the commands.

Every shard also counts what it saw of the whole (documents, pages, cost), so the
merge can tell shards that walked different inputs and a document that no shard took.
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .ordering import _OpenPdf, estimate_cost
from .sources import Document

#: the largest shard count accepted (a job array of 10,000 tasks is already rare)
MAX_SHARDS = 10_000
#: cost units per estimated megapixel-equivalent (estimates carry 4 decimals)
_UNITS_PER_MP = 10_000
#: documents dealt out at once, most expensive first; part of the rule every shard of a
#: run must share (recorded in the manifest, compared by the merge), so not a setting
WINDOW = 2048


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (from 0)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @classmethod
    def parse(cls, text: str) -> Shard:
        index, _, count = text.partition("/")
        return cls(int(index), int(count))


def parse_shard(name: str, raw: object, env: Mapping[str, str] | None = None) -> str | None:
    """``"I/N"`` (0 <= I < N <= 10,000), ``"slurm"`` (a job array's task) or unset."""
    if raw is None or str(raw).strip() == "":
        return None
    text = str(raw).strip().lower()
    if text == "slurm":
        return str(slurm_shard(os.environ if env is None else env))
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i = n = -1
    if not sep or not 0 <= i < n <= MAX_SHARDS:
        raise ConfigError(
            f"{name}={raw!r} is not a shard; use I/N with 0 <= I < N <= {MAX_SHARDS} "
            "(e.g. 0/4 for the first of four), or 'slurm' inside a SLURM job array."
        )
    return f"{i}/{n}"


def slurm_shard(env: Mapping[str, str]) -> Shard:
    """This SLURM array task's shard: its place in the array, counted from 0.

    ``--array=1-4`` numbers tasks 1..4 and ``--array=0-15:4`` 0, 4, 8, 12: the
    index is (ID - MIN) / STEP, the count SLURM_ARRAY_TASK_COUNT. An array SLURM
    numbers irregularly (``--array=1,3,7``) has no such place and is refused.
    """
    try:
        task = int(env["SLURM_ARRAY_TASK_ID"])
        count = int(env["SLURM_ARRAY_TASK_COUNT"])
        low = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        step = int(env.get("SLURM_ARRAY_TASK_STEP", "1") or 1)
    except (KeyError, ValueError) as exc:
        raise ConfigError(
            f"--shard slurm needs SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT ({exc}); "
            "run it inside a job array (sbatch --array=0-3), or give the shard as I/N."
        ) from None
    index, off_grid = divmod(task - low, step)
    if off_grid or not 0 <= index < count <= MAX_SHARDS:
        raise ConfigError(
            f"SLURM array task {task} (min {low}, step {step}, count {count}) has no place "
            "I of N in a regular array; use --array=0-N-1 or give the shard as I/N."
        )
    return Shard(index, count)


def document_cost(doc: Document, dpi: int, pdf: _OpenPdf | None = None) -> int:
    """A document's estimated cost in integer units (at least 1 per page, 1 if unreadable)."""
    if not doc.ok or not doc.tasks:
        return 1
    return sum(max(1, round(estimate_cost(task, dpi, pdf) * _UNITS_PER_MP)) for task in doc.tasks)


class WholeRun:
    """The share of a run that is not sharded: every document, nothing to record."""

    def __call__(self, docs: Iterable[Document]) -> Iterator[Document]:
        return iter(docs)

    def as_dict(self) -> None:
        return None


class ShardFilter:
    """The documents of one shard, chosen from the stream of all (see the module doc)."""

    def __init__(self, shard: Shard, dpi: int) -> None:
        self.shard = shard
        self.dpi = dpi
        self.seen = {"documents": 0, "pages": 0, "cost": 0}
        self.mine = {"documents": 0, "pages": 0, "cost": 0}
        self.loads = [0] * shard.count

    @classmethod
    def of(cls, shard: str | None, dpi: int) -> ShardFilter | WholeRun:
        """The filter for the ``shard`` setting ("I/N"); every document when it is unset."""
        return WholeRun() if shard is None else cls(Shard.parse(shard), dpi)

    def __call__(self, docs: Iterable[Document]) -> Iterator[Document]:
        """This shard's documents, in discovery order within each window."""
        heap = [(0, i) for i in range(self.shard.count)]
        source = iter(docs)
        pdf = _OpenPdf()
        try:
            while window := list(itertools.islice(source, WINDOW)):
                # What discovery passed over (not documents) is the first shard's to report,
                # so that the merged summary counts it once.
                if self.shard.index == 0:
                    yield from (doc for doc in window if doc.skip is not None)
                window = [doc for doc in window if doc.skip is None]
                costs = [document_cost(doc, self.dpi, pdf) for doc in window]
                mine: list[int] = []
                for n in sorted(range(len(window)), key=lambda k: (-costs[k], k)):
                    load, index = heap[0]
                    heapq.heapreplace(heap, (load + costs[n], index))
                    self.loads[index] += costs[n]
                    self._count(self.seen, window[n], costs[n])
                    if index == self.shard.index:
                        self._count(self.mine, window[n], costs[n])
                        mine.append(n)
                yield from (window[n] for n in sorted(mine))
        finally:
            pdf.close()

    @staticmethod
    def _count(into: dict[str, int], doc: Document, cost: int) -> None:
        into["documents"] += 1
        into["pages"] += doc.n_pages
        into["cost"] += cost

    def as_dict(self) -> dict[str, Any]:
        """For the manifest: the share, the whole as this shard saw it, every shard's load."""
        return {
            "shard": str(self.shard),
            "window": WINDOW,
            "seen": dict(self.seen),
            "mine": dict(self.mine),
            "loads": list(self.loads),
        }
