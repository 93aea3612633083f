"""Cost-aware submission order: estimates, the bounded look-ahead, and output identity."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import ClassVar
from unittest import mock

import pytest
from PIL import Image

import ocrlab
from ocrlab import ConfigError, load_config
from ocrlab.executor import BoundedScheduler
from ocrlab.ordering import cost_order, estimate_cost, page_pixels
from ocrlab.output.trace_reader import load_trace
from ocrlab.records import PageTask
from tests.conftest import make_page
from tests.helpers import artifact_texts


def test_cost_order_is_exact_longest_first_below_the_window() -> None:
    costs = [1.0, 5.0, 3.0, 5.0, 0.0, 2.0]
    order = list(cost_order(range(len(costs)), lambda i: costs[i], window=100))
    assert order == [1, 3, 2, 5, 0, 4]  # ties (1 and 3) keep their input order


def test_cost_order_looks_ahead_no_further_than_the_window() -> None:
    drawn = 0

    def source() -> Iterator[int]:
        nonlocal drawn
        for i in range(1000):
            drawn += 1
            yield i

    ordered = cost_order(source(), float, window=10)
    first = next(ordered)
    assert drawn == 11 and first == 10  # holds 10, releases the largest of 11 seen
    rest = list(ordered)
    assert sorted([first, *rest]) == list(range(1000))
    # With a window of 1 the order is discovery order, exactly.
    assert list(cost_order(range(50), lambda i: -i, window=1)) == list(range(50))


def test_cost_order_rejects_a_bad_window() -> None:
    with pytest.raises(ValueError, match="window=0 must be at least 1"):
        list(cost_order([1], float, window=0))


def test_estimates_from_headers(tmp_path: Path) -> None:
    png = make_page(tmp_path / "a.png", "x", (300, 200))
    assert page_pixels(PageTask("a", str(png), 1, 1, "png"), 300) == 60_000
    tif = tmp_path / "m.tif"
    Image.new("L", (100, 100)).save(tif, save_all=True, append_images=[Image.new("L", (400, 500))])
    assert page_pixels(PageTask("m", str(tif), 2, 2, "tiff"), 300) == 200_000
    pdf = tmp_path / "d.pdf"
    Image.new("RGB", (612, 792), "white").save(pdf, resolution=72.0)  # letter, 612x792 pt
    assert page_pixels(PageTask("d", str(pdf), 1, 1, "pdf"), 150) == 1275 * 1650
    assert estimate_cost(PageTask("d", str(pdf), 1, 1, "pdf"), 150) == pytest.approx(
        1275 * 1650 / 1e6 * 1.1, rel=1e-3
    )
    broken = tmp_path / "b.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n")
    assert estimate_cost(PageTask("b", str(broken), 1, 1, "png"), 300) == 0.0


def test_order_setting_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_config().order == "cost"
    monkeypatch.setenv("OCR_ORDER", "Discovery")
    assert load_config().order == "discovery"
    monkeypatch.setenv("OCR_ORDER", "random")
    with pytest.raises(ConfigError, match=r"OCR_ORDER='random' is not an order; use 'cost'"):
        load_config()


def _mixed(root: Path) -> None:
    """Small pages first in discovery order, large ones last (the case LPT is for)."""
    for i in range(4):
        make_page(root / "a" / f"s{i}.png", f"small {i}", (300, 90))
    for i in range(2):
        make_page(root / "z" / f"l{i}.png", f"large page {i}", (900, 400))


class _Recording(BoundedScheduler):
    submitted: ClassVar[list[tuple[str, int]]] = []

    def run(self, tasks: Iterable[PageTask]) -> Iterator[ocrlab.executor.Completion]:
        def spy() -> Iterator[PageTask]:
            for task in tasks:
                _Recording.submitted.append(task.key)
                yield task

        return super().run(spy())


@pytest.mark.parametrize("order", ["cost", "discovery"])
def test_pipeline_submits_largest_first_and_records_the_estimate(
    tmp_path: Path, order: str
) -> None:
    _mixed(tmp_path / "in")
    _Recording.submitted = []
    with mock.patch("ocrlab.pipeline.BoundedScheduler", _Recording):
        ocrlab.run(
            tmp_path / "in",
            tmp_path / "out",
            workers=2,
            order=order,
            engine="ocrlab.engines.fakes:echo",
            progress=False,
            monitor_interval=0,
        )
    found = [
        ("a/s0.png", 1),
        ("a/s1.png", 1),
        ("a/s2.png", 1),
        ("a/s3.png", 1),
        ("z/l0.png", 1),
        ("z/l1.png", 1),
    ]
    if order == "cost":
        assert _Recording.submitted == found[4:] + found[:4]
    else:
        assert _Recording.submitted == found
    pages = [e for e in load_trace(tmp_path / "out" / "trace.json") if e.get("cat") == "page"]
    estimates = {e["args"]["doc_id"]: e["args"].get("cost_estimate") for e in pages}
    # estimated in either order: progress and time left count in estimated work
    assert estimates["z/l0.png"] == pytest.approx(0.36) and estimates["a/s0.png"] == 0.027


@pytest.mark.slow
def test_artifacts_identical_for_every_worker_count_and_order(tmp_path: Path) -> None:
    """Real Tesseract: the order of submission never changes a byte of the output."""
    _mixed(tmp_path / "in")
    tif = tmp_path / "in" / "m" / "multi.tif"
    tif.parent.mkdir()
    pages = [
        Image.open(make_page(tmp_path / f"p{i}.png", f"multi page {i}", (200 + 300 * i, 120)))
        for i in range(3)
    ]
    pages[0].save(tif, save_all=True, append_images=pages[1:])
    reference = tmp_path / "seq"
    ocrlab.run(tmp_path / "in", reference, workers=1, progress=False, monitor_interval=0)
    expected = artifact_texts(reference)
    assert len(expected) == 7
    for workers in (2, 3):
        for order in ("cost", "discovery"):
            out = tmp_path / f"w{workers}-{order}"
            summary = ocrlab.run(
                tmp_path / "in",
                out,
                workers=workers,
                order=order,
                progress=False,
                monitor_interval=0,
            )
            assert summary.pages == 9 and summary.pages_failed == 0
            assert artifact_texts(out) == expected, (workers, order)


def test_pdf_pages_estimated_with_one_open_document(tmp_path: Path) -> None:
    from ocrlab.ordering import with_estimates

    pdf = tmp_path / "two.pdf"
    Image.new("RGB", (612, 792), "white").save(
        pdf,
        resolution=72.0,
        save_all=True,
        append_images=[Image.new("RGB", (792, 612), "white"), Image.new("RGB", (72, 72))],
    )
    tasks = [PageTask("two.pdf", str(pdf), p, 3, "pdf") for p in (1, 2, 3)]
    with mock.patch("pypdfium2.PdfDocument", wraps=__import__("pypdfium2").PdfDocument) as op:
        out = [t.cost for _, t in with_estimates(((None, t) for t in tasks), 72)]
    assert op.call_count == 1  # one open for the document's consecutive pages
    assert out == pytest.approx(
        [612 * 792 * 1.1e-6, 792 * 612 * 1.1e-6, 72 * 72 * 1.1e-6], rel=1e-3
    )
