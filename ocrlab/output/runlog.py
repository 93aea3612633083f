"""The run's ``ocrlab.log``: one line per event, each naming its document and page.

Written in the main process only (workers return records, never log lines), so
lines never interleave; names are made printable first, so a newline or a byte
that is not UTF-8 in a file name cannot split or break a line.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from .names import printable

__all__ = ["run_log"]

log = logging.getLogger("ocrlab")


class _RunLogFilter(logging.Filter):
    """Every line of the run log names a document and a page ('-' for run-level lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "doc"):
            record.doc = "-"
        if not hasattr(record, "page"):
            record.page = "-"
        return True


class _OneLineFormatter(logging.Formatter):
    """One line per event whatever the names hold: a newline in a file name (legal on
    Linux) would otherwise split a line, a byte that is not UTF-8 fail the write
    (see :func:`ocrlab.output.names.printable`)."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


@contextlib.contextmanager
def run_log(path: Path, append: bool = False) -> Iterator[logging.Handler]:
    """The run's ``ocrlab.log``, new or (``append``: ``--resume``) the earlier run's continued;
    at INFO, or DEBUG when the ``ocrlab`` logger is (lines of documents kept by --resume)."""
    mode = "a" if append else "w"
    handler = logging.FileHandler(path, mode=mode, encoding="utf-8", errors="backslashreplace")
    handler.setFormatter(
        _OneLineFormatter("%(asctime)s %(levelname)-7s doc=%(doc)s page=%(page)s %(message)s")
    )
    handler.addFilter(_RunLogFilter())
    handler.setLevel(min(logging.INFO, log.getEffectiveLevel()))
    log.addHandler(handler)
    previous = log.level
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        log.removeHandler(handler)
        log.setLevel(previous)
        handler.close()
