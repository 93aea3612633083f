"""ocrlab: parallel Tesseract OCR in bounded loky worker processes, measured and verified.

The public API::

    ocrlab.run(inputs, out_dir, workers=2)        # notebooks and scripts
    handle = ocrlab.start(inputs, out_dir)        # the same in the background: a RunHandle
    ocrlab.run_groups(context, config)            # several groups, one executor
    await ocrlab.gather_ocr_pages(pages, executor, max_workers)
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, ExitCode, OcrlabError, PageError, PipelineError
from .records import EngineSettings, PageResult, PageTask, RunSummary

if TYPE_CHECKING:
    from .background import RunHandle, start
    from .config import OcrConfig, load_config
    from .executor import InlineExecutor, gather_ocr_pages
    from .pipeline import Group, RunContext, run, run_groups
    from .sources import Document, discover

__version__ = "0.1.0"

# A library does not print: without a handler configured by the application, Python's
# last-resort handler would write warnings to stderr (into notebooks and reports).
logging.getLogger("ocrlab").addHandler(logging.NullHandler())

#: Names imported on first use (PEP 562). Why: a worker process imports this package
#: to unpickle ``ocrlab.worker.ocr_page``; importing the pipeline, the pool and the
#: collector there too cost every worker start-up time and memory for nothing.
_LAZY = {
    "OcrConfig": "config",
    "load_config": "config",
    "InlineExecutor": "executor",
    "gather_ocr_pages": "executor",
    "Group": "pipeline",
    "RunContext": "pipeline",
    "run": "pipeline",
    "run_groups": "pipeline",
    "Document": "sources",
    "discover": "sources",
    "RunHandle": "background",
    "start": "background",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ocrlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


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
