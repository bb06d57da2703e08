"""The localiser: where in a whole photo the house number is, as a heat map of its centre and its box.

A small fully convolutional network on the photo letterboxed to SIZE x SIZE (`data.preprocess.letterbox`):
strided convolutions down to 4 x 4 for the whole photo's context, a top-down path back to a 16 x 16
grid (one cell = 8 pixels), and per cell a logit "the number's centre is here" plus its box (offset
of the centre in the cell, log width and log height), and one more logit for "no number in this
photo"; ~0.14 GFLOP a photo. `models.decoding.decode_boxes` turns them into boxes (`tasks.localiser`
trains it, `infer.localiser` runs it on photos).
"""
from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from svhn_jax.models.conv import conv_general_dilated

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
