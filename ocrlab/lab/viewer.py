"""The page viewer: a run's page image beside its OCR text, the ground-truth diff, CER, time.

Interactive (ipywidgets) in a notebook at a person's browser; static HTML of the
worst pages by CER under papermill and in the reports. The data it shows comes
from :mod:`ocrlab.lab.pageview`.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from IPython.display import HTML, display

from . import pageview as pages_mod


class PageViewer:
    """Pick a run under ``root``, a document and a page: image, text, diff, CER, OCR time."""

    def __init__(self, root: str | os.PathLike[str], max_width: int = 600):
        self.max_width = max_width
        runs = pages_mod.find_runs(root) or [Path(root)]
        self.run = widgets.Dropdown(
            options=[(str(r), r) for r in runs], value=runs[0], description="run"
        )
        self.doc = widgets.Dropdown(description="document")
        self.page = widgets.BoundedIntText(value=1, min=1, max=1, description="page")
        self.caption = widgets.HTML()
        # The page keeps its proportions: a flex row stretches its items to the row's
        # height (a landscape page beside a long text was drawn 465 x 3394), so the row
        # aligns them at the top and the image's height follows its width.
        self.image = widgets.Image(
            format="png",
            layout=widgets.Layout(
                max_width="48%",
                height="auto",
                object_fit="contain",
                flex="0 1 auto",
                border="1px solid #ccc",  # the page's edge: scans are mostly white
            ),
        )
        self.image.add_class("ocrlab-page-image")
        self.text = widgets.HTML(layout=widgets.Layout(width="50%"))
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.run, self.doc, self.page]),
                self.caption,
                widgets.HBox(
                    [self.image, self.text], layout=widgets.Layout(align_items="flex-start")
                ),
            ]
        )
        self.widget.add_class("ocrlab-page-viewer")
        self._docs: dict[str, dict[str, Any]] = {}
        self._times: dict[tuple[str, int], tuple[float, float]] = {}
        self.run.observe(lambda _: self._load_run(), names="value")
        self.doc.observe(lambda _: self._load_doc(), names="value")
        self.page.observe(lambda _: self._show(), names="value")
        self._load_run()

    def _load_run(self) -> None:
        out = self.run.value
        try:
            self._docs = {d["doc_id"]: d for d in pages_mod.documents(out)}
        except (OSError, ValueError) as exc:  # not (yet) a run's output folder
            self._docs = {}
            self.caption.value = f"<i>no run in {html.escape(str(out))}: {exc}</i>"
        self._times = pages_mod.page_times(out)
        self.doc.options = list(self._docs)
        if self._docs and self.doc.value not in self._docs:  # ipywidgets 8 may leave None
            self.doc.value = next(iter(self._docs))
        self._load_doc()

    def _load_doc(self) -> None:
        doc = self._docs.get(self.doc.value or "")
        self.page.max = int(doc["pages"]) if doc else 1
        self.page.value = 1
        self._show()

    def _show(self) -> None:
        doc = self._docs.get(self.doc.value or "")
        if doc is None:
            self.text.value = ""
            if not self.caption.value.startswith("<i>no run"):
                self.caption.value = "<i>no document</i>"
            return
        info = pages_mod.page_info(self.run.value, doc, int(self.page.value), self._times)
        self.caption.value = pages_mod.caption(info)
        try:
            self.image.value = pages_mod.page_png_with_words(info, self.max_width)
        except Exception as exc:
            self.caption.value += f" &middot; <i>no image: {html.escape(str(exc))}</i>"
        self.text.value = pages_mod.text_html(info) + pages_mod.low_words(info)

    def _ipython_display_(self) -> None:
        display(self.widget)  # type: ignore[no-untyped-call]


def show_pages(
    out_dir: str | os.PathLike[str], interactive: bool | None = None, worst: int = 3
) -> None:
    """The page viewer in JupyterLab; in reports (no kernel to talk to) the worst pages by
    CER as static HTML. ``interactive=None`` decides by :func:`ocrlab.frontend.frontend`."""
    from ..frontend import frontend

    if interactive is None:
        interactive = frontend() == "notebook"
    if interactive:
        display(PageViewer(out_dir))  # type: ignore[no-untyped-call]
    else:
        display(HTML(pages_mod.worst_pages_html(out_dir, worst)))  # type: ignore[no-untyped-call]
