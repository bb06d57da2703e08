"""Finding the house number in users' photos with a trained localiser (`models.localiser.LocaliserNet`).

`Localiser.locate` letterboxes each photo into the network's square input (`data.preprocess.letterbox`,
the function the training scenes were made with), runs it, decodes up to `k` candidate boxes with
their confidence (`models.localiser.decode`) and maps them back into each photo's pixels.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from svhn_jax.data.preprocess import letterbox
from svhn_jax.infer import weights
from svhn_jax.models.localiser import SIZE, decode, prepare


@dataclasses.dataclass
class Localiser:
    """Shipped (or trained) localiser weights, ready to find numbers in photos."""

    variables: Any
    apply: Any  # jitted (variables, uint8 [B, S, S, 3]) -> outputs

    @classmethod
    def load(cls, workdir: str | None = None) -> "Localiser":
        """The shipped localiser, or the latest checkpoint of a localiser run in `workdir`."""
        _, model, variables = weights.load("localiser", workdir)
        return cls(variables=variables, apply=jax.jit(lambda v, x: model.apply(v, prepare(x))))

    def locate(self, photos: list[np.ndarray], k: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """RGB uint8 photos (any sizes) -> (boxes [N, k, 4] in each photo's pixels, confidence [N, k], p_none [N])."""
        inputs, frames = zip(*[(canvas, (scale, offset)) for canvas, scale, offset in
                               (letterbox(photo, SIZE) for photo in photos)])
        boxes, confidence, p_none = decode(self.apply(self.variables, np.stack(inputs)), k)
        for n, (scale, (left, top)) in enumerate(frames):
            boxes[n, :, :2] = (boxes[n, :, :2] - [left, top]) / scale
            boxes[n, :, 2:] /= scale
        return boxes, confidence, p_none
