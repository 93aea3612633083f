"""Many workers' samples into one picture: per-host and cluster-wide figures at one moment.

Every Dask worker samples its own process tree on its own schedule
(:mod:`ocrlab.measure.dask_sampler`); the client receives the rows in batches,
about once a second, each worker's on the client's clock once its offset is
applied. What a host uses at a moment is the sum of its workers' trees at that
moment, and what the cluster uses is the sum over the hosts at that same moment:
the cluster's peak is the largest such sum, never the sum of the hosts' peaks
(hosts peak at different times; that sum bounds nothing real).

"At the same moment" here means sample-and-hold: :class:`SameMoment` merges the
workers' streams in time order, and at each sample a worker's figure is its
latest sample (at most one sampling interval old). It can only merge up to the
*watermark*, the earliest "I have reported up to here" among the live workers,
so a worker whose batch is late delays the sums instead of being left out of
them. A worker that is gone (its host died) leaves the sums at the moment it was
last heard of.

Pure: no Dask, no threads, no clock reads; the caller feeds it readings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Reading:
    """One worker's sample on the client's clock (bytes; PSS/USS None when not read)."""

    t_ns: int
    rss: int
    pss: int | None
    uss: int | None
    fds: int
    procs: int
    tesseracts: int
    tesseract_rss: int

    @classmethod
    def from_row(cls, row: Sequence[int], offset_ns: int) -> Reading:
        """A row of :data:`~ocrlab.measure.dask_sampler.ROW_FIELDS`, moved onto our clock."""
        t, rss, pss, uss, fds, procs, tess, tess_rss = row
        return cls(
            t - offset_ns,
            rss,
            None if pss < 0 else pss,
            None if uss < 0 else uss,
            fds,
            procs,
            tess,
            tess_rss,
        )


@dataclass(frozen=True, slots=True)
class Level:
    """A host's (or the cluster's) figures at one moment: sums over its live workers."""

    t_ns: int
    rss: int
    pss: int | None  # None until every worker summed has had its PSS read once
    fds: int
    tesseracts: int
    tesseract_rss: int
    workers: int


@dataclass
class Peak:
    """The largest RSS seen, the figures of that same moment, and separate maxima."""

    rss: int = 0
    t_ns: int = 0
    pss: int | None = None
    tesseract_rss: int = 0
    #: (cluster only) each host's RSS at the cluster's peak moment
    parts: dict[str, int] = field(default_factory=dict)
    fds: int = 0
    tesseracts: int = 0
    levels: int = 0

    def update(self, level: Level, parts: Callable[[], dict[str, int]] | None = None) -> None:
        """Count ``level``; at a new RSS high keep its moment (and ``parts()``, asked then)."""
        self.levels += 1
        self.fds = max(self.fds, level.fds)
        self.tesseracts = max(self.tesseracts, level.tesseracts)
        if level.rss > self.rss:
            self.rss, self.t_ns, self.pss = level.rss, level.t_ns, level.pss
            self.tesseract_rss = level.tesseract_rss
            if parts is not None:
                self.parts = parts()

    def as_dict(self, t0_ns: int) -> dict[str, Any]:
        """JSON-ready, times in seconds from ``t0_ns`` (the run's start)."""
        out: dict[str, Any] = {
            "rss_peak": self.rss,
            "pss_at_rss_peak": self.pss,
            "tesseract_rss_at_rss_peak": self.tesseract_rss,
            "rss_peak_at_s": round((self.t_ns - t0_ns) / 1e9, 3) if self.levels else None,
            "fds_peak": self.fds,
            "tesseract_peak": self.tesseracts,
            "moments": self.levels,
        }
        if self.parts:
            out["hosts_at_rss_peak"] = dict(sorted(self.parts.items()))
        return out


class _Sums:
    """Running sums over a set of workers' latest readings (PSS counted where known)."""

    def __init__(self) -> None:
        self.rss = self.fds = self.tesseracts = self.tesseract_rss = 0
        self.pss = 0
        self.without_pss = 0  # workers held whose PSS was never read
        self.workers = 0

    def change(self, old: Reading | None, new: Reading | None, old_pss: int | None) -> None:
        """Replace ``old`` by ``new`` (either may be None); ``old_pss`` the PSS held for it."""
        for r, sign in ((old, -1), (new, 1)):
            if r is None:
                continue
            self.rss += sign * r.rss
            self.fds += sign * r.fds
            self.tesseracts += sign * r.tesseracts
            self.tesseract_rss += sign * r.tesseract_rss
            self.workers += sign
        if old is not None:
            if old_pss is None:
                self.without_pss -= 1
            else:
                self.pss -= old_pss

    def hold_pss(self, pss: int | None) -> None:
        if pss is None:
            self.without_pss += 1
        else:
            self.pss += pss

    def level(self, t_ns: int) -> Level:
        pss = self.pss if self.without_pss == 0 and self.workers else None
        return Level(
            t_ns, self.rss, pss, self.fds, self.tesseracts, self.tesseract_rss, self.workers
        )


#: a worker's stream ends (its host is gone): the entry that takes it out of the sums
_GONE = None


class SameMoment:
    """Merges workers' readings in time order into per-host and cluster-wide levels.

    ``on_level(host, level)`` is called for each new level, ``host`` None for the
    cluster's; :attr:`hosts` and :attr:`cluster` keep the peaks.
    """

    def __init__(self, on_level: Callable[[str | None, Level], None] | None = None) -> None:
        self.on_level = on_level
        self.hosts: dict[str, Peak] = {}
        self.cluster = Peak()
        self._host_of: dict[str, str] = {}
        self._seen: dict[str, int] = {}  # each live worker's watermark
        self._pending: list[tuple[int, int, str, Reading | None]] = []
        self._held: dict[str, Reading] = {}
        self._held_pss: dict[str, int | None] = {}
        self._sums: dict[str, _Sums] = {}
        self._all = _Sums()
        self._seq = 0
        self._last_t = -math.inf

    def add(self, worker: str, host: str, readings: Iterable[Reading], seen_ns: int) -> None:
        """``worker`` (on ``host``) reports ``readings``, and that it has reported up to
        ``seen_ns`` (our clock)."""
        self._host_of[worker] = host
        self.hosts.setdefault(host, Peak())
        self._sums.setdefault(host, _Sums())
        for r in readings:
            self._queue(r.t_ns, worker, r)
        self._seen[worker] = max(self._seen.get(worker, seen_ns), seen_ns)

    def retire(self, worker: str, t_ns: int | None = None) -> None:
        """``worker`` is gone: it leaves the sums at ``t_ns`` (default: its last report)."""
        seen = self._seen.pop(worker, None)
        if seen is not None:
            self._queue(seen if t_ns is None else t_ns, worker, _GONE)

    def _queue(self, t_ns: int, worker: str, reading: Reading | None) -> None:
        self._seq += 1
        self._pending.append((t_ns, self._seq, worker, reading))

    @property
    def watermark(self) -> float:
        """Readings up to here can be merged: every live worker has reported past it."""
        return min(self._seen.values()) if self._seen else math.inf

    def flush(self, final: bool = False) -> int:
        """Merge the readings up to the watermark (all of them when ``final``); how many."""
        limit = math.inf if final else self.watermark
        ready = sorted(p for p in self._pending if p[0] <= limit)
        if not ready:
            return 0
        self._pending = [p for p in self._pending if p[0] > limit]
        for t_ns, _seq, worker, reading in ready:
            self._apply(max(t_ns, self._last_t), worker, reading)
        return len(ready)

    def _apply(self, t: float, worker: str, reading: Reading | None) -> None:
        t_ns = int(t)
        self._last_t = t_ns
        host = self._host_of[worker]
        old = self._held.pop(worker, None)
        old_pss = self._held_pss.pop(worker, None) if old is not None else None
        if old is None and reading is None:
            return  # gone before it was ever heard
        pss = None if reading is None else (reading.pss if reading.pss is not None else old_pss)
        for sums in (self._sums[host], self._all):
            sums.change(old, reading, old_pss)
            if reading is not None:
                sums.hold_pss(pss)
        if reading is not None:
            self._held[worker] = reading
            self._held_pss[worker] = pss
        host_level = self._sums[host].level(t_ns)
        self.hosts[host].update(host_level)
        cluster_level = self._all.level(t_ns)
        self.cluster.update(
            cluster_level, lambda: {h: s.rss for h, s in self._sums.items() if s.workers}
        )
        if self.on_level is not None:
            self.on_level(host, host_level)
            self.on_level(None, cluster_level)
