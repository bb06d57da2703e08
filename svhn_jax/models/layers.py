"""Small building blocks shared by the model families."""
from __future__ import annotations

import flax.linen as nn
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


def example_keys(rng: jax.Array, local_batch: int, axis_name: str | None) -> jax.Array:
    """One key per example, folded from the example's index in the GLOBAL batch.

    Inside a data-parallel step (`axis_name` bound by shard_map or pmap) device d holds examples
    d * local_batch ... (d + 1) * local_batch - 1 of the global batch. Keying randomness by that
    index makes dropout masks and random crops independent of how the batch is split over
    devices and hosts: 1, 2 or 256 devices draw the same numbers for the same example.
    """
    offset = jax.lax.axis_index(axis_name) * local_batch if axis_name else 0
    return jax.vmap(jax.random.fold_in, (None, 0))(rng, offset + jnp.arange(local_batch))


class Dropout(nn.Module):
    """Inverted dropout whose mask is a function of (the 'dropout' rng, global example index).

    Same semantics as `flax.linen.Dropout` (``rate`` is the drop probability), but the result does
    not depend on the device count; see `example_keys`.
    """

    rate: float
    axis_name: str | None = "data"

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        if deterministic or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        keys = example_keys(self.make_rng("dropout"), x.shape[0], self.axis_name)
        mask = jax.vmap(lambda k: jax.random.bernoulli(k, keep, x.shape[1:]))(keys)
        return jnp.where(mask, x / keep, jnp.zeros_like(x))
