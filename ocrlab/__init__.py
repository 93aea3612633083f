"""ocrlab: parallel Tesseract OCR in bounded loky worker processes, measured and verified.

The public API::

    ocrlab.run(inputs, out_dir, workers=2)        # notebooks and scripts
    handle = ocrlab.start(inputs, out_dir)        # the same in the background: a RunHandle
    ocrlab.run_groups(context, config)            # several groups, one executor
    await ocrlab.gather_ocr_pages(pages, executor, max_workers)
"""

from __future__ import annotations

import logging

from .background import RunHandle, start
from .config import OcrConfig, load_config
from .errors import ConfigError, ExitCode, OcrlabError, PageError, PipelineError
from .executor import InlineExecutor, gather_ocr_pages
from .pipeline import Group, RunContext, run, run_groups
from .records import EngineSettings, PageResult, PageTask, RunSummary
from .sources import Document, discover

__version__ = "0.1.0"

# A library does not print: without a handler configured by the application, Python's
# last-resort handler would write warnings to stderr (into notebooks and reports).
logging.getLogger("ocrlab").addHandler(logging.NullHandler())

__all__ = [
    "ConfigError",
    "Document",
    "EngineSettings",
    "ExitCode",
    "Group",
    "InlineExecutor",
    "OcrConfig",
    "OcrlabError",
    "PageError",
    "PageResult",
    "PageTask",
    "PipelineError",
    "RunContext",
    "RunHandle",
    "RunSummary",
    "__version__",
    "discover",
    "gather_ocr_pages",
    "load_config",
    "run",
    "run_groups",
    "start",
]
