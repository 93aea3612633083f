"""Runs compared side by side: real runs of the same scans at one and two workers (real
Tesseract), and a run whose text differs (the echo engine), read from their output folders."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import ocrlab
from tests.conftest import DATA

pytest.importorskip("matplotlib")

SCANS = ("clean-0-01", "blur-1-01", "noise-0.85-01")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("comparison")
    corpus = root / "in"
    corpus.mkdir()
    for name in SCANS:
        for suffix in (".png", ".gt.txt"):
            shutil.copy(DATA / "scans" / f"{name}{suffix}", corpus / f"{name}{suffix}")
    outs = {"w1": root / "w1", "w2": root / "w2", "echo": root / "echo"}
    ocrlab.run(corpus, outs["w1"], workers=1, progress=False)
    ocrlab.run(corpus, outs["w2"], workers=2, progress=False)
    ocrlab.run(corpus, outs["echo"], workers=2, progress=False, engine="ocrlab.engines.fakes:echo")
    return outs


def test_page_changes_same_text_and_cer(runs: dict[str, Path]) -> None:
    from ocrlab.lab.comparison import page_changes

    same = page_changes(runs["w1"], runs["w2"])
    assert [(c.doc_id, c.page) for c in same] == [(f"{n}.png", 1) for n in sorted(SCANS)]
    assert all(c.same and c.cer_change == 0 for c in same)
    assert all(c.cer_a is not None for c in same)
    echo = page_changes(runs["w1"], runs["echo"])
    assert not any(c.same for c in echo)
    assert all(c.cer_b is not None and c.cer_a is not None and c.cer_b > c.cer_a for c in echo)


def test_facts_from_the_trace(runs: dict[str, Path]) -> None:
    from ocrlab.lab.comparison import RunFacts

    two = RunFacts.load(runs["w2"])
    assert two.workers == 2 and two.pages == 3 and two.status == "complete"
    assert two.wall_s and two.pages_per_s and two.peak_rss_mb and two.peak_rss_mb > 10
    assert len(two.spans) == 3 and len({s[0] for s in two.spans}) <= 2
    assert two.memory and all(rss is None or rss > 0 for _, rss, _ in two.memory)
    with pytest.raises(FileNotFoundError, match=r"no trace\.json"):
        RunFacts.load(runs["w2"] / "text")


def test_static_comparison_html(runs: dict[str, Path]) -> None:
    from ocrlab.lab.comparison import comparison_html

    page = comparison_html([runs["w1"], runs["w2"], runs["echo"]])
    assert page.count("data:image/png;base64,") == 2  # memory and timelines
    assert "identical, 3 pages" in page and "3 of 3 differ" in page
    speedups = re.findall(r"<td>([0-9.]+)x</td>", page)
    assert len(speedups) == 2
    assert "&rarr;" in page  # the echo run's CER changed page by page
    with pytest.raises(ValueError, match="two or more output folders"):
        comparison_html([runs["w1"]])


def test_widget_follows_the_pick(runs: dict[str, Path]) -> None:
    pytest.importorskip("ipywidgets")
    from ocrlab.lab.widgets import RunComparison

    view = RunComparison([runs["w1"], runs["w2"], runs["echo"]])
    assert "identical, 3 pages" in view.summary.value and "differ" in view.summary.value
    assert view.memory.value[:8] == b"\x89PNG\r\n\x1a\n"
    view.pick.value = (0, 1)  # the echo run left out
    assert "of 3 differ" not in view.summary.value and "echo" not in view.pages.value
    view.baseline.value = 2  # against the echo run: both real runs differ from it
    assert view.summary.value.count("3 of 3 differ") == 2
