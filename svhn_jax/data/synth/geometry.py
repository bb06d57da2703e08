"""Where the digits of a synthetic house number go: image size, digits and boxes, before any pixel.

Every table is fitted to the real SVHN train labels by ``scripts/fit_synth_stats.py`` and read from
``stats.json`` beside this file: the length and digit frequencies, quantiles of image height,
digit height, box aspect per digit, the overlap of neighbouring boxes (as a fraction of the narrower
box, so a narrow "1" is never buried under its neighbour), vertical steps, image aspect and the
number's position, and Gaussian-copula correlations tying neighbours of one image together.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np

STATS = json.loads((Path(__file__).with_name("stats.json")).read_text())
Q_PROBS = tuple(STATS["Q_PROBS"])
LENGTH_P, FIRST_DIGIT_P, LATER_DIGIT_P = (tuple(STATS[k]) for k in ("LENGTH_P", "FIRST_DIGIT_P", "LATER_DIGIT_P"))
IMAGE_HEIGHT_Q, DIGIT_HEIGHT_FRAC_Q = tuple(STATS["IMAGE_HEIGHT_Q"]), tuple(STATS["DIGIT_HEIGHT_FRAC_Q"])
BOX_ASPECT_Q = tuple(tuple(row) for row in STATS["BOX_ASPECT_Q"])  # box width / height, per digit 0-9
IMAGE_ASPECT_Q = tuple(tuple(row) for row in STATS["IMAGE_ASPECT_Q"])  # image width / height, per length
MIN_DIGIT_HEIGHT = 8  # pixels; the real labels' smallest boxes are ~9 px tall


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where the digits of one image go, before any appearance: full-resolution pixels."""

    width: int
    height: int
    labels: tuple[int, ...]  # SVHN labels 1-10 (10 is the digit 0), left to right
    boxes: np.ndarray        # int64 [k, 4]: left, top, width, height; inside the image


def example_rngs(seed: int, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent (geometry, appearance) generators of example `index` of the release `seed`."""
    geometry, appearance = np.random.SeedSequence([int(seed), int(index)]).spawn(2)
    return np.random.default_rng(geometry), np.random.default_rng(appearance)


_LENGTH_P, _FIRST_P, _LATER_P = (np.asarray(p) / sum(p) for p in (LENGTH_P, FIRST_DIGIT_P, LATER_DIGIT_P))


def _quantile(u: np.ndarray | float, table: Sequence[float]) -> np.ndarray:
    return np.interp(u, Q_PROBS, table)


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _exchangeable(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    """`n` uniforms whose normal scores are pairwise correlated by `rho` (one shared factor)."""
    z = math.sqrt(rho) * rng.standard_normal() + math.sqrt(1.0 - rho) * rng.standard_normal(n)
    return np.array([_phi(v) for v in z])


def sample_layout(rng: np.random.Generator) -> Layout:
    """Draws the image size, the digits and their boxes from the fitted statistics."""
    n = int(rng.choice(5, p=_LENGTH_P)) + 1
    digits = [int(rng.choice(10, p=_FIRST_P))] + [int(d) for d in rng.choice(10, size=n - 1, p=_LATER_P)]
    z0, z1 = rng.standard_normal(2)
    rho = STATS["HEIGHT_FRAC_RHO"]
    z1 = rho * z0 + math.sqrt(1.0 - rho ** 2) * z1
    img_h = float(_quantile(_phi(z0), IMAGE_HEIGHT_Q))
    h = max(MIN_DIGIT_HEIGHT, int(round(float(_quantile(_phi(z1), DIGIT_HEIGHT_FRAC_Q)) * img_h)))
    u_aspect = _exchangeable(rng, n, STATS["ASPECT_RHO"])
    u_overlap, u_step = _exchangeable(rng, n, STATS["OVERLAP_RHO"]), _exchangeable(rng, n, STATS["STEP_Y_RHO"])
    widths = [max(2, int(round(float(_quantile(u, BOX_ASPECT_Q[d])) * h))) for u, d in zip(u_aspect, digits)]
    lefts, tops = [0], [0]
    for i in range(1, n):  # neighbours overlap (or part) by a fraction of the narrower box, as in the labels
        overlap = float(_quantile(u_overlap[i], STATS["OVERLAP_Q"])) * min(widths[i - 1], widths[i])
        lefts.append(lefts[-1] + widths[i - 1] - int(round(overlap)))
        tops.append(tops[-1] + int(round(float(_quantile(u_step[i], STATS["STEP_Y_Q"])) * h)))
    lefts = np.array(lefts) - min(lefts)
    tops = np.array(tops) - min(tops)
    union_w = int(max(lefts + np.array(widths)))
    union_h = int(max(tops)) + h
    img_h = max(int(round(img_h)), union_h + 2)
    aspect = float(_quantile(rng.random(), IMAGE_ASPECT_Q[n - 1]))
    img_w = max(int(round(aspect * img_h)), union_w + 2)
    ux, uy = rng.random(2)
    cx, cy = float(_quantile(ux, STATS["CENTER_X_Q"])), float(_quantile(uy, STATS["CENTER_Y_Q"]))
    x0 = int(np.clip(round(cx * img_w - union_w / 2), 0, img_w - union_w))
    y0 = int(np.clip(round(cy * img_h - union_h / 2), 0, img_h - union_h))
    boxes = np.stack([lefts + x0, tops + y0, widths, np.full(n, h)], axis=1).astype(np.int64)
    labels = tuple(d if d else 10 for d in digits)
    return Layout(width=img_w, height=img_h, labels=labels, boxes=boxes)
