"""Scale-out on a real Dask LocalCluster (processes, loopback only) and the tesserocr engine."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import ocrlab
from ocrlab.output.manifest import load_manifest
from ocrlab.output.trace_reader import load_trace
from tests.conftest import make_page
from tests.helpers import artifact_texts, copy_data

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=40,
    ) as local:
        yield local


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rels = (
        "letters/note.png",
        "forms/note.png",
        "forms/card.webp",
        "forms/flyer.gif",
        "reports/report.tif",
        "broken/empty.png",
    )
    return copy_data(tmp_path_factory.mktemp("dask") / "in", rels, ground_truth=False)


@pytest.mark.slow
@pytest.mark.parametrize("ship", [False, True])
def test_dask_run_matches_local_run(
    cluster: distributed.LocalCluster, small_corpus: Path, tmp_path: Path, ship: bool
) -> None:
    local = ocrlab.run(small_corpus, tmp_path / "local", workers=2, progress=False)
    remote = ocrlab.run(
        small_corpus,
        tmp_path / "dask",
        executor=cluster.scheduler_address,
        ship_pages=ship,
        progress=False,
    )
    assert remote.exit_code == local.exit_code == 1  # broken/empty.png
    assert artifact_texts(tmp_path / "dask") == artifact_texts(tmp_path / "local")
    assert len(artifact_texts(tmp_path / "dask")) == 5
    pages = [
        e
        for e in load_trace(tmp_path / "dask" / "trace.json")
        if e["ph"] == "X" and "page" in e["cat"]
    ]
    workers = {e["args"]["dask_worker"] for e in pages}
    assert workers <= set(cluster.scheduler_info["workers"]) and len(pages) == 7
    assert len(workers) == 2, "both Dask workers took pages"
    assert all(e["pid"] != os.getpid() for e in pages)
    meta = load_manifest(tmp_path / "dask")["run"]
    assert meta["config"]["executor"] == cluster.scheduler_address
    # Each worker's sampler: one host here, its two workers' trees summed at one moment.
    [figures] = remote.peaks["hosts"].values()
    assert sorted(figures["workers"]) == sorted(cluster.scheduler_info["workers"])
    assert (
        figures["tesseract_peak"] >= 1
        and figures["rss_peak"] == remote.peaks["cluster"]["rss_peak"]
    )
    assert all(abs(c["offset_ms"]) <= c["rtt_ms"] / 2 + 1 for c in figures["clock"].values())


@pytest.mark.slow
def test_killed_dask_worker_loses_no_page(
    cluster: distributed.LocalCluster, tmp_path: Path
) -> None:
    for i in range(12):
        make_page(tmp_path / "in" / f"p{i:02d}.png", f"page {i}")
    with distributed.Client(cluster.scheduler_address) as client:
        worker_pids = list(client.run(os.getpid).values())
    assert len(worker_pids) == 2 and all(psutil.pid_exists(p) for p in worker_pids)

    def kill_one() -> None:
        time.sleep(1.0)
        os.kill(worker_pids[0], signal.SIGKILL)

    killer = threading.Thread(target=kill_one)
    killer.start()
    summary = ocrlab.run(
        tmp_path / "in",
        tmp_path / "out",
        executor=cluster.scheduler_address,
        engine="ocrlab.engines.fakes:sleepy",
        engine_options={"sleep": 0.4},
        progress=False,
    )
    killer.join()
    assert summary.documents_ok == 12 and summary.pages_failed == 0
    deadline = time.monotonic() + 60
    while len(cluster.scheduler_info["workers"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)  # the nanny restarts the worker for the next tests


@pytest.mark.slow
def test_tesserocr_engine_same_contract(tmp_path: Path) -> None:
    pytest.importorskip("tesserocr")
    corpus = copy_data(
        tmp_path / "in",
        ("letters/letter-01.png", "forms/flyer.gif", "books/chapter.pdf", "broken/truncated.png"),
    )
    summary = ocrlab.run(corpus, tmp_path / "out", workers=2, engine="tesserocr", progress=False)
    assert summary.documents_ok == 3 and summary.documents_failed == 1
    from ocrlab.lab.accuracy import score_run

    assert max(s["cer"] for s in score_run(tmp_path / "out")) < 0.02
    meta = load_manifest(tmp_path / "out")["run"]
    assert meta["versions"]["tesserocr_libtesseract"].startswith("5.")
    assert summary.peaks["n_tesseract"] == 0  # no tesseract processes: the API is in-process
    # Timeout: libtesseract's own deadline stops a slow page; the page is an error record.
    slow = ocrlab.run(
        corpus / "letters",
        tmp_path / "slow",
        workers=2,
        engine="tesserocr",
        page_timeout=1,
        progress=False,
    )
    [doc] = load_manifest(tmp_path / "slow")["documents"]
    assert slow.documents_failed == 1 and doc["errors"][0]["type"] == "PageTimeoutError"
