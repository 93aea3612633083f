"""Tesseract's version, languages and traineddata folder, remembered between runs.

Why: asking them costs two ``tesseract`` processes (``--version``,
``--list-langs``; 40-80 ms of CPU, each loading libtesseract) at the start of
every run, while the pool's workers are starting on the same cores. The
answers change only when Tesseract or its traineddata does, so they are kept in
the user's cache folder (``$XDG_CACHE_HOME/ocrlab``, else ``~/.cache/ocrlab``)
and asked again when any of these changed:

* the binary the command resolves to: its real path, size, mtime, ctime and
  inode (an upgrade replaces the file; ctime cannot be set back by hand);
* ``TESSDATA_PREFIX``, and the mtime of the traineddata folder the binary
  reported (installing or removing a language pack changes it);
* the entry's age passed :data:`MAX_AGE_S` (a library upgrade that left the
  binary's file alone, which distributions do not do, is still seen within a day).

The questions themselves are :mod:`ocrlab.engines.tesseract`'s; this module only
decides when to ask them. A cache that cannot be read or written is ignored:
the facts are then asked, as before.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..output.atomic import atomic_write_text
from . import tesseract
from .tesseract import tesseract_cmd, tesseract_languages, tesseract_tessdata, tesseract_version

#: Entries older than this are asked again (seconds).
MAX_AGE_S = 24 * 3600.0
#: Binaries remembered at most (a developer may switch between a few).
MAX_ENTRIES = 8
_FILE = "tesseract-facts.json"


@dataclass(frozen=True)
class TesseractFacts:
    """What ocrlab needs to know about one ``tesseract`` binary."""

    exe: str
    version: str | None
    languages: frozenset[str]
    tessdata: str | None


def cache_dir() -> Path:
    """The user's cache folder for ocrlab (XDG base directory rules)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ocrlab"


def _binary_key(exe: str) -> list[Any] | None:
    try:
        real = os.path.realpath(exe)
        st = os.stat(real)
    except OSError:
        return None
    return [
        real,
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
        st.st_ino,
        os.environ.get("TESSDATA_PREFIX"),
    ]


def _tessdata_mtime(tessdata: str | None) -> int | None:
    if not tessdata:
        return None
    try:
        return os.stat(tessdata).st_mtime_ns
    except OSError:
        return None


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save(path: Path, entries: dict[str, Any]) -> None:
    """Write the cache atomically (a concurrent run reads the old file or the new one)."""
    newest = sorted(entries.items(), key=lambda kv: kv[1].get("asked_at", 0), reverse=True)
    with contextlib.suppress(OSError):
        atomic_write_text(path, json.dumps(dict(newest[:MAX_ENTRIES])))


def _cached(entry: Any, key: list[Any]) -> TesseractFacts | None:
    """The facts of a cache entry, if it still describes the binary and its traineddata."""
    try:
        if (
            entry["key"] != key
            or time.time() - float(entry["asked_at"]) > MAX_AGE_S
            or entry["tessdata_mtime"] != _tessdata_mtime(entry["tessdata"])
        ):
            return None
        return TesseractFacts(
            key[0], entry["version"], frozenset(entry["languages"]), entry["tessdata"]
        )
    except (KeyError, TypeError, ValueError):
        return None


def _ask(exe: str) -> TesseractFacts:
    """Both questions, side by side (a ``tesseract`` process each), asked afresh: the
    per-process caches may hold a replaced binary's answers under the same path."""
    tesseract_version.cache_clear()
    tesseract._list_langs.cache_clear()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ocrlab-langs") as pool:
        langs = pool.submit(lambda: (tesseract_languages(exe), tesseract_tessdata(exe)))
        version = tesseract_version(exe)
        languages, tessdata = langs.result()
    return TesseractFacts(exe, version, languages, tessdata)


def tesseract_facts(cmd: str | None = None, *, fresh: bool = False) -> TesseractFacts | None:
    """The facts of the ``tesseract`` command (``cmd``, else pytesseract's), or ``None``
    when it is not found; from the cache when nothing they depend on changed, unless
    ``fresh`` (asked again, and remembered)."""
    exe = shutil.which(cmd or tesseract_cmd())
    if exe is None:
        return None
    key = _binary_key(exe)
    if key is None:
        return None
    path = cache_dir() / _FILE
    entries = _load(path)
    facts = None if fresh else _cached(entries.get(key[0]), key)
    if facts is not None:
        return facts
    facts = _ask(key[0])
    if facts.version is not None and facts.tessdata is not None:  # a failed question is not kept
        entries[key[0]] = {
            "key": key,
            "asked_at": time.time(),
            "version": facts.version,
            "languages": sorted(facts.languages),
            "tessdata": facts.tessdata,
            "tessdata_mtime": _tessdata_mtime(facts.tessdata),
        }
        _save(path, entries)
    return facts
