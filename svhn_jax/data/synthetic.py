"""Offline house-number-like images (placeholder renderer of the foundation; issue 4 replaces it).

Renders 1-5 digits with a TrueType font shipped by matplotlib, random colours, position and noise,
crops the union of the digit boxes expanded by 30 %, resizes to the recipe's size and writes the
split to the HDF5 data contract.
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from svhn_jax.data import store

_FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf")
_LENGTH_P = np.array([0.16, 0.55, 0.26, 0.03, 0.0001]) / np.sum([0.16, 0.55, 0.26, 0.03, 0.0001])


def _render_one(rng: np.random.Generator, size: int, grey: bool) -> tuple[np.ndarray, list[int]]:
    n = int(rng.choice(5, p=_LENGTH_P)) + 1
    seq = [int(d) for d in rng.integers(0, 10, n)]
    font = ImageFont.truetype(str(_FONT_DIR / _FONTS[rng.integers(len(_FONTS))]), int(rng.integers(28, 44)))
    bg = rng.integers(0, 256, 3)
    fg = (bg + rng.integers(80, 176, 3)) % 256
    canvas = Image.new("RGB", (200, 100), tuple(int(v) for v in bg))
    draw = ImageDraw.Draw(canvas)
    x, y = int(rng.integers(10, 40)), int(rng.integers(10, 30))
    boxes = []
    for d in seq:
        l, t, r, b = draw.textbbox((x, y), str(d), font=font)
        draw.text((x, y), str(d), font=font, fill=tuple(int(v) for v in fg))
        boxes.append((l, t, r, b))
        x = r + int(rng.integers(0, 5))
    l, t = min(b[0] for b in boxes), min(b[1] for b in boxes)
    r, b = max(b[2] for b in boxes), max(b[3] for b in boxes)
    w, h = r - l, b - t
    crop = canvas.crop((int(l - 0.15 * w), int(t - 0.15 * h), int(r + 0.15 * w), int(b + 0.15 * h)))
    crop = crop.resize((size, size), Image.BILINEAR)
    img = np.asarray(crop.convert("L") if grey else crop, np.float32)
    img = img + rng.normal(0, 8, img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    return (img[..., None] if grey else img), seq


def make_split(path: str | os.PathLike, num: int, seed: int, *, size: int = 32, grey: bool = True,
               recipe: str = "seed32_grey") -> Path:
    """Renders `num` examples from `seed` and writes them to `path` in the data contract."""
    rng = np.random.default_rng(seed)
    images, seqs = zip(*(_render_one(rng, size, grey) for _ in range(num)))
    lengths, digits = store.encode_labels(list(seqs))
    names = [f"{i + 1}.png" for i in range(num)]
    return store.write_split(path, np.stack(images), lengths, digits, names, recipe=recipe,
                             source=f"synthetic(seed={seed})")
