"""Facts about the machine and the software a run used, and start-up checks of the engine.

Recorded in the trace metadata and the manifest, because a timing or an OCR
difference means nothing without the Tesseract version and CPU count behind it.
"""

from __future__ import annotations

import functools
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
from importlib import metadata
from typing import Any

import joblib

from .config import OcrConfig
from .errors import ConfigError, PipelineError

INSTALL_HINT = (
    "install it with 'sudo apt-get install tesseract-ocr' (Debian/Ubuntu), "
    "'brew install tesseract' (macOS) or 'conda install -c conda-forge tesseract', "
    "or point pytesseract.pytesseract.tesseract_cmd at the binary"
)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def tesseract_cmd() -> str:
    import pytesseract

    cmd: str = pytesseract.pytesseract.tesseract_cmd
    return cmd


@functools.lru_cache(maxsize=4)
def tesseract_version(cmd: str | None = None) -> str | None:
    """The ``tesseract --version`` first line's version, or ``None`` if not installed."""
    exe = shutil.which(cmd or tesseract_cmd())
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30,
                             check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    first = (out.stdout or out.stderr).splitlines()[:1]
    return first[0].split()[-1] if first else None


@functools.lru_cache(maxsize=4)
def tesseract_languages(cmd: str | None = None) -> frozenset[str]:
    exe = shutil.which(cmd or tesseract_cmd())
    if exe is None:
        return frozenset()
    out = subprocess.run([exe, "--list-langs"], capture_output=True, text=True, timeout=30,
                         check=False)
    return frozenset(line.strip() for line in out.stdout.splitlines()[1:] if line.strip())


def check_engine(cfg: OcrConfig) -> None:
    """Fail at start-up, before any worker starts, when the default engine cannot run."""
    if cfg.engine != "pytesseract":
        return
    if tesseract_version() is None:
        raise PipelineError(f"Tesseract was not found on PATH ({tesseract_cmd()!r}); "
                            f"{INSTALL_HINT}.")
    wanted = set(cfg.lang.split("+"))
    missing = sorted(wanted - tesseract_languages())
    if missing:
        raise ConfigError(
            f"lang={cfg.lang!r}: Tesseract has no traineddata for {', '.join(missing)} "
            f"(installed: {', '.join(sorted(tesseract_languages())) or 'none'}); install "
            f"e.g. 'tesseract-ocr-{missing[0]}' or choose an installed language."
        )


def run_metadata(cfg: OcrConfig) -> dict[str, Any]:
    """Config, versions, host and limits: what the trace and the manifest record."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {
        "config": cfg.as_dict(),
        "versions": {
            "ocrlab": _version("ocrlab"),
            "python": sys.version.split()[0],
            "joblib": joblib.__version__,
            "pytesseract": _version("pytesseract"),
            "tesseract": tesseract_version() if cfg.engine == "pytesseract" else None,
            "Pillow": _version("Pillow"),
            "pypdfium2": _version("pypdfium2"),
            "psutil": _version("psutil"),
        },
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": joblib.cpu_count(),
        "fd_limit": soft,
        "omp_thread_limit": cfg.omp_thread_limit,
        "pid": os.getpid(),
    }
