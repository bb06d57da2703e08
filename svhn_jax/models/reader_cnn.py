"""The shipped reader: a compact VGG-style ConvNet for 32x32 grey crops, trainable on a 2-core CPU.

Four convolutions (5x5 then 3x3) widening 32 -> 128 with max-pools down to 4x4, dropout and one
dense layer of 384 before the sequence heads: ~2.5x the seed ConvNet's arithmetic. No BatchNorm, so
data parallelism on a CPU needs no in-program collective (`parallel.host_reduce`), and about 1 M
parameters (4 MB) ship with the package. Conv -> pool -> bias -> ReLU as in `seed_cnn.ConvReluPool`
(the same values, faster).
"""
from __future__ import annotations

import flax.linen as nn
import jax

from svhn_jax.models.heads import SequenceHeads
from svhn_jax.models.layers import Dropout
from svhn_jax.models.seed_cnn import ConvReluPool

LAYERS = ((32, 5, True), (64, 3, True), (128, 3, False), (128, 3, True))  # width, kernel, pool: 32 -> 4


class ReaderCNN(nn.Module):
    head: str = "length"
    dropout_rate: float = 0.3
    axis_name: str | None = "data"  # the data-parallel axis (per-example dropout keys)

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> dict[str, jax.Array]:
        for i, (width, kernel, pool) in enumerate(LAYERS):
            x = ConvReluPool(width, kernel, pool=pool, name=f"conv{i + 1}")(x)
        x = Dropout(self.dropout_rate, self.axis_name)(x.reshape(x.shape[0], -1), deterministic=not train)
        init = dict(kernel_init=nn.initializers.xavier_uniform(), bias_init=nn.initializers.zeros)
        x = nn.relu(nn.Dense(384, name="fc", **init)(x))
        x = Dropout(self.dropout_rate, self.axis_name)(x, deterministic=not train)
        return SequenceHeads(self.head, name="heads")(x)
