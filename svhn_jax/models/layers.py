"""Small building blocks shared by the model families."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 max-pooling with stride 2 on NHWC input, as a reshape and a max.

    Numerically identical to ``nn.max_pool(x, (2, 2), (2, 2))`` for even H and W, but its gradient
    is a cheap elementwise select instead of XLA:CPU's slow select-and-scatter.
    """
    b, h, w, c = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"max_pool_2x2 needs even height and width, got {h}x{w}")
    return jnp.max(x.reshape(b, h // 2, 2, w // 2, 2, c), axis=(2, 4))
