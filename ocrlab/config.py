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
from .values import SETTINGS

log = logging.getLogger(__name__)


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
    bundle_mp: float = 10.0
    formats: tuple[str, ...] = ("txt",)
    conf_low: float = 60.0
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
            formats=self.formats,
            conf_low=self.conf_low,
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
