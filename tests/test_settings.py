"""The settings table is the one source: the config, the command's options, the tests'
environment and the engine check all come from it, and say what it says."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import ocrlab
from ocrlab.cli import _settings_given, build_parser, main
from ocrlab.config import OcrConfig, load_config
from ocrlab.engines.registry import check_engine, installed_engines
from ocrlab.errors import ConfigError
from ocrlab.settings import ENV_VARS, SETTINGS, Setting
from tests.conftest import ROOT, make_page

#: options of ``ocrlab run`` that are not settings (what to read, where to write it)
RUN_OPTIONS = {"help", "inputs", "out", "resume", "overwrite", "group"}


def test_the_config_has_one_field_per_setting_with_the_tables_default() -> None:
    fields = [f.name for f in dataclasses.fields(OcrConfig) if f.name != "provenance"]
    assert fields == [s.key for s in SETTINGS]
    defaults = OcrConfig()
    for s in SETTINGS:
        assert getattr(defaults, s.key) == s.default, s.key
        assert load_config(env={}).provenance[s.key] == "default"


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.key)
def test_every_parser_takes_its_default_and_its_own_result(setting: Setting[object]) -> None:
    """A value passes a parser once per source it comes through (flag, then load_config)."""
    parsed = setting.parse(setting.key, setting.default)
    assert parsed == setting.default
    assert setting.parse(setting.key, parsed) == parsed
    if setting.env:  # and its default as the environment would spell it
        spelled = "" if setting.default is None else str(setting.default)
        if setting.rule.switch and setting.default is not None:
            spelled = "true" if setting.default else "false"
        assert load_config(env={setting.env: spelled}).provenance[setting.key].startswith("env")


#: settings whose values are whole numbers though their default is not one (None, text)
WHOLE_OPTIONAL = {"max_workers", "psm", "omp_thread_limit"}


def _span(bounds: str) -> tuple[float, float] | None:
    m = re.fullmatch(r"(?:0 or )?([\d.e]+) \.\. ([\d.e]+)(?:, or \w+)?", bounds)
    return None if m is None else (float(m.group(1)), float(m.group(2)))


@pytest.mark.parametrize("setting", [s for s in SETTINGS if _span(s.bounds)], ids=lambda s: s.key)
def test_the_bounds_in_words_are_the_bounds_enforced(setting: Setting[object]) -> None:
    span = _span(setting.bounds)
    assert span is not None
    lo, hi = span
    whole = isinstance(setting.default, int) or setting.key in WHOLE_OPTIONAL
    for edge in (lo, hi):
        raw = str(int(edge)) if whole else str(edge)
        assert float(setting.parse(setting.key, raw)) == edge
    below = lo - (1 if whole else max(lo / 2, 1e-3))
    if not (setting.bounds.startswith("0 or ") and below == 0):  # 0 is the off value there
        with pytest.raises(ConfigError, match=setting.key):
            setting.parse(setting.key, str(int(below)) if whole else str(below))
    with pytest.raises(ConfigError, match=setting.key):
        setting.parse(setting.key, str(int(hi * 2)) if whole else str(hi * 2))


def _run_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    run: argparse.ArgumentParser = sub.choices["run"]
    return run


def test_the_run_options_are_the_tables() -> None:
    """Every setting with flags has its option, with the table's help, bounds, default and
    variable; every other option of ``run`` is one of the few that are not settings."""
    actions = _run_parser()._actions
    by_option = {o: a for a in actions for o in a.option_strings}
    for s in SETTINGS:
        if not s.options:
            assert all(a.dest != s.key for a in actions), f"{s.key}: an option not in the table"
            continue
        action = by_option[s.options[0]]
        assert action.dest == s.key
        assert list(s.options) == [o for o in action.option_strings if not o.startswith("--no-")]
        assert action.default is None  # the default is load_config's, from the table
        text = " ".join(str(action.help).split())
        for part in (s.help, s.bounds, f"default {s.default_text}", str(s.env)):
            assert " ".join(part.split()) in text, (s.key, part)
    settings_with_flags = {s.key for s in SETTINGS if s.options}
    outside = {a.dest for a in actions} - settings_with_flags - RUN_OPTIONS
    assert not outside, f"options of run outside the settings table: {outside}"


def test_every_flag_reaches_the_config() -> None:
    argv, expected = ["x", "--out", "o"], {}
    for s in SETTINGS:
        if s.rule.switch and s.options:
            argv.append(s.options[0])
            expected[s.key] = True
        elif s.options and s.default is not None:
            argv += [s.options[0], str(s.default)]
            expected[s.key] = s.default
    cfg = load_config(**_settings_given(_run_parser().parse_args(argv)), env={})
    for key, value in expected.items():
        assert getattr(cfg, key) == value and cfg.provenance[key] == "config", key
    quiet = load_config(**_settings_given(_run_parser().parse_args(["x", "--out", "o", "-q"])))
    assert quiet.progress is False


def test_a_bad_flag_value_is_a_configuration_error_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(tmp_path), "--out", str(tmp_path / "o"), "--dpi", "10"]) == 2
    assert "--dpi='10' is out of range; expected 50 to 1200" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_the_tests_clear_every_variable_the_package_reads() -> None:
    for name in ("OCR_BUNDLE_MP", "OCR_MEMORY_BUDGET_MB", "OCR_MEMORY_PER_WORKER_MB"):
        assert name in ENV_VARS
    named = set()
    for path in (ROOT / "ocrlab").rglob("*.py"):
        named |= set(re.findall(r"\bOCR_[A-Z_]+\b", path.read_text(encoding="utf-8")))
    assert named <= set(ENV_VARS), f"not in the settings table: {sorted(named - set(ENV_VARS))}"
    assert all(name not in os.environ for name in ENV_VARS)  # conftest's fixture did it


# -- the engine: refused at start-up, before any worker ---------------------------------


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ("nosuch", "is not an engine"),
        ("pytesseractt", "did you mean 'pytesseract'?"),
        ("ocrlab.engines.fakes:missing_function", "has no function 'missing_function'"),
        ("no_such_module_here:ocr", "No module named 'no_such_module_here'"),
    ],
)
def test_an_engine_that_cannot_load_is_refused_naming_it(
    tmp_path: Path, given: str, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        ocrlab.run(tmp_path, tmp_path / "out", engine=given, progress=False)
    message = str(caught.value)
    assert f"engine={given!r}" in message and words in message
    assert "'pytesseract', 'tesserocr' or an import path 'module:function'" in message
    assert f"installed here: {', '.join(installed_engines())}" in message
    assert not (tmp_path / "out").exists()


def test_the_engine_check_names_the_variable_it_came_from(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="OCR_ENGINE='nosuch' is not an engine"):
        load_config(env={"OCR_ENGINE": "nosuch"})
    cfg = load_config(env={"OCR_ENGINE": "ocrlab.engines.fakes:nothing"})
    with pytest.raises(ConfigError, match=re.escape("OCR_ENGINE='ocrlab.engines.fakes:nothing'")):
        ocrlab.run(tmp_path, tmp_path / "out", config=cfg)
    check_engine("ocrlab.engines.fakes:echo")  # a real function: no error
    check_engine("pytesseract")


def _watched_run(*args: str) -> tuple[subprocess.CompletedProcess[str], set[int]]:
    """``ocrlab run ARGS`` in a subprocess, and every process it started while it ran
    (its descendants, polled every few milliseconds: a loky worker lives far longer)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OCR_PROGRESS": "false"}
    cmd = [sys.executable, "-m", "ocrlab", "run", *args]
    popen = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen: set[int] = set()
    try:
        parent = psutil.Process(popen.pid)
        while popen.poll() is None:
            seen |= {c.pid for c in parent.children(recursive=True)}
            time.sleep(0.002)
    except psutil.NoSuchProcess:
        pass
    out, err = popen.communicate(timeout=300)
    done = subprocess.CompletedProcess(cmd, popen.returncode, out.decode(), err.decode())
    return done, seen


@pytest.mark.parametrize(
    "engine", ["nosuch", "pytesseractt", "ocrlab.engines.fakes:missing_function"]
)
def test_a_misspelt_engine_exits_2_before_any_worker_starts(tmp_path: Path, engine: str) -> None:
    pages = tmp_path / "in"
    for i in range(2):
        make_page(pages / f"p{i}.png", f"page {i}")
    out = tmp_path / "out"
    # The same command with an engine that loads starts its workers, and the probe sees them.
    echo = "ocrlab.engines.fakes:echo"
    good, started = _watched_run(
        str(pages), "--out", str(tmp_path / "good"), "--workers", "2", "--engine", echo
    )
    assert good.returncode == 0, good.stderr
    assert started, "the probe saw no process of a run that had a pool"
    bad, started = _watched_run(str(pages), "--out", str(out), "--workers", "2", "--engine", engine)
    assert bad.returncode == 2, bad.stderr
    assert f"{engine!r}" in bad.stderr and "configuration error" in bad.stderr
    assert "'module:function'" in bad.stderr and "installed here: pytesseract" in bad.stderr
    assert started == set(), "a refused engine started processes"
    assert not out.exists(), "the output folder was touched"
