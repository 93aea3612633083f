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

import difflib
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable, Sequence

from ..errors import ConfigError
from ..records import EngineSettings, PageTask

#: An engine turns a page file into text. ``source`` is a path Tesseract can read. Asked
#: for more formats than the text (``settings.formats``), it returns each format's output
#: from its one recognition instead: ``{"txt": text, "tsv": ..., "pdf": bytes...}``.
Engine = Callable[[str, PageTask, EngineSettings], "str | dict[str, str | bytes]"]

_ENGINES: dict[str, Engine] = {}

#: A list engine OCRs several page files in one call: one text per file, or ``None``
#: when it cannot tell the pages apart (the pages then run one by one).
ListEngine = Callable[[Sequence[str], EngineSettings], list[str] | None]
#: The same with formats beyond the text: the texts and every other asked format's output
#: for the whole list (cut into pages by ocrlab.output.formats). The flag: the list's PDF
#: pages are text layers only (pages of PDF inputs).
ListOutputsEngine = Callable[
    [Sequence[str], EngineSettings, bool], "tuple[list[str], dict[str, str | bytes]] | None"
]


#: The built-in engines and the package each needs (tesserocr is an optional extra).
BUILT_IN = {"pytesseract": "pytesseract", "tesserocr": "tesserocr"}
#: What an engine setting may be, in words (errors, ``--help``, README).
EXPECTED_ENGINES = "'pytesseract', 'tesserocr' or an import path 'module:function'"
_IMPORT_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


def installed_engines() -> list[str]:
    """The built-in engines whose package is installed here (imports nothing)."""
    return [name for name, package in BUILT_IN.items() if importlib.util.find_spec(package)]


def _refused(given_as: str, name: str, problem: str) -> ConfigError:
    installed = ", ".join(installed_engines()) or "none"
    return ConfigError(
        f"{given_as}={name!r} {problem}; expected {EXPECTED_ENGINES} (built-in engines "
        f"installed here: {installed})."
    )


def engine_name(given_as: str, name: str) -> str:
    """``name`` when it has an engine's form, else :class:`~ocrlab.errors.ConfigError`.

    The engine setting's parser: a misspelt name stops the run with the other bad
    settings, before anything starts. Whether an import path imports is asked by
    :func:`check_engine`, at start-up.
    """
    if name in BUILT_IN or _IMPORT_PATH.fullmatch(name):
        return name
    close = difflib.get_close_matches(name, list(BUILT_IN), n=1)
    raise _refused(
        given_as, name, "is not an engine" + (f" (did you mean {close[0]!r}?)" if close else "")
    )


def check_engine(name: str, given_as: str = "engine") -> None:
    """Refuse, at start-up, an engine this process cannot load: before any worker starts.

    A built-in engine needs its package installed (found without importing it: tesserocr
    loads libtesseract and a model); an import path is imported and must name a function.
    Without this a missing engine failed every page, each with the same error.
    """
    package = BUILT_IN.get(name)
    if package is not None:
        if importlib.util.find_spec(package) is None:
            raise _refused(
                given_as,
                name,
                f"needs the {package!r} package, which is not installed "
                f"(pip install 'ocrlab[{name}]')",
            )
        return
    _resolve(name, given_as)


def resolve_engine(name: str) -> Engine:
    """Find the engine function: a built-in name or an import path ``module:function``."""
    if name not in _ENGINES:
        _ENGINES[name] = _resolve(name, "engine")
    return _ENGINES[name]


def _resolve(name: str, given_as: str) -> Engine:
    if name == "pytesseract":
        from .tesseract import pytesseract_engine

        return pytesseract_engine
    if name == "tesserocr":
        from .tesserocr import tesserocr_engine

        return tesserocr_engine
    module_name, _, attr = engine_name(given_as, name).partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module: any failure of its import says the same
        raise _refused(
            given_as,
            name,
            f"cannot be loaded: importing {module_name!r} failed ({type(exc).__name__}: {exc})",
        ) from None
    engine = getattr(module, attr, None)
    if not callable(engine):
        raise _refused(
            given_as, name, f"cannot be loaded: module {module_name!r} has no function {attr!r}"
        )
    found: Engine = engine
    return found


def list_engine(name: str) -> ListEngine | None:
    """The engine's way to OCR several small pages in one call, if it has one.

    The default engine has one (Tesseract's list mode, which saves a process start and
    a model load per page); tesserocr keeps its model loaded anyway. An engine given by
    import path offers one as its ``list_engine`` attribute (a wrapper of the default
    engine, e.g. :func:`ocrlab.engines.fakes.slowed`, keeps the default's bundles, so
    its timings differ from the default's only by what it changes).
    """
    if name == "pytesseract":
        from .tesseract import pytesseract_list

        return pytesseract_list
    if ":" not in name:
        return None
    try:
        found: ListEngine | None = getattr(resolve_engine(name), "list_engine", None)
    except (ImportError, AttributeError, ValueError):
        return None  # the page engine's own error is reported by the first page
    return found


def list_outputs_engine(name: str) -> ListOutputsEngine | None:
    """The engine's list mode with formats beyond the text: the default engine's only
    (Tesseract renders every format of a list from one process)."""
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
