"""Per-host figures from many workers' samples: sums at one moment, clocks, the sampler."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from ocrlab.measure.hosts import Level, Reading, SameMoment
from ocrlab.scaleout import ClockOffsets

MB = 2**20


def _r(t_s: float, rss_mb: int, pss_mb: int | None = None, tess: int = 0) -> Reading:
    pss = None if pss_mb is None else pss_mb * MB
    return Reading(int(t_s * 1e9), rss_mb * MB, pss, pss, 10, 2, tess, 50 * MB * tess)


def test_cluster_peak_is_a_sum_at_one_moment_not_a_sum_of_peaks() -> None:
    levels: list[tuple[str | None, Level]] = []
    series = SameMoment(lambda host, level: levels.append((host, level)))
    # Host a peaks at t=1 (300 MB), host b at t=3 (400 MB): never together.
    series.add("w-a", "a", [_r(0, 100), _r(1, 300), _r(2, 100), _r(3, 100)], int(3.5e9))
    series.add("w-b", "b", [_r(0.5, 100), _r(1.5, 100), _r(3, 400)], int(3.5e9))
    assert series.flush() == 7
    assert series.hosts["a"].rss == 300 * MB and series.hosts["b"].rss == 400 * MB
    cluster = series.cluster
    assert cluster.rss == 500 * MB < 700 * MB  # b's 400 with a's 100 at t=3
    assert cluster.parts == {"a": 100 * MB, "b": 400 * MB} and cluster.t_ns == int(3e9)
    cluster_levels = [lv for host, lv in levels if host is None]
    assert [lv.t_ns for lv in cluster_levels] == sorted(lv.t_ns for lv in cluster_levels)


def test_a_late_worker_holds_the_sums_back_until_it_reports() -> None:
    series = SameMoment()
    series.add("w1", "a", [_r(1, 100), _r(2, 100)], int(2e9))
    series.add("w2", "a", [], int(0.5e9))  # has reported only up to 0.5 s
    assert series.flush() == 0, "w2 may still send samples from before t=1"
    series.add("w2", "a", [_r(1, 50), _r(2, 50)], int(2e9))
    assert series.flush() == 4
    assert series.hosts["a"].rss == 150 * MB and series.hosts["a"].tesseracts == 0


def test_a_lost_worker_leaves_the_sums_and_pss_is_the_latest_read() -> None:
    series = SameMoment()
    series.add("w1", "a", [_r(1, 100, pss_mb=60), _r(2, 120)], int(2e9))
    series.add("w2", "b", [_r(1, 200, pss_mb=150, tess=1)], int(1e9))
    series.retire("w2")  # its host died after t=1
    series.add("w1", "a", [_r(3, 130)], int(3e9))
    series.flush()
    assert series.hosts["a"].pss == 60 * MB, "PSS held from the latest read"
    assert series.cluster.rss == 300 * MB and series.cluster.pss == 210 * MB
    assert series.cluster.tesseract_rss == 50 * MB
    final = SameMoment()
    final.add("w1", "a", [_r(1, 1)], 0)
    assert final.flush() == 0 and final.flush(final=True) == 1


def test_clock_offset_keeps_the_shortest_round_trip() -> None:
    clocks = ClockOffsets(client=None)
    clocks.observe("w", remote_ns=1_000_500, sent_ns=0, received_ns=1_000)  # rtt 1 us
    clocks.observe("w", remote_ns=9_000_000, sent_ns=0, received_ns=10_000)  # slower: ignored
    best = clocks.get("w", measure=False)
    assert best is not None and best.offset_ns == 1_000_000 and best.rtt_ns == 1_000
    assert clocks.get("unknown", measure=False) is None
    assert clocks.as_dict() == {"w": {"offset_ms": 1.0, "rtt_ms": 0.001}}


def test_tree_sampler_reads_pss_at_each_new_rss_high(tmp_path: object) -> None:
    """The worker side alone, on this process's tree: rows, a child counted, the lease."""
    pytest.importorskip("distributed")
    from ocrlab.measure.dask_sampler import ROW_FIELDS, TreeSampler

    sampler = TreeSampler(0.05, pss_every=1000, lease_s=0.5)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        row = dict(zip(ROW_FIELDS, sampler.take(), strict=True))
        assert row["procs"] >= 2 and row["pss"] > 0, "a new high reads PSS at once"
        drained = sampler.drain()
        peak = drained["peak"]
        assert peak is not None and child.pid in {pid for pid, _, _ in peak["procs"]}
        assert drained["pid"] == os.getpid() and len(drained["rows"]) == 1
        sampler.start()
        time.sleep(1.5)  # the lease (0.5 s) runs out: sampling pauses
        paused = sampler.samples
        time.sleep(0.5)
        assert sampler.samples == paused, "no drain, no sampling"
        assert 0 < len(sampler.drain()["rows"]) <= paused
    finally:
        sampler.stop()
        child.kill()
        child.wait()
