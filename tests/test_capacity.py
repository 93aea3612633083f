"""``ocrlab plan``: sizing a container from measured worker counts, and only from those."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ocrlab.cli import main
from ocrlab.lab.capacity import parse_memory, plan_capacity


def _row(n: int, rate: float, spread: float, pss: float) -> dict[str, Any]:
    return {
        "engine": "pytesseract",
        "workers": n,
        "runs": 3,
        "pages_per_s": rate,
        "pages_per_s_low": rate - spread,
        "pages_per_s_high": rate + spread,
        "peak_rss_mb": pss * 1.3,
        "peak_pss_mb": pss,
        "peak_pss_min_mb": pss - 10,
        "cpu_s_per_page": 2.5,
        "cpu_s_per_page_low": 2.4,
        "cpu_s_per_page_high": 2.6,
    }


def _bench(cpus: int = 4, warning: str | None = None) -> dict[str, Any]:
    return {
        "meta": {"usable_cpus": cpus, "cpu_count": cpus},
        "table": [
            _row(1, 0.36, 0.01, 180),
            _row(2, 0.66, 0.02, 330),
            _row(3, 0.90, 0.03, 470),
            _row(4, 0.92, 0.05, 610),
        ],
        "noise": {"warning": warning},
    }


def test_parse_memory() -> None:
    assert parse_memory("8G") == 8192 and parse_memory("512M") == 512
    assert parse_memory("1.5") == 1536 and parse_memory("2GiB") == 2048
    with pytest.raises(ValueError, match="8G"):
        parse_memory("lots")


def test_plan_within_the_measured_counts() -> None:
    plan = plan_capacity(_bench(), parse_memory("8G"), 4)
    assert plan.chosen is not None and plan.chosen.workers == 4
    assert plan.indistinguishable == (3,)  # 0.90 +- 0.03 overlaps 0.92 +- 0.05
    text = plan.text()
    assert "Recommended: 4 worker(s): 3312 [3132-3492] pages/hour" in text
    assert "peak PSS 610 MB" in text and "cannot be told apart" in text
    # memory decides: 500 MB at 80% = 400 MB fits 2 workers
    small = plan_capacity(_bench(), 500, 4)
    assert small.chosen is not None and small.chosen.workers == 2
    assert "Over the memory budget: 3, 4" in small.text()
    # cores decide: 2 cores, 2 workers even if memory would fit 4
    assert plan_capacity(_bench(), 8192, 2).chosen.workers == 2  # type: ignore[union-attr]
    assert plan_capacity(_bench(), 100, 4).chosen is None


def test_refuses_to_extrapolate_without_saying_so() -> None:
    bench = _bench(cpus=2)
    bench["table"] = bench["table"][:2]
    plan = plan_capacity(bench, 8192, 8)
    assert plan.chosen is not None and plan.chosen.workers == 2 and plan.estimate is None
    assert "only up to 2 were measured (on 2 CPU(s))" in plan.text()
    assert "--extrapolate" in plan.text()
    guessed = plan_capacity(bench, 8192, 8, extrapolate=True)
    assert guessed.estimate is not None and guessed.estimate.workers == 8
    assert "EXTRAPOLATED, not measured: 8 worker(s)" in guessed.text()
    # 3 and 4 workers measured on a 2-CPU machine measured a queue: not used for 4 cores
    queued = plan_capacity(_bench(cpus=2), 8192, 4)
    assert queued.chosen is not None and queued.chosen.workers == 2
    assert "measured a queue" in queued.text()


def test_noise_warning_comes_first() -> None:
    text = plan_capacity(_bench(warning="WARNING: busy"), 8192, 4).text().splitlines()
    assert text[1] == "WARNING: busy" and text[2].startswith("Recommended")


def test_plan_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "bench.json").write_text(json.dumps(_bench()))
    assert main(["plan", "--bench", str(tmp_path / "b"), "--memory", "8G", "--cores", "4"]) == 0
    assert "Recommended: 4 worker(s)" in capsys.readouterr().out
    assert main(["plan", "--bench", str(tmp_path / "b"), "--memory", "100M", "--cores", "4"]) == 1
    assert main(["plan", "--bench", str(tmp_path / "none"), "--memory", "8G", "--cores", "4"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["plan", "--bench", str(tmp_path / "b"), "--memory", "x", "--cores", "4"]) == 2
    assert main(["plan", "--bench", str(tmp_path / "b"), "--memory", "8G", "--cores", "0"]) == 2
    (tmp_path / "b" / "bench.json").write_text("[1, 2]")
    assert main(["plan", "--bench", str(tmp_path / "b"), "--memory", "8G", "--cores", "4"]) == 2


def test_plan_from_a_real_bench(small_pages: list[Path], tmp_path: Path) -> None:
    """A bench with the sleepy engine (real worker processes): the plan reads its
    bench.json, measured PSS and intervals included."""
    from ocrlab.lab.bench import bench

    bench(
        small_pages[0].parent.parent,
        tmp_path / "b",
        workers=[2],
        repeats=3,
        engines=["ocrlab.engines.fakes:sleepy"],
        cli_reference=False,
        log=lambda m: None,
        engine_options={"sleep": 0.02},
    )
    data = json.loads((tmp_path / "b" / "bench.json").read_text())
    plan = plan_capacity(data, 8192, 2)
    assert plan.chosen is not None and plan.chosen.peak_mb.estimate > 0
    assert all(f.pages_per_s.finite for f in plan.measured)
    assert data["noise"]["runs"] == 6 and "other_share" in data["noise"]
