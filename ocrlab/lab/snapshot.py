"""An output folder read for comparison: every page's text or failure, its ground truth.

What :func:`ocrlab.lab.rundiff.compare_runs` compares, read once from the manifest
(``results.json``, or the journal of a run still going) and the text artifacts, so that
the comparison itself does no I/O and a notebook widget can hold two snapshots and
compare them again as the user changes what is shown.

Ground truth is looked up from each document's ``source`` path as the run recorded it
(relative paths are relative to where that run started).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..records import DocumentRecord
from .accuracy import reference_pages

#: The settings that can change the text; a difference in any is named in the diff.
TEXT_SETTINGS = ("engine", "lang", "psm", "dpi", "engine_options", "max_megapixels")


class NotAnOutputFolder(ValueError):
    """The folder given is missing, or not what ``ocrlab run`` writes."""


@dataclass(frozen=True)
class PageRead:
    """One page of one run: its text, or why it has none."""

    text: str | None
    error: str | None = None  #: "Type: message" when the page (or its document) failed
    conf: float | None = None  #: mean word confidence 0-100, when the manifest has it


@dataclass(frozen=True)
class DocRead:
    doc_id: str
    source: str
    status: str
    pages: dict[int, PageRead]
    #: the ground truth's pages (None: no ground truth found)
    references: list[str] | None = None


@dataclass(frozen=True)
class RunSnapshot:
    """What :func:`compare_runs` needs of an output folder."""

    folder: str
    status: str
    tesseract: str | None
    host: str | None
    settings: dict[str, Any]
    documents: dict[str, DocRead]


def _page_confidences(raw: Mapping[str, Any]) -> dict[int, float]:
    """Mean word confidence per page from a manifest record, where it has one: a
    ``conf_mean`` list (one value per page) or per-page objects carrying ``page`` and
    ``conf_mean`` under any key. Empty when the run did not record confidences."""
    found: dict[int, float] = {}
    conf = raw.get("conf_mean")
    if isinstance(conf, list):
        found.update({i: float(c) for i, c in enumerate(conf, 1) if c is not None})
    for value in raw.values():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                if item.get("conf_mean") is not None and isinstance(item.get("page"), int):
                    found[item["page"]] = float(item["conf_mean"])
    return found


def load_run(folder: str | os.PathLike[str]) -> RunSnapshot:
    """Read an output folder of ``ocrlab run``; :class:`NotAnOutputFolder` if it is none."""
    root = Path(folder)
    if not root.is_dir():
        raise NotAnOutputFolder(f"{str(root)!r} does not exist or is not a folder")
    manifest = root / "results.json"
    if not manifest.is_file():
        raise NotAnOutputFolder(
            f"{str(root)!r} has no results.json: not an ocrlab output folder "
            "(give the --out folder of an 'ocrlab run')"
        )
    from ..output.manifest import load_manifest

    try:
        data = load_manifest(root)
    except (OSError, ValueError) as exc:
        raise NotAnOutputFolder(f"{manifest} cannot be read as an ocrlab manifest: {exc}") from None
    if not str(data.get("schema", "")).startswith("ocrlab.results/") or "documents" not in data:
        raise NotAnOutputFolder(
            f"{manifest} is not an ocrlab manifest (schema {data.get('schema')!r}, "
            "expected 'ocrlab.results/N')"
        )
    run = data.get("run") or {}
    config = run.get("config") or {}
    documents = {}
    for raw in data["documents"]:
        doc = DocumentRecord.from_dict(raw)
        texts: list[str] = []
        if doc.artifact:
            body = (root / doc.artifact).read_text(encoding="utf-8")
            texts = body.split("\f")[: doc.pages]
        whole = next((e for e in doc.errors if e.page is None), None)
        failed = {e.page: f"{e.type}: {e.message}" for e in doc.errors if e.page is not None}
        conf = _page_confidences(raw)
        pages: dict[int, PageRead] = {}
        for number in range(1, doc.pages + 1):
            error = failed.get(number) or (f"{whole.type}: {whole.message}" if whole else None)
            text = texts[number - 1] if number <= len(texts) and error is None else None
            pages[number] = PageRead(text, error, conf.get(number))
        if not pages and whole is not None:  # a file that never opened: one row, page 0
            pages[0] = PageRead(None, f"{whole.type}: {whole.message}")
        documents[doc.doc_id] = DocRead(
            doc.doc_id, doc.source, doc.status, pages, reference_pages(doc.source)
        )
    return RunSnapshot(
        folder=str(root),
        status=str(data.get("status", "")),
        tesseract=(run.get("versions") or {}).get("tesseract"),
        host=run.get("host"),
        settings={k: config.get(k) for k in TEXT_SETTINGS if k in config},
        documents=documents,
    )
