"""environment.yml stays in step with pyproject.toml; README documents what the code does."""

from __future__ import annotations

import re

import tomllib

from ocrlab.settings import markdown_table
from tests.conftest import ROOT

#: conda-forge names that differ from PyPI's.
CONDA_NAMES = {"matplotlib": "matplotlib-base", "dask[distributed]": "dask"}


def _pyproject_requirements() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = list(data["project"]["dependencies"])
    for extra in data["project"]["optional-dependencies"].values():
        reqs.extend(extra)
    out = {}
    for req in reqs:
        name, spec = re.match(r"^([A-Za-z0-9_.\-\[\]]+)(.*)$", req).groups()  # type: ignore[union-attr]
        out[CONDA_NAMES.get(name, name).lower()] = spec.replace(" ", "")
    return out


def _environment_requirements() -> dict[str, str]:
    out = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        # conda packages ("  - name"), and pip's ("      - name") for what conda-forge lacks
        m = re.match(r"^  (?:    )?- ([A-Za-z0-9_.\-]+)([<>=!~].*)?$", line)
        if m:
            out[m.group(1).lower()] = (m.group(2) or "").replace(" ", "")
    return out


def test_environment_yml_matches_pyproject() -> None:
    env = _environment_requirements()
    for name, spec in _pyproject_requirements().items():
        assert name in env, f"{name} is in pyproject.toml but not environment.yml"
        assert env[name] == spec, f"{name}: pyproject {spec!r} vs environment.yml {env[name]!r}"
    assert "tesseract" in env


SETTINGS_START = "<!-- settings-table:start -->"
SETTINGS_END = "<!-- settings-table:end -->"


def test_readmes_settings_table_is_the_tables() -> None:
    """README's settings table, between its markers, is ``ocrlab.settings.markdown_table()``."""
    readme = (ROOT / "README.md").read_text()
    assert SETTINGS_START in readme and SETTINGS_END in readme, "README lost its table markers"
    block = readme.split(SETTINGS_START, 1)[1].split(SETTINGS_END, 1)[0]
    assert block.strip() == markdown_table().strip(), (
        "README's settings table differs from the settings table; paste the output of "
        "python -c 'import ocrlab.settings as s; print(s.markdown_table())' between the markers"
    )


def test_readme_documents_every_exit_code() -> None:
    readme = (ROOT / "README.md").read_text()
    from ocrlab.errors import ExitCode

    for code in ExitCode:  # every code the command can return has its row
        assert f"| {int(code)} |" in readme, f"README lacks exit code row {int(code)}"
    assert readme.index("make run") < readme.index("make test") < 1200
