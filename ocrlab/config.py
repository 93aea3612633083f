"""The frozen run configuration, and which source each of its values comes from.

The settings themselves (defaults, parsers, bounds, help) are the table in
:mod:`ocrlab.settings`. Precedence, highest first:

1. operator overrides from the environment that always win, because they are
   the rollback switches and must work without a code change:
   ``OCR_PARALLEL_DISABLED=true`` (sequential, no pool) and ``OCR_MAX_WORKERS``
   (an upper bound; ``1`` means sequential);
2. explicit values: keyword arguments (the command's flags), then the ``config``
   mapping / object;
3. the environment variables of the individual settings (``OCR_WORKERS``...);
4. the table's defaults.

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

from . import settings
from .errors import ConfigError
from .records import EngineSettings
from .settings import BY_KEY, SETTINGS

log = logging.getLogger(__name__)

#: Spellings accepted beside the keywords: the environment variables' names in lower
#: case (``config={"ocr_workers": 3}``, as the first callers of run_groups spell it).
ALIASES = {s.env.lower(): s.key for s in SETTINGS if s.env and s.env.lower() != s.key}


@dataclass(frozen=True)
class OcrConfig:
    """A validated, immutable run configuration. Build it with :func:`load_config`.

    One typed field per row of :data:`ocrlab.settings.SETTINGS`, in its order, its
    default the row's (the fields are written out so that type checkers see them; a
    test holds them to the table).
    """

    workers: int = settings.WORKERS.default
    max_workers: int | None = settings.MAX_WORKERS.default
    parallel_disabled: bool = settings.PARALLEL_DISABLED.default
    engine: str = settings.ENGINE.default
    lang: str = settings.LANG.default
    psm: int | None = settings.PSM.default
    dpi: int = settings.DPI.default
    page_timeout: float = settings.PAGE_TIMEOUT.default
    max_megapixels: float = settings.MAX_MEGAPIXELS.default
    inflight_per_worker: int = settings.INFLIGHT_PER_WORKER.default
    order: str = settings.ORDER.default
    order_window: int = settings.ORDER_WINDOW.default
    bundle_mp: float = settings.BUNDLE_MP.default
    formats: tuple[str, ...] = settings.FORMATS.default
    conf_low: float = settings.CONF_LOW.default
    monitor_interval: float = settings.MONITOR_INTERVAL.default
    memory_per_worker_mb: float = settings.MEMORY_PER_WORKER_MB.default
    memory_budget_mb: float | None = settings.MEMORY_BUDGET_MB.default
    max_pages_per_worker: int = settings.MAX_PAGES_PER_WORKER.default
    max_worker_rss_mb: float = settings.MAX_WORKER_RSS_MB.default
    verify_inputs: bool = settings.VERIFY_INPUTS.default
    executor: str = settings.EXECUTOR.default
    ship_pages: bool | None = settings.SHIP_PAGES.default
    shard: str | None = settings.SHARD.default
    progress: bool | None = settings.PROGRESS.default
    live_view: bool | None = settings.LIVE_VIEW.default
    omp_thread_limit: str | None = settings.OMP_THREAD_LIMIT.default
    engine_options: Mapping[str, Any] = field(
        default_factory=lambda: dict(settings.ENGINE_OPTIONS.default)
    )
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
    if key in BY_KEY:
        return key
    known = sorted([*BY_KEY, *ALIASES])
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

    ``config`` may be a mapping (keys as in :class:`OcrConfig`, or an environment
    variable's name in lower case: ``ocr_workers``), an :class:`OcrConfig`, or
    ``None``. ``env`` defaults to ``os.environ``. Keyword ``overrides`` whose value
    is ``None`` are ignored, so a CLI can pass its optional flags straight through.
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
        var = BY_KEY[name].env
        if var and environ.get(var) is not None:
            values[name] = BY_KEY[name].parse(var, environ[var])
            provenance[name] = f"env {var}"
    for name in BY_KEY:
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
