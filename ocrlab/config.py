"""The frozen run configuration: where every setting comes from and its bounds.

Precedence, highest first:

1. operator overrides from the environment that always win, because they are
   the rollback switches of the verification plan and must work without a code
   change: ``OCR_PARALLEL_DISABLED=true`` (sequential, no pool) and
   ``OCR_MAX_WORKERS`` (an upper bound; ``1`` means sequential);
2. explicit values: keyword arguments, then the ``config`` mapping / object;
3. the environment variables of the individual settings (``OCR_WORKERS``...);
4. the defaults below.

Everything is validated in :func:`load_config`, before any input is read or
any worker started; a bad value raises :class:`~ocrlab.errors.ConfigError`
naming the key or variable, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from loky import cpu_count

from .errors import ConfigError
from .records import EngineSettings
from .values import (
    HARD_MAX_WORKERS,
    OVERSUBSCRIPTION_FACTOR,
    Setting,
    parse_auto_bool,
    parse_bool,
    parse_executor,
    parse_float,
    parse_int,
    parse_optional_budget,
    parse_optional_psm,
    parse_optional_workers,
    parse_order,
    parse_pages_per_worker,
    parse_str,
    parse_workers,
)

log = logging.getLogger(__name__)

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "workers",
        "OCR_WORKERS",
        parse_workers,
        "worker processes (pages OCRed at once)",
        f"1 .. min({HARD_MAX_WORKERS}, {OVERSUBSCRIPTION_FACTOR} x CPUs)",
    ),
    Setting(
        "max_workers",
        "OCR_MAX_WORKERS",
        parse_optional_workers,
        "upper bound on workers, applied last (1 = sequential rollback)",
        f"1 .. {HARD_MAX_WORKERS}, unset = no bound",
    ),
    Setting(
        "parallel_disabled",
        "OCR_PARALLEL_DISABLED",
        parse_bool,
        "kill switch: run pages in-process, sequentially, no pool",
        "true / false",
    ),
    Setting(
        "engine",
        "OCR_ENGINE",
        parse_str,
        "'pytesseract' or an import path 'module:function'",
        "non-empty",
    ),
    Setting(
        "lang",
        "OCR_LANG",
        parse_str,
        "Tesseract language(s), e.g. 'eng' or 'eng+deu'",
        "installed traineddata",
    ),
    Setting(
        "psm",
        "OCR_PSM",
        parse_optional_psm,
        "Tesseract page segmentation mode",
        "0 .. 13, unset = Tesseract's default (3)",
    ),
    Setting(
        "dpi",
        "OCR_DPI",
        lambda n, r: parse_int(n, r, 50, 1200),
        "resolution at which PDF pages are rasterized",
        "50 .. 1200",
    ),
    Setting(
        "page_timeout",
        "OCR_PAGE_TIMEOUT",
        lambda n, r: parse_float(n, r, 1, 86400),
        "seconds before a page's Tesseract process is killed",
        "1 .. 86400",
    ),
    Setting(
        "max_megapixels",
        "OCR_MAX_MEGAPIXELS",
        lambda n, r: parse_float(n, r, 0.01, 10000),
        "largest page accepted (decompression-bomb guard)",
        "0.01 .. 10000",
    ),
    Setting(
        "inflight_per_worker",
        "OCR_INFLIGHT_PER_WORKER",
        lambda n, r: parse_int(n, r, 1, 16),
        "pages submitted ahead per worker (bounded queue)",
        "1 .. 16",
    ),
    Setting(
        "order",
        "OCR_ORDER",
        parse_order,
        "submission order: 'cost' (largest pages first, no lone tail) or 'discovery'",
        "cost / discovery",
    ),
    Setting(
        "order_window",
        "OCR_ORDER_WINDOW",
        lambda n, r: parse_int(n, r, 1, 10_000_000),
        "pages looked ahead to pick the most expensive (exact order below this)",
        "1 .. 1e7",
    ),
    Setting(
        "monitor_interval",
        "OCR_MONITOR_INTERVAL",
        lambda n, r: parse_float(n, r, 0.0, 60.0),
        "seconds between process-tree samples (0 = no monitor)",
        "0 .. 60",
    ),
    Setting(
        "memory_per_worker_mb",
        "OCR_MEMORY_PER_WORKER_MB",
        lambda n, r: parse_float(n, r, 10, 1_000_000),
        "memory one worker may need (worker + its Tesseract), for the start-up check",
        "10 .. 1e6",
    ),
    Setting(
        "memory_budget_mb",
        "OCR_MEMORY_BUDGET_MB",
        parse_optional_budget,
        "memory the run may use; unset = the container's limit, else available memory",
        "64 .. 1e9, unset = auto",
    ),
    Setting(
        "max_pages_per_worker",
        "OCR_MAX_PAGES_PER_WORKER",
        parse_pages_per_worker,
        "a pool worker is replaced after this many pages (0 = never)",
        "0 or 2 .. 1e9",
    ),
    Setting(
        "max_worker_rss_mb",
        "OCR_MAX_WORKER_RSS_MB",
        lambda n, r: 0.0 if str(r).strip() == "0" else parse_float(n, r, 64, 1_000_000),
        "a pool worker is replaced once its RSS (children included) passed this (0 = no bound)",
        "0 or 64 .. 1e6",
    ),
    Setting(
        "executor",
        "OCR_EXECUTOR",
        parse_executor,
        "where pages run: 'loky', 'inline' or 'dask://HOST:PORT'",
        "see values",
    ),
    Setting(
        "ship_pages",
        "OCR_SHIP_PAGES",
        parse_auto_bool,
        "send each page's file bytes with its task (Dask workers on other hosts)",
        "auto / true / false; auto = when the scheduler is not on loopback",
    ),
    Setting(
        "progress",
        "OCR_PROGRESS",
        parse_auto_bool,
        "progress bar (auto = a terminal bar on a tty, a notebook bar in JupyterLab; "
        "off under CI and papermill)",
        "auto / true / false",
    ),
    Setting(
        "live_view",
        "OCR_LIVE_VIEW",
        parse_auto_bool,
        "live run view in a notebook: pages/s, memory, live Tesseracts, failures "
        "(auto = in JupyterLab, not under papermill or CI)",
        "auto / true / false",
    ),
)

_BY_KEY = {s.key: s for s in SETTINGS}
#: Accepted spellings from the verification plan and the environment-variable names.
ALIASES = {
    "ocr_workers": "workers",
    "ocr_max_workers": "max_workers",
    "ocr_parallel_disabled": "parallel_disabled",
    "ocr_engine": "engine",
}


@dataclass(frozen=True)
class OcrConfig:
    """A validated, immutable run configuration. Build it with :func:`load_config`."""

    workers: int = 2
    max_workers: int | None = None
    parallel_disabled: bool = False
    engine: str = "pytesseract"
    lang: str = "eng"
    psm: int | None = None
    dpi: int = 300
    page_timeout: float = 300.0
    max_megapixels: float = 200.0
    inflight_per_worker: int = 2
    order: str = "cost"
    order_window: int = 2000
    monitor_interval: float = 0.1
    memory_per_worker_mb: float = 250.0
    memory_budget_mb: float | None = None
    max_pages_per_worker: int = 10_000
    max_worker_rss_mb: float = 1024.0
    executor: str = "loky"
    ship_pages: bool | None = None
    progress: bool | None = None
    live_view: bool | None = None
    omp_thread_limit: str | None = "1"
    engine_options: Mapping[str, Any] = field(default_factory=dict)
    #: where each value came from ("default", "env OCR_WORKERS", "config"...), for the trace
    provenance: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def effective_workers(self) -> int:
        """Workers actually used after the kill switch and the upper bound."""
        if self.parallel_disabled:
            return 1
        if self.max_workers is not None:
            return min(self.workers, self.max_workers)
        return self.workers

    @property
    def remote(self) -> bool:
        """True when pages run on a Dask cluster rather than on this machine's processes."""
        return self.executor.startswith(("dask://", "tcp://"))

    @property
    def sequential(self) -> bool:
        """True when pages run in the main process, one after another, with no pool."""
        return self.executor == "inline" or (
            self.executor == "loky" and self.effective_workers == 1
        )

    @property
    def workers_given(self) -> bool:
        """True when the worker count was chosen (keyword, config or ``OCR_WORKERS``),
        False when it is the default; a cluster then sizes the run by its own threads."""
        return self.provenance.get("workers", "default") != "default"

    @property
    def max_inflight(self) -> int:
        """Bound on submitted-but-unfinished pages: a few per worker, never unbounded."""
        return self.effective_workers * self.inflight_per_worker

    def engine_settings(self) -> EngineSettings:
        """The subset of the configuration that workers need."""
        return EngineSettings(
            engine=self.engine,
            lang=self.lang,
            psm=self.psm,
            dpi=self.dpi,
            timeout_s=self.page_timeout,
            max_megapixels=self.max_megapixels,
            omp_thread_limit=self.omp_thread_limit,
            options=tuple(sorted(self.engine_options.items())),
            max_pages_per_worker=self.max_pages_per_worker,
            max_worker_rss_mb=self.max_worker_rss_mb,
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain values for the trace metadata and the manifest."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["engine_options"] = dict(self.engine_options)
        out["provenance"] = dict(self.provenance)
        out["effective_workers"] = self.effective_workers
        out["sequential"] = self.sequential
        return out


def _canonical(key: str) -> str:
    key = ALIASES.get(key, key)
    if key in _BY_KEY or key in {"omp_thread_limit", "engine_options"}:
        return key
    known = sorted([*_BY_KEY, *ALIASES, "omp_thread_limit", "engine_options"])
    hint = difflib.get_close_matches(key, known, n=1)
    extra = f" Did you mean {hint[0]!r}?" if hint else ""
    raise ConfigError(f"unknown configuration key {key!r}.{extra} Known keys: {', '.join(known)}.")


def load_config(
    config: Mapping[str, Any] | OcrConfig | None = None,
    *,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> OcrConfig:
    """Build and validate the run configuration (see the module docstring for precedence).

    ``config`` may be a mapping (keys as in :class:`OcrConfig` or the plan's
    ``ocr_workers``), an :class:`OcrConfig`, or ``None``. ``env`` defaults to
    ``os.environ``. Keyword ``overrides`` whose value is ``None`` are ignored, so a
    CLI can pass its optional flags straight through.
    """
    environ = os.environ if env is None else env
    explicit: dict[str, Any] = {}
    if isinstance(config, OcrConfig):
        base = config
        env_allowed = False  # an already-resolved config has read the environment once
    else:
        base = OcrConfig()
        env_allowed = True
        for key, value in (config or {}).items():
            explicit[_canonical(key)] = value
    for key, value in overrides.items():
        if value is not None:
            explicit[_canonical(key)] = value

    values: dict[str, Any] = {}
    provenance: dict[str, str] = dict(base.provenance)
    for setting in SETTINGS:
        name = setting.key
        if name in explicit:
            values[name] = setting.parse(name, explicit[name])
            provenance[name] = "config"
        elif env_allowed and setting.env and environ.get(setting.env) is not None:
            values[name] = setting.parse(setting.env, environ[setting.env])
            provenance[name] = f"env {setting.env}"
    # The rollback switches win over explicit values (see module docstring).
    for name in ("parallel_disabled", "max_workers"):
        var = _BY_KEY[name].env
        if var and environ.get(var) is not None:
            values[name] = _BY_KEY[name].parse(var, environ[var])
            provenance[name] = f"env {var}"
    if "omp_thread_limit" in explicit:
        raw = explicit["omp_thread_limit"]
        values["omp_thread_limit"] = None if raw is None else str(raw)
    elif "OMP_THREAD_LIMIT" in environ:
        # The user chose Tesseract's thread count; respect it and record it.
        values["omp_thread_limit"] = environ["OMP_THREAD_LIMIT"]
        provenance["omp_thread_limit"] = "env OMP_THREAD_LIMIT"
    if "engine_options" in explicit:
        opts = explicit["engine_options"]
        if not isinstance(opts, Mapping):
            raise ConfigError(f"engine_options={opts!r} must be a mapping of option to value.")
        values["engine_options"] = dict(opts)
    for name in _BY_KEY:
        provenance.setdefault(name, "default")
    values["provenance"] = provenance
    cfg = dataclasses.replace(base, **values)
    if cfg.workers > cfg.effective_workers:
        log.warning(
            "workers=%d capped to %d (%s)",
            cfg.workers,
            cfg.effective_workers,
            "OCR_PARALLEL_DISABLED" if cfg.parallel_disabled else "OCR_MAX_WORKERS",
        )
    elif cfg.effective_workers > cpu_count():
        log.warning(
            "workers=%d exceeds the %d usable CPUs: pages will compete for cores",
            cfg.effective_workers,
            cpu_count(),
        )
    return cfg


def settings_table() -> list[dict[str, str]]:
    """The configuration table as rows (key, env, default, bounds, help): README and --help."""
    defaults = OcrConfig()
    return [
        {
            "key": s.key,
            "env": s.env or "",
            "default": repr(getattr(defaults, s.key)),
            "bounds": s.bounds,
            "help": s.help,
        }
        for s in SETTINGS
    ]
