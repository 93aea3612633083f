"""Engines for tests and for checking a deployment without OCR costs.

Select one by import path, e.g. ``engine="ocrlab.engines.fakes:sleepy"``; options come
from ``engine_options`` (``EngineSettings.option``). They run in real worker
processes like the real engine, which is the point: concurrency, back-pressure
and fault isolation are proven with real processes and the timestamps they
return, not with threads pretending to be processes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from ..records import EngineSettings, PageTask


def _matches(task: PageTask, settings: EngineSettings, option: str) -> bool:
    """True when ``task`` is the page named by option ``option`` ("doc_id#page" or "doc_id")."""
    target = settings.option(option)
    if not target:
        return False
    doc, _, page = str(target).partition("#")
    return task.doc_id == doc and (not page or task.page == int(page))


def sleepy(source: str, task: PageTask, settings: EngineSettings) -> str:
    """Sleep ``sleep`` seconds (default 0.2) plus ``sleep_per_mp`` seconds (default 0) per
    megapixel of the page as prepared (a PDF page as rendered); return JSON with the pid
    and monotonic stamps. With ``sleep_per_mp`` a page costs what its pixels say, as the
    ordering estimates, without Tesseract's CPU load: a run of known, load-free timing."""
    start = time.monotonic_ns()
    seconds = float(settings.option("sleep", 0.2))
    per_mp = float(settings.option("sleep_per_mp", 0.0))
    if per_mp:
        from PIL import Image

        with Image.open(source) as im:  # the header only
            seconds += per_mp * im.width * im.height / 1e6
    time.sleep(seconds)
    end = time.monotonic_ns()
    return json.dumps(
        {
            "doc_id": task.doc_id,
            "page": task.page,
            "pid": os.getpid(),
            "start_ns": start,
            "end_ns": end,
        }
    )


def echo(source: str, task: PageTask, settings: EngineSettings) -> str:
    """Return a text naming the page: cross-contamination shows at once."""
    return f"{task.doc_id} page {task.page}\n"


_LEAKED: list[bytearray] = []


def leaky(source: str, task: PageTask, settings: EngineSettings) -> str:
    """Like :func:`echo`, but the worker keeps ``leak_mb`` MB (default 20) per page, touched,
    for good: a worker whose memory grows page after page (what recycling is for)."""
    block = bytearray(int(float(settings.option("leak_mb", 20)) * 2**20))
    block[::4096] = b"x" * len(block[::4096])
    _LEAKED.append(block)
    return echo(source, task, settings)


def hog(source: str, task: PageTask, settings: EngineSettings) -> str:
    """Like :func:`echo`, but each page holds ``hog_mb`` MB (default 100), touched, for
    ``hog_s`` seconds (default 0.5): a batch that together may exceed the memory budget."""
    block = bytearray(int(float(settings.option("hog_mb", 100)) * 2**20))
    block[::4096] = b"x" * len(block[::4096])
    time.sleep(float(settings.option("hog_s", 0.5)))
    del block
    return echo(source, task, settings)


class FakeTesseractError(RuntimeError):
    """Stands in for ``pytesseract.TesseractError`` in fault-injection runs."""


def faulty(source: str, task: PageTask, settings: EngineSettings) -> str:
    """Fail, crash, hang or allocate on chosen pages; behave like :func:`echo` elsewhere.

    Options (each a "doc_id#page" or "doc_id"): ``fail_on`` raises,
    ``kill_on`` SIGKILLs the worker process (as the OOM killer would),
    ``segv_on`` sends it SIGSEGV, ``hang_on`` sleeps ``hang_s`` (default 3600),
    ``alloc_on`` allocates and touches ``alloc_mb`` MB (default 500) first.
    """
    if _matches(task, settings, "fail_on"):
        raise FakeTesseractError(f"injected failure on {task.doc_id} page {task.page}")
    if _matches(task, settings, "kill_on"):
        os.kill(os.getpid(), signal.SIGKILL)
    if _matches(task, settings, "segv_on"):
        os.kill(os.getpid(), signal.SIGSEGV)
    if _matches(task, settings, "hang_on"):
        time.sleep(float(settings.option("hang_s", 3600)))
    if _matches(task, settings, "alloc_on"):
        block = bytearray(int(float(settings.option("alloc_mb", 500)) * 2**20))
        block[::4096] = b"x" * len(block[::4096])
        del block
    return echo(source, task, settings)


def saboteur(source: str, task: PageTask, settings: EngineSettings) -> str:
    """Like :func:`echo`, but changes other inputs as other programs do during a run.

    On the page named by ``sabotage_on`` it waits ``sabotage_after_s`` (default 0: time
    for the main process to discover the pages it submits next), then applies
    ``sabotage``, a ``|``-separated list of ``action:path`` (``delete``; ``fifo``:
    replaced by a FIFO; ``truncate``: to 0 bytes; ``rmtree``: a folder and what it
    holds), then creates the file ``done_flag``.
    A page named by ``wait_on`` waits (up to 60 s) for that file first, so that pages
    submitted before the change are read after it, whichever worker takes them.
    """
    flag = str(settings.option("done_flag", ""))
    if _matches(task, settings, "wait_on") and flag:
        deadline = time.monotonic() + 60
        while not os.path.exists(flag) and time.monotonic() < deadline:
            time.sleep(0.01)
    if _matches(task, settings, "sabotage_on"):
        time.sleep(float(settings.option("sabotage_after_s", 0.0)))
        for spec in str(settings.option("sabotage", "")).split("|"):
            action, _, path = spec.partition(":")
            if action == "rmtree":
                shutil.rmtree(path)
            elif action == "truncate":
                os.truncate(path, 0)
            elif action in {"delete", "fifo"}:
                os.unlink(path)
                if action == "fifo":
                    os.mkfifo(path)
        if flag:
            open(flag, "x").close()
    return echo(source, task, settings)


_SPIKE = """
import sys, time
block = bytearray(int(sys.argv[1]))
block[::4096] = b"x" * len(block[::4096])
held = time.monotonic_ns()
time.sleep(float(sys.argv[2]))
print(held, time.monotonic_ns())
"""


def spike(source: str, task: PageTask, settings: EngineSettings) -> str:
    """A short memory peak in a worker's child: wait ``spike_after_s`` (default 2), then run
    a child process that holds ``spike_mb`` MB (default 300), touched, for ``spike_s``
    seconds (default 0.3). Returns JSON with the moments the child started, held all its
    memory, and let go (``time.monotonic_ns()``): the test of a sampler that must not miss
    a peak shorter than its PSS period."""
    time.sleep(float(settings.option("spike_after_s", 2.0)))
    started = time.monotonic_ns()
    size = int(float(settings.option("spike_mb", 300)) * 2**20)
    out = subprocess.run(
        [sys.executable, "-c", _SPIKE, str(size), str(float(settings.option("spike_s", 0.3)))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return json.dumps({"started_ns": started, "held_ns": int(out[0]), "released_ns": int(out[1])})


def sleepy_slowed(source: str, task: PageTask, settings: EngineSettings) -> str:
    """:func:`sleepy`, then ``slowdown`` (default 0.1) times its own time asleep again: a
    page cost that barely depends on the machine's load, 10% larger. What a regression
    gate can be shown to catch on a machine too busy to time real OCR."""
    start = time.perf_counter()
    text = sleepy(source, task, settings)
    _slow_down(settings, start)
    return text


def _slow_down(settings: EngineSettings, since: float) -> None:
    time.sleep(max(0.0, float(settings.option("slowdown", 0.1))) * (time.perf_counter() - since))


def slowed(source: str, task: PageTask, settings: EngineSettings) -> str | dict[str, str | bytes]:
    """The default engine (pytesseract), then a sleep of ``slowdown`` (default 0.1) times
    the call's own measured time: 10% slower in wall time, with the same text and the
    same Tesseract CPU time. The regression ``ocrlab bench --compare`` must catch.

    It keeps the default engine's list mode (:data:`slowed.list_engine`), so small pages
    are bundled as with the default and only the sleep tells the two apart.
    """
    from .tesseract import pytesseract_engine

    start = time.perf_counter()
    text = pytesseract_engine(source, task, settings)
    _slow_down(settings, start)
    return text


def _slowed_list(sources: Sequence[str], settings: EngineSettings) -> list[str] | None:
    from .tesseract import pytesseract_list

    start = time.perf_counter()
    texts = pytesseract_list(sources, settings)
    _slow_down(settings, start)
    return texts


slowed.list_engine = _slowed_list  # type: ignore[attr-defined]
