"""Degraded scans: the flag's grammar, names that record the degradation, determinism, and
that Tesseract reads worse as each degradation gets stronger."""

from __future__ import annotations

import itertools
import random
import statistics
from pathlib import Path

import pytest
from PIL import Image, ImageChops

import ocrlab
from ocrlab.cli import main
from ocrlab.lab.degrade import (
    KINDS,
    Degradation,
    Step,
    degrade,
    describe,
    generate_scans,
    parse_degradations,
    render_page,
)
from ocrlab.lab.sweep import score_pages
from tests.helpers import file_tree


def test_parse_degradations() -> None:
    assert [d.name for d in parse_degradations("noise:0.5, blur")] == [
        "noise-0.5",
        "blur-0.25",
        "blur-0.5",
        "blur-0.75",
        "blur-1",
    ]
    assert {d.kind for d in parse_degradations("all:0.5")} == set(KINDS) - {"clean"}
    chained = parse_degradations("bleed:0.75+shade:0.5")
    assert chained == [Degradation((Step("bleed", 0.75), Step("shade", 0.5)))]
    assert chained[0].kind == "bleed+shade" and chained[0].strength == 0.75
    assert len(parse_degradations("noise:0.5,noise:0.5")) == 1
    for bad, message in [
        ("smudge:0.5", "unknown degradation"),
        ("noise:2", "between 0 and 1"),
        ("noise:x", "not a number"),
        ("noise+blur:0.5", "explicit strength"),
        (" , ", "no degradation"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_degradations(bad)


def test_names_record_the_degradation() -> None:
    assert describe("scans/noise-0.85-01.png") == Degradation((Step("noise", 0.85),))
    assert (
        describe("x/bleed-0.75+shade-0.5-12.gt.txt")
        == parse_degradations("bleed:0.75+shade:0.5")[0]
    )
    assert describe("clean-0-01.png") == Degradation((Step("clean", 0.0),))
    for other in ("letters/note.png", "reports/memo.png", "a4-001.png", "smudge-0.5-01.png"):
        assert describe(other) is None


def test_same_seed_same_bytes_same_text_at_every_strength(tmp_path: Path) -> None:
    specs = parse_degradations("all:0.6,noise:0.3+blur:0.3")
    generate_scans(tmp_path / "a", specs, seed=5, pages=2)
    generate_scans(tmp_path / "b", specs, seed=5, pages=2)
    generate_scans(tmp_path / "c", specs, seed=6, pages=2)
    a, b, c = file_tree(tmp_path / "a"), file_tree(tmp_path / "b"), file_tree(tmp_path / "c")
    assert a == b
    assert len(a) == 2 * 2 * (len(specs) + 1)  # + the clean page; image + ground truth each
    assert a["noise-0.6-01.png"] != c["noise-0.6-01.png"]
    # The text of page N is the same for every degradation: only the damage differs.
    for page in ("01", "02"):
        truths = {v for k, v in a.items() if k.endswith(f"-{page}.gt.txt")}
        assert len(truths) == 1
    assert a["clean-0-01.gt.txt"] != a["clean-0-02.gt.txt"]
    # Adding a degradation does not change the pages of the others.
    generate_scans(tmp_path / "d", parse_degradations("noise:0.6"), seed=5, pages=2)
    d = file_tree(tmp_path / "d")
    assert all(a[k] == v for k, v in d.items())


def test_each_kind_changes_the_page_and_strength_zero_does_not() -> None:
    im, _ = render_page(random.Random(1))
    for kind in set(KINDS) - {"clean"}:
        strong = degrade(im, Degradation((Step(kind, 1.0),)), seed=1)
        assert strong.size == im.size and strong.mode == "L"
        assert ImageChops.difference(strong, im).getbbox() is not None, kind
        if kind != "jpeg":  # strength 0 is still JPEG quality 50
            zero = degrade(im, Degradation((Step(kind, 0.0),)), seed=1)
            assert ImageChops.difference(zero, im).getbbox() is None, kind


def test_corpus_command_writes_scans(tmp_path: Path) -> None:
    assert main(["corpus", str(tmp_path), "--degrade", "blur:0.5", "--pages", "2"]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "blur-0.5-01.png",
        "blur-0.5-02.png",
        "clean-0-01.png",
        "clean-0-02.png",
    ]
    with Image.open(tmp_path / "blur-0.5-01.png") as page:
        assert page.mode == "L" and page.width == 1240
    assert main(["corpus", str(tmp_path), "--degrade", "smudge"]) == 2


@pytest.mark.slow
def test_cer_grows_with_strength(tmp_path: Path) -> None:
    """Real Tesseract, the default engine: noise, blur and downsampling read worse as their
    strength grows (a tie is allowed where Tesseract still reads every character)."""
    strengths = (0.5, 0.75, 1.0)
    kinds = ("noise", "blur", "downsample")
    specs = [Degradation((Step(k, s),)) for k in kinds for s in strengths]
    generate_scans(tmp_path / "in", specs, seed=1234, pages=2)
    summary = ocrlab.run(tmp_path / "in", tmp_path / "out", workers=2, progress=False)
    assert summary.pages_failed == 0
    pages = score_pages(tmp_path / "out")
    mean = {(p["kind"], p["strength"]): 0.0 for p in pages}
    for key in mean:
        mean[key] = statistics.mean(p["cer"] for p in pages if (p["kind"], p["strength"]) == key)
    clean = mean[("clean", 0.0)]
    assert clean < 0.01, mean
    for kind in kinds:
        curve = [clean] + [mean[(kind, s)] for s in strengths]
        assert all(b >= a - 0.005 for a, b in itertools.pairwise(curve)), (kind, curve)
        assert curve[-1] > clean + 0.05, (kind, curve)
