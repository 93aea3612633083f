"""Which function OCRs a page, by name: the engine registry.

An engine turns a page file into text (:data:`Engine`). Built-in names are
``pytesseract`` (the default, :mod:`ocrlab.engines.tesseract`) and
``tesserocr`` (:mod:`ocrlab.engines.tesserocr`, an optional extra); anything
else is an import path ``package.module:function`` (the fakes in
:mod:`ocrlab.engines.fakes` are reached that way). Both the worker (to run a
page) and the main process (versions for the trace, freeing an in-process
engine after a sequential run) ask this module, so neither imports the other.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

from ..records import EngineSettings, PageTask

#: An engine turns a page file into text. ``source`` is a path Tesseract can read. Asked
#: for more formats than the text (``settings.formats``), it returns each format's output
#: from its one recognition instead: ``{"txt": text, "tsv": ..., "pdf": bytes...}``.
Engine = Callable[[str, PageTask, EngineSettings], "str | dict[str, str | bytes]"]

_ENGINES: dict[str, Engine] = {}

#: A list engine OCRs several page files in one call: one text per file and every other
#: asked format's output for the whole list, or ``None`` when it cannot tell the pages
#: apart (the pages then run one by one). The flag: the pages' PDF is text only.
ListEngine = Callable[
    [Sequence[str], EngineSettings, bool], "tuple[list[str], dict[str, str | bytes]] | None"
]


def resolve_engine(name: str) -> Engine:
    """Find the engine function: a built-in name or an import path ``module:function``."""
    if name in _ENGINES:
        return _ENGINES[name]
    if name == "pytesseract":
        from .tesseract import pytesseract_engine

        engine: Engine = pytesseract_engine
    elif name == "tesserocr":
        from .tesserocr import tesserocr_engine

        engine = tesserocr_engine
    elif ":" in name:
        module_name, _, attr = name.partition(":")
        engine = getattr(importlib.import_module(module_name), attr)
    else:
        raise ValueError(
            f"engine {name!r} is unknown; use 'pytesseract', 'tesserocr' or an import path "
            "'package.module:function'."
        )
    _ENGINES[name] = engine
    return engine


def list_engine(name: str) -> ListEngine | None:
    """The engine's way to OCR several small pages in one call, if it has one.

    Only the default engine has one (Tesseract's list mode, which saves a process
    start and a model load per page); tesserocr keeps its model loaded anyway.
    """
    if name != "pytesseract":
        return None
    from .tesseract import pytesseract_list_outputs

    return pytesseract_list_outputs


def warm_engine(name: str) -> None:
    """Load engine ``name`` and its libraries now (a worker's warm-up); errors wait for a page.

    pytesseract is imported as its engine imports it (without pandas and NumPy), so the
    warm-up adds nothing a page would not. tesserocr's model is not loaded here: that
    is per language and settings, which the first page brings.
    """
    try:
        resolve_engine(name)
        if name == "pytesseract":
            from .tesseract import import_pytesseract

            import_pytesseract(("pandas", "numpy"))
    except Exception:  # a broken engine is reported by the first page, as an error record
        return


def release_engines() -> None:
    """Free what in-process engines keep loaded (tesserocr's API and model).

    Called after a sequential run: there the process is the user's own (a
    notebook kernel), and the model should not outlive the run. Only an engine
    that was actually imported is asked, so this never imports tesserocr.
    """
    module = sys.modules.get("ocrlab.engines.tesserocr")
    if module is not None:
        module.release()


def engine_version(name: str) -> str | None:
    """The Tesseract version behind engine ``name`` (``None`` when unknown or not installed).

    pytesseract runs the ``tesseract`` command; tesserocr runs the libtesseract its
    wheel bundles, which may differ. Fakes and custom engines have no version. The
    command's version is the remembered one (:mod:`ocrlab.engines.facts`): no
    ``tesseract --version`` per run while the binary stays the same.
    """
    if name == "pytesseract":
        from .facts import tesseract_facts

        facts = tesseract_facts()
        return facts.version if facts is not None else None
    if name == "tesserocr":
        try:
            from .tesserocr import version
        except ImportError:
            return None
        try:
            return version()
        except ImportError:
            return None
    return None
