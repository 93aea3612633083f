"""A run over two simulated hosts (tests/multihost.py: namespaces, loopback addresses).

What only several hosts show: a counter track and peaks per host (a remote worker's
Tesseract children counted in its host's figure), a host whose monotonic clock is an
hour off placed where its pages really ran, and a whole host lost mid-run.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ocrlab
from ocrlab.follow import RunState
from ocrlab.output import trace_schema as ts
from ocrlab.output.manifest import load_manifest
from ocrlab.output.trace_reader import load_trace
from tests.conftest import make_page
from tests.helpers import artifact_texts, copy_data
from tests.multihost import SimCluster, namespaces_unavailable, run_client, sim_cluster

distributed = pytest.importorskip("distributed")

_WHY = namespaces_unavailable()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(_WHY is not None, reason=_WHY or "")]

#: name, loopback address, monotonic clock offset (s): sim-b's clock is an hour ahead
HOSTS = [("sim-a", "127.0.0.2", 0), ("sim-b", "127.0.0.3", 3600)]
OFFSET_NS = {"sim-a": 0, "sim-b": 3600 * 10**9}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    yield from sim_cluster(tmp_path_factory.mktemp("hosts"), HOSTS)


def test_simulated_hosts_have_their_own_name_pids_clock_and_address(
    cluster: SimCluster,
) -> None:
    """The harness itself: what makes a host another host is really there."""
    with distributed.Client(cluster.address, set_as_default=False) as client:
        names = client.run(socket.gethostname)  # functions the workers can import
        pids = client.run(os.getpid)
        before = time.monotonic_ns()
        clocks = client.run(time.monotonic_ns)
        after = time.monotonic_ns()
    by_host = {names[a]: (a, pids[a], clocks[a]) for a in names}
    assert set(by_host) == {"sim-a", "sim-b"}
    for name, address, offset_s in HOSTS:
        addr, pid, t = by_host[name]
        assert addr.startswith(f"tcp://{address}:")
        assert pid < 100, "numbered in the host's own PID namespace"
        assert before + offset_s * 10**9 <= t <= after + offset_s * 10**9
    assert all(h.processes() for h in cluster.hosts)


def test_per_host_tracks_peaks_clock_and_identity(cluster: SimCluster, tmp_path: Path) -> None:
    corpus = copy_data(
        tmp_path / "in",
        ["letters/note.png", "forms/note.png", "forms/flyer.gif", "reports/memo.png"],
    )
    copy_data(corpus, ["letters/letter-02.jpg"])
    local = ocrlab.run(corpus, tmp_path / "loky", workers=2, progress=False)
    remote = run_client(corpus, tmp_path / "dask", executor=cluster.address, bundle_mp=0)
    out = tmp_path / "dask"
    assert remote["exit_code"] == local.exit_code == 0
    assert (
        artifact_texts(out) == artifact_texts(tmp_path / "loky") and len(artifact_texts(out)) == 5
    )

    # Per-host peaks, in the summary and in results.json; Tesseracts ran there, not here.
    peaks: dict[str, Any] = remote["peaks"]  # type: ignore[assignment]
    assert peaks["n_tesseract"] == 0, "no Tesseract in the client's own tree"
    summary = load_manifest(out)["summary"]
    assert summary["peaks"] == peaks
    hosts, cluster_peak = peaks["hosts"], peaks["cluster"]
    assert set(hosts) == {"sim-a", "sim-b"}
    for name, host in hosts.items():
        assert host["tesseract_peak"] >= 1, name
        rows = host["at_rss_peak"]
        assert sum(r["rss"] for r in rows) == host["rss_peak"], "the peak is its processes"
        tess = [r for r in rows if r["name"] == "tesseract"]
        assert host["tesseract_rss_at_rss_peak"] == sum(r["rss"] for r in tess)
        assert host["pss_at_rss_peak"] and host["pss_at_rss_peak"] <= host["rss_peak"]
        assert host["dropped"] == 0 and host["samples"] > 0 and not host["lost"]
        assert 0 < host["sampler_cpu_pct"] < 50
    # The cluster's peak: the hosts summed at one moment, not their peaks summed.
    parts = cluster_peak["hosts_at_rss_peak"]
    assert sum(parts.values()) == cluster_peak["rss_peak"]
    assert max(h["rss_peak"] for h in hosts.values()) <= cluster_peak["rss_peak"]
    assert cluster_peak["rss_peak"] <= sum(h["rss_peak"] for h in hosts.values())
    assert cluster_peak["hosts"] == 2

    # One counter track per host in the trace, named by the host_joined events.
    events = load_trace(out / "trace.json")
    joined = {e["args"]["host"]: e["args"]["track"] for e in events if e["name"] == ts.HOST_JOINED}
    assert set(joined) == {"sim-a", "sim-b"} and len(set(joined.values())) == 2
    for name, track in joined.items():
        memory = [e for e in events if e["ph"] == "C" and e["name"] == ts.HOST_MEMORY]
        mine = [e for e in memory if e["pid"] == track]
        assert mine, name
        peak_mb = max(e["args"][ts.TREE_RSS] for e in mine)
        assert abs(peak_mb - hosts[name]["rss_peak"] / 2**20) < 0.01
        # The remote worker's Tesseract child is in its host's figure, beside the worker.
        with_tess = [e["args"] for e in mine if e["args"][ts.TESSERACT_RSS] > 10]
        assert with_tess, f"{name}: no sample saw a Tesseract of more than 10 MB"
        assert all(a[ts.TREE_RSS] > a[ts.TESSERACT_RSS] + 20 for a in with_tess)
    names = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    assert {names[t] for t in joined.values()} == {"host sim-a", "host sim-b"}
    assert any(e["name"] == ts.CLUSTER_MEMORY for e in events)

    # The live view and the trace explorer show the hosts.
    state = RunState()
    state.apply(events)
    assert set(state.hosts) == {"sim-a", "sim-b"}
    for name, view in state.hosts.items():
        assert view.rss_peak_mb is not None and view.tesseract_peak >= 1
        assert abs(view.rss_peak_mb - hosts[name]["rss_peak"] / 2**20) < 0.01
    assert state.cluster_rss_peak_mb is not None
    assert abs(state.cluster_rss_peak_mb - cluster_peak["rss_peak"] / 2**20) < 0.01
    from ocrlab.lab import plots
    from ocrlab.lab.analysis import trace_frames
    from ocrlab.lab.widgets import render_state

    page = render_state(state)
    assert "host sim-a" in page and "host sim-b" in page and "one moment" in page
    frames = trace_frames(out / "trace.json")
    assert {"sim-a", "sim-b"} <= set(frames.counters["host"])
    assert len(plots.hosts(frames).axes[0].lines) == 3  # each host, and the cluster

    # Spans on our clock: the offset host's within 50 ms of where they really ran.
    pages = [e for e in events if ts.is_page(e)]
    docs = {e["name"]: e for e in events if e.get("cat") == ts.CAT_DOCUMENT}
    end = next(e for e in events if e["name"] == ts.RUN_END)["ts"]
    assert {e["args"]["host"] for e in pages} == {"sim-a", "sim-b"}
    for e in pages:
        host = e["args"]["host"]
        error_us = e["args"]["clock_offset_us"] - OFFSET_NS[host] / 1000
        assert abs(error_us) < 50_000, (host, error_us)
        doc = docs[e["args"]["doc_id"]]
        assert doc["ts"] - 50_000 <= e["ts"] and e["ts"] + e["dur"] <= end + 50_000
        assert e["pid"] > 2**22 and e["args"]["worker_pid"] < 100  # a track of its own


#: an echo that takes its time: the host dies with pages in flight, texts stay comparable
SLOW_ECHO: dict[str, Any] = {
    "engine": "ocrlab.engines.fakes:hog",
    "engine_options": {"hog_mb": 1, "hog_s": 0.4},
    "bundle_mp": 0,
}


def test_a_lost_host_loses_no_page(tmp_path: Path) -> None:
    """A whole host killed mid-run (its PID namespace's init): its pages run on the
    other host, every document once, the artifacts those of a loky run."""
    corpus = tmp_path / "in"
    for i in range(16):
        make_page(corpus / f"p{i:02d}.png", f"page {i}")
    local = ocrlab.run(corpus, tmp_path / "loky", workers=2, progress=False, **SLOW_ECHO)
    gen = sim_cluster(tmp_path / "hosts", HOSTS)
    cluster = next(gen)
    victim = cluster.host("sim-b")
    journal = tmp_path / "dask" / "journal.jsonl"
    trace = tmp_path / "dask" / "trace.json"

    def kill_when_busy() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # sim-b has run a page: the run is under way
            lines = trace.read_text().splitlines() if trace.exists() else []
            if any('"ph":"X"' in x and '"host":"sim-b"' in x for x in lines):
                break
            time.sleep(0.02)
        victim.kill()

    killer = threading.Thread(target=kill_when_busy)
    try:
        killer.start()
        summary = run_client(corpus, tmp_path / "dask", executor=cluster.address, **SLOW_ECHO)
        killer.join()
        assert victim.processes() == [], "the host is gone whole"
    finally:
        killer.join()
        gen.close()  # tears the cluster down and checks no process is left
    assert summary["documents_ok"] == summary["pages"] == 16 and summary["pages_failed"] == 0
    assert artifact_texts(tmp_path / "dask") == artifact_texts(tmp_path / "loky")
    assert local.documents_ok == 16
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    ids = [line["doc_id"] for line in lines if "doc_id" in line]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 16, "each document once"
    events = load_trace(tmp_path / "dask" / "trace.json")
    pages = [e for e in events if ts.is_page(e)]
    assert len({(e["args"]["doc_id"], e["args"]["page"]) for e in pages}) == len(pages) == 16
    lost = [e for e in events if e["name"] == ts.WORKER_LOST]
    assert lost and {e["args"]["host"] for e in lost} == {"sim-b"}
    assert load_manifest(tmp_path / "dask")["summary"]["peaks"]["hosts"]["sim-b"]["lost"]
    on_b = [e for e in pages if e["args"]["host"] == "sim-b"]
    assert on_b, "the lost host had run pages before it died"
    after = [e for e in pages if e["ts"] > lost[0]["ts"]]
    assert after and {e["args"]["host"] for e in after} == {"sim-a"}, "the rest ran on sim-a"
