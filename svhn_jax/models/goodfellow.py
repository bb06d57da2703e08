"""Goodfellow et al. (2013)'s multi-digit ConvNet, laid out like the best PyTorch reimplementation.

Input 54x54 (a crop of the 64x64 recipe; any size works). Eight 5x5 'SAME' convolutions with
48, 64, 128, 160, 192, 192, 192, 192 filters, each followed by BatchNorm + ReLU, a 2x2 max-pool
whose stride alternates 2, 1, 2, 1, ... and dropout; then two dense 3072 layers (ReLU, dropout)
and the sequence heads (the 'length' head in the goodfellow recipe).

Pooling pads one row/column of -inf on each side, as ``torch.nn.MaxPool2d(2, stride, padding=1)``
in SVHNClassifier-PyTorch (and ``torch_reference.py``) does, so the spatial sizes match it:
54 -> 28 -> 29 -> 15 -> 16 -> 9 -> 10 -> 6 -> 7, a 7x7x192 = 9408 feature vector. Both pools
(`layers`) are ``nn.max_pool``'s numbers with cheaper gradients; the convolutions use
`conv.conv_same`, whose kernel gradient is faster on XLA:CPU.

``first_layer='maxout'`` makes layer 1 the paper's maxout unit instead: 3 x 48 filters with biases,
the maximum over each group of 3, no BatchNorm. The other layers keep BatchNorm + ReLU.

BatchNorm averages its batch statistics over ``axis_name`` (the data-parallel mesh axis) in
training and uses the running averages (collection ``batch_stats``) at evaluation; dropout masks
are keyed by the global example index (`layers.Dropout`). ``axis_name=None`` runs unmapped.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from svhn_jax.models.conv import conv_general_dilated
from svhn_jax.models.heads import SequenceHeads
from svhn_jax.models.layers import Dropout, max_pool_2x2_stride1_pad1, max_pool_2x2_stride2_pad1

FIRST_LAYERS = ("bn_relu", "maxout")


def maxout(x: jax.Array, pieces: int) -> jax.Array:
    """Maximum over consecutive groups of ``pieces`` channels: [..., C * pieces] -> [..., C]."""
    return jnp.max(x.reshape(*x.shape[:-1], x.shape[-1] // pieces, pieces), axis=-1)


class Goodfellow(nn.Module):
    head: str = "length"
    first_layer: str = "bn_relu"        # bn_relu | maxout (3 pieces, the paper's first layer)
    dropout_rate: float = 0.2
    axis_name: str | None = "data"      # data-parallel axis: BatchNorm statistics, dropout keys
    dtype: Any = jnp.float32            # compute dtype; parameters and BN statistics stay float32
    features: Sequence[int] = (48, 64, 128, 160, 192, 192, 192, 192)
    hidden: int = 3072
    maxout_pieces: int = 3

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> dict[str, jax.Array]:
        if self.first_layer not in FIRST_LAYERS:
            raise ValueError(f"unknown first_layer {self.first_layer!r}; choose one of {FIRST_LAYERS}")
        he = nn.initializers.he_normal()
        x = x.astype(self.dtype)
        for i, width in enumerate(self.features):
            if i == 0 and self.first_layer == "maxout":
                x = nn.Conv(width * self.maxout_pieces, (5, 5), padding="SAME", kernel_init=he,
                            dtype=self.dtype, conv_general_dilated=conv_general_dilated,
                            name=f"conv{i + 1}")(x)
                x = maxout(x, self.maxout_pieces)
            else:
                x = nn.Conv(width, (5, 5), padding="SAME", use_bias=False, kernel_init=he,
                            dtype=self.dtype, conv_general_dilated=conv_general_dilated,
                            name=f"conv{i + 1}")(x)
                x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                                 axis_name=self.axis_name, dtype=self.dtype, name=f"bn{i + 1}")(x)
                x = nn.relu(x)
            x = max_pool_2x2_stride2_pad1(x) if i % 2 == 0 else max_pool_2x2_stride1_pad1(x)
            x = Dropout(self.dropout_rate, self.axis_name)(x, deterministic=not train)
        x = x.reshape(x.shape[0], -1)
        for j in range(2):
            x = nn.relu(nn.Dense(self.hidden, kernel_init=he, dtype=self.dtype, name=f"fc{j + 1}")(x))
            x = Dropout(self.dropout_rate, self.axis_name)(x, deterministic=not train)
        return SequenceHeads(self.head, name="heads")(x.astype(jnp.float32))
