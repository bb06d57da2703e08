"""The seed report's small ConvNet, exactly as described.

INPUT -> dropout(keep .9) -> conv5x5/64 -> ReLU -> pool2 -> dropout(keep .75) -> conv3x3/32 -> ReLU
-> pool2 -> dropout(keep .75) -> conv3x3/64 -> ReLU -> dropout(keep .5) -> fc128 -> ReLU -> heads.
Kernels Xavier/Glorot-uniform, biases zero, 'SAME' padding.
"""
from __future__ import annotations

import flax.linen as nn
import jax

from svhn_jax.models.heads import SequenceHeads
from svhn_jax.models.layers import Dropout, max_pool_2x2


class SeedCNN(nn.Module):
    head: str = "blank"
    axis_name: str | None = "data"  # the data-parallel axis (per-example dropout keys)

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> dict[str, jax.Array]:
        drop = lambda rate: Dropout(rate, self.axis_name)  # noqa: E731
        init = dict(kernel_init=nn.initializers.xavier_uniform(), bias_init=nn.initializers.zeros)
        x = drop(0.1)(x, deterministic=not train)
        x = max_pool_2x2(nn.relu(nn.Conv(64, (5, 5), padding="SAME", name="conv1", **init)(x)))
        x = drop(0.25)(x, deterministic=not train)
        x = max_pool_2x2(nn.relu(nn.Conv(32, (3, 3), padding="SAME", name="conv2", **init)(x)))
        x = drop(0.25)(x, deterministic=not train)
        x = nn.relu(nn.Conv(64, (3, 3), padding="SAME", name="conv3", **init)(x))
        x = drop(0.5)(x, deterministic=not train)
        x = nn.relu(nn.Dense(128, name="fc", **init)(x.reshape(x.shape[0], -1)))
        return SequenceHeads(self.head, name="heads")(x)
