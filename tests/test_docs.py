"""README.md stays a newcomer's guide, and its links and those of docs/*.md lead somewhere.

Relative links must name an existing file; a ``#anchor`` must name a heading of that
file (GitHub's slugs) or an ``<a id>`` in it. Links to other sites are not fetched.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

from tests.conftest import ROOT

README_MAX_LINES = 300
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.S | re.M)
_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
_HTML_ID = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")


def _prose(text: str) -> str:
    """The text without fenced blocks and code spans, where a ``[x](y)`` is not a link."""
    return _CODE.sub("", _FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed
    (letters, digits, ``_``, ``-`` and spaces kept), spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"[`*~]|<[^>]+>", "", text).strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in {"L", "N"})
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a link into ``path`` may name (a repeated heading gets ``-1``, ``-2``...)."""
    text = path.read_text(encoding="utf-8")
    found: set[str] = set(_HTML_ID.findall(text))
    seen: dict[str, int] = {}
    for heading in _HEADING.findall(_FENCE.sub("", text)):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """The relative links of ``page`` that do not resolve, each with why (paths shown
    relative to ``root``)."""
    broken = []
    for target in _LINK.findall(_prose(page.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        where = f"{page.relative_to(root)}: {target}"
        if not dest.exists():
            broken.append(f"{where} (no file {dest})")
        elif anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
            broken.append(f"{where} (no heading #{anchor} in {dest.name})")
    return broken


def test_slugs_follow_github() -> None:
    assert slug("Ahead of the CLI with the same engine") == "ahead-of-the-cli-with-the-same-engine"
    assert slug("Measuring: `ocrlab bench`") == "measuring-ocrlab-bench"
    assert slug("Degraded scans and the speed\u2013accuracy sweep") == (
        "degraded-scans-and-the-speedaccuracy-sweep"
    )
    assert slug("trace.json") == "tracejson"
    assert slug("`max_workers` and `OCR_*`") == "max_workers-and-ocr_"
    assert slug("The 100,000-document run") == "the-100000-document-run"


def test_the_checker_finds_a_broken_link(tmp_path: Path) -> None:
    """The link check itself can fail: a missing file, a missing heading, a good link."""
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other page\n\n## A section\n")
    page.write_text(
        "[ok](other.md#a-section) [gone](missing.md) [no heading](other.md#nope)\n"
        "`[in code](nowhere.md)` [web](https://example.org/x.md) [self](#top)\n"
        '```\n[in a block](nowhere.md)\n```\n<a id="top"></a>\n'
    )
    found = broken_links(page, tmp_path)
    assert [f.split(" (")[0] for f in found] == ["page.md: missing.md", "page.md: other.md#nope"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_readme_is_a_newcomers_guide() -> None:
    """At most 300 lines: the long-form material lives in docs/, linked from README."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_MAX_LINES
    linked = {t.partition("#")[0] for t in _LINK.findall(_prose(readme))}
    pages = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert pages and pages <= linked, f"docs pages README does not link: {pages - linked}"


def _layout_names(design: str) -> set[str]:
    """The modules docs/design.md's layout table names: ``ocrlab/x/y.py`` in full, or a
    bare ``y.py`` after one in full in the same cell (``ocrlab/output/trace.py``,
    ``trace_reader.py``) in that one's folder."""
    section = design.split("## Layout", 1)[1]
    names: set[str] = set()
    for row in section.splitlines():
        if not row.startswith("| `"):
            continue
        cell = row.split(" | ")[0]
        folder = ""
        for name in re.findall(r"`([\w/.]+\.py)`", cell):
            if "/" in name:
                folder = name.rsplit("/", 1)[0]
                names.add(name)
            elif folder:
                names.add(f"{folder}/{name}")
    return names


def test_design_names_every_module() -> None:
    """ "Every module, one line each": README promises it, so a module added without its
    line (23 were, over three rounds) fails here, and so does a line for a module gone."""
    design = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    modules = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "ocrlab").rglob("*.py")
        if p.name not in {"__init__.py", "__main__.py"} and "build" not in p.parts
    }
    listed = _layout_names(design)
    assert modules - listed == set(), "modules docs/design.md#layout does not name"
    assert {m for m in listed if m.startswith("ocrlab/")} - modules == set(), "named, not there"
