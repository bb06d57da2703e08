"""Reading one box of a photo: the crop the reader sees, test-time views of it, and their vote.

`preprocess` crops exactly as the training data was cropped (the union box grown by the recipe's
margin, resized); `views` makes the 27 slightly scaled and shifted crops of a box that `vote` turns
into one reading. `svhn_jax.infer.whole_photo` finds the box when the user gives none.
"""
from __future__ import annotations

import numpy as np

from svhn_jax.infer.photos import ImageError


def preprocess(image: np.ndarray, recipe: str, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> the recipe's uint8 input [S, S, C], exactly as the training data."""
    from svhn_jax.data import preprocess as pp
    if box is None:
        return pp.resize_whole(image, recipe)
    try:
        return pp.apply_recipe(image, np.array([box], np.float64), recipe)
    except ValueError as e:
        raise ImageError(f"--box={','.join(map(str, box))}: {e}") from None


# Test-time views of a box: a box drawn a little larger or smaller, or off-centre, reads the same number.
TTA_SCALES, TTA_SHIFTS_X, TTA_SHIFTS_Y = (0.9, 1.0, 1.12), (-0.08, 0.0, 0.08), (-0.06, 0.0, 0.06)


def views(image: np.ndarray, recipe: str, box: tuple[int, int, int, int] | None, tta: bool) -> np.ndarray:
    """The crops the reader reads for one photo, uint8 [V, S, S, C]: the box's crop, or with `tta` the
    27 crops of the box scaled by `TTA_SCALES` and shifted by `TTA_SHIFTS_*` (of its size)."""
    if box is None or not tta:
        return preprocess(image, recipe, box)[None]
    x, y, w, h = box
    boxes = [(x + w * (1 - s) / 2 + dx * w, y + h * (1 - s) / 2 + dy * h, w * s, h * s)
             for s in TTA_SCALES for dx in TTA_SHIFTS_X for dy in TTA_SHIFTS_Y]
    return np.stack([preprocess(image, recipe, tuple(int(round(v)) for v in b)) for b in boxes])


def vote(lengths: np.ndarray, digits: np.ndarray, confidence: np.ndarray) -> tuple[int, np.ndarray, float]:
    """One reading from the readings of several views: the one with the largest summed confidence.

    Its confidence is the mean over views of the probability each gives it, counted as 0 where a view
    reads another number (a lower bound), so views that disagree lower the confidence."""
    readings = ["".join(str(d) for d in row[:n]) for n, row in zip(lengths, digits)]
    totals: dict[str, float] = {}
    for r, c in zip(readings, confidence):
        totals[r] = totals.get(r, 0.0) + float(c)
    best = max(totals, key=totals.get)
    i = readings.index(best)
    return int(lengths[i]), digits[i], totals[best] / len(readings)
