"""Trace loading, run comparison, recommendations and plots (what the notebooks call)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

import ocrlab
from ocrlab.lab import analysis, plots


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from tests.conftest import make_page

    root = tmp_path_factory.mktemp("analysis")
    for i in range(6):
        make_page(root / "in" / f"d{i}.png", f"doc {i}")
    (root / "in" / "bad.png").write_bytes(b"")
    options = {
        "engine": "ocrlab.engines.fakes:faulty",
        "engine_options": {"fail_on": "d5.png"},
        "progress": False,
        "monitor_interval": 0.02,
    }
    ocrlab.run(root / "in", root / "a", workers=1, **options)
    ocrlab.run(root / "in", root / "b", workers=2, **options)
    return root / "a", root / "b"


def test_trace_frames(two_runs: tuple[Path, Path]) -> None:
    frames = analysis.trace_frames(two_runs[1] / "trace.json")
    assert len(frames.pages) == 6
    assert set(frames.pages["doc_id"]) == {f"d{i}.png" for i in range(6)}
    failed = frames.pages[~frames.pages["ok"]]
    assert list(failed["doc_id"]) == ["d5.png"] and failed["error_type"].iloc[0]
    assert (frames.pages["dur_s"] > 0).all() and (frames.pages["queue_wait_s"] >= 0).all()
    assert frames.pages["pid"].nunique() <= 2
    assert set(frames.counters["counter"]) >= {"memory (MB)", "live tesseract processes"}
    assert frames.meta["config"]["workers"] == 2
    assert len(frames.documents) == 6


def test_trace_frames_of_a_torn_trace(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    events = json.loads((two_runs[0] / "trace.json").read_text())
    torn = tmp_path / "trace.json"
    lines = ["["] + [json.dumps(e) + "," for e in events]
    torn.write_text("\n".join(lines)[:-40])  # killed mid-line, no closing bracket
    frames = analysis.trace_frames(torn)
    assert 0 < len(frames.pages) <= 6


def test_recommend_and_conclusion() -> None:
    table = [
        {
            "workers": 1,
            "pages_per_s": 0.4,
            "speedup": 1.0,
            "efficiency": 1.0,
            "peak_rss_mb": 150,
            "vs_cli": 1.0,
            "identical": True,
        },
        {
            "workers": 2,
            "pages_per_s": 0.78,
            "speedup": 1.95,
            "efficiency": 0.97,
            "peak_rss_mb": 340,
            "vs_cli": 1.01,
            "identical": True,
        },
        {
            "workers": 4,
            "pages_per_s": 0.8,
            "speedup": 2.0,
            "efficiency": 0.5,
            "peak_rss_mb": 7000,
            "vs_cli": 1.0,
            "identical": True,
        },
    ]
    assert analysis.recommend(table, 8.0)["workers"] == 2  # 4 would exceed 80% of 8 GB
    assert analysis.recommend(table, 16.0)["workers"] == 4
    assert analysis.recommend(table, 0.1)["workers"] is None
    text = analysis.sweep_conclusion(table, 8.0)
    assert "Recommended: 2 worker(s)" in text and "0.78 pages/s" in text


def test_plots_render(two_runs: tuple[Path, Path]) -> None:
    import pandas as pd

    frames = analysis.trace_frames(two_runs[1] / "trace.json")
    table = [
        {
            "workers": n,
            "pages": 6,
            "pages_per_s": 0.4 * n,
            "speedup": float(n),
            "peak_rss_mb": 100.0 * n,
            "cli_wall_s": 15.0 / n,
        }
        for n in (1, 2)
    ]
    runs = pd.DataFrame({"workers": [1, 1, 2, 2], "page_s": [1.0, 1.1, 1.0, 1.2]})
    figures = [
        plots.timeline(frames),
        plots.counters(frames),
        plots.wait_vs_ocr(frames),
        plots.sweep_throughput(table),
        plots.sweep_memory(table, 8.0),
        plots.per_page_times(runs),
    ]
    for fig in figures:
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n" and len(buf.getvalue()) > 5000
        assert fig.axes and all(ax.has_data() for ax in fig.axes)


def test_estimate_quality_and_figure(tmp_path: Path) -> None:
    from tests.conftest import make_page

    for i in range(5):
        make_page(tmp_path / "in" / f"p{i}.png", f"page {i}", (200 + 150 * i, 120))
    ocrlab.run(
        tmp_path / "in",
        tmp_path / "out",
        workers=2,
        progress=False,
        engine="ocrlab.engines.fakes:sleepy",
        engine_options={"sleep": 0.01},
        monitor_interval=0,
    )
    frames = analysis.trace_frames(tmp_path / "out" / "trace.json")
    assert frames.pages["cost_estimate"].notna().all()
    quality = analysis.estimate_quality(frames.pages)
    assert quality["pages"] == 5 and -1 <= quality["spearman"] <= 1
    assert analysis.estimate_quality(frames.pages.iloc[:2])["spearman"] is None
    fig = plots.estimate_vs_measured(frames)
    assert "Spearman" in fig.axes[0].get_title()


def test_recommendation_reads_pss_when_measured() -> None:
    table = [
        {
            "workers": 2,
            "pages_per_s": 1.0,
            "peak_rss_mb": 900,
            "peak_pss_mb": 700,
            "vs_cli": 1.0,
            "identical": True,
            "efficiency": 0.9,
        }
    ]
    # 80% of 1 GB = 819 MB: the RSS figure would not fit, the honest one does.
    rec = analysis.recommend(table, 1.0)
    assert rec["workers"] == 2 and rec["peak_kind"] == "PSS" and rec["peak_mb"] == 700
    assert "700 MB PSS (RSS 900 MB)" in analysis.sweep_conclusion(table, 1.0)
    fig = plots.sweep_memory(table, 1.0)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("PSS" in t for t in labels) and any("RSS" in t for t in labels)
