"""Worker-count configuration: defaults, precedence, rollback switches, validation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import joblib
import pytest

from ocrlab.config import ConfigError, OcrConfig, load_config
from ocrlab.settings import max_workers_allowed


def test_defaults() -> None:
    cfg = load_config(env={})
    assert cfg.workers == 2 and cfg.effective_workers == 2 and not cfg.sequential
    assert cfg.omp_thread_limit == "1"
    assert cfg.max_inflight == 4  # two pages per worker in flight


@pytest.mark.parametrize(("value", "expected"), [("1", 1), ("2", 2), ("4", 4)])
def test_ocr_workers_env(value: str, expected: int) -> None:
    cfg = load_config(env={"OCR_WORKERS": value})
    assert cfg.effective_workers == expected
    assert cfg.sequential is (expected == 1)
    assert cfg.provenance["workers"] == "env OCR_WORKERS"


def test_explicit_config_beats_ocr_workers() -> None:
    cfg = load_config({"ocr_workers": 3}, env={"OCR_WORKERS": "1"})
    assert cfg.workers == 3 and cfg.provenance["workers"] == "config"


def test_max_workers_caps_even_explicit_values() -> None:
    cfg = load_config({"ocr_workers": 4}, env={"OCR_MAX_WORKERS": "1"})
    assert cfg.effective_workers == 1 and cfg.sequential


def test_kill_switch_wins() -> None:
    cfg = load_config({"ocr_workers": 4}, env={"OCR_PARALLEL_DISABLED": "TRUE"})
    assert cfg.effective_workers == 1 and cfg.sequential


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"OCR_WORKERS": "0"}, "OCR_WORKERS='0' is out of range"),
        ({"OCR_WORKERS": "two"}, "OCR_WORKERS='two' is not an integer"),
        ({"OCR_WORKERS": "1000"}, "out of range"),
        ({"OCR_MAX_WORKERS": "-1"}, "OCR_MAX_WORKERS='-1'"),
        ({"OCR_PARALLEL_DISABLED": "maybe"}, "OCR_PARALLEL_DISABLED='maybe' is not a boolean"),
        ({"OCR_DPI": "10"}, "OCR_DPI='10'"),
        ({"OCR_EXECUTOR": "spark"}, "OCR_EXECUTOR='spark' is not an executor"),
    ],
)
def test_bad_values_name_variable_value_and_bounds(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        load_config(env=env)


def test_upper_bound_follows_cpu_count() -> None:
    limit = max_workers_allowed()
    assert limit == min(64, 4 * joblib.cpu_count())
    assert load_config({"workers": limit}, env={}).workers == limit
    with pytest.raises(ConfigError, match=f"expected 1 to {limit}"):
        load_config({"workers": limit + 1}, env={})


def test_unknown_key_suggests_spelling() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'ocr_workers'"):
        load_config({"ocr_worker": 2})


def test_resolved_config_is_reused_not_reparsed() -> None:
    cfg = load_config({"workers": 3}, env={})
    again = load_config(cfg, env={"OCR_WORKERS": "1"})
    assert again.workers == 3  # OCR_WORKERS is a default, the config already has a value
    assert load_config(cfg, env={"OCR_MAX_WORKERS": "1"}).effective_workers == 1


def test_user_omp_thread_limit_is_respected() -> None:
    assert load_config(env={"OMP_THREAD_LIMIT": "4"}).omp_thread_limit == "4"
    assert isinstance(OcrConfig().engine_settings().omp_thread_limit, str)


def test_cli_rejects_bad_env_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "ocrlab", "run", str(tmp_path), "--out", str(out)],
        env={"OCR_WORKERS": "lots", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "OCR_WORKERS='lots'" in proc.stderr
    assert not out.exists(), "nothing may be written when the configuration is invalid"
