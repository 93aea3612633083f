"""An installed wheel, used outside the checkout, is a working ocrlab.

The notebooks exist once in the repository, in ``notebooks/``; the build copies
them into the wheel's ``ocrlab/lab/notebooks/`` (setup.py). A wheel that lacked
them used to write an empty report index and exit 0. Built with pip (build
isolation, as a user's ``pip install`` would), installed into a target folder, run
from a folder that is not the checkout with ``PYTHONPATH`` pointing only at the
installed copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, make_page


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    # Built from a copy of what the sdist holds, not from the checkout: an in-tree build
    # reuses the checkout's build/lib, where a module since moved or deleted would ship.
    src = work / "src"
    for folder in ("ocrlab", "notebooks"):
        shutil.copytree(
            ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", ".*")
        )
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(work / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if build.returncode != 0:
        pytest.fail(f"pip wheel failed:\n{build.stderr[-3000:]}")
    (wheel,) = (work / "dist").glob("ocrlab-*.whl")
    archive = zipfile.ZipFile(wheel)
    names = archive.namelist()
    sources = {p.name: p.read_bytes() for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb")}
    shipped = {
        n.rpartition("/")[2]: archive.read(n)
        for n in names
        if n.startswith("ocrlab/lab/notebooks/") and n.endswith(".ipynb")
    }
    assert sources and sorted(shipped) == sorted(sources), "the wheel lacks notebooks"
    assert [n for n in sources if shipped[n] != sources[n]] == [], "packaged notebooks differ"
    modules = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "ocrlab").rglob("*.py"))
    assert sorted(n for n in names if n.endswith(".py")) == modules  # no more, no fewer
    assert "ocrlab/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    site = work / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    return site


def _env(site: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(site), "CI": "true"}


@pytest.mark.slow
def test_report_from_an_installed_wheel(installed: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    for i in range(2):
        make_page(corpus / f"p{i}.png", f"wheel page {i}")
    where = subprocess.run(
        [sys.executable, "-c", "import ocrlab; print(ocrlab.__file__)"],
        cwd=tmp_path,
        env=_env(installed),
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip().startswith(str(installed))  # not the checkout
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ocrlab",
            "report",
            "--out",
            str(tmp_path / "reports"),
            "--corpus",
            str(corpus),
            "--workers",
            "1",
            "--only",
            "03-trace-explorer",
        ],
        cwd=tmp_path,
        env=_env(installed),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    page = tmp_path / "reports" / "03-trace-explorer.html"
    assert page.stat().st_size > 10_000
    assert "03-trace-explorer" in (tmp_path / "reports" / "index.html").read_text()


@pytest.mark.slow
def test_report_without_the_notebooks_extra_says_what_to_install(
    installed: Path, tmp_path: Path
) -> None:
    # papermill made unimportable, as in an environment without the extra
    script = (
        "import sys; sys.modules['papermill'] = None; from ocrlab.cli import main; "
        "sys.exit(main(['report', '--out', 'r']))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=_env(installed),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 3
    assert "pip install 'ocrlab[notebooks]'" in proc.stderr and "papermill" in proc.stderr
    assert not (tmp_path / "r" / "index.html").exists()
