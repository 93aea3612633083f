"""How evenly ``--shard I/N`` splits a corpus by estimated cost, against simpler rules.

::

    python -m ocrlab.lab.shard_balance data --shards 2,4,8
    python -m ocrlab.lab.shard_balance --synthetic 10000 --shards 4,16,64

For each N: the largest and the smallest shard's estimated cost against the mean,
for the rule :mod:`ocrlab.shards` uses (windows dealt out most expensive first), the
same greedy in discovery order, and a hash of the document id. Headers only: no OCR.
``--synthetic N`` measures on N header-only PNGs (seeded log-normal sizes, median
2.7 MP, a long tail up to 60 MP) written to a temporary folder.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import random
import struct
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path

from ..shards import Shard, ShardFilter, document_cost
from ..sources import iter_documents


def _spread(loads: Sequence[int]) -> tuple[float, float]:
    mean = sum(loads) / len(loads)
    return round(max(loads) / mean, 3), round(min(loads) / mean, 3)


def balance(inputs: Sequence[str], n: int, dpi: int = 300) -> dict[str, tuple[float, float]]:
    """(largest / mean, smallest / mean) of the shards' estimated cost, rule by rule."""
    docs = list(iter_documents(inputs))
    costs = [document_cost(d, dpi) for d in docs]
    windowed = ShardFilter(Shard(0, n), dpi)
    for _ in windowed(docs):
        pass
    greedy, heap = [0] * n, [(0, i) for i in range(n)]
    for cost in costs:
        load, i = heap[0]
        heapq.heapreplace(heap, (load + cost, i))
        greedy[i] += cost
    hashed = [0] * n
    for doc, cost in zip(docs, costs, strict=True):
        hashed[int(hashlib.sha256(doc.doc_id.encode()).hexdigest(), 16) % n] += cost
    return {
        "documents": (float(len(docs)), float(max(costs) * n / sum(costs))),
        "ocrlab (windows, largest first)": _spread(windowed.loads),
        "greedy in discovery order": _spread(greedy),
        "hash of the id": _spread(hashed),
    }


def synthetic_tree(root: Path, n: int, seed: int = 23) -> Path:
    """``n`` PNG files of a signature and an IHDR chunk only: all that discovery and the
    cost estimate read."""
    rng = random.Random(seed)
    for i in range(n):
        mp = min(60.0, rng.lognormvariate(1.0, 0.9))
        width = int((mp * 1e6 / 1.414) ** 0.5)
        ihdr = struct.pack(">IIBBBBB", width, int(width * 1.414), 8, 0, 0, 0, 0)
        crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
        path = root / f"d{i % 50:02d}" / f"doc{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + crc)
    return root


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("inputs", nargs="*")
    p.add_argument("--shards", default="2,4,8")
    p.add_argument("--synthetic", type=int, default=0, metavar="N")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ocrlab-balance-") as tmp:
        inputs = [str(synthetic_tree(Path(tmp), args.synthetic))] if args.synthetic else []
        _report(inputs + args.inputs, [int(x) for x in args.shards.split(",")])


def _report(inputs: Sequence[str], counts: Sequence[int]) -> None:
    for n in counts:
        result = balance(inputs, n)
        count, largest = result.pop("documents")
        rows = "; ".join(f"{k} {hi:.3f} / {lo:.3f}" for k, (hi, lo) in result.items())
        print(f"N={n} ({count:.0f} documents, the largest alone {largest:.3f}x the mean): {rows}")


if __name__ == "__main__":
    main()
