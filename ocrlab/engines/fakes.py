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
import signal
import time

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
