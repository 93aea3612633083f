"""Generated input trees (Hypothesis): names of odd bytes and lengths, every kind of entry,
nested folders; every run holds the invariants of :func:`tests.odd_checks.check_run`.

The echo engine keeps each example cheap: in-process runs for many examples, a few with
a real worker pool. Example counts are kept small for CI; the named cases in
``test_odd_inputs.py`` pin each class down.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ocrlab
from tests.odd_checks import ECHO, check_run, png_bytes

PNG = png_bytes()

#: name pieces: case twins, Unicode normalization twins (NFC, NFD), bytes that are not
#: UTF-8, controls, characters FAT and SMB refuse, a dash and a dot
_PIECES = [
    b"a",
    b"A",
    b"0",
    b" ",
    b"-",
    b".",
    b"~",
    b"\\",
    b":",
    b"?",
    b"*",
    b"\n",
    b"\t",
    b"\r",
    b"\xc3\xa9",
    b"e\xcc\x81",
    b"\xe9",
    b"\xff",
    b"\x80",
]
_SUFFIXES = [b"", b".png", b".PNG", b".txt", b".pdf", b".tif"]

short_names = st.builds(
    lambda pieces, suffix: b"".join(pieces) + suffix,
    st.lists(st.sampled_from(_PIECES), min_size=1, max_size=8),
    st.sampled_from(_SUFFIXES),
)
long_names = st.builds(
    lambda n, fill, suffix: fill * n + suffix,
    st.integers(240, 251),
    st.sampled_from([b"L", b"\xc3\xa9"]),
    st.sampled_from([b".png", b""]),
).map(lambda name: name[:255])
names = st.one_of(short_names, short_names, long_names).filter(
    lambda n: n not in (b".", b"..") and len(n) <= 255
)
leaves = st.sampled_from(["png", "png", "empty", "garbage", "text", "fifo", "dangling", "link"])
trees = st.recursive(leaves, lambda inner: st.dictionaries(names, inner, max_size=4), max_leaves=10)
tops = st.dictionaries(names, trees, min_size=1, max_size=6)


def _make(root: Path, tree: dict[bytes, Any]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, node in tree.items():
        path = root / os.fsdecode(name)
        if isinstance(node, dict):
            _make(path, node)
        elif node == "fifo":
            os.mkfifo(path)
        elif node == "dangling":
            os.symlink("no-such-target", path)
        elif node == "link":
            os.symlink(".", path)  # a link to its own folder: a loop for a walk that follows
        else:
            data = {"png": PNG, "empty": b"", "garbage": b"\x00garbage", "text": b"notes"}
            path.write_bytes(data[node])


_QUIET = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@settings(max_examples=30, deadline=None, suppress_health_check=_QUIET)
@given(tree=tops)
def test_generated_trees_are_accounted_for_in_process(
    tmp_path_factory: pytest.TempPathFactory, tree: dict[bytes, Any]
) -> None:
    base = tmp_path_factory.mktemp("tree")
    _make(base / "in", tree)
    summary = ocrlab.run(base / "in", base / "out", workers=1, engine=ECHO, progress=False)
    check_run(base / "out", base / "in", summary)


@settings(max_examples=4, deadline=None, suppress_health_check=_QUIET)
@given(tree=tops)
def test_generated_trees_are_accounted_for_with_a_pool(
    tmp_path_factory: pytest.TempPathFactory, tree: dict[bytes, Any]
) -> None:
    base = tmp_path_factory.mktemp("pooltree")
    _make(base / "in", tree)
    summary = ocrlab.run(base / "in", base / "out", workers=2, engine=ECHO, progress=False)
    check_run(base / "out", base / "in", summary)
