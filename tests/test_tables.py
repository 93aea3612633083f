"""The sweep report at a glance: key columns first, memory in MB with the budget as a note."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("pandas")
pytest.importorskip("matplotlib")

from ocrlab.lab import plots, tables


def _row(workers: int, rss: float, **extra: Any) -> dict[str, Any]:
    row = {
        "engine": "pytesseract",
        "engine_version": "5.3.0",
        "workers": workers,
        "runs": 1,
        "pages": 16,
        "wall_s": 30 / workers,
        "wall_spread_s": 0.1,
        "pages_per_s": 0.5 * workers,
        "speedup": float(workers),
        "efficiency": 1.0,
        "page_median_s": 2.0,
        "page_p10_s": 1.0,
        "page_p90_s": 3.0,
        "peak_rss_mb": rss,
        "peak_hwm_mb": rss,
        "peak_fds": 30,
        "peak_tesseract": workers,
        "startup_s": 0.2,
        "identical": True,
        "cer": 0.0,
        "cli_wall_s": 31.0,
        "cli_peak_rss_mb": 80.0,
        "vs_cli": 1.0,
    }
    row.update(extra)
    return row


def test_key_table_shows_what_a_reader_needs() -> None:
    table = [_row(1, 175.0), _row(2, 339.0)]
    key = tables.key_table(table)
    assert list(key.columns) == [
        "workers",
        "pages/s",
        "speedup",
        "efficiency",
        "vs Tesseract CLI",
        "page median s",
        "peak RSS MB",
        "output identical",
        "CER",
    ]
    page = tables.sweep_table_html(table)
    assert page.index("peak RSS MB") < page.index("<details>")
    assert "all 23 columns" in page and "wall_spread_s" in page.split("<details>")[1]
    two = tables.key_table([_row(1, 1.0), _row(1, 1.0, engine="tesserocr", peak_pss_mb=0.5)])
    assert "engine" in two and "peak PSS MB" in two


def test_memory_plot_in_mb_with_budget_as_a_note() -> None:
    fig = plots.sweep_memory([_row(1, 175.0), _row(2, 339.0, peak_pss_mb=230.0)], 8.0)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "MB"
    assert 339 < ax.get_ylim()[1] < 1000, "the scale is the measurements', not 8 GB"
    notes = " ".join(t.get_text() for t in ax.texts)
    assert "memory limit 8 GB" in notes and "2 workers: 4 GB" in notes
    assert "8.5% of its budget" in notes  # 175 MB of 2 GB (339 MB of 4 GB is 8.3%)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("RSS" in x for x in labels) and any("PSS" in x for x in labels)
