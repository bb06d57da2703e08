"""Stride-1 'SAME' convolutions with a fast kernel gradient on XLA:CPU (NHWC input, HWIO kernel).

XLA computes d(loss)/d(kernel) of a convolution as another convolution whose "kernel" is the whole
output gradient. On CPU that runs at a fraction of the forward pass's speed once the map is large,
and it dominated the training step. Both convolutions here keep XLA's forward and input-gradient
convolutions (fast) and compute the kernel gradient exactly in a cheaper way.

`conv_same_one_channel` (the seed net's first layer, one input channel): one matrix product of the
k*k shifted copies of the input with the output gradient, [k*k, N] @ [N, Cout].

`conv_same` (any channels; on CPU only, via `lax.platform_dependent`: GPUs and TPUs keep XLA's own)
picks one of two formulations:

- `kernel_grad_tiled` (few channels, large maps): the gradient is a sum over output positions, so it
  is the sum of the kernel gradients of ~8x8 output tiles, each a 'VALID' convolution of its input
  window; XLA:CPU is fast on such small "kernels".
- `kernel_grad_shifted` (many channels): one matrix product. With x shifted along W in k ways and
  the output gradient shifted along H in k ways (k times each input, not k*k times as im2col),
  ``[k*Cin, k*Cout] = xw^T @ dyh`` holds all k*k kernel taps.

All match ``jax.grad`` of ``lax.conv_general_dilated`` to float rounding (tests/models/test_models.py,
tests/core/test_speed_equivalence.py). `conv_general_dilated` is a drop-in for
``nn.Conv(conv_general_dilated=...)`` that routes the `conv_same` case there.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

_NHWC = ("NHWC", "HWIO", "NHWC")


def plain_conv(x: jax.Array, w: jax.Array, padding: str = "SAME") -> jax.Array:
    """XLA's own stride-1 convolution of NHWC `x` with HWIO `w`."""
    return lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=_NHWC)


@jax.custom_vjp
def conv_same_one_channel(x: jax.Array, w: jax.Array) -> jax.Array:
    """Stride-1 'SAME' NHWC convolution of a one-channel input (odd kernel sizes).

    Forward and input gradient are XLA's. The kernel gradient, which XLA:CPU computes as a slow
    convolution with the whole 32x32 output gradient as its "kernel", is one matrix product here:
    the k*k shifted copies of the (small) input times the output gradient, [k*k, N] @ [N, Cout].
    """
    return plain_conv(x, w)


def _conv_fwd(x: jax.Array, w: jax.Array):
    return plain_conv(x, w), (x, w)


def _input_grad(x: jax.Array, w: jax.Array, dy: jax.Array) -> jax.Array:
    """XLA's own input gradient of ``plain_conv(x, w)`` (fast on every platform)."""
    return jax.vjp(lambda x_: plain_conv(x_, w), x)[1](dy)[0]


def _conv_one_bwd(res, dy):
    x, w = res
    kh, kw, cin, cout = w.shape
    if cin != 1 or kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"conv_same_one_channel needs one input channel and an odd kernel, got {w.shape}")
    b, h, wd, _ = x.shape
    xp = jnp.pad(x[..., 0], ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)))
    cols = jnp.stack([xp[:, i:i + h, j:j + wd] for i in range(kh) for j in range(kw)]).reshape(kh * kw, -1)
    dw = jnp.dot(cols, dy.reshape(-1, cout), preferred_element_type=jnp.float32)
    dx = _input_grad(x, w, dy)  # dead code (and removed) for an input image
    return dx, dw.reshape(w.shape).astype(w.dtype)


conv_same_one_channel.defvjp(_conv_fwd, _conv_one_bwd)


def _tiles(n: int, tile: int = 8, max_tiles: int = 4) -> list[tuple[int, int]]:
    k = min(max_tiles, -(-n // tile))
    edges = [n * i // k for i in range(k + 1)]
    return list(zip(edges[:-1], edges[1:]))


def kernel_grad_lax(x: jax.Array, dy: jax.Array, w: jax.Array) -> jax.Array:
    """XLA's own kernel gradient of ``plain_conv(x, w, 'SAME')`` for output gradient ``dy``."""
    return jax.vjp(lambda w_: plain_conv(x, w_, "SAME"), w)[1](dy)[0]


def kernel_grad_tiled(x: jax.Array, dy: jax.Array, w: jax.Array) -> jax.Array:
    """The kernel gradient as a sum over output tiles of at most ~8x8 (4x4 tiles at most)."""
    kh, kw = w.shape[:2]
    xp = jnp.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    dw = jnp.zeros(w.shape, jnp.float32)
    for r0, r1 in _tiles(x.shape[1]):
        for c0, c1 in _tiles(x.shape[2]):
            xs = xp[:, r0:r1 + kh - 1, c0:c1 + kw - 1]
            dw = dw + jax.vjp(lambda w_, xs=xs: plain_conv(xs, w_, "VALID"), w)[1](dy[:, r0:r1, c0:c1])[0]
    return dw.astype(w.dtype)


def kernel_grad_shifted(x: jax.Array, dy: jax.Array, w: jax.Array) -> jax.Array:
    """The kernel gradient as one matrix product of W-shifted inputs and H-shifted gradients.

    dw[i, j] = sum_{b,h,v} x[b, h+i-p, v+j-p] dy[b, h, v] = sum_{b,h,v} xw_j[b, h, v] dyh_i[b, h, v]
    with xw_j[b, h, v] = x[b, h, v+j-p] and dyh_i[b, h, v] = dy[b, h-i+p, v] (zero outside).
    """
    kh, kw, cin, cout = w.shape
    h, wd = x.shape[1:3]
    ph, pw = kh // 2, kw // 2
    xp = jnp.pad(x, ((0, 0), (0, 0), (pw, pw), (0, 0)))
    xw = jnp.concatenate([xp[:, :, j:j + wd] for j in range(kw)], -1)               # [B,H,W,kw*Cin]
    dp = jnp.pad(dy, ((0, 0), (ph, ph), (0, 0), (0, 0)))
    dyh = jnp.concatenate([dp[:, kh - 1 - i:kh - 1 - i + h] for i in range(kh)], -1)  # [B,H,W,kh*Cout]
    m = lax.dot_general(xw.reshape(-1, kw * cin), dyh.reshape(-1, kh * cout), (((0,), (0,)), ((), ())),
                        preferred_element_type=jnp.float32)                        # [(j,Cin),(i,Cout)]
    return m.reshape(kw, cin, kh, cout).transpose(2, 0, 1, 3).astype(w.dtype)


def kernel_grad_cpu(x: jax.Array, dy: jax.Array, w: jax.Array) -> jax.Array:
    """The faster of the two exact formulations on XLA:CPU for this layer's shape."""
    if min(w.shape[2], w.shape[3]) >= 128:
        return kernel_grad_shifted(x, dy, w)
    return kernel_grad_tiled(x, dy, w)


@jax.custom_vjp
def conv_same(x: jax.Array, w: jax.Array) -> jax.Array:
    """``lax.conv_general_dilated(x, w, (1, 1), 'SAME')`` on NHWC/HWIO, odd kernel sizes."""
    return plain_conv(x, w)


def _conv_same_bwd(res, dy):
    x, w = res
    dw = lax.platform_dependent(x, dy, w, cpu=kernel_grad_cpu, default=kernel_grad_lax)
    return _input_grad(x, w, dy), dw


conv_same.defvjp(_conv_fwd, _conv_same_bwd)


def conv_general_dilated(lhs, rhs, window_strides, padding, *, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, precision=None, **kwargs):
    """Drop-in for ``lax.conv_general_dilated`` that routes the `conv_same` case there."""
    ones = lambda d: d is None or all(v == 1 for v in d)
    simple = (isinstance(padding, str) and padding == "SAME" and ones(window_strides)
              and ones(lhs_dilation) and ones(rhs_dilation) and feature_group_count == 1
              and precision is None and not kwargs and lhs.ndim == 4
              and rhs.shape[0] % 2 == 1 and rhs.shape[1] % 2 == 1
              and dimension_numbers is not None
              and tuple(dimension_numbers) == tuple(lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)))
    if simple:
        return conv_same(lhs, rhs)
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                                    rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                                    feature_group_count=feature_group_count, precision=precision,
                                    **kwargs)
