"""``ocrlab diff RUN_A RUN_B``: page by page, with ground truth, failures and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ocrlab
from ocrlab.cli import main
from ocrlab.lab.rundiff import compare_runs, judge, load_run
from tests.conftest import make_page


@pytest.fixture(scope="module")
def fake_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Three runs of six small documents with the echo-like fault engine: A and B alike
    (1 and 2 workers), C with one more page failing."""
    root = tmp_path_factory.mktemp("diff")
    for i in range(6):
        make_page(root / "in" / f"d{i}.png", f"doc {i}")
    (root / "in" / "bad.png").write_bytes(b"")
    options = {"engine": "ocrlab.engines.fakes:faulty", "progress": False, "monitor_interval": 0}
    ocrlab.run(root / "in", root / "a", workers=1, engine_options={"fail_on": "d5.png"}, **options)
    ocrlab.run(root / "in", root / "b", workers=2, engine_options={"fail_on": "d5.png"}, **options)
    ocrlab.run(root / "in", root / "c", workers=2, engine_options={"fail_on": "d2.png"}, **options)
    return root / "a", root / "b", root / "c"


def test_same_runs_read_the_same(fake_runs: tuple[Path, Path, Path]) -> None:
    a, b, _ = fake_runs
    diff = compare_runs(a, b)
    assert diff.identical and judge(diff).code == 0
    changes = {p.where: p.change for p in diff.pages}
    assert changes["d5.png p1"] == "still failing" and changes["bad.png"] == "still failing"
    assert changes["d0.png p1"] == "same" and len(diff.pages) == 7
    assert not diff.context  # same host, Tesseract and settings


def test_changed_text_shows_as_a_diff(fake_runs: tuple[Path, Path, Path]) -> None:
    a, b, _ = fake_runs
    artifact = b / "text" / "d2.png.txt"
    original = artifact.read_text()
    try:
        artifact.write_text(original.replace("page", "paqe"))
        diff = compare_runs(a, b)
        assert not diff.identical and [p.where for p in diff.by_change("changed")] == ["d2.png p1"]
        assert "-d2.png page 1" in diff.diffs[("d2.png", 1)]
        assert judge(diff).code == 1 and judge(diff, allow_text_changes=True).code == 0
    finally:
        artifact.write_text(original)


def test_failures_that_appear_and_disappear(fake_runs: tuple[Path, Path, Path]) -> None:
    a, _, c = fake_runs
    diff = compare_runs(a, c)
    assert [p.where for p in diff.by_change("newly failed")] == ["d2.png p1"]
    assert [p.where for p in diff.by_change("fixed")] == ["d5.png p1"]
    verdict = judge(diff, allow_text_changes=True)
    assert verdict.code == 1 and "d2.png p1" in verdict.reasons[0]
    assert any("fixed in B: d5.png p1" in n for n in verdict.notes)
    assert judge(compare_runs(c, a)).code == 1  # d5 newly failed the other way round


def test_confidence_is_read_where_the_manifest_has_it(
    fake_runs: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    import shutil

    a, b, _ = fake_runs
    copy = tmp_path / "b"
    shutil.copytree(b, copy)
    manifest = json.loads((copy / "results.json").read_text())
    for doc in manifest["documents"]:
        if doc["doc_id"] == "d1.png":
            doc["page_stats"] = [{"page": 1, "conf_mean": 91.5}]
    (copy / "results.json").write_text(json.dumps(manifest))
    pages = {p.where: p for p in compare_runs(a, copy).pages}
    assert pages["d1.png p1"].conf_b == 91.5 and pages["d1.png p1"].conf_a is None


def test_bad_input_is_exit_2(
    fake_runs: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, _, _ = fake_runs
    assert main(["diff", str(a), str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "foreign").mkdir()
    assert main(["diff", str(a), str(tmp_path / "foreign")]) == 2
    assert "not an ocrlab output folder" in capsys.readouterr().err
    (tmp_path / "foreign" / "results.json").write_text('{"schema": "other/1"}')
    assert main(["diff", str(tmp_path / "foreign"), str(a)]) == 2
    assert "not an ocrlab manifest" in capsys.readouterr().err
    with pytest.raises(ValueError):
        load_run(tmp_path / "foreign")


@pytest.mark.slow
def test_psm_11_against_default_on_degraded_scans(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real Tesseract on generated scans with ground truth: the same settings twice read
    the same (exit 0); page segmentation 11 reads the strongest blur worse (exit 1, the
    pages named), and the JSON says so too."""
    scans = tmp_path / "scans"
    assert main(["corpus", "--degrade", "blur:1,noise:0.75", "--pages", "2", str(scans)]) == 0
    for name, extra in (("a", []), ("a2", ["--workers", "1"]), ("psm11", ["--psm", "11"])):
        assert main(["run", str(scans), "--out", str(tmp_path / name), "--quiet", *extra]) == 0
    capsys.readouterr()
    assert main(["diff", str(tmp_path / "a"), str(tmp_path / "a2")]) == 0
    same = capsys.readouterr().out
    assert "not worse" in same and "0 changed" in same
    report = tmp_path / "diff.json"
    code = main(
        [
            "diff",
            str(tmp_path / "a"),
            str(tmp_path / "psm11"),
            "--allow-text-changes",
            "--json",
            str(report),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1, out
    assert "setting psm: None (A), 11 (B)" in out
    data = json.loads(report.read_text())
    worse = [p for p in data["pages"] if (p["cer_change"] or 0) > 0]
    assert worse and all(p["cer_a"] is not None for p in data["pages"])
    for page in worse:
        assert f"{page['doc_id']} p{page['page']}" in out  # the pages are named
    assert data["verdict"]["code"] == 1
