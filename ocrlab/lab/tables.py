"""Sweep tables a reader takes in at a glance.

``ocrlab.bench`` records 23 columns per worker count; shown whole, a notebook
cuts the table with "..." and the answer (how fast, how much faster, how much
memory, is the output the same) is lost among spreads and percentiles. The
report shows the columns that answer those questions, with units in the
headers, and keeps every column one click away in a collapsed section.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

#: (column of the bench table, header shown) in reading order.
KEY_COLUMNS = (
    ("engine", "engine"),
    ("workers", "workers"),
    ("pages_per_s", "pages/s"),
    ("pages_per_s_interval", "pages/s 95% interval"),
    ("speedup", "speedup"),
    ("speedup_interval", "speedup 95% interval"),
    ("efficiency", "efficiency"),
    ("vs_cli", "vs Tesseract CLI"),
    ("cpu_s_per_page", "Tesseract CPU s/page"),
    ("page_median_s", "page median s"),
    ("peak_rss_mb", "peak RSS MB"),
    ("peak_pss_mb", "peak PSS MB"),
    ("identical", "output identical"),
    ("cer", "CER"),
)


def key_table(table: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The columns a reader needs, renamed for reading; absent or empty columns dropped
    (one engine: no engine column; no PSS measured: no PSS column)."""
    import pandas as pd

    frame = pd.DataFrame(list(table))
    for name in ("pages_per_s", "speedup"):  # "0.45-1.00": the interval as one cell
        if f"{name}_low" in frame:
            frame[f"{name}_interval"] = [
                None if lo is None or hi is None or lo != lo else f"{lo:.2f}-{hi:.2f}"
                for lo, hi in zip(frame[f"{name}_low"], frame[f"{name}_high"], strict=True)
            ]
    keep = [(c, h) for c, h in KEY_COLUMNS if c in frame and frame[c].notna().any()]
    if "engine" in frame and frame["engine"].nunique() <= 1:
        keep = [(c, h) for c, h in keep if c != "engine"]
    out = frame[[c for c, _ in keep]].rename(columns=dict(keep))
    if "output identical" in out:
        out["output identical"] = out["output identical"].map({True: "yes", False: "NO"})
    return out


def sweep_table_html(table: Sequence[Mapping[str, Any]]) -> str:
    """The key table, then every column in a collapsed ``<details>`` (static HTML, so the
    exported report keeps both)."""
    import pandas as pd

    formats = {
        "pages/s": "{:.2f}",
        "speedup": "{:.2f}x",
        "efficiency": "{:.0%}",
        "vs Tesseract CLI": "{:.2f}x",
        "page median s": "{:.2f}",
        "Tesseract CPU s/page": "{:.2f}",
        "peak RSS MB": "{:.0f}",
        "peak PSS MB": "{:.0f}",
        "CER": "{:.2%}",
    }
    main = key_table(table)
    shown = main.style.format({k: v for k, v in formats.items() if k in main}, na_rep="-").hide(
        axis="index"
    )
    full: str = pd.DataFrame(list(table)).to_html(index=False, na_rep="-")
    n = len(pd.DataFrame(list(table)).columns)
    main_html: str = shown.to_html()
    return (
        main_html + f"<details><summary>all {n} columns "
        f"({html.escape('bench.csv')})</summary>{full}</details>"
    )
