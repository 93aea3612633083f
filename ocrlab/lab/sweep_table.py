"""The sweep's results read for a person: the Pareto front, the recommendation, tables.

Apart from :mod:`ocrlab.lab.sweep` (which runs the grid) so that a notebook or a
script can read a saved ``sweep.json`` without running anything.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

DEFAULT_DPI = 300
TOLERANCE = 0.01


def is_default(row: Mapping[str, Any]) -> bool:
    """pytesseract with Tesseract's own page segmentation (3) and the system's model."""
    return row["engine"] == "pytesseract" and row["psm"] in (None, 3) and row["model"] == "system"


def pareto(table: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each setting with ``dominated_by``: a setting at least as fast with a CER at least as
    low, better in one of the two (None: on the Pareto front)."""
    out = []
    for row in table:
        by = [
            o["label"]
            for o in table
            if o is not row
            and o["cer"] is not None
            and row["cer"] is not None
            and o["pages_per_s"] >= row["pages_per_s"]
            and o["cer"] <= row["cer"]
            and (o["pages_per_s"] > row["pages_per_s"] or o["cer"] < row["cer"])
        ]
        out.append(
            {
                **row,
                "dominated_by": min(
                    by, key=lambda lbl: next(r["cer"] for r in table if r["label"] == lbl)
                )
                if by
                else None,
            }
        )
    return out


def recommendation(table: Sequence[Mapping[str, Any]], tolerance: float = TOLERANCE) -> str:
    """A computed conclusion (Markdown): the default's figures, the most accurate setting,
    and the fastest within ``tolerance`` of the best CER."""
    scored = [r for r in table if r["cer"] is not None]
    if not scored:
        return "**No page with ground truth was read**: nothing to recommend."
    best = min(scored, key=lambda r: (r["cer"], -r["pages_per_s"]))
    near = [r for r in scored if r["cer"] <= best["cer"] + tolerance]
    fast = max(near, key=lambda r: (r["pages_per_s"], -r["cer"]))
    default = next(
        (r for r in sorted(scored, key=lambda r: r["dpi"] != DEFAULT_DPI) if is_default(r)), None
    )
    lines = []
    if default is not None:
        lines.append(
            f"For this corpus, the default setting ({default['label']}) reads "
            f"{default['pages_per_s']:.2f} pages/s at CER {default['cer']:.2%}."
        )
    lines.append(
        f"The most accurate setting is **{best['label']}**: CER {best['cer']:.2%} at "
        f"{best['pages_per_s']:.2f} pages/s."
    )
    lines.append(
        f"The fastest setting within {tolerance * 100:g} point of the best CER is "
        f"**{fast['label']}**: {fast['pages_per_s']:.2f} pages/s at CER "
        f"{fast['cer']:.2%}."
    )
    dominated = [r for r in pareto(scored) if r["dominated_by"]]
    if dominated:
        lines.append(
            "Dominated (another setting is as fast and as accurate, and better in "
            "one): " + "; ".join(f"{r['label']} (by {r['dominated_by']})" for r in dominated) + "."
        )
    if any(r["identical"] is False for r in table):
        lines.append(
            "**Warning: some settings' parallel output differs from their sequential run.**"
        )
    return "\n\n".join(lines)


def by_degradation(pages: Sequence[Mapping[str, Any]], label: str | None = None) -> Any:
    """Mean page CER by degradation kind (rows) and strength (columns), for one setting
    (``label``; default: the first). A pandas DataFrame."""
    import pandas as pd

    frame = pd.DataFrame(list(pages))
    if frame.empty:
        return frame
    frame = frame[(frame["kind"] != "") & (frame["label"] == (label or frame["label"].iloc[0]))]
    return frame.pivot_table(index="kind", columns="strength", values="cer", aggfunc="mean")


def format_table(table: Sequence[Mapping[str, Any]]) -> str:
    """Markdown, so the terminal table pastes into a README or an issue as it is."""
    cols = [
        ("label", "setting"),
        ("pages", "pages"),
        ("pages_per_s", "pages/s"),
        ("runs_pages_per_s", "pages/s of each run"),
        ("peak_rss_mb", "peak MB"),
        ("cer", "CER %"),
        ("wer", "WER %"),
        ("identical", "identical"),
        ("dominated_by", "dominated by"),
    ]

    def cell(key: str, value: Any) -> str:
        if value is None:
            return "-" if key != "dominated_by" else "(front)"
        if key in ("cer", "wer"):
            return f"{value * 100:.2f}"
        if key == "runs_pages_per_s":
            return " / ".join(f"{v:g}" for v in json.loads(value))
        if isinstance(value, bool):
            return "yes" if value else "NO"
        return f"{value:g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(k, r.get(k)) for k, _ in cols) + " |" for r in table]
    return "\n".join(lines)


def format_degradations(pages: Sequence[Mapping[str, Any]], label: str | None) -> str:
    """Mean page CER (%) by degradation kind and strength for one setting, as Markdown;
    empty when the corpus has no generated scans. (Pure Python: the command needs no pandas.)"""
    mine = [p for p in pages if p["kind"] and p["label"] == label]
    if not mine:
        return ""
    strengths = sorted({p["strength"] for p in mine})
    cells: dict[tuple[str, float], list[float]] = {}
    for p in mine:
        cells.setdefault((p["kind"], p["strength"]), []).append(p["cer"])
    lines = [
        "| kind | " + " | ".join(f"{s:g}" for s in strengths) + " |",
        "|---|" + "---|" * len(strengths),
    ]
    for kind in sorted({p["kind"] for p in mine}, key=lambda k: (k != "clean", k)):
        row = [
            f"{100 * statistics.mean(cells[(kind, s)]):.1f}" if (kind, s) in cells else ""
            for s in strengths
        ]
        lines.append(f"| {kind} | " + " | ".join(row) + " |")
    return "\n".join(lines)
