"""The exception family of ocrlab, and the exit codes the command line maps them to.

Every message says which value was wrong, what was expected and what to do,
because the person reading it is usually looking at a CI log, not the code.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """What ``ocrlab`` exits with (README, "Exit codes"); scripts and CI branch on these."""

    OK = 0  #: every document read
    SOME_FAILED = 1  #: the run finished; some documents or pages failed (see the manifest)
    USAGE = 2  #: bad command line or configuration value; nothing was run
    PIPELINE = 3  #: the run could not start (missing input, unwritable or busy output folder)
    STOPPED = 4  #: the output filesystem failed mid-run (full, read-only, removed); finished
    #: documents are kept: fix the cause and run again with ``--resume``
    INTERRUPTED = 130  #: Ctrl-C / SIGTERM; the manifest says ``interrupted``


class OcrlabError(Exception):
    """Base class for every error ocrlab raises on purpose."""


class ConfigError(OcrlabError, ValueError):
    """A configuration value (keyword, mapping key or environment variable) is invalid.

    Raised at start-up, before any page is read or any worker is started.
    """


class MergeRefusedError(OcrlabError):
    """``ocrlab merge`` refused its inputs (overlapping or missing shards, shards of other
    settings, Tesseract versions or inputs, an unfinished shard); nothing was written."""


class PipelineError(OcrlabError):
    """The run as a whole cannot proceed (missing input, unwritable output...).

    Per-page and per-document failures are *not* raised: they become error
    records in the manifest. This is for failures that leave nothing useful to do.
    """


class OutputBusyError(PipelineError):
    """Another run holds the output folder's lock; nothing was touched."""


class OutputNotEmptyError(PipelineError):
    """The output folder holds a previous run's files, and neither resume nor overwrite
    was asked for; nothing was touched."""


class OutputStoppedError(PipelineError):
    """A run-wide condition of the output or temporary filesystem (no space left, quota,
    read-only, folder removed) stopped the run; what was finished is kept.

    ``reason`` is the one-line message for the user; ``documents`` the count of
    documents recorded before the stop.
    """

    def __init__(self, reason: str, documents: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.documents = documents


class PageError(OcrlabError):
    """A single page could not be OCRed; carried as a value, never crashes the batch."""


class PageTooLargeError(PageError):
    """A page exceeds the configured megapixel limit (decompression-bomb guard)."""


class UnsupportedFormatError(PageError):
    """The file's content is not a format ocrlab can read."""


class TesseractError(PageError):
    """Tesseract exited with an error on the page (unreadable or corrupt image data)."""


class PageTimeoutError(PageError):
    """The engine ran longer than the per-page timeout and was killed."""


class WorkerDiedError(PageError):
    """The worker process running the page died (signal, OOM killer)."""
