"""Finding the house number in users' photos with a trained localiser (`models.localiser.LocaliserNet`).

`Localiser.locate` letterboxes each photo into the network's square input (`data.preprocess.letterbox`,
the function the training scenes were made with), runs it, decodes up to `k` candidate boxes with
their confidence (`models.decoding.decode_boxes`) and maps them back into each photo's pixels. The
network runs in JAX (`load`: a user's run or the shipped weights) or in onnxruntime (`infer.onnx`);
this module imports neither.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import numpy as np

from svhn_jax.data.preprocess import letterbox
from svhn_jax.models.decoding import SIZE, decode_boxes, softmax_np


@dataclasses.dataclass
class Localiser:
    """A localiser ready to find numbers in photos."""

    run: Callable[[np.ndarray], dict[str, Any]]  # uint8 [B, SIZE, SIZE, 3] -> the network's outputs
    softmax: Callable = softmax_np               # of the outputs' logits (JAX's for JAX outputs)

    @classmethod
    def load(cls, workdir: str | os.PathLike | None = None) -> "Localiser":
        """The shipped localiser, or the latest checkpoint of a localiser run in `workdir` (JAX)."""
        import jax

        from svhn_jax.infer import weights
        from svhn_jax.models.localiser import prepare
        _, model, variables = weights.load("localiser", workdir)
        apply = jax.jit(lambda v, x: model.apply(v, prepare(x)))
        return cls(run=lambda images: apply(variables, images), softmax=jax.nn.softmax)

    def locate(self, photos: list[np.ndarray], k: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """RGB uint8 photos (any sizes) -> (boxes [N, k, 4] in each photo's pixels, confidence [N, k], p_none [N])."""
        inputs, frames = zip(*[(canvas, (scale, offset)) for canvas, scale, offset in
                               (letterbox(photo, SIZE) for photo in photos)])
        boxes, confidence, p_none = decode_boxes(self.run(np.stack(inputs)), k, self.softmax)
        for n, (scale, (left, top)) in enumerate(frames):
            boxes[n, :, :2] = (boxes[n, :, :2] - [left, top]) / scale
            boxes[n, :, 2:] /= scale
        return boxes, confidence, p_none
