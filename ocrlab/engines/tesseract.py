"""Everything ocrlab knows about the Tesseract binary, and the default engine that runs it.

One leaf module (it imports nothing else of ocrlab but the errors and records),
as OCRmyPDF keeps its ``_exec/tesseract.py``: the import of pytesseract, which
command runs, its version, its languages and its traineddata folder are asked
here and nowhere else, each at most once per process (``lru_cache``), because
every question costs a ``tesseract`` process.

:func:`pytesseract_engine` runs in worker processes; the facts are asked by
the main process (start-up checks, run metadata, ``--resume``'s settings key)
and by the tesserocr engine (where the traineddata is).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from types import ModuleType

from ..errors import PageTimeoutError, TesseractError
from ..records import EngineSettings, PageTask

INSTALL_HINT = (
    "install it with 'sudo apt-get install tesseract-ocr' (Debian/Ubuntu), "
    "'brew install tesseract' (macOS) or 'conda install -c conda-forge tesseract', "
    "or point pytesseract.pytesseract.tesseract_cmd at the binary"
)

#: Where distributions put the traineddata; looked at before asking the binary.
KNOWN_TESSDATA_DIRS = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
    "/opt/homebrew/share/tessdata",
)


def import_pytesseract(block: tuple[str, ...] = ("pandas",)) -> ModuleType:
    """Import pytesseract without letting it import ``block`` (modules not already loaded).

    pytesseract imports pandas at import time when it is installed, only to offer
    DataFrame output, which ocrlab never asks for. In a worker that is ~30 MB of
    RSS per process (measured: 77 MB -> 47 MB per loky worker), multiplied by the
    worker count. Likewise NumPy (~10 MB, only for ndarray input, which ocrlab
    never passes): :func:`pytesseract_engine`, the first to import pytesseract in
    a worker, blocks both. A ``None`` entry in ``sys.modules`` makes an optional
    import fail cleanly; it is removed again at once, so a later import works.
    The main process keeps the default (pandas only), so a notebook that hands
    pytesseract NumPy arrays itself still can.
    """
    if "pytesseract" in sys.modules:
        return sys.modules["pytesseract"]
    blocked = [name for name in block if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        module = importlib.import_module("pytesseract")
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    return module


#: the peak RSS (bytes) of each Tesseract process this process reaped since the last
#: :func:`take_child_peak`
_CHILD_PEAKS: list[int] = []


class _MeasuredPopen(subprocess.Popen):  # type: ignore[type-arg]
    """``subprocess.Popen`` that reaps its child with ``wait4``, keeping the child's own
    peak RSS (``ru_maxrss``).

    Why: a worker's ``getrusage(RUSAGE_CHILDREN)`` is the maximum over every child it
    has reaped, so after one 793 MB page every later page of that worker showed
    793 MB. ``wait4`` returns the rusage of the one child it reaps. It replaces the
    ``waitpid`` of ``Popen._try_wait`` (same arguments and result, Python 3.10-3.13),
    the one place Popen reaps a child it waits for; nothing else changes.
    """

    def _try_wait(self, wait_flags: int) -> tuple[int, int]:
        try:
            pid, status, usage = os.wait4(self.pid, wait_flags)
        except ChildProcessError:
            return self.pid, 0
        if pid == self.pid:
            _CHILD_PEAKS.append(usage.ru_maxrss * 1024)
        return pid, status


def _measured(module: ModuleType) -> ModuleType:
    """pytesseract with its Tesseract processes started by :class:`_MeasuredPopen`: its
    module-global ``subprocess`` is swapped for a copy whose ``Popen`` is ours."""
    inner = module.pytesseract
    if getattr(inner.subprocess, "Popen", None) is not _MeasuredPopen:
        proxy = ModuleType("subprocess")
        proxy.__dict__.update(subprocess.__dict__)
        proxy.Popen = _MeasuredPopen  # type: ignore[attr-defined]
        inner.subprocess = proxy
    return module


def take_child_peak() -> int | None:
    """The largest peak RSS (bytes) of the Tesseract processes reaped since the last call
    (``None``: none), and forget them: a page's own figure when called around it."""
    if not _CHILD_PEAKS:
        return None
    peak = max(_CHILD_PEAKS)
    _CHILD_PEAKS.clear()
    return peak


def tesseract_cmd() -> str:
    """The Tesseract binary pytesseract will run (users may point it elsewhere).

    Read from pytesseract only when something in this process imported it: a user
    can only have pointed ``tesseract_cmd`` elsewhere after importing it, and
    importing it just to read its default costs the main process 0.5 s (it imports
    NumPy) before the first page.
    """
    module = sys.modules.get("pytesseract")
    if module is None:
        return "tesseract"  # pytesseract's own default
    cmd: str = module.pytesseract.tesseract_cmd
    return cmd


@functools.lru_cache(maxsize=4)
def tesseract_version(cmd: str | None = None) -> str | None:
    """The ``tesseract --version`` first line's version, or ``None`` if not installed."""
    exe = shutil.which(cmd or tesseract_cmd())
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    first = (out.stdout or out.stderr).splitlines()[:1]
    return first[0].split()[-1] if first else None


@functools.lru_cache(maxsize=4)
def _list_langs(cmd: str | None = None) -> str:
    """``tesseract --list-langs`` output ('' if Tesseract is missing); asked once per process."""
    exe = shutil.which(cmd or tesseract_cmd())
    if exe is None:
        return ""
    try:
        out = subprocess.run(
            [exe, "--list-langs"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout


def tesseract_languages(cmd: str | None = None) -> frozenset[str]:
    """The languages whose traineddata the ``tesseract`` command finds."""
    return frozenset(line.strip() for line in _list_langs(cmd).splitlines()[1:] if line.strip())


def tesseract_tessdata(cmd: str | None = None) -> str | None:
    """The traineddata folder the ``tesseract`` command uses (first line of --list-langs)."""
    match = re.search(r'"([^"]+)"', _list_langs(cmd))
    return match.group(1) if match else None


def tessdata_dir() -> str | None:
    """Where the traineddata files are: ``TESSDATA_PREFIX``, a usual folder, or what the
    ``tesseract`` command reports (asked last: it costs a process per worker)."""
    prefix = os.environ.get("TESSDATA_PREFIX")
    if prefix:
        return prefix
    for candidate in KNOWN_TESSDATA_DIRS:
        if os.path.isfile(os.path.join(candidate, "eng.traineddata")):
            return candidate
    return tesseract_tessdata()


def pytesseract_engine(
    source: str, task: PageTask, settings: EngineSettings
) -> str | dict[str, str | bytes]:
    """The default engine: one ``tesseract`` process per page through pytesseract.

    pytesseract's ``image_to_string`` runs only ``tesseract IMAGE OUT txt``: no
    ``--version`` or ``--list-langs`` per page (checked in pytesseract 0.3.13). With
    formats beyond the text, the same one process writes them all (:func:`render`):
    the text, and a mapping of every rendered format otherwise.
    """
    what = f"page {task.page} of {task.doc_id}"
    if renderers(settings.formats) == ("txt",):
        return _image_to_string(source, settings, _config(settings), what)
    return render(source, settings, _config(settings, textonly_pdf=task.fmt == "pdf"), what)


def _pytesseract(settings: EngineSettings) -> ModuleType:
    # NumPy is kept out of workers only: in the run's own process (a sequential run in a
    # notebook) pytesseract keeps its ndarray support for the user's own calls.
    in_worker = os.getpid() != settings.main_pid
    return _measured(import_pytesseract(("pandas", "numpy") if in_worker else ("pandas",)))


@contextlib.contextmanager
def _said_in_our_words(
    pytesseract: ModuleType, settings: EngineSettings, what: str
) -> Iterator[None]:
    """pytesseract's errors said in ocrlab's words (``what`` names the input)."""
    try:
        yield
    except pytesseract.TesseractError as exc:
        detail = " ".join(str(exc.message).split()) or "no message"
        raise TesseractError(
            f"Tesseract could not read {what} (exit status {exc.status}): {detail}"
        ) from None
    except RuntimeError as exc:
        if "timeout" in str(exc).lower():
            raise PageTimeoutError(
                f"Tesseract ran longer than the page timeout ({settings.timeout_s:g} s) on "
                f"{what} and was killed; raise page_timeout / OCR_PAGE_TIMEOUT if the page "
                "is legitimately slow."
            ) from None
        raise


def _image_to_string(source: str, settings: EngineSettings, config: str, what: str) -> str:
    """pytesseract's one call for the text alone."""
    pytesseract = _pytesseract(settings)
    with _said_in_our_words(pytesseract, settings, what):
        text: str = pytesseract.image_to_string(
            source, lang=settings.lang, config=config, timeout=settings.timeout_s
        )
    return text


#: The file each Tesseract renderer writes beside the output base, by ocrlab's format name.
RENDERER_FILES = {"txt": "txt", "tsv": "tsv", "hocr": "hocr", "alto": "xml", "pdf": "pdf"}


def renderers(formats: Sequence[str]) -> tuple[str, ...]:
    """The renderers Tesseract runs for ``formats``: those, and the TSV whenever anything
    beyond the text is asked (the word confidences come from its rows)."""
    if all(f == "txt" for f in formats):
        return ("txt",)
    return tuple(f for f in RENDERER_FILES if f in formats or f in {"txt", "tsv"})


def render(source: str, settings: EngineSettings, config: str, what: str) -> dict[str, str | bytes]:
    """ONE ``tesseract`` process writing every renderer :func:`renderers` names, read back.

    ``tesseract IMAGE BASE -l LANG [options] txt hocr alto pdf`` with the TSV switched on
    by its variable (as pytesseract does): Tesseract recognises once and runs each
    renderer on that result. Returns each format's output (the PDF as bytes, the others
    as text); the files go to the temporary folder and are removed.
    """
    pytesseract = _pytesseract(settings)
    wanted = renderers(settings.formats)
    configs = " ".join(f for f in wanted if f != "tsv")
    if "tsv" in wanted:
        config = f"{config} -c tessedit_create_tsv=1".strip()
    run = pytesseract.pytesseract
    with run.save(source) as (base, input_name), _said_in_our_words(pytesseract, settings, what):
        run.run_tesseract(input_name, base, configs, settings.lang, config, 0, settings.timeout_s)
        out: dict[str, str | bytes] = {}
        for fmt in wanted:
            with open(f"{base}.{RENDERER_FILES[fmt]}", "rb") as fh:
                data = fh.read()
            out[fmt] = data if fmt == "pdf" else data.decode("utf-8")
    return out


def _config(settings: EngineSettings, textonly_pdf: bool = False) -> str:
    """The command-line options every page gets (the page segmentation mode, if chosen);
    ``textonly_pdf``: the PDF renderer writes the text layer without the image (a PDF
    input's own page goes under it, :mod:`ocrlab.output.pdf`)."""
    config = "" if settings.psm is None else f"--psm {settings.psm}"
    if textonly_pdf and "pdf" in settings.formats:
        config = f"{config} -c textonly_pdf=1".strip()
    return config


#: What Tesseract writes between the pages of a list (its ``page_separator`` default).
PAGE_SEPARATOR = "\f"


def pytesseract_list(sources: Sequence[str], settings: EngineSettings) -> list[str] | None:
    """OCR several page files in ONE ``tesseract`` process (the command's own list mode).

    Why: a ``tesseract`` process spends about 0.1 s loading its model before it reads
    a pixel (measured: ``time tesseract blank-50x50.png stdout``, 0.09-0.12 s), a
    quarter of the time of an A6 scan. Handed a text file that names images, one per
    line, Tesseract loads the model once and writes each page's text, pages separated
    by a form feed. ``--oem 1`` (LSTM only, what the default mode picks for a model that
    has LSTM) is given so pages stay independent of each other (the legacy engine adapts
    its classifier to the pages it has seen): with a model that has no LSTM the call
    fails, and the caller runs the pages one by one instead.

    Returns one text per source, or ``None`` when the output does not split into
    exactly that many (the caller then runs the pages alone). Raises
    :class:`TesseractError` / :class:`PageTimeoutError` like :func:`pytesseract_engine`;
    ``settings.timeout_s`` bounds the whole call.
    """
    found = pytesseract_list_outputs(sources, settings)
    return None if found is None else found[0]


def pytesseract_list_outputs(
    sources: Sequence[str], settings: EngineSettings, textonly_pdf: bool = False
) -> tuple[list[str], dict[str, str | bytes]] | None:
    """:func:`pytesseract_list` with every format of ``settings.formats`` from the same
    process: the pages' texts, and each other renderer's output for the whole list (one
    file for all the pages, cut into pages by :mod:`ocrlab.output.formats`)."""
    if any("\n" in path or "\r" in path for path in sources):
        return None  # the list is one path a line: such a name would read as two pages
    config = f"--oem 1 {_config(settings, textonly_pdf)}".strip()
    fd, listing = tempfile.mkstemp(prefix="ocrlab-list-", suffix=".txt", dir=settings.tmp_dir)
    what = f"a list of {len(sources)} pages"
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(b"".join(os.fsencode(path) + b"\n" for path in sources))
        outputs: dict[str, str | bytes] = {}
        if renderers(settings.formats) == ("txt",):
            text = _image_to_string(listing, settings, config, what)
        else:
            outputs = render(listing, settings, config, what)
            text = str(outputs.pop("txt"))
    finally:
        os.unlink(listing)
    pages = text.split(PAGE_SEPARATOR)
    if len(pages) == len(sources) + 1 and pages[-1] == "":
        pages.pop()  # Tesseract 4 ends every page with the separator, 5 puts it between
    return (pages, outputs) if len(pages) == len(sources) else None
