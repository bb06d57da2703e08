"""Small building blocks shared by the model families: max-pooling and dropout.

Written for XLA:CPU speed, with the plain formulations' numbers (tests/core/test_speed_equivalence.py,
tests/models/test_models.py). The pools are ``nn.max_pool`` computed as reshapes or shifted slices and
maxima, so their gradients are elementwise selects instead of XLA's slow select-and-scatter:
`max_pool_2x2` (the seed net's; values and gradients, ties included) and the Goodfellow net's
padded `max_pool_2x2_stride2_pad1` / `max_pool_2x2_stride1_pad1`. `Dropout` draws its mask from a
counter-based hash instead of threefry, keyed per example (`model_input.example_keys`).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from svhn_jax.data.model_input import example_keys


def _max_pool_2x2(x: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"max_pool_2x2 needs even height and width, got {h}x{w}")
    return jnp.max(x.reshape(b, h // 2, 2, w // 2, 2, c), axis=(2, 4))


@jax.custom_vjp
def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 max-pooling with stride 2 on NHWC input (even H and W), as a reshape and a max.

    Values and gradients equal ``nn.max_pool(x, (2, 2), (2, 2))``'s: the gradient goes to the first
    maximum of each window in row-major order (as XLA's select-and-scatter does), but it is computed
    with elementwise compares and selects, which XLA:CPU fuses into one loop.
    """
    return _max_pool_2x2(x)


def _max_pool_2x2_fwd(x: jax.Array):
    y = _max_pool_2x2(x)
    return y, (x, y)


def _max_pool_2x2_bwd(res, g):
    x, y = res
    b, h, w, c = x.shape
    windows = x.reshape(b, h // 2, 2, w // 2, 2, c)
    taken = jnp.zeros(y.shape, bool)
    rows = []
    for i in range(2):
        cols = []
        for j in range(2):
            hit = ~taken if (i, j) == (1, 1) else (windows[:, :, i, :, j] == y) & ~taken
            taken = taken | hit
            cols.append(jnp.where(hit, g, jnp.zeros_like(g)))
        rows.append(jnp.stack(cols, 3))
    return (jnp.stack(rows, 2).reshape(x.shape),)


max_pool_2x2.defvjp(_max_pool_2x2_fwd, _max_pool_2x2_bwd)


def max_pool_2x2_stride2_pad1(x: jax.Array) -> jax.Array:
    """``nn.max_pool(x, (2, 2), (2, 2), padding=((1, 1), (1, 1)))`` on NHWC, as pad + reshape + max."""
    _, h, w, _ = x.shape
    oh, ow = h // 2 + 1, w // 2 + 1
    x = jnp.pad(x, ((0, 0), (1, 2 * oh - h - 1), (1, 2 * ow - w - 1), (0, 0)), constant_values=-jnp.inf)
    return _max_pool_2x2(x)


def max_pool_2x2_stride1_pad1(x: jax.Array) -> jax.Array:
    """``nn.max_pool(x, (2, 2), (1, 1), padding=((1, 1), (1, 1)))`` on NHWC: maxima of shifted slices."""
    x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-jnp.inf)
    x = jnp.maximum(x[:, :-1], x[:, 1:])
    return jnp.maximum(x[:, :, :-1], x[:, :, 1:])




def _mix32(x: jax.Array) -> jax.Array:
    """MurmurHash3's 32-bit finaliser: a bijection of uint32 with full avalanche."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * jnp.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


def hash_bits(keys: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """uint32 [B, *shape]: 32 pseudo-random bits per element, a pure function of (key b, element).

    A counter-based hash: element j of example b gets ``mix(mix(j + k0) ^ k1)`` with (k0, k1) the
    first two words of key b. Elementwise integer arithmetic that XLA fuses into its consumer,
    where ``jax.random.bits`` would run threefry in a loop over a materialised counter array.
    """
    words = jax.random.key_data(keys).reshape(keys.shape[0], -1)
    k0, k1 = (words[:, i].reshape((-1,) + (1,) * len(shape)) for i in (0, 1))
    j = lax.iota(jnp.uint32, int(np.prod(shape, dtype=np.int64))).reshape(shape)[None]
    return _mix32(_mix32(j + k0) ^ k1)


class Dropout(nn.Module):
    """Inverted dropout whose mask is a function of (the 'dropout' rng, global example index).

    Same semantics as `flax.linen.Dropout` (``rate`` is the drop probability), but the result does
    not depend on the device count; see `model_input.example_keys`. An element is kept when its `hash_bits`
    fall below ``round(keep * 2**32)``, so the keep probability is exact to 2**-32.
    """

    rate: float
    axis_name: str | None = "data"

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        if deterministic or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        keys = example_keys(self.make_rng("dropout"), x.shape[0], self.axis_name)
        mask = hash_bits(keys, x.shape[1:]) < jnp.uint32(min(round(keep * 2**32), 2**32 - 1))
        return jnp.where(mask, x / keep, jnp.zeros_like(x))
