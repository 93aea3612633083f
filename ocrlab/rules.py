"""How a setting's raw value is read and bounded: the parsers and their bounds in words.

A :class:`Rule` is a parser and the bounds it enforces, built together (:func:`whole`,
:func:`number`, :func:`optional`, :func:`zero_or`) so that the words ``--help`` and
README show cannot drift from what is accepted. Every parser takes the name the
value came under (a keyword, a mapping key, an environment variable or a flag) and
the raw value, accepts what shell users write (and a value it parsed already: a
value goes through its parser once per source it passes), and raises
:class:`~ocrlab.errors.ConfigError` naming both and what is allowed. Which setting
uses which rule is the table in :mod:`ocrlab.settings`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")

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


def parse_str(name: str, raw: object) -> str:
    text = str(raw).strip()
    if not text:
        raise ConfigError(f"{name} is empty; give a value or unset it to use the default.")
    return text


def unset(raw: object, words: frozenset[str] = frozenset({""})) -> bool:
    """True for no value: ``None``, an empty string, or one of ``words`` (e.g. ``auto``)."""
    return raw is None or str(raw).strip().lower() in words


def parse_auto_bool(name: str, raw: object) -> bool | None:
    return None if unset(raw, frozenset({"auto"})) else parse_bool(name, raw)


def parse_mapping(name: str, raw: object) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{name}={raw!r} must be a mapping of option to value.")
    return dict(raw)


@dataclass(frozen=True)
class Rule(Generic[T]):
    """How a setting's raw value is read (``parse``) and the bounds that enforces (``bounds``)."""

    parse: Callable[[str, object], T]
    bounds: str
    #: a yes/no setting: ``ocrlab run`` gets ``--name`` / ``--no-name`` instead of a value
    switch: bool = False


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


def parse_thread_limit(name: str, raw: object) -> str | None:
    # kept as text: it is handed to the workers' environment as it is
    return None if unset(raw) else str(parse_int(name, raw, 1, 1024))


def shown_number(value: float) -> str:
    """A bound or default as people write it: ``300``, ``0.1``, ``1e7``."""
    return f"{value:.0e}".replace("e+0", "e") if value >= 1e6 else f"{value:g}"


def _span(lo: float, hi: float) -> str:
    return f"{shown_number(lo)} .. {shown_number(hi)}"


def whole(lo: int, hi: int) -> Rule[int]:
    """A whole number from ``lo`` to ``hi``."""
    return Rule(lambda n, r: parse_int(n, r, lo, hi), _span(lo, hi))


def number(lo: float, hi: float) -> Rule[float]:
    """A number from ``lo`` to ``hi``."""
    return Rule(lambda n, r: parse_float(n, r, lo, hi), _span(lo, hi))


def optional(rule: Rule[T], word: str = "") -> Rule[T | None]:
    """``rule``, or ``None`` for an empty value (or ``word``, e.g. ``auto``)."""
    words = frozenset({"", word})
    return Rule(
        lambda n, r: None if unset(r, words) else rule.parse(n, r),
        f"{rule.bounds}, or {word or 'unset'}",
    )


def zero_or(rule: Rule[T], zero: T) -> Rule[T]:
    """``rule``, or ``zero`` (the setting's off value) for 0."""

    def parse(name: str, raw: object) -> T:
        try:
            if float(str(raw).strip()) == 0 and not isinstance(raw, bool):
                return zero
        except ValueError:
            pass
        return rule.parse(name, raw)

    return Rule(parse, f"0 or {rule.bounds}")


BOOL = Rule(parse_bool, "true / false", switch=True)
AUTO_BOOL = Rule(parse_auto_bool, "auto / true / false", switch=True)
