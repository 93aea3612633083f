"""Where the code runs, for those that must show something: a terminal, a notebook at a
person's browser, a headless kernel (papermill, nbclient), CI, or a plain pipe.

A leaf (it imports nothing of ocrlab), so that both the run's progress
(:mod:`ocrlab.progress`) and the lab's widgets ask the same question the same way.
How a headless kernel is told from a person at a browser: papermill and nbclient
send every cell with ``allow_stdin=False`` (nobody can answer ``input()``),
JupyterLab with ``allow_stdin=True``; ipykernel keeps the flag of the cell being run.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def _kernel() -> Any:
    """The running ipykernel, or None (IPython is never imported here if it is not loaded)."""
    if "ipykernel" not in sys.modules or "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    shell = get_ipython()
    return getattr(shell, "kernel", None)


def frontend() -> str:
    """``"ci"``, ``"notebook"``, ``"headless"`` (papermill / nbclient), ``"terminal"`` or
    ``"plain"`` (output to a pipe or a file)."""
    if os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}:
        return "ci"
    kernel = _kernel()
    if kernel is not None:
        return "notebook" if getattr(kernel, "_allow_stdin", True) else "headless"
    try:
        return "terminal" if sys.stderr is not None and sys.stderr.isatty() else "plain"
    except ValueError:  # a closed stderr
        return "plain"
