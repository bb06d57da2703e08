"""A measured negative result: Winograd F(2x2, 5x5) convolutions for the Goodfellow net on XLA:CPU.

Winograd's minimal filtering computes each 2x2 output tile of a 5x5 convolution from a 6x6 input
tile with 36 multiplications instead of 100, so the convolution becomes 36 batched matrix products
[tiles, Cin] x [Cin, Cout] (2.8x fewer FLOPs) between cheap linear transforms, and autodiff gives
the backward pass in the same form. Whether that beats XLA's convolutions is what this script
measures, for the eight layer shapes of the Goodfellow net at batch 32 (forward + both gradients):

  python scripts/prototypes/winograd_conv.py

Measured on the project's 2-core CPU (jax 0.10.2, quiet machine), ms per forward + backward:
XLA conv / `svhn_jax.models.conv.conv_same` (what training uses) / Winograd:
28x28 48->64: 640 / 234 / 317; 29x29 64->128: 1026 / 384 / 549; 15x15 128->160: 240 / 238 / 345;
16x16 160->192: 470 / 440 / 456; 9x9 192->192: 202 / 158 / 208; 10x10: 225 / 200 / 192;
6x6: 72 / 70 / 89. Relative error against XLA's convolution: < 1.5e-5. The batched products alone
run at 42-61 GFLOP/s (e.g. 224 ms of the 16x16 layer's 456), and the transforms, which write 9x
the input's size, cost as much again: only the 10x10 layer gets faster (4 %), the step as a
whole would be slower, so it is not used.
"""
from __future__ import annotations

import sys
import time
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

M, R = 2, 5                       # output tile, kernel size
ALPHA = M + R - 1                 # input tile
POINTS = (0, 1, -1, 2, -2)        # interpolation points (and infinity)


def _poly(roots: list[Fraction]) -> list[Fraction]:
    """Coefficients (low to high) of prod (x - root)."""
    c = [Fraction(1)]
    for root in roots:
        c = [Fraction(0)] + c
        for i in range(len(c) - 1):
            c[i] -= root * c[i + 1]
    return c


def toom_cook(m: int = M, r: int = R, points=POINTS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A^T [m, a], G [a, r], B^T [a, a]) with y = A^T ((G g) * (B^T d)) the 1-D correlation F(m, r)."""
    pts = [Fraction(p) for p in points]
    a = m + r - 1
    if len(pts) != a - 1:
        raise ValueError(f"F({m},{r}) needs {a - 1} finite points")
    at = [[p ** k for p in pts] + [Fraction(int(k == m - 1))] for k in range(m)]
    g = []
    for i, p in enumerate(pts):
        norm = np.prod([p - q for j, q in enumerate(pts) if j != i])
        g.append([p ** k / norm for k in range(r)])
    g.append([Fraction(int(k == r - 1)) for k in range(r)])
    bt = [_poly([q for j, q in enumerate(pts) if j != i]) for i in range(len(pts))] + [_poly(pts)]
    bt = [row + [Fraction(0)] * (a - len(row)) for row in bt]
    return tuple(np.array(x, dtype=np.float64) for x in (at, g, bt))


_AT, _G, _BT = (jnp.asarray(x, jnp.float32) for x in toom_cook())


def winograd_conv(x: jax.Array, w: jax.Array) -> jax.Array:
    """``lax.conv_general_dilated(x, w, (1, 1), 'SAME')`` for NHWC x and a 5x5 HWIO kernel."""
    b, h, wd, c = x.shape
    th, tw, p = -(-h // M), -(-wd // M), R // 2
    xp = jnp.pad(x, ((0, 0), (p, p + th * M - h), (p, p + tw * M - wd), (0, 0)))
    rows = jnp.stack([xp[:, i:i + M * th:M] for i in range(ALPHA)])                 # [i, B, th, Wp, C]
    u = jnp.einsum("ai,ibhwc->abhwc", _BT, rows)
    cols = jnp.stack([u[:, :, :, j:j + M * tw:M] for j in range(ALPHA)], 1)         # [a, j, B, th, tw, C]
    u = jnp.einsum("bj,ajnhwc->abnhwc", _BT, cols).reshape(ALPHA * ALPHA, b * th * tw, c)
    gw = jnp.einsum("ai,ijco,bj->abco", _G, w, _G).reshape(ALPHA * ALPHA, c, -1)
    prod = lax.dot_general(u, gw, (((2,), (1,)), ((0,), (0,)))).reshape(ALPHA, ALPHA, b, th, tw, -1)
    y = jnp.einsum("ka,abnhwo,lb->nhkwlo", _AT, prod, _AT)                          # [B, th, M, tw, M, O]
    return y.reshape(b, th * M, tw * M, -1)[:, :h, :wd]


def _timed_grad(conv, x, w, repeats: int = 10) -> tuple[float, tuple]:
    fn = jax.jit(jax.value_and_grad(lambda x, w: jnp.sum(conv(x, w) ** 2), (0, 1)))
    out = jax.block_until_ready(fn(x, w))
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(repeats):
            out = fn(x, w)
        jax.block_until_ready(out)
        best = min(best, (time.perf_counter() - t) / repeats)
    return best * 1e3, out


def main() -> None:
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    from svhn_jax.models.conv import conv_same
    plain = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME",  # noqa: E731
                                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))
    rng = np.random.default_rng(0)
    for hw, cin, cout in [(28, 48, 64), (29, 64, 128), (15, 128, 160), (16, 160, 192), (9, 192, 192),
                          (10, 192, 192), (6, 192, 192)]:
        x = jnp.asarray(rng.normal(size=(32, hw, hw, cin)), jnp.float32)
        w = jnp.asarray(rng.normal(size=(5, 5, cin, cout)) * 0.05, jnp.float32)
        (t_plain, ref), (t_ours, _), (t_wino, got) = (_timed_grad(f, x, w) for f in (plain, conv_same, winograd_conv))
        err = float(jnp.abs(ref[1][1] - got[1][1]).max() / jnp.abs(ref[1][1]).max())
        print(f"{hw}x{hw} {cin}->{cout}: XLA {t_plain:.0f} ms, conv_same {t_ours:.0f} ms, "
              f"Winograd {t_wino:.0f} ms (kernel-gradient relative error {err:.1e})")


if __name__ == "__main__":
    main()
