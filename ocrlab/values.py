"""How each setting's value is read: parsers that accept what shell users write and bound it.

Every parser takes the name the value came under (a keyword, a mapping key or an
environment variable) and the raw value, and raises
:class:`~ocrlab.errors.ConfigError` naming both and what is allowed.
:data:`SETTINGS` (at the end) lists every setting with its parser and bounds;
:mod:`ocrlab.config` builds the frozen configuration from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loky import cpu_count

from .errors import ConfigError
from .output.formats import FORMATS

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


def parse_formats(name: str, raw: object) -> tuple[str, ...]:
    """A list of output formats (``"txt,tsv,hocr"``, or a list) in the canonical order,
    ``txt`` always first: the text artifact is what the manifest, ``--resume`` and the
    identity checks stand on, so it is written whatever else is asked."""
    items = raw if isinstance(raw, (list, tuple, set, frozenset)) else str(raw).split(",")
    asked = {str(item).strip().lower() for item in items} - {""}
    unknown = sorted(asked - set(FORMATS))
    if unknown or not asked:
        what = f"has unknown format(s) {', '.join(unknown)}" if unknown else "is empty"
        raise ConfigError(
            f"{name}={raw!r} {what}; use a comma-separated list of {', '.join(FORMATS)} "
            "(e.g. 'txt,tsv,hocr,alto,pdf')."
        )
    return tuple(f for f in FORMATS if f in asked or f == "txt")


#: Every setting: key, environment variable, parser, help and bounds (README's table).
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
        "bundle_mp",
        "OCR_BUNDLE_MP",
        lambda n, r: parse_float(n, r, 0.0, 1000.0),
        "small pages share one Tesseract process up to this many megapixels (0 = never)",
        "0 .. 1000",
    ),
    Setting(
        "formats",
        "OCR_FORMATS",
        parse_formats,
        "files written per document, each in its folder (text/ tsv/ hocr/ alto/ pdf/); "
        "all from the one Tesseract call per page; txt is always written",
        ", ".join(FORMATS) + " (page: Tesseract 5.4+; pdf: the pdf extra)",
    ),
    Setting(
        "conf_low",
        "OCR_CONF_LOW",
        lambda n, r: parse_float(n, r, 0.0, 100.0),
        "a word below this Tesseract confidence counts as low (words_low in the manifest)",
        "0 .. 100",
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
