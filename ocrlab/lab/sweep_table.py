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


def speed_order(a: Mapping[str, Any], b: Mapping[str, Any]) -> int:
    """1 if setting ``a`` is faster than ``b``, -1 if slower, 0 if they cannot be told
    apart: their pages/s intervals over the repeats overlap (with one run each, no
    interval: the medians decide, as there is nothing better to go by)."""
    x, y = float(a["pages_per_s"]), float(b["pages_per_s"])
    a_low, a_high = a.get("pages_per_s_low"), a.get("pages_per_s_high")
    b_low, b_high = b.get("pages_per_s_low"), b.get("pages_per_s_high")
    if (
        a_low is not None
        and a_high is not None
        and b_low is not None
        and b_high is not None
        and not (a_high < b_low or b_high < a_low)
    ):
        return 0
    return (x > y) - (x < y)


def pareto(table: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each setting with ``dominated_by``: a setting at least as fast (or not told apart in
    speed) with a CER at least as low, better in one of the two (None: on the Pareto front).
    A difference in speed inside the noise dominates nothing."""
    out = []
    for row in table:
        by = [
            o["label"]
            for o in table
            if o is not row
            and o["cer"] is not None
            and row["cer"] is not None
            and speed_order(o, row) >= 0
            and o["cer"] <= row["cer"]
            and (speed_order(o, row) > 0 or o["cer"] < row["cer"])
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
    the fastest within ``tolerance`` of the best CER, and which settings cannot be told
    apart in speed."""
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
            f"{_rate(default)} pages/s at CER {default['cer']:.2%}."
        )
    lines.append(
        f"The most accurate setting is **{best['label']}**: CER {best['cer']:.2%} at "
        f"{_rate(best)} pages/s."
    )
    lines.append(
        f"The fastest setting within {tolerance * 100:g} point of the best CER is "
        f"**{fast['label']}**: {_rate(fast)} pages/s at CER {fast['cer']:.2%}."
    )
    alike = [r["label"] for r in near if r is not fast and speed_order(r, fast) == 0]
    if alike:
        lines.append(
            f"In speed, {fast['label']} cannot be told apart from {', '.join(alike)}: their "
            "pages/s intervals over the repeats overlap, so the choice among them is CER's."
        )
    if all(r.get("pages_per_s_low") is None for r in scored):
        lines.append(
            "Each setting ran once: its pages/s has no interval, so differences of a few % "
            "may be noise (run with more repeats)."
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


def _rate(row: Mapping[str, Any]) -> str:
    """``4.57 [4.40-4.71]``, or ``4.57`` for one run."""
    low, high = row.get("pages_per_s_low"), row.get("pages_per_s_high")
    if low is None or high is None:
        return f"{row['pages_per_s']:.2f}"
    return f"{row['pages_per_s']:.2f} [{low:.2f}-{high:.2f}]"


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
        ("pages_per_s_interval", "95% interval"),
        ("runs_pages_per_s", "pages/s of each run"),
        ("peak_rss_mb", "peak MB"),
        ("cer", "CER %"),
        ("wer", "WER %"),
        ("identical", "identical"),
        ("dominated_by", "dominated by"),
    ]

    def cell(key: str, value: Any) -> str:
        if key == "pages_per_s_interval":
            return "-" if value is None else value
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
    lines += [
        "| "
        + " | ".join(
            cell(k, _interval(r) if k == "pages_per_s_interval" else r.get(k)) for k, _ in cols
        )
        + " |"
        for r in table
    ]
    return "\n".join(lines)


def _interval(row: Mapping[str, Any]) -> str | None:
    low, high = row.get("pages_per_s_low"), row.get("pages_per_s_high")
    return None if low is None or high is None else f"{low:g}-{high:g}"


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
