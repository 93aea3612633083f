"""Names from the input tree, written where only UTF-8, one line or a short name will do.

A Linux file name is any bytes but ``/`` and NUL, up to ``NAME_MAX`` (255) bytes
a component and ``PATH_MAX`` (4096) a path. Python gives a byte that is not
UTF-8 as a lone surrogate U+DC80-U+DCFF (PEP 383, ``surrogateescape``), and a
document id keeps it: ``os.fsencode(doc_id)`` is the file's own bytes, so ids
sort, compare and resume exactly as the names they come from. What changes is
only how they are written:

* JSON (``results.json``, ``journal.jsonl``, ``trace.json``) is UTF-8; a lone
  surrogate is written as the escape ``\\udcXX`` (:func:`json_dumps`), which
  ``json.loads`` reads back as the same character, so an id round-trips through
  Python exactly (other readers see an unpaired surrogate: jq shows U+FFFD);
* the run log and the console take one line per event: control characters
  (newline, tab, ...) are written as ``\\n``, ``\\t``, ``\\xNN`` and a lone
  surrogate as ``\\udcNN`` (:func:`printable`);
* an artifact's name is its document's relative path plus ``.txt`` when the
  output filesystem takes it; a component too long for ``NAME_MAX``
  (:func:`fit_name`) or a name the filesystem refuses or already holds gets a
  deterministic short name with a hash of the id (:func:`hashed_name`), and the
  manifest records the artifact's path either way
  (:meth:`ocrlab.output.layout.OutputLayout.artifact_candidates`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

__all__ = ["fit_name", "hashed_name", "json_dumps", "portable", "printable", "truncate_bytes"]

_SURROGATE = re.compile("[\ud800-\udfff]")
#: C0 and C1 controls, DEL, and the Unicode line and paragraph separators (str.splitlines
#: breaks on all of them)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: characters Windows, SMB shares and FAT refuse in a name, replaced in hashed names
_UNPORTABLE = re.compile(r'[<>:"\\|?*]')
#: hex digits of the SHA-256 of the document id in a hashed artifact name
HASH_CHARS = 16


def json_dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps(obj, ensure_ascii=False, **kwargs)`` whose text always encodes as UTF-8.

    A surrogate can only stand inside a JSON string, where ``\\udcXX`` is a valid
    escape; only texts that hold one pay for the substitution.
    """
    text = json.dumps(obj, ensure_ascii=False, **kwargs)
    if _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def printable(text: str) -> str:
    """``text`` on one line and encodable as UTF-8: controls and surrogates escaped."""
    if _SURROGATE.search(text) is not None:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}"), text)


def truncate_bytes(name: str, limit: int) -> str:
    """The longest start of ``name`` whose file-system bytes fit in ``limit``, cut
    between characters (never inside a UTF-8 sequence)."""
    if len(os.fsencode(name)) <= limit:
        return name
    used = 0
    for i, char in enumerate(name):
        used += len(os.fsencode(char))
        if used > limit:
            return name[:i]
    return name


def fit_name(name: str, limit: int, suffix: str = "") -> str:
    """``name + suffix`` when its bytes fit in ``limit`` (``NAME_MAX``), else a start of
    ``name``, ``~``, a hash of the whole name and ``suffix``: deterministic, and two
    names that share a long start still differ."""
    whole = name + suffix
    if len(os.fsencode(whole)) <= limit:
        return whole
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:HASH_CHARS]
    tail = f"~{digest}{suffix}"
    return truncate_bytes(name, limit - len(tail.encode("utf-8"))) + tail


def portable(name: str) -> str:
    """``name`` with what some filesystem refuses replaced by ``_``: lone surrogates
    (bytes that are not UTF-8), controls, Windows' reserved characters, and trailing
    dots and spaces."""
    name = _UNPORTABLE.sub("_", _CONTROL.sub("_", _SURROGATE.sub("_", name)))
    stripped = name.rstrip(". ")
    return stripped + "_" * (len(name) - len(stripped))


def hashed_name(doc_id: str, leaf: str, limit: int, suffix: str = ".txt") -> str:
    """A portable name for the artifact of ``doc_id`` whose own name ``leaf`` could not
    be used: a portable start of ``leaf``, ``~``, a hash of the whole id, ``suffix``."""
    digest = hashlib.sha256(os.fsencode(doc_id)).hexdigest()[:HASH_CHARS]
    tail = f"~{digest}{suffix}"
    return truncate_bytes(portable(leaf), limit - len(tail)) + tail
