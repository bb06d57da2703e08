"""The localiser: where in a whole photo the house number is, as a heat map of its centre and its box.

A small fully convolutional network on the photo letterboxed to SIZE x SIZE (`data.preprocess.letterbox`):
strided convolutions down to 4 x 4 for the whole photo's context, a top-down path back to a 16 x 16
grid (one cell = 8 pixels), and per cell a logit "the number's centre is here" plus its box (offset
of the centre in the cell, log width and log height), and one more logit for "no number in this
photo"; ~0.14 GFLOP a photo. `decode` turns them into boxes, best first, each with the probability
mass of the 3 x 3 cells around its peak: the network's confidence that the number is there
(`tasks.localiser` trains it, `infer.localiser` runs it on photos).
"""
from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from svhn_jax.data.preprocess import get_recipe
from svhn_jax.models.conv import conv_general_dilated

SIZE = get_recipe("scene128_rgb").size  # the input: the photo letterboxed into SIZE x SIZE
GRID = 16
CELL = SIZE // GRID
OFFSET_SCALE = 4.0 * CELL   # centre offsets are regressed in units of four cells

# Stride-1 convolutions take the fast kernel gradient on XLA:CPU (models/conv.py): 0.48 s instead of
# 0.68 s for a 32-photo training step on this 2-core machine.
FastConv = functools.partial(nn.Conv, conv_general_dilated=conv_general_dilated)

# (width, kernel, stride) of the bottom-up path; the outputs at strides 8, 16 and 32 feed the top-down path.
DOWN = ((16, 5, 2), (32, 3, 2), (32, 3, 1), (64, 3, 2), (64, 3, 1), (96, 3, 2), (96, 3, 1), (128, 3, 2), (128, 3, 1))
TAPS = (4, 6, 8)  # indices in DOWN of the stride-8, 16, 32 features
NUM_OUTPUTS = 5   # centre logit, dx, dy, log w, log h


def _up(x: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    return jax.image.resize(x, (b, 2 * h, 2 * w, c), "nearest")


class LocaliserNet(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
        """float [B, 128, 128, 3] -> {"cells": [B, 16, 16, 5], "none": [B]} (logits and box terms)."""
        del train  # no dropout or BatchNorm
        taps = []
        for i, (width, kernel, stride) in enumerate(DOWN):
            conv = FastConv if stride == 1 else functools.partial(nn.Conv, strides=stride)
            x = nn.relu(conv(width, (kernel, kernel), name=f"down{i}")(x))
            if i in TAPS:
                taps.append(x)
        f8, f16, f32 = taps
        none = nn.Dense(1, name="none")(jnp.concatenate([f32.mean((1, 2)), f32.max((1, 2))], -1))[:, 0]
        x = nn.relu(nn.Conv(96, (1, 1), name="lateral16")(jnp.concatenate([_up(f32), f16], -1)))
        x = nn.relu(nn.Conv(96, (1, 1), name="lateral8")(jnp.concatenate([_up(x), f8], -1)))
        x = nn.relu(FastConv(64, (3, 3), name="head")(x))
        cells = nn.Conv(NUM_OUTPUTS, (1, 1), name="cells")(x)
        return {"cells": cells, "none": none}


def prepare(images: jax.Array) -> jax.Array:
    """uint8 [B, S, S, 3] -> float32, each image standardised (zero mean, unit deviation)."""
    x = images.astype(jnp.float32) / 255.0
    mean = x.mean((1, 2, 3), keepdims=True)
    return (x - mean) / jnp.maximum(x.std((1, 2, 3), keepdims=True), 1.0 / 255.0)



def cell_centres() -> jax.Array:
    c = (jnp.arange(GRID, dtype=jnp.float32) + 0.5) * CELL
    return jnp.stack(jnp.meshgrid(c, c, indexing="xy"), -1)  # [GRID, GRID, 2] as (x, y)



def logits_of(outputs: dict[str, jax.Array]) -> jax.Array:
    cells = outputs["cells"]
    return jnp.concatenate([cells[..., 0].reshape(len(cells), -1), outputs["none"][:, None]], 1)



def decode(outputs: dict[str, Any], k: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outputs of a batch -> (boxes [B, k, 4] x, y, w, h in the letterboxed photo, confidence [B, k],
    p_none [B]): the `k` highest local peaks of the centre map, best first (numpy)."""
    probs = np.asarray(jax.nn.softmax(logits_of(outputs)))
    cells = np.asarray(outputs["cells"])
    heat = probs[:, :-1].reshape(-1, GRID, GRID)
    padded = np.pad(heat, ((0, 0), (1, 1), (1, 1)))
    window = np.stack([padded[:, i:i + GRID, j:j + GRID] for i in range(3) for j in range(3)])
    mass, peak = window.sum(0), heat >= window.max(0)
    centres = np.asarray(cell_centres())
    boxes, confidence = np.zeros((len(heat), k, 4), np.float32), np.zeros((len(heat), k), np.float32)
    for b in range(len(heat)):
        order = np.argsort(-np.where(peak[b], heat[b], -1.0), axis=None)[:k]
        for n, flat in enumerate(order):
            i, j = divmod(int(flat), GRID)
            c = centres[i, j] + cells[b, i, j, 1:3] * OFFSET_SCALE
            wh = np.exp(cells[b, i, j, 3:5]) * SIZE
            boxes[b, n] = [*(c - wh / 2), *wh]
            confidence[b, n] = mass[b, i, j] if peak[b, i, j] else 0.0
    return boxes, confidence, probs[:, -1]



def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes [..., 4] (x, y, w, h); 0 where either is empty or NaN."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    x0, y0 = np.maximum(a[..., 0], b[..., 0]), np.maximum(a[..., 1], b[..., 1])
    x1 = np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2])
    y1 = np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(np.where(union > 0, inter / union, 0.0))
