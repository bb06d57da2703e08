"""The seed report's small ConvNet, exactly as described.

INPUT -> dropout(keep .9) -> conv5x5/64 -> ReLU -> pool2 -> dropout(keep .75) -> conv3x3/32 -> ReLU
-> pool2 -> dropout(keep .75) -> conv3x3/64 -> ReLU -> dropout(keep .5) -> fc128 -> ReLU -> heads.
Kernels Xavier/Glorot-uniform, biases zero, 'SAME' padding.

Each conv -> ReLU -> pool is computed as conv -> pool -> + bias -> ReLU: adding a per-channel bias
and ReLU are monotone, so max-pooling commutes with them and the values are the same, while the
bias and ReLU touch a quarter of the elements. Parameters ("conv1": kernel, bias, ...) and their
initial values are those of ``nn.Conv``; tests/core/test_speed_equivalence.py checks outputs and
gradients against the plain ``nn.Conv`` / ``nn.relu`` / ``nn.max_pool`` network.
"""
from __future__ import annotations

import flax.linen as nn
import jax

from svhn_jax.models.conv import conv_same_one_channel, plain_conv
from svhn_jax.models.heads import SequenceHeads
from svhn_jax.models.layers import Dropout, max_pool_2x2


class ConvReluPool(nn.Module):
    """relu(max_pool(conv(x))) with a bias, 'SAME' padding, stride 1; params as ``nn.Conv``'s."""

    features: int
    kernel_size: int
    pool: bool

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        kernel = self.param("kernel", nn.initializers.xavier_uniform(), (k, k, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        y = conv_same_one_channel(x, kernel) if x.shape[-1] == 1 else plain_conv(x, kernel)
        if self.pool:
            y = max_pool_2x2(y)
        return nn.relu(y + bias)


class SeedCNN(nn.Module):
    head: str = "blank"
    axis_name: str | None = "data"  # the data-parallel axis (per-example dropout keys)

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> dict[str, jax.Array]:
        drop = lambda rate: Dropout(rate, self.axis_name)
        init = dict(kernel_init=nn.initializers.xavier_uniform(), bias_init=nn.initializers.zeros)
        x = drop(0.1)(x, deterministic=not train)
        x = ConvReluPool(64, 5, pool=True, name="conv1")(x)
        x = drop(0.25)(x, deterministic=not train)
        x = ConvReluPool(32, 3, pool=True, name="conv2")(x)
        x = drop(0.25)(x, deterministic=not train)
        x = ConvReluPool(64, 3, pool=False, name="conv3")(x)
        x = drop(0.5)(x, deterministic=not train)
        x = nn.relu(nn.Dense(128, name="fc", **init)(x.reshape(x.shape[0], -1)))
        return SequenceHeads(self.head, name="heads")(x)
