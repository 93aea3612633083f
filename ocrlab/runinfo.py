"""Facts about the machine and the software a run used, and the start-up checks.

The Tesseract facts (version, languages, tessdata) come from
:mod:`ocrlab.engines.facts`, which remembers them between runs and asks the binary
(:mod:`ocrlab.engines.tesseract`) again only when it or its traineddata changed;
package versions from the installed ``dist-info`` folder names (no import); host
figures from :mod:`ocrlab.measure.host`.

Recorded in the trace metadata and the manifest, because a timing or an OCR
difference means nothing without the Tesseract version and CPU count behind it.
"""

from __future__ import annotations

import os
import platform
import re
import resource
import socket
import sys
import time
from typing import Any

from loky import cpu_count

from .config import OcrConfig
from .engines.facts import tesseract_facts
from .engines.registry import engine_version
from .engines.tesseract import INSTALL_HINT, tesseract_cmd
from .errors import ConfigError, PipelineError
from .measure.host import available_memory, cgroup_memory_limit
from .output.formats import check_formats


def _installed_versions() -> dict[str, str]:
    """{normalized distribution name: version} from the ``NAME-VERSION.dist-info`` folder
    names on ``sys.path``, the first on the path winning as in :mod:`importlib.metadata`.

    Why not ``importlib.metadata.version``: it searches the path and parses a METADATA
    file per name (4-6 ms each, 8 names per run, before the first page); the folder
    names carry the version already (the wheel and PEP 376 layout).
    """
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info") and "-" in name:
                dist, _, version = name[: -len(".dist-info")].partition("-")
                found.setdefault(_normalized(dist), version)
    return found


def _normalized(dist: str) -> str:
    return re.sub(r"[-_.]+", "_", dist).lower()


def _version(dist: str, installed: dict[str, str] | None = None) -> str | None:
    if installed is not None and _normalized(dist) in installed:
        return installed[_normalized(dist)]
    from importlib import metadata  # here: 10-15 ms of imports the usual run never needs

    try:  # an egg-info or zipped distribution: ask importlib.metadata
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_engine(cfg: OcrConfig) -> None:
    """Fail at start-up, before any page is submitted, when the default engine cannot run.

    Asked while the pool's workers start (:class:`ocrlab.pool.Pool`). The facts come from
    :mod:`ocrlab.engines.facts`: remembered between runs, asked (two ``tesseract``
    processes) only when the binary or its traineddata changed. A language the
    remembered facts lack is asked again before it is refused.
    """
    check_formats(cfg.formats, cfg.engine)
    if cfg.engine != "pytesseract" or cfg.remote:
        return  # a remote cluster's workers have their own Tesseract
    facts = tesseract_facts()
    if facts is None or facts.version is None:
        raise PipelineError(
            f"Tesseract was not found on PATH ({tesseract_cmd()!r}); {INSTALL_HINT}."
        )
    wanted = set(cfg.lang.split("+"))
    if wanted - facts.languages:
        facts = tesseract_facts(fresh=True) or facts
    missing = sorted(wanted - facts.languages)
    if missing:
        raise ConfigError(
            f"lang={cfg.lang!r}: Tesseract has no traineddata for {', '.join(missing)} "
            f"(installed: {', '.join(sorted(facts.languages)) or 'none'}); install "
            f"e.g. 'tesseract-ocr-{missing[0]}' or choose an installed language."
        )


#: The main process plus the two resource trackers (loky's, multiprocessing's), as PSS:
#: measured 25 + 13 + 7 = 45 MB at 2 workers on A4 pages (``docs/performance.md``,
#: "Memory"), with room.
#: PSS, not RSS: RSS counts the libraries these processes share once per process, and
#: the budget (a container's limit) is charged each page once.
BASE_MEMORY_MB = 80.0


def memory_budget(cfg: OcrConfig) -> tuple[float, str]:
    """(MB the run may use, where that figure comes from)."""
    if cfg.memory_budget_mb is not None:
        return cfg.memory_budget_mb, "memory_budget_mb"
    limit = cgroup_memory_limit()
    if limit is not None:
        return limit / 2**20, "the container's cgroup memory limit"
    return available_memory() / 2**20, "the machine's available memory"


def check_memory(cfg: OcrConfig) -> None:
    """Refuse, before any work, a worker count whose estimated peak exceeds the budget.

    An error rather than a silent clamp: the user asked for that many workers,
    and a run that quietly uses fewer would make every figure it reports wrong.
    """
    if cfg.sequential or cfg.executor != "loky":
        return
    budget, origin = memory_budget(cfg)
    need = BASE_MEMORY_MB + cfg.effective_workers * cfg.memory_per_worker_mb
    if need > budget:
        fits = max(1, int((budget - BASE_MEMORY_MB) // cfg.memory_per_worker_mb))
        raise ConfigError(
            f"workers={cfg.effective_workers} need about {need:.0f} MB "
            f"({BASE_MEMORY_MB:.0f} MB + {cfg.effective_workers} x "
            f"{cfg.memory_per_worker_mb:.0f} MB per worker), more than the {budget:.0f} MB of "
            f"{origin}; use at most {fits} worker(s) (OCR_WORKERS={fits}), or adjust "
            "OCR_MEMORY_PER_WORKER_MB / OCR_MEMORY_BUDGET_MB if your pages are smaller."
        )


def run_metadata(cfg: OcrConfig) -> dict[str, Any]:
    """Config, versions, host and limits: what the trace and the manifest record."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    installed = _installed_versions()
    return {
        # the wall clock and the monotonic clock read together: with t0_monotonic_ns, where
        # the run began on the wall clock (ocrlab merge lays shards out by it)
        "clocks": {"unix_ns": time.time_ns(), "monotonic_ns": time.monotonic_ns()},
        "config": cfg.as_dict(),
        "versions": {
            "ocrlab": _version("ocrlab", installed),
            "python": sys.version.split()[0],
            "joblib": _version("joblib", installed),
            "loky": _version("loky", installed),
            "pytesseract": _version("pytesseract", installed),
            "tesseract": engine_version("pytesseract") if cfg.engine == "pytesseract" else None,
            "tesserocr_libtesseract": engine_version("tesserocr")
            if cfg.engine == "tesserocr"
            else None,
            "Pillow": _version("Pillow", installed),
            "pypdfium2": _version("pypdfium2", installed),
            "psutil": _version("psutil", installed),
        },
        "host": socket.gethostname(),
        # Not platform.platform(): it asks for the processor, which runs ``uname -p``.
        "platform": f"{platform.system()}-{platform.release()}-{platform.machine()}",
        "cpu_count": os.cpu_count(),
        "usable_cpus": cpu_count(),
        "fd_limit": soft,
        "omp_thread_limit": cfg.omp_thread_limit,
        "memory_budget": dict(zip(("mb", "source"), memory_budget(cfg), strict=True)),
        "pid": os.getpid(),
    }
