"""Pages of text and their ground truth: what the corpus and the degraded scans both draw.

A module of its own so that :mod:`ocrlab.lab.corpus` (which bundles degraded scans)
and :mod:`ocrlab.lab.degrade` (which draws them) share the sampling, the font and
the writers without importing each other.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from PIL import ImageFont

from ..output.atomic import atomic_writer

# Plain sentences written for this corpus; the generator samples and shuffles them.
SENTENCES = (
    "The committee met on Tuesday morning to review the quarterly budget.",
    "Please return the signed form to the front office before the end of the month.",
    "Our records show that the invoice was paid in full on the third of March.",
    "The library will be closed for repairs during the first two weeks of August.",
    "Each member of the team received a copy of the revised schedule.",
    "Heavy rain is expected across the northern valleys later this week.",
    "The new bridge will carry about twelve thousand vehicles every day.",
    "A short walk from the station brings you to the old market square.",
    "The report lists forty seven items that need attention before winter.",
    "Visitors are asked to keep to the marked paths in the nature reserve.",
    "The factory doubled its output after the second production line opened.",
    "Thank you for your letter of the ninth, which arrived this afternoon.",
    "The museum holds a large collection of maps drawn by early surveyors.",
    "Students must register for the examination by the fifteenth of May.",
    "The garden behind the house was planted with apple and pear trees.",
    "Delivery times may vary depending on the weather and the season.",
    "The council agreed to extend the opening hours of the public pool.",
    "An engineer will visit the site to inspect the pumps and the valves.",
    "The ship left the harbour at dawn and reached the island by noon.",
    "All tickets include a guided tour of the castle and its gardens.",
    "The price of wheat rose sharply after a dry summer in the south.",
    "Our office is open from nine until five, Monday to Friday.",
    "The survey found that most residents travel to work by bus or train.",
    "A copy of this notice should be kept with your other documents.",
    "The orchestra will play works by three composers on Saturday evening.",
    "Farmers in the region reported an early harvest of barley and oats.",
    "The hospital opened a new wing with sixty beds and two theatres.",
    "Water samples were taken from the river at four different points.",
    "The company plans to hire twenty new staff over the coming year.",
    "Residents may collect their parking permits from the town hall.",
    "The train to the coast runs every hour during the summer months.",
    "The minutes of the last meeting were read and approved without change.",
    "A small fire in the kitchen was put out quickly by the staff.",
    "The painting was sold at auction for a record sum last spring.",
    "Children under five travel free when accompanied by an adult.",
    "The road through the pass is often closed by snow in January.",
    "Our engineers tested the new design under a wide range of loads.",
    "The book describes the history of the town from its founding.",
    "Further details can be found in the appendix at the end of this report.",
    "The weather station recorded the coldest night of the year on Sunday.",
)

FONT_PX = 40  # about 10 pt at 300 dpi


def _font(size: int = FONT_PX) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _lines(rng: random.Random, width_px: int, n_lines: int) -> list[str]:
    """Fill ``n_lines`` lines of sampled sentences, wrapped to ``width_px``."""
    font = _font()
    words: list[str] = []
    while len(words) < n_lines * 20:
        words.extend(rng.choice(SENTENCES).split())
    lines: list[str] = []
    current = ""
    for word in words:
        candidate = f"{current} {word}".strip()
        if font.getlength(candidate) > width_px and current:
            lines.append(current)
            if len(lines) == n_lines:
                break
            current = word
        else:
            current = candidate
    return lines


def _atomic(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write through :func:`~ocrlab.output.atomic.atomic_writer`: no half file if killed."""
    with atomic_writer(path) as fh:
        write(fh)


def _gt(path: Path, texts: list[str], full_name: bool = False) -> Path:
    """Ground truth beside ``path``: ``NAME.gt.txt`` (Tesseract's convention), or
    ``NAME.EXT.gt.txt`` for a document sharing its stem with another
    (see :func:`ocrlab.accuracy.ground_truth_path`)."""
    stem = path.name if full_name else path.name.rsplit(".", 1)[0]
    gt = path.with_name(stem + ".gt.txt")
    data = ("\f".join(texts) + "\n").encode("utf-8")
    _atomic(gt, lambda tmp: tmp.write(data))
    return gt
