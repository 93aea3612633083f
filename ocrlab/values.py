"""How each setting's value is read: parsers that accept what shell users write and bound it.

Every parser takes the name the value came under (a keyword, a mapping key or an
environment variable) and the raw value, and raises
:class:`~ocrlab.errors.ConfigError` naming both and what is allowed.
:mod:`ocrlab.config` lists the settings with these parsers and builds the frozen
configuration from them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loky import cpu_count

from .errors import ConfigError

#: Absolute ceiling for the worker count, whatever the machine.
HARD_MAX_WORKERS = 64
#: Workers beyond this multiple of the usable CPUs only add memory and contention.
OVERSUBSCRIPTION_FACTOR = 4

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_bool(name: str, raw: object) -> bool:
    """Parse a boolean the way shell users write it, or raise naming ``name``."""
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(
        f"{name}={raw!r} is not a boolean; use one of true/false, 1/0, yes/no, on/off."
    )


def parse_int(name: str, raw: object, lo: int, hi: int) -> int:
    try:
        value = int(str(raw).strip()) if not isinstance(raw, int) else raw
    except ValueError:
        raise ConfigError(
            f"{name}={raw!r} is not an integer; expected a whole number from {lo} to {hi}."
        ) from None
    if isinstance(raw, bool) or not lo <= value <= hi:
        raise ConfigError(f"{name}={raw!r} is out of range; expected {lo} to {hi}.")
    return value


def parse_float(name: str, raw: object, lo: float, hi: float) -> float:
    try:
        value = float(str(raw).strip()) if not isinstance(raw, (int, float)) else float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number; expected {lo} to {hi}.") from None
    if isinstance(raw, bool) or not lo <= value <= hi:
        raise ConfigError(f"{name}={raw!r} is out of range; expected {lo} to {hi}.")
    return value


@dataclass(frozen=True)
class Setting:
    """One configuration key: its environment variable and how to parse / bound it."""

    key: str
    env: str | None
    parse: Callable[[str, object], Any]
    help: str
    bounds: str


def max_workers_allowed() -> int:
    """The largest worker count accepted on this machine (cgroup-aware CPU count)."""
    cpus: int = cpu_count()
    return min(HARD_MAX_WORKERS, OVERSUBSCRIPTION_FACTOR * cpus)


def parse_workers(name: str, raw: object) -> int:
    return parse_int(name, raw, 1, max_workers_allowed())


def parse_optional_workers(name: str, raw: object) -> int | None:
    if raw is None or str(raw).strip() == "":
        return None
    return parse_int(name, raw, 1, HARD_MAX_WORKERS)


def parse_str(name: str, raw: object) -> str:
    text = str(raw).strip()
    if not text:
        raise ConfigError(f"{name} is empty; give a value or unset it to use the default.")
    return text


def parse_optional_psm(name: str, raw: object) -> int | None:
    if raw is None or str(raw).strip() == "":
        return None
    return parse_int(name, raw, 0, 13)


def parse_auto_bool(name: str, raw: object) -> bool | None:
    if raw is None or str(raw).strip().lower() == "auto":
        return None
    return parse_bool(name, raw)


def parse_optional_budget(name: str, raw: object) -> float | None:
    if raw is None or str(raw).strip().lower() in {"", "auto"}:
        return None
    return parse_float(name, raw, 64, 1e9)


def parse_pages_per_worker(name: str, raw: object) -> int:
    # loky's retirement check runs from a worker's second page on (see ocrlab.recycle)
    if str(raw).strip() == "0":
        return 0
    return parse_int(name, raw, 2, 1_000_000_000)


def parse_executor(name: str, raw: object) -> str:
    text = parse_str(name, raw)
    if text not in {"loky", "inline"} and not text.startswith(("dask://", "tcp://")):
        raise ConfigError(
            f"{name}={raw!r} is not an executor; use 'loky' (default), 'inline' "
            "or 'dask://HOST:PORT' for a dask.distributed scheduler."
        )
    return text


def parse_order(name: str, raw: object) -> str:
    text = str(raw).strip().lower()
    if text not in {"cost", "discovery"}:
        raise ConfigError(
            f"{name}={raw!r} is not an order; use 'cost' (most expensive pages first, the "
            "default) or 'discovery' (pages in the order they are found)."
        )
    return text
