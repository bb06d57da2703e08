"""ResNet-18 (He et al. 2016) for small inputs: 54x54 crops of the 64x64 recipe, or 32x32.

Changes from the ImageNet network, and why:

- Stem: one 3x3/64 convolution at stride 1 instead of the 7x7/2 convolution and the 3x3/2 max-pool.
  The ImageNet stem divides the resolution by 4 before the first block; on 54x54 that leaves a 2x2
  map at the last stage, too coarse to tell five digits apart. With the stride-1 stem the four
  stages see 54 -> 27 -> 14 -> 7 (32 -> 16 -> 8 -> 4), the same 7x7 final map as ImageNet's
  224x224 and as the Goodfellow net; this is the usual CIFAR/SVHN adaptation.
- Readout: the final map is flattened (7x7x512 = 25088 features), not global-average-pooled. The
  five digit heads must know which digit is first, second, ...; averaging over space throws away
  exactly that layout. Dropout precedes the heads.
- The last BatchNorm of each residual branch starts at zero scale (Goyal et al. 2017), so every
  block starts as the identity; projection shortcuts (1x1 conv + BN) where the shape changes.

Stride-1 convolutions use `conv.conv_same` (the same numbers, a faster kernel gradient on CPU).
BatchNorm averages its statistics over ``axis_name`` (the data-parallel axis) in training and uses
the running averages in ``batch_stats`` at evaluation; ``axis_name=None`` runs unmapped.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from svhn_jax.models.conv import conv_general_dilated
from svhn_jax.models.heads import SequenceHeads
from svhn_jax.models.layers import Dropout


class BasicBlock(nn.Module):
    features: int
    strides: int
    conv: Callable[..., nn.Module]
    norm: Callable[..., nn.Module]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.conv(self.features, (3, 3), (self.strides, self.strides), name="conv1")(x)
        y = nn.relu(self.norm(name="bn1")(y))
        y = self.conv(self.features, (3, 3), name="conv2")(y)
        y = self.norm(scale_init=nn.initializers.zeros, name="bn2")(y)
        if x.shape[-1] != self.features or self.strides != 1:
            x = self.conv(self.features, (1, 1), (self.strides, self.strides), name="proj_conv")(x)
            x = self.norm(name="proj_bn")(x)
        return nn.relu(x + y)


class ResNet18(nn.Module):
    head: str = "length"
    dropout_rate: float = 0.2
    axis_name: str | None = "data"      # data-parallel axis: BatchNorm statistics, dropout keys
    dtype: Any = jnp.float32            # compute dtype; parameters and BN statistics stay float32
    stage_sizes: Sequence[int] = (2, 2, 2, 2)
    width: int = 64

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> dict[str, jax.Array]:
        conv = partial(nn.Conv, padding="SAME", use_bias=False, dtype=self.dtype,
                       kernel_init=nn.initializers.he_normal(), conv_general_dilated=conv_general_dilated)
        norm = partial(nn.BatchNorm, use_running_average=not train, momentum=0.9, epsilon=1e-5,
                       axis_name=self.axis_name, dtype=self.dtype)
        x = x.astype(self.dtype)
        x = nn.relu(norm(name="stem_bn")(conv(self.width, (3, 3), name="stem_conv")(x)))
        for stage, blocks in enumerate(self.stage_sizes):
            for block in range(blocks):
                strides = 2 if stage > 0 and block == 0 else 1
                x = BasicBlock(self.width * 2 ** stage, strides, conv, norm,
                               name=f"stage{stage + 1}_block{block + 1}")(x)
        x = x.reshape(x.shape[0], -1)
        x = Dropout(self.dropout_rate, self.axis_name)(x, deterministic=not train)
        return SequenceHeads(self.head, name="heads")(x.astype(jnp.float32))
