"""The one build step pyproject.toml cannot express: the notebooks into the wheel.

``notebooks/`` at the top of the repository is the only copy of the notebooks
(the one people open in JupyterLab). ``ocrlab report`` must find them in an
installed wheel too, and package data can only come from inside the package,
so building the package copies ``notebooks/NN-*.ipynb`` into the built
``ocrlab/lab/notebooks/``. An editable install copies nothing: there
:mod:`ocrlab.lab.report` reads the checkout's ``notebooks/`` itself. The sdist
carries ``notebooks/`` (MANIFEST.in), so a wheel built from it gets them as well.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildPyWithNotebooks(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        sources = sorted((HERE / "notebooks").glob("[0-9][0-9]-*.ipynb"))
        if not sources:
            raise SystemExit(
                f"no notebooks in {HERE / 'notebooks'}: a wheel without them cannot run "
                "`ocrlab report`; build from a full checkout or sdist of ocrlab."
            )
        target = Path(self.build_lib) / "ocrlab" / "lab" / "notebooks"
        target.mkdir(parents=True, exist_ok=True)
        for source in sources:
            self.copy_file(str(source), str(target / source.name))


setup(cmdclass={"build_py": BuildPyWithNotebooks})
