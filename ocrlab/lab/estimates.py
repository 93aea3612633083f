"""How well the ordering's cost estimate (:mod:`ocrlab.ordering`) predicts what a page
really cost, from a run's page table (:func:`ocrlab.lab.analysis.trace_frames`).

pandas is imported by the caller (it is in the ``notebooks`` extra, not needed to OCR).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def cost_units(pages: pd.DataFrame) -> pd.DataFrame:
    """Successful pages with a cost estimate, one row per unit of work.

    A bundle of small pages (:mod:`ocrlab.bundles`) is measured as a whole and its
    time shared among its pages in proportion to their estimates, so page by page
    it would agree with the estimate by construction: its pages are summed into one
    row (``pages`` says how many), which is what was really measured.
    """
    data = pages[pages["ok"] & pages["cost_estimate"].notna()].copy()
    if "bundle" not in data:
        data["bundle"] = None
    alone = (
        data["run"].astype(str) + "|" + data["doc_id"].astype(str) + "#" + data["page"].astype(str)
    )
    data["unit"] = (data["run"].astype(str) + "|" + data["bundle"].astype(str)).where(
        data["bundle"].notna(), alone
    )
    return (
        data.groupby("unit", sort=False)
        .agg(
            doc_id=("doc_id", "first"),
            cost_estimate=("cost_estimate", "sum"),
            engine_cpu_s=("engine_cpu_s", "sum"),
            ocr_s=("ocr_s", "sum"),
            pages=("page", "size"),
        )
        .reset_index(drop=True)
    )


def estimate_quality(pages: pd.DataFrame) -> dict[str, Any]:
    """How well the ordering's cost estimate predicts the measured OCR cost.

    Pearson's r (linear) and Spearman's rho (rank: what LPT needs, since only the
    order of the estimates matters) over successful pages that carry an estimate,
    and the least-squares seconds per estimated megapixel. The measure is the
    engine's CPU time when the trace has it (it does not grow with the machine's
    load, where OCR wall time does), else the OCR wall time (``measure``).
    """
    data = cost_units(pages)
    n = len(data)
    measure = "engine_cpu_s" if n and (data["engine_cpu_s"] > 0).all() else "ocr_s"
    if n < 3 or data["cost_estimate"].nunique() < 2:
        return {"pages": n, "pearson": None, "spearman": None, "s_per_mp": None, "measure": measure}
    x = data["cost_estimate"].astype(float)
    y = data[measure].astype(float)
    slope = float((x * y).sum() / (x * x).sum())
    return {
        "pages": n,
        "pearson": round(float(x.corr(y)), 3),
        "spearman": round(float(x.rank().corr(y.rank())), 3),
        "s_per_mp": round(slope, 4),
        "measure": measure,
    }
