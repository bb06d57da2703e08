"""Small building blocks shared by the model families.

Written for XLA:CPU speed, with the plain formulations' numbers (tests/test_speed_equivalence.py):
`max_pool_2x2` is `nn.max_pool` (values and gradients, ties included) without XLA's slow
select-and-scatter; `conv_same_one_channel` is XLA's 'SAME' convolution with a kernel gradient that
is one matrix product; `Dropout` draws its mask from a counter-based hash instead of threefry.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_NHWC = ("NHWC", "HWIO", "NHWC")


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


def _conv_same(x: jax.Array, w: jax.Array) -> jax.Array:
    return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=_NHWC)


@jax.custom_vjp
def conv_same_one_channel(x: jax.Array, w: jax.Array) -> jax.Array:
    """Stride-1 'SAME' NHWC convolution of a one-channel input (odd kernel sizes).

    Forward and input gradient are XLA's. The kernel gradient, which XLA:CPU computes as a slow
    convolution with the whole 32x32 output gradient as its "kernel", is one matrix product here:
    the k*k shifted copies of the (small) input times the output gradient, [k*k, N] @ [N, Cout].
    """
    return _conv_same(x, w)


def _conv_one_fwd(x: jax.Array, w: jax.Array):
    return _conv_same(x, w), (x, w)


def _conv_one_bwd(res, dy):
    x, w = res
    kh, kw, cin, cout = w.shape
    if cin != 1 or kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"conv_same_one_channel needs one input channel and an odd kernel, got {w.shape}")
    b, h, wd, _ = x.shape
    xp = jnp.pad(x[..., 0], ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)))
    cols = jnp.stack([xp[:, i:i + h, j:j + wd] for i in range(kh) for j in range(kw)]).reshape(kh * kw, -1)
    dw = jnp.dot(cols, dy.reshape(-1, cout), preferred_element_type=jnp.float32)
    dx = jax.vjp(lambda x_: _conv_same(x_, w), x)[1](dy)[0]  # dead code (and removed) for an input image
    return dx, dw.reshape(w.shape).astype(w.dtype)


conv_same_one_channel.defvjp(_conv_one_fwd, _conv_one_bwd)


def example_keys(rng: jax.Array, local_batch: int, axis_name: str | None) -> jax.Array:
    """One key per example, folded from the example's index in the GLOBAL batch.

    Inside a data-parallel step (`axis_name` bound by shard_map or pmap) device d holds examples
    d * local_batch ... (d + 1) * local_batch - 1 of the global batch. Keying randomness by that
    index makes dropout masks and random crops independent of how the batch is split over
    devices and hosts: 1, 2 or 256 devices draw the same numbers for the same example.
    """
    offset = jax.lax.axis_index(axis_name) * local_batch if axis_name else 0
    return jax.vmap(jax.random.fold_in, (None, 0))(rng, offset + jnp.arange(local_batch))


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
    not depend on the device count; see `example_keys`. An element is kept when its `hash_bits`
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
