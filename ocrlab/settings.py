"""Every setting of a run, once: its keyword, environment variable, default, rule and help.

:data:`SETTINGS` is the one table, and everything else about settings is read from
it: :class:`ocrlab.config.OcrConfig` takes its defaults from it and
:func:`ocrlab.config.load_config` its parsers; the options of ``ocrlab run``
(flags, help, defaults) are generated from it (:mod:`ocrlab.cli`); README's
settings table is :func:`markdown_table` (a test compares them); the tests clear
:data:`ENV_VARS`. A setting's :class:`~ocrlab.rules.Rule` is its parser and its
bounds in words, built together (:mod:`ocrlab.rules`).

To add a setting: a row here, a field of :class:`~ocrlab.config.OcrConfig` (typed,
its default taken from the row), and what uses it; the flag, ``--help``, README's
row and the tests' environment follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from loky import cpu_count

from .engines.registry import engine_name
from .output.formats import FORMATS_BOUNDS, Formats, parse_formats
from .rules import (
    AUTO_BOOL,
    BOOL,
    Rule,
    number,
    optional,
    parse_executor,
    parse_int,
    parse_mapping,
    parse_order,
    parse_str,
    parse_thread_limit,
    shown_number,
    whole,
    zero_or,
)
from .shards import parse_shard

T = TypeVar("T")

#: Absolute ceiling for the worker count, whatever the machine.
HARD_MAX_WORKERS = 64
#: Workers beyond this multiple of the usable CPUs only add memory and contention.
OVERSUBSCRIPTION_FACTOR = 4


def max_workers_allowed() -> int:
    """The largest worker count accepted on this machine (cgroup-aware CPU count)."""
    cpus: int = cpu_count()
    return min(HARD_MAX_WORKERS, OVERSUBSCRIPTION_FACTOR * cpus)


def parse_workers(name: str, raw: object) -> int:
    return parse_int(name, raw, 1, max_workers_allowed())


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One setting: keyword, environment variable, rule, default, help, command-line flags."""

    key: str
    env: str | None
    rule: Rule[T]
    default: T
    help: str
    #: options of ``ocrlab run``: None = ``--key-with-dashes``; () = none (the help says why)
    flags: tuple[str, ...] | None = None
    #: the default in words, where the value itself says less (None: "auto", "unset")
    shown: str | None = None

    def parse(self, name: str, raw: object) -> T:
        return self.rule.parse(name, raw)

    @property
    def bounds(self) -> str:
        return self.rule.bounds

    @property
    def options(self) -> tuple[str, ...]:
        return ("--" + self.key.replace("_", "-"),) if self.flags is None else self.flags

    @property
    def negative(self) -> str:
        """A switch's off flag (``--no-progress``), as :class:`argparse.BooleanOptionalAction`
        makes it."""
        return "--no-" + self.options[0].removeprefix("--")

    @property
    def default_text(self) -> str:
        value: object = self.default
        if self.shown is not None:
            return self.shown
        if isinstance(value, bool):
            return "true" if value else "false"
        return shown_number(value) if isinstance(value, float) else str(value)


WORKERS = Setting(
    "workers",
    "OCR_WORKERS",
    Rule(parse_workers, f"1 .. min({HARD_MAX_WORKERS}, {OVERSUBSCRIPTION_FACTOR} x usable CPUs)"),
    2,
    "worker processes (pages OCRed at once)",
    flags=("--workers", "-w"),
)
MAX_WORKERS = Setting(
    "max_workers",
    "OCR_MAX_WORKERS",
    optional(whole(1, HARD_MAX_WORKERS)),
    None,
    "upper bound on workers, applied last (1 = sequential): an operator's rollback switch, "
    "so the environment wins over every other value",
    flags=(),
    shown="unset",
)
PARALLEL_DISABLED = Setting(
    "parallel_disabled",
    "OCR_PARALLEL_DISABLED",
    BOOL,
    False,
    "kill switch: pages run in-process, sequentially, no pool; an operator's rollback "
    "switch, so the environment wins over every other value",
    flags=(),
)
ENGINE = Setting(
    "engine",
    "OCR_ENGINE",
    Rule(lambda n, r: engine_name(n, parse_str(n, r)), "pytesseract / tesserocr / module:function"),
    "pytesseract",
    "what OCRs a page: the tesseract command ('pytesseract'), libtesseract in the worker "
    "('tesserocr', an optional extra) or a function of your own ('module:function'); "
    "checked before any worker starts",
)
LANG = Setting(
    "lang",
    "OCR_LANG",
    Rule(parse_str, "installed traineddata, '+' between languages"),
    "eng",
    "Tesseract language(s), e.g. 'eng' or 'eng+deu'",
)
PSM = Setting(
    "psm",
    "OCR_PSM",
    optional(whole(0, 13)),
    None,
    "Tesseract page segmentation mode",
    shown="Tesseract's (3)",
)
DPI = Setting("dpi", "OCR_DPI", whole(50, 1200), 300, "resolution at which PDF pages are rendered")
PAGE_TIMEOUT = Setting(
    "page_timeout",
    "OCR_PAGE_TIMEOUT",
    number(1, 86400),
    300.0,
    "seconds before a page's Tesseract is killed (the page is then an error)",
    flags=("--timeout",),
)
MAX_MEGAPIXELS = Setting(
    "max_megapixels",
    "OCR_MAX_MEGAPIXELS",
    number(0.01, 10000),
    200.0,
    "larger pages are refused (decompression bombs)",
)
INFLIGHT_PER_WORKER = Setting(
    "inflight_per_worker",
    "OCR_INFLIGHT_PER_WORKER",
    whole(1, 16),
    2,
    "pages submitted ahead per worker (a bounded queue)",
)
ORDER = Setting(
    "order",
    "OCR_ORDER",
    Rule(parse_order, "cost / discovery"),
    "cost",
    "submission order: 'cost' = most expensive pages first (pixels from the header, a PDF "
    "page's box x dpi), so a batch does not end with one worker alone; 'discovery' = as "
    "found. The output is the same either way",
)
ORDER_WINDOW = Setting(
    "order_window",
    "OCR_ORDER_WINDOW",
    whole(1, 10_000_000),
    2000,
    "pages looked ahead when ordering by cost (exactly longest first below this many pages)",
)
BUNDLE_MP = Setting(
    "bundle_mp",
    "OCR_BUNDLE_MP",
    number(0, 1000),
    10.0,
    "small pages (at most half of this, in megapixels) share one Tesseract process up to "
    "this many megapixels together: one model load for several pages, the same text; "
    "0 = every page in a process of its own. Default engine only",
)
FORMATS = Setting(
    "formats",
    "OCR_FORMATS",
    Rule(parse_formats, FORMATS_BOUNDS),
    Formats(("txt",)),
    "files per document, each in its folder beside text/, all from the one Tesseract call "
    "per page (docs/formats.md); txt is always written; pdf needs the pdf extra",
    shown="txt",
)
CONF_LOW = Setting("conf_low", "OCR_CONF_LOW", number(0, 100), 60.0, "below it, a word is low")
MONITOR_INTERVAL = Setting(
    "monitor_interval",
    "OCR_MONITOR_INTERVAL",
    number(0, 60),
    0.1,
    "seconds between samples of the process tree's memory, descriptors and live "
    "Tesseracts (0 = no monitor)",
)
MEMORY_PER_WORKER_MB = Setting(
    "memory_per_worker_mb",
    "OCR_MEMORY_PER_WORKER_MB",
    number(10, 1_000_000),
    250.0,
    "estimated peak of one worker and its Tesseract, in MB, for the start-up memory check",
)
MEMORY_BUDGET_MB = Setting(
    "memory_budget_mb",
    "OCR_MEMORY_BUDGET_MB",
    optional(number(64, 1e9), "auto"),
    None,
    "memory the run may use, in MB; auto = the container's cgroup limit, else the "
    "machine's available memory",
    shown="auto",
)
MAX_PAGES_PER_WORKER = Setting(
    "max_pages_per_worker",
    "OCR_MAX_PAGES_PER_WORKER",
    # loky's retirement check runs from a worker's second page on (see ocrlab.recycle)
    zero_or(whole(2, 1_000_000_000), 0),
    10_000,
    "a pool worker is replaced after this many pages (0 = never)",
)
MAX_WORKER_RSS_MB = Setting(
    "max_worker_rss_mb",
    "OCR_MAX_WORKER_RSS_MB",
    zero_or(number(64, 1_000_000), 0.0),
    1024.0,
    "a pool worker is replaced once its RSS, live children included, passed this many MB "
    "(0 = no bound)",
)
VERIFY_INPUTS = Setting(
    "verify_inputs",
    "OCR_VERIFY_INPUTS",
    BOOL,
    False,
    "with --resume, hash every input and artifact; without, a file whose size, mtime, ctime "
    "and inode are what the journal recorded is kept unread (docs/resume.md)",
)
EXECUTOR = Setting(
    "executor",
    "OCR_EXECUTOR",
    Rule(parse_executor, "loky / inline / dask://HOST:PORT"),
    "loky",
    "where pages run: 'loky' = worker processes here, 'inline' = in this process, one "
    "after another, 'dask://HOST:PORT' = a Dask cluster",
)
SHIP_PAGES = Setting(
    "ship_pages",
    "OCR_SHIP_PAGES",
    AUTO_BOOL,
    None,
    "send each page file's bytes with its task (Dask workers on other hosts); auto = when "
    "the scheduler is not on loopback",
    shown="auto",
)
SHARD: Setting[str | None] = Setting(
    "shard",
    "OCR_SHARD",
    Rule(parse_shard, "I/N with 0 <= I < N <= 10000 / slurm / unset"),
    None,
    "OCR only share I of N of the documents (0-based), balanced by estimated cost and the "
    "same on every machine; 'slurm' = the SLURM array task's share; combine the outputs "
    "with 'ocrlab merge'",
    shown="unset (every document)",
)
PROGRESS = Setting(
    "progress",
    "OCR_PROGRESS",
    AUTO_BOOL,
    None,
    "progress bar; auto = a terminal bar on a tty, a notebook bar in JupyterLab, nothing "
    "under CI or papermill",
    shown="auto",
)
LIVE_VIEW = Setting(
    "live_view",
    "OCR_LIVE_VIEW",
    AUTO_BOOL,
    None,
    "live run view in a notebook (pages/s, memory, live Tesseracts, failures); auto = in "
    "JupyterLab, not under papermill or CI, not with progress off (notebooks only)",
    flags=(),
    shown="auto",
)
OMP_THREAD_LIMIT = Setting(
    "omp_thread_limit",
    "OMP_THREAD_LIMIT",
    Rule(parse_thread_limit, "1 .. 1024, or unset"),
    "1",
    "OpenMP threads of each Tesseract: 1 keeps a worker on one core; the standard "
    "variable, respected when set; None (Python) leaves the workers' own",
    flags=(),
    shown="1",
)
ENGINE_OPTIONS: Setting[dict[str, Any]] = Setting(
    "engine_options",
    None,
    Rule(parse_mapping, "a mapping of option to value"),
    {},
    "options handed to the engine (EngineSettings.option); engines of your own, such as "
    "the fault-injection fakes, read them; Python only",
    flags=(),
    shown="none",
)

#: Every setting, in the order of ``--help`` and README.
SETTINGS: tuple[Setting[Any], ...] = (
    WORKERS,
    MAX_WORKERS,
    PARALLEL_DISABLED,
    ENGINE,
    LANG,
    PSM,
    DPI,
    PAGE_TIMEOUT,
    MAX_MEGAPIXELS,
    INFLIGHT_PER_WORKER,
    ORDER,
    ORDER_WINDOW,
    BUNDLE_MP,
    FORMATS,
    CONF_LOW,
    MONITOR_INTERVAL,
    MEMORY_PER_WORKER_MB,
    MEMORY_BUDGET_MB,
    MAX_PAGES_PER_WORKER,
    MAX_WORKER_RSS_MB,
    VERIFY_INPUTS,
    EXECUTOR,
    SHIP_PAGES,
    SHARD,
    PROGRESS,
    LIVE_VIEW,
    OMP_THREAD_LIMIT,
    ENGINE_OPTIONS,
)
BY_KEY: dict[str, Setting[Any]] = {s.key: s for s in SETTINGS}
#: Every environment variable a run reads (the tests clear them all).
ENV_VARS: tuple[str, ...] = tuple(s.env for s in SETTINGS if s.env)


def flag_text(setting: Setting[Any]) -> str:
    """The setting's options of ``ocrlab run`` in README's words ("no flag" when none)."""
    if not setting.options:
        return "no flag"
    if setting.rule.switch:
        return " / ".join(f"`{f}`" for f in (*setting.options, setting.negative))
    return ("flag " if len(setting.options) == 1 else "flags ") + ", ".join(
        f"`{f}`" for f in setting.options
    )


def markdown_table() -> str:
    """README's settings table: keyword, environment variable, default, meaning."""
    rows = ["| keyword | environment variable | default | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        text = s.default_text
        default = f"`{text}`" if isinstance(s.default, str) and s.shown is None else text
        meaning = f"{s.help}; accepts {s.bounds}; {flag_text(s)}"
        env = f"`{s.env}`" if s.env else "-"
        rows.append(f"| `{s.key}` | {env} | {default} | {meaning.replace('|', '/')} |")
    return "\n".join(rows) + "\n"
