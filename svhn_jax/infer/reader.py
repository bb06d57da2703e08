"""Reading the number in a box of a photo: the trained reader, the crops it sees, and their vote.

`Reader` reads batches of crops, with JAX (`load`: a user's run or the shipped weights, `infer.weights`)
or onnxruntime (`infer.onnx`); this module imports neither. `preprocess` crops exactly as the
training data was cropped (the union box grown by the recipe's margin, resized); `views` makes the
27 slightly scaled and shifted crops of a box that `vote` turns into one reading.
`infer.whole_photo` finds the box when the user gives none.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import numpy as np

from svhn_jax.data import preprocess as pp
from svhn_jax.infer.photos import ImageError

BATCH_SIZE = 16  # JAX reads fixed-size batches, so one compiled program serves any number of crops
Readings = tuple[np.ndarray, np.ndarray, np.ndarray]  # lengths [N], digits [N, 5], confidence [N]


def preprocess(image: np.ndarray, recipe: str, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> the recipe's uint8 input [S, S, C], exactly as the training data."""
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


def ranked(lengths: np.ndarray, digits: np.ndarray, confidence: np.ndarray) -> list[tuple[str, float]]:
    """Every reading the views give, with its confidence (the mean over views of the probability each
    gives it, counted as 0 where a view reads another number: a lower bound), most confident first
    (ties in the views' order)."""
    readings = ["".join(str(d) for d in row[:n]) for n, row in zip(lengths, digits)]
    totals: dict[str, float] = {}
    for r, c in zip(readings, confidence):
        totals[r] = totals.get(r, 0.0) + float(c)
    return [(r, totals[r] / len(readings)) for r in sorted(totals, key=lambda r: -totals[r])]


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


@dataclasses.dataclass
class Reader:
    """A trained reader ready to read batches of crops (its `config` names the crops' recipe)."""

    config: Any
    run: Callable[[np.ndarray], Readings]  # uint8 [B, S, S, C] -> readings
    batch_size: int = 0                    # > 0: crops are read in batches of exactly this size (padded)

    @classmethod
    def load(cls, workdir: str | os.PathLike | None = None) -> "Reader":
        """The latest checkpoint of `workdir`, or the shipped reader when `workdir` is None or '' (JAX)."""
        import jax

        from svhn_jax.infer import weights
        from svhn_jax.models.sequences import infer_sequences
        config, model, variables = weights.load("reader", workdir)
        @jax.jit
        def infer(variables, images):  # the variables an argument, not baked into the compiled program
            return infer_sequences(model, config, variables, images)[0]

        return cls(config=config, run=lambda images: infer(variables, images), batch_size=BATCH_SIZE)

    def read_crops(self, images: np.ndarray) -> Readings:
        """uint8 [N, S, S, C] -> (lengths [N], digits [N, 5], confidence [N])."""
        step = self.batch_size or max(1, len(images))
        outputs = []
        for start in range(0, len(images), step):
            chunk = images[start:start + step]
            padded = np.concatenate([chunk, np.zeros((step - len(chunk), *chunk.shape[1:]), chunk.dtype)])
            outputs.append([np.asarray(a)[:len(chunk)] for a in self.run(padded)])
        if not outputs:
            return np.zeros((0,), np.int32), np.zeros((0, 5), np.int32), np.zeros((0,), np.float32)
        lengths, digits, confidence = (np.concatenate(parts) for parts in zip(*outputs))
        return lengths, digits, confidence
