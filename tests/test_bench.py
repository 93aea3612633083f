"""``ocrlab bench``: the sweep's bookkeeping (fast, fake engine) and one real run with the CLI."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ocrlab.lab.bench import _order, aggregate, bench, format_table
from tests.conftest import make_page


def test_order_alternates_between_repeats() -> None:
    assert _order([1, 2, 4], 0) == [1, 2, 4]
    assert _order([1, 2, 4], 1) == [4, 2, 1]


def test_sweep_with_fake_engine(small_pages: list[Path], tmp_path: Path) -> None:
    corpus = small_pages[0].parent.parent
    result = bench(
        corpus,
        tmp_path / "b",
        workers=[2],
        repeats=2,
        engines=["ocrlab.engines.fakes:sleepy"],
        cli_reference=False,
        log=lambda m: None,
        engine_options={"sleep": 0.05},
    )
    table = result["table"]
    assert [row["workers"] for row in table] == [1, 2]  # the baseline is always measured
    assert all(row["runs"] == 2 and row["pages"] == 12 for row in table)
    assert table[0]["speedup"] == 1.0 and table[1]["speedup"] > 0
    # Sleepy pages return pids and timestamps: outputs differ between runs, and bench says so.
    assert table[0]["identical"] is False and table[1]["identical"] is False
    runs = [r for r in result["runs"] if r["kind"] == "ocrlab"]
    assert [(r["repeat"], r["workers"]) for r in runs] == [(0, 1), (0, 2), (1, 2), (1, 1)]
    assert json.loads((tmp_path / "b" / "bench.json").read_text())["table"] == table
    with open(tmp_path / "b" / "bench.csv") as fh:
        assert [int(r["workers"]) for r in csv.DictReader(fh)] == [1, 2]
    assert "speedup" in format_table(table)


def test_aggregate_ratios() -> None:
    from ocrlab.lab.bench import RunRow

    rows = [
        RunRow("ocrlab", 1, 0, 10.0, 20, engine="e", page_s=[1.0], identical=True),
        RunRow("ocrlab", 2, 0, 5.5, 20, engine="e", page_s=[1.1], identical=True),
        RunRow("cli", 1, 0, 10.5, 20),
        RunRow("cli", 2, 0, 5.0, 20),
    ]
    one, two = aggregate(rows)
    assert two["speedup"] == pytest.approx(10 / 5.5, abs=1e-3)
    assert two["efficiency"] == pytest.approx(10 / 5.5 / 2, abs=1e-3)
    assert one["vs_cli"] == pytest.approx(1.05) and two["vs_cli"] == pytest.approx(
        5 / 5.5, abs=1e-3
    )
    assert two["pages_per_s"] == pytest.approx(20 / 5.5, abs=1e-3)


@pytest.mark.slow
def test_cli_bench_with_real_tesseract_and_cli_reference(tmp_path: Path) -> None:
    for i in range(3):
        make_page(tmp_path / "c" / f"p{i}.png", f"The quick brown fox {i}", (900, 200))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ocrlab",
            "bench",
            str(tmp_path / "c"),
            "--workers",
            "1,2",
            "--repeats",
            "1",
            "--out",
            str(tmp_path / "b"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "vs CLI" in proc.stdout
    table = json.loads((tmp_path / "b" / "bench.json").read_text())["table"]
    assert all(row["identical"] and row["vs_cli"] > 0 and row["peak_rss_mb"] > 0 for row in table)
    assert table[1]["peak_tesseract"] <= 2
    assert table[0]["engine_version"].startswith("5.")
    bad = subprocess.run(
        [sys.executable, "-m", "ocrlab", "bench", str(tmp_path / "c"), "--workers", "1,x"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "--workers '1,x'" in bad.stderr
