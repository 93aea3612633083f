"""``ocrlab bench --compare``: exact signals exactly, time only with its noise."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ocrlab.lab.regress import compare_benches
from tests.conftest import ocrlab_command


def _bench(
    walls: dict[int, list[float]],
    *,
    engine: str = "pytesseract",
    load: float = 0.05,
    queue: float = 0.8,
    cer: float = 0.01,
    digests: dict[str, str] | None = None,
    failed: int = 0,
    cli: list[float] | None = None,
    cpu: dict[int, list[float]] | None = None,
) -> dict[str, Any]:
    runs = [
        {
            "kind": "ocrlab",
            "engine": engine,
            "workers": n,
            "repeat": r,
            "wall_s": w,
            "pages": 20,
            "pages_failed": failed,
            "noise": {"other_share": load, "runnable_per_cpu": queue},
            **({"engine_cpu_s": cpu[n][r]} if cpu else {}),
        }
        for n, ws in walls.items()
        for r, w in enumerate(ws)
    ]
    if cli is not None:  # the CLI right after each run: ocrlab's wall over the CLI's, per run
        runs += [
            {**r, "kind": "cli", "engine": "tesseract CLI", "wall_s": r["wall_s"] / cli[i]}
            for i, r in enumerate(list(runs))
        ]
    return {
        "meta": {"host": "h", "cpu_count": 2, "versions": {"tesseract": "5.3.0"}},
        "corpus": "data",
        "table": [{"engine": engine, "workers": n, "cer": cer, "identical": True} for n in walls],
        "digests": {engine: digests or {"a.png": "1", "b.png": "2"}},
        "runs": runs,
    }


def _walls(
    rng: np.random.Generator, factor: float = 1.0, cv: float = 0.03
) -> dict[int, list[float]]:
    return {n: list(base * factor * rng.lognormal(0, cv, 3)) for n, base in ((1, 40.0), (2, 22.0))}


def test_a_over_a_passes_and_a_tenth_slower_fails() -> None:
    rng = np.random.default_rng(11)
    base = _bench(_walls(rng))
    for _ in range(10):
        same = compare_benches(base, _bench(_walls(rng)))
        assert same.code == 0, same.text()
    slow = compare_benches(base, _bench(_walls(rng, 1.10), engine="ocrlab.engines.fakes:slowed"))
    assert slow.code == 1, slow.text()
    assert "slower: time x" in slow.text() and "engines differ" in slow.text()
    assert slow.pooled is not None and slow.pooled.test is not None
    assert 1.05 < slow.pooled.ratio.estimate < 1.15
    assert slow.pooled.test.p < 0.01 and len(slow.checks) == 2


def test_small_slowdowns_and_noisy_runs_do_not_fail() -> None:
    rng = np.random.default_rng(5)
    base = _bench(_walls(rng))
    # 3% slower: significant perhaps, but under the 5% that matters
    assert compare_benches(base, _bench(_walls(rng, 1.03, cv=0.005))).code == 0
    # 10% slower in very noisy runs: not significant, said so
    noisy = compare_benches(_bench(_walls(rng, cv=0.3)), _bench(_walls(rng, 1.1, cv=0.3)))
    assert noisy.code == 0 and any("not significant" in n for n in noisy.notes), noisy.text()


def test_a_slowdown_on_a_busier_machine_is_not_attributed() -> None:
    rng = np.random.default_rng(9)
    base = _bench(_walls(rng), load=0.05)
    busier = compare_benches(base, _bench(_walls(rng, 1.3), load=0.45))
    assert busier.code == 0 and "machine was busier" in busier.text()
    queued = compare_benches(
        _bench(_walls(rng), queue=2.0, load=0.9), _bench(_walls(rng, 1.3), queue=4.0, load=0.95)
    )
    assert queued.code == 0 and "run queue grew" in queued.text()


def test_times_against_the_cli_carry_the_machine_speed() -> None:
    """The machine 1.6x slower for the new bench (ocrlab and the CLI after it alike): not a
    regression, without any appeal to the load figures; ocrlab 10% slower against a CLI
    that is not: a regression, although the machine's speed changed too."""
    rng = np.random.default_rng(4)

    def bench(factor: float, machine: float) -> dict[str, Any]:
        walls = _walls(rng, factor * machine, cv=0.15)  # runs vary a lot with the load
        ratios = [factor * float(e) for e in rng.lognormal(0, 0.02, 6)]  # ocrlab over CLI
        return _bench(walls, cli=ratios)

    base = bench(1.0, 1.0)
    same = compare_benches(base, bench(1.0, 1.6))
    assert same.code == 0 and same.pooled is not None and same.pooled.calibrated, same.text()
    assert "against the CLI" in same.text()
    slow = compare_benches(base, bench(1.1, 0.7))
    assert slow.code == 1 and "slower" in slow.regressions[0], slow.text()
    bare = compare_benches(_bench(_walls(rng)), _bench(_walls(rng)))
    assert any("bare wall times" in n for n in bare.notes)


def _machine(
    rng: np.random.Generator, slower: float = 1.0
) -> tuple[dict[int, list[float]], dict[int, list[float]]]:
    """Wall and Tesseract CPU times of runs on a machine whose CPUs change speed by 15% from
    run to run (as measured here: the same 7 pages took 7.0-12.0 s of Tesseract CPU on a quiet
    machine): the speed moves wall and CPU alike; ``slower`` adds wall time outside
    Tesseract (as :func:`ocrlab.engines.fakes.slowed` does)."""
    walls: dict[int, list[float]] = {}
    cpus: dict[int, list[float]] = {}
    for n, base_cpu, spread in ((1, 40.0, 1.01), (2, 40.0, 0.56)):
        speed = rng.lognormal(0, 0.15, 3)
        cpus[n] = [base_cpu * float(m) for m in speed]
        # a worker's idle tail varies (which page ends last): a few per cent at 2 workers
        per_cpu = spread * rng.lognormal(0, 0.003 if n == 1 else 0.03, 3)
        walls[n] = [c * float(k) * slower for c, k in zip(cpus[n], per_cpu, strict=True)]
    return walls, cpus


def test_time_per_tesseract_cpu_second_sees_what_the_machine_speed_hides() -> None:
    """A machine whose speed drifts by 15% hides a 10% slowdown in the wall time (and ten
    A/As pass either way); the wall time per Tesseract CPU-second shows it."""
    rng = np.random.default_rng(21)
    walls, cpus = _machine(rng)
    base = _bench(walls, cpu=cpus)
    for _ in range(10):
        walls, cpus = _machine(rng)
        same = compare_benches(base, _bench(walls, cpu=cpus))
        assert same.code == 0, same.text()
        assert same.pooled_cpu is not None and len(same.cpu_checks) == 2
    walls, cpus = _machine(rng, slower=1.10)
    slow = compare_benches(base, _bench(walls, cpu=cpus))
    assert slow.code == 1, slow.text()
    assert slow.regressions == (
        next(r for r in slow.regressions if "time per Tesseract CPU-second x" in r),
    ), slow.text()
    assert slow.pooled_cpu is not None and 1.07 < slow.pooled_cpu.ratio.estimate < 1.13
    # the same slowdown in bare wall time alone: inside the machine's noise
    assert slow.pooled is not None and not slow.pooled.significant(0.01), slow.text()
    # a bench whose engine reports no CPU time: said, and the wall time judged alone
    alone = compare_benches(base, _bench(walls))
    assert alone.pooled_cpu is None and any("CPU time" in n for n in alone.notes)


def test_exact_signals_are_compared_exactly() -> None:
    rng = np.random.default_rng(1)
    walls = _walls(rng)
    base = _bench(walls)
    text = compare_benches(base, _bench(walls, digests={"a.png": "1", "b.png": "X"}))
    assert text.code == 1 and "b.png" in text.regressions[0]
    allowed = compare_benches(
        base, _bench(walls, digests={"a.png": "1", "b.png": "X"}), allow_text_changes=True
    )
    assert allowed.code == 0
    worse = compare_benches(base, _bench(walls, cer=0.0101))
    assert worse.code == 1 and "CER" in worse.regressions[0]
    failing = compare_benches(base, _bench(walls, failed=1))
    assert failing.code == 1 and "failed page" in failing.regressions[0]
    assert compare_benches(base, _bench(walls, cer=0.009)).code == 0  # better is fine


def _cli_bench(corpus: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return ocrlab_command(
        "bench",
        str(corpus),
        *("--workers", "1,2", "--repeats", "4", "--no-cli", "--out", str(out)),
        *("--engines", "ocrlab.engines.fakes:sleepy"),
        "--allow-text-changes",  # sleepy's text carries pids and timestamps
        *extra,
    )


@pytest.mark.slow
def test_compare_command_exit_codes(small_pages: list[Path], tmp_path: Path) -> None:
    """Through the command: a missing baseline is exit 2 before anything runs; the same
    bench again passes. (Sleep-bound pages: their time hardly depends on the load.)"""
    corpus = small_pages[0].parent.parent
    missing = _cli_bench(corpus, tmp_path / "x", "--compare", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "nowhere" in missing.stderr
    assert not (tmp_path / "x" / "bench.json").exists()
    base = _cli_bench(corpus, tmp_path / "base")
    assert base.returncode == 0, base.stderr
    again = _cli_bench(
        corpus,
        tmp_path / "again",
        "--compare",
        str(tmp_path / "base"),
        "--compare-json",
        str(tmp_path / "v.json"),
    )
    assert again.returncode == 0, again.stdout
    assert "compared with the baseline: no regression" in again.stdout
    verdict = json.loads((tmp_path / "v.json").read_text())
    assert verdict["code"] == 0 and len(verdict["checks"]) == 2
