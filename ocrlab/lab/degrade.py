"""Degraded scans with exact ground truth: clean rendered text, then what scanners do to it.

The bundled corpus reads with CER 0: it is rendered text, saved losslessly. Real
scans are noisy, blurred, skewed, low-resolution, JPEG-compressed, unevenly lit,
faded and show the other side of the sheet through the paper. Each of those is a
*kind* here, applied to the rendered page before it is saved, with a *strength*
from 0 (none) to 1 (about where Tesseract stops reading the page), so that one
axis serves every kind in tables and plots. The parameter each strength maps to
is in :data:`KINDS` (and ``docs/performance.md``); the ground truth is the text that was
drawn, so every error is the degradation's (or Tesseract's).

Determinism: every random choice comes from a generator seeded by a SHA-256 of
(seed, degradation, page), never from global state, so the same seed gives the
same bytes and adding a degradation does not change the others. The *text* of
page ``i`` depends only on (seed, i): every degradation and strength of a set
shows the same words, so a difference in CER between two strengths is the
degradation's, not the text's.

Pixel work is Pillow's (filters, resampling, JPEG, gradients, channel ops) and
NumPy's for the two random fields (Gaussian and salt-and-pepper noise), which
Pillow cannot draw from a seeded generator.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps

# The one place this module reaches into the corpus generator (after the move to
# ``ocrlab/lab/``: ``from ocrlab.lab.corpus import ...``).
from ocrlab.lab.textpage import FONT_PX, _atomic, _font, _gt, _lines

#: Scan pages: A6 width at 300 dpi, a few lines, so a page OCRs in well under a second.
SCAN_WIDTH = 1240
SCAN_LINES = 4
SCAN_MARGIN = 40
LINE_H = int(FONT_PX * 1.5)
INK, PAPER = 20, 255

#: Strengths used when a kind is named without one (``--degrade blur``).
DEFAULT_STRENGTHS = (0.25, 0.5, 0.75, 1.0)

_Fn = Callable[[Image.Image, float, np.random.Generator], Image.Image]


def _noise(im: Image.Image, s: float, rng: np.random.Generator) -> Image.Image:
    a = np.asarray(im, dtype=np.float32) + rng.normal(0.0, 62.0 * s, (im.height, im.width))
    return Image.fromarray(np.clip(a, 0, 255).round().astype(np.uint8), "L")


def _saltpepper(im: Image.Image, s: float, rng: np.random.Generator) -> Image.Image:
    a = np.array(im, dtype=np.uint8)
    u = rng.random((im.height, im.width))
    p = 0.09 * s
    a[u < p / 2] = 0
    a[(u >= p / 2) & (u < p)] = 255
    return Image.fromarray(a, "L")


def _blur(im: Image.Image, s: float, rng: np.random.Generator) -> Image.Image:
    return im.filter(ImageFilter.GaussianBlur(radius=5.0 * s))


def _rotate(im: Image.Image, s: float, rng: np.random.Generator) -> Image.Image:
    angle = 4.0 * s * (1 if rng.random() < 0.5 else -1)
    return im.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=PAPER)


def _downsample(im: Image.Image, s: float, rng: np.random.Generator) -> Image.Image:
    scale = 1.0 - 0.9 * s  # 300 dpi -> 30 dpi at s = 1
    small = im.resize(
        (max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.BOX
    )
    return small.resize(im.size, Image.Resampling.BICUBIC)


def _jpeg(im: Image.Image, s: float, rng: np.random.Generator) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=max(1, round(50 - 49 * s)))
    with Image.open(buf) as out:
        decoded: Image.Image = out.convert("L")
    return decoded


def _shade(im: Image.Image, s: float, rng: np.random.Generator) -> Image.Image:
    """Uneven illumination: light falls off linearly towards a random side, to (1 - 0.8 s)."""
    ramp = Image.linear_gradient("L").resize(im.size, Image.Resampling.BILINEAR)
    ramp = ramp.rotate(float(rng.choice([0, 90, 180, 270])))
    low = round(255 * (1 - 0.8 * s))
    light = ramp.point(lambda v: 255 - (255 - low) * v // 255)
    return ImageChops.multiply(im, light)


def _fade(im: Image.Image, s: float, rng: np.random.Generator) -> Image.Image:
    """Faded ink: dark levels move towards the paper, 95% of the way at s = 1."""
    return im.point(lambda v: round(v + (PAPER - v) * 0.95 * s))


def _bleed(im: Image.Image, s: float, rng: np.random.Generator) -> Image.Image:
    """Bleed-through: the mirrored text of the other side, blurred and lighter, under the ink."""
    back, _ = render_page(random.Random(int(rng.integers(2**63))), im.height)
    back = ImageOps.mirror(back).filter(ImageFilter.GaussianBlur(1.5)).resize(im.size)
    alpha = 0.6 * s
    ghost = back.point(lambda v: round(255 - (255 - v) * alpha))
    return ImageChops.darker(im, ghost)


def _clean(im: Image.Image, s: float, rng: np.random.Generator) -> Image.Image:
    return im


#: kind -> (function, what strength 1 means). Strength scales each parameter linearly.
KINDS: dict[str, tuple[_Fn, str]] = {
    "clean": (_clean, "no degradation (the reference page)"),
    "noise": (_noise, "Gaussian noise, sigma 62 gray levels"),
    "saltpepper": (_saltpepper, "9% of pixels set to black or white"),
    "blur": (_blur, "Gaussian blur, radius 5 px at 300 dpi"),
    "rotate": (_rotate, "skew of 4 degrees, either way"),
    "downsample": (_downsample, "down to 30 dpi (scale 0.1) and back up"),
    "jpeg": (_jpeg, "JPEG recompression at quality 1 (50 at strength 0)"),
    "shade": (_shade, "uneven light: one side darkened to 20% brightness"),
    "fade": (_fade, "faded ink: 95% of the way from black to paper"),
    "bleed": (_bleed, "the other side's mirrored text at 60% darkness"),
}


@dataclass(frozen=True)
class Step:
    kind: str
    strength: float

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.strength:g}"


@dataclass(frozen=True)
class Degradation:
    """One or more steps applied in order (``noise:0.3+blur:0.5``)."""

    steps: tuple[Step, ...]

    @property
    def name(self) -> str:
        """File-name form, ``blur-0.5+noise-0.3``; :func:`describe` reads it back."""
        return "+".join(s.name for s in self.steps)

    @property
    def kind(self) -> str:
        return "+".join(s.kind for s in self.steps)

    @property
    def strength(self) -> float:
        return max(s.strength for s in self.steps)


def _step(text: str, spec: str) -> list[Step]:
    kind, _, value = text.strip().partition(":")
    kinds = [k for k in KINDS if k != "clean"] if kind == "all" else [kind]
    if kind != "all" and kind not in KINDS:
        raise ValueError(
            f"unknown degradation {kind!r} in {spec!r}; known: all, " + ", ".join(KINDS)
        )
    if not value:
        strengths: Sequence[float] = (0.0,) if kind == "clean" else DEFAULT_STRENGTHS
    else:
        try:
            strengths = [float(value)]
        except ValueError:
            raise ValueError(f"strength {value!r} in {spec!r} is not a number") from None
        if not 0.0 <= strengths[0] <= 1.0:
            raise ValueError(f"strength {value} in {spec!r} must be between 0 and 1")
    return [Step(k, s) for k in kinds for s in strengths]


def parse_degradations(spec: str) -> list[Degradation]:
    """``KIND[:STRENGTH],...``; ``A:S+B:S`` chains steps on one page; ``all`` is every kind;
    a kind without a strength expands to :data:`DEFAULT_STRENGTHS`. Duplicates are dropped."""
    out: list[Degradation] = []
    for item in (x for x in spec.split(",") if x.strip()):
        parts = item.split("+")
        if len(parts) == 1:
            out.extend(Degradation((s,)) for s in _step(parts[0], spec))
            continue
        steps = []
        for part in parts:
            expanded = _step(part, spec)
            if len(expanded) != 1:
                raise ValueError(
                    f"{part!r} in {spec!r}: chained steps need one kind and an "
                    "explicit strength each"
                )
            steps.extend(expanded)
        out.append(Degradation(tuple(steps)))
    if not out:
        raise ValueError("no degradation given; e.g. noise:0.5,blur:0.5")
    return list(dict.fromkeys(out))


_NAME = re.compile(
    r"^(?P<spec>[a-z]+-\d+(?:\.\d+)?(?:\+[a-z]+-\d+(?:\.\d+)?)*)"
    r"-(?P<page>\d+)(?:\.[A-Za-z.]+)?$"
)


def describe(path_or_doc_id: str | os.PathLike[str]) -> Degradation | None:
    """The degradation a generated scan's file name records, or None for any other file."""
    match = _NAME.match(Path(path_or_doc_id).name)
    if not match:
        return None
    steps = []
    for part in match.group("spec").split("+"):
        kind, _, value = part.rpartition("-")
        if kind not in KINDS:
            return None
        steps.append(Step(kind, float(value)))
    return Degradation(tuple(steps))


def _rng_seed(*key: object) -> int:
    digest = hashlib.sha256("/".join(map(str, key)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def render_page(rng: random.Random, height: int | None = None) -> tuple[Image.Image, str]:
    """A small page of text, dark on white: A6 width at 300 dpi, :data:`SCAN_LINES` lines."""
    lines = _lines(rng, SCAN_WIDTH - 2 * SCAN_MARGIN, SCAN_LINES)
    im = Image.new("L", (SCAN_WIDTH, height or 2 * SCAN_MARGIN + len(lines) * LINE_H), PAPER)
    draw = ImageDraw.Draw(im)
    font = _font()
    for i, line in enumerate(lines):
        draw.text((SCAN_MARGIN, SCAN_MARGIN + i * LINE_H), line, fill=INK, font=font)
    return im, "\n".join(lines)


def degrade(im: Image.Image, degradation: Degradation, seed: int, page: int = 1) -> Image.Image:
    """Apply each step in order; randomness from (seed, degradation, page) only."""
    rng = np.random.default_rng(_rng_seed(seed, degradation.name, page))
    out = im.convert("L")
    for step in degradation.steps:
        out = KINDS[step.kind][0](out, step.strength, rng)
    return out


def generate_scans(
    out_dir: str | os.PathLike[str],
    degradations: Sequence[Degradation],
    *,
    seed: int = 1234,
    pages: int = 1,
    clean: bool = True,
) -> list[Path]:
    """``pages`` pages per degradation as grayscale PNG, ``NAME-NN.png`` + ``NAME-NN.gt.txt``.

    ``clean`` adds the undegraded pages (``clean-0-NN.png``): the baseline that
    every strength is read against.
    """
    out = Path(out_dir)
    todo = list(degradations)
    if clean and Degradation((Step("clean", 0.0),)) not in todo:
        todo.insert(0, Degradation((Step("clean", 0.0),)))
    written: list[Path] = []
    for page in range(1, pages + 1):
        im, text = render_page(random.Random(_rng_seed(seed, "text", page)))
        for d in todo:
            path = out / f"{d.name}-{page:02d}.png"
            page_im = degrade(im, d, seed, page)
            _atomic(
                path,
                lambda tmp, page_im=page_im: page_im.save(  # type: ignore[misc]
                    tmp, format="PNG", optimize=True
                ),
            )
            written.extend([path, _gt(path, [text])])
    return sorted(written)
