"""The benchmark against the Tesseract CLI: its scheduling model and its summary's arithmetic
(the timed runs themselves are the benchmark, not a unit test)."""

from __future__ import annotations

from typing import Any

from ocrlab.lab.versus_cli import makespan, report


def test_makespan_is_list_scheduling_in_the_given_order() -> None:
    # discovery order ends with the long page alone; longest first balances the workers
    assert makespan([1, 1, 1, 1, 4], 2) == 6
    assert makespan([4, 1, 1, 1, 1], 2) == 4
    assert makespan([3.0], 4) == 3.0


def _run(who: str, corpus: str, wall: float, pages: list[list[Any]]) -> dict[str, Any]:
    return {
        "round": 0,
        "corpus": corpus,
        "who": who,
        "wall_s": wall,
        "cpu_s": wall * 2,
        "first_page_after_launch_s": 0.3,
        "pages": pages,
        "peaks": {"rss_total": 200 * 2**20, "pss_total": 150 * 2**20, "uss_total": 120 * 2**20},
        "digest": "same",
    }


def test_report_gives_each_contender_against_xargs_from_the_same_rows() -> None:
    pages = [["a", 1, 1.0, 1.0], ["b", 1, 1.0, 1.0], ["z", 1, 4.0, 4.0]]
    rows: list[dict[str, Any]] = []
    for corpus in ("mixed-last", "mixed-first"):
        rows.append({"round": 0, "corpus": corpus, "who": "xargs", "wall_s": 11.0, "cpu_s": 20})
        rows.append(_run("ocrlab-cost", corpus, 10.0, pages))
        rows.append(_run("ocrlab-discovery", corpus, 11.0, pages))
        rows.append(_run("ocrlab-alone", corpus, 12.0, pages))
    rows.append({"round": 0, "corpus": "one-page", "who": "cli", "wall_s": 0.3, "cpu_s": 0.3})
    rows.append(_run("ocrlab", "one-page", 0.6, pages[:1]))
    rows.append(_run("ocrlab", "a4", 14.0, pages))
    rows.append({"round": 0, "load_before": 1.0, "load_after": 2.0})
    text = report(rows, 2)
    assert "| mixed-last | 11.00 | 10.00 | 11.00 | 12.00 | **1.100x** | 1.000x | 0.917x |" in text
    assert "identical across orders, bundles on and off, and rounds: True" in text
    # the model: [1, 1, 4] in discovery order on 2 workers ends at 5, longest first at 4
    assert "discovery order 5.00 s, cost order 4.00 s, ratio 1.250x" in text
    assert "one page: tesseract 0.30 s, ocrlab run 0.60 s (+0.30 s)" in text
    assert "peak tree RSS 200 MB, PSS 150 MB" in text
    assert "ocrlab vs xargs round by round (mixed-last): 1.100x" in text
    assert "first page of a batch started after launch: median 0.30 s" in text
