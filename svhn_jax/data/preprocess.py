"""Preprocessing recipes for SVHN format 1, as pure functions (arrays in, arrays out, no I/O).

A recipe crops the union of the digit boxes, expanded by 30 % of its width and height (15 % on each
side; ``goodfellow64_rgb`` first grows the shorter side to make it square), clipped to the image, and
resizes the crop to the recipe's size (Pillow, bilinear with antialiasing), in greyscale (ITU-R 601-2
luma, as Pillow's "L" mode) where the recipe asks. Mean subtraction and random crops happen on the
device at training time, not here.

Boxes are SVHN's (left, top, width, height) in pixels; a box covers columns [left, left + width).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from PIL import Image


class Recipe(NamedTuple):
    size: int   # output height = width
    grey: bool  # one ITU-R 601 luma channel instead of RGB


RECIPES: dict[str, Recipe] = {
    "seed32_grey": Recipe(32, True),
    "seed32_rgb": Recipe(32, False),
    "goodfellow64_rgb": Recipe(64, False),
    "multi64_grey": Recipe(64, True),  # multi-digit MNIST (svhn_jax.data.multi_mnist)
    "scene128_rgb": Recipe(128, False),  # whole photos, letterboxed, for the localiser (svhn_jax.infer.localiser)
}
SQUARE = frozenset({"goodfellow64_rgb"})  # recipes that make the union box square before expanding it
EXPAND = 0.3  # growth of the box's width and height
_EPS = 1e-6   # guards the floor/ceil of crop edges against floating-point noise


def get_recipe(name: str) -> Recipe:
    """The recipe called `name`; ValueError naming the choices otherwise."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[name]


def image_shape(recipe: str) -> tuple[int, int, int]:
    r = get_recipe(recipe)
    return (r.size, r.size, 1 if r.grey else 3)


def check_boxes(boxes, height: int, width: int) -> None:
    """Raises ValueError if a box is empty or lies wholly outside the image (partly outside is fine:
    the real release has such boxes, and the crop is clipped)."""
    rows = np.asarray(boxes, np.float64).reshape(-1, 4).tolist()
    if not rows:
        raise ValueError("no digit boxes")
    for i, (left, top, w, h) in enumerate(rows):
        where = f"box {i} (left={left:g}, top={top:g}, width={w:g}, height={h:g})"
        if not (math.isfinite(left + top + w + h) and w > 0 and h > 0):
            raise ValueError(f"{where} is empty")
        if left >= width or top >= height or left + w <= 0 or top + h <= 0:
            raise ValueError(f"{where} lies outside the {width}x{height} image")


def union_box(boxes) -> tuple[float, float, float, float]:
    """[k, 4] (left, top, width, height) -> the smallest (x0, y0, x1, y1) holding them all."""
    rows = np.asarray(boxes, np.float64).reshape(-1, 4).tolist()
    return (min(r[0] for r in rows), min(r[1] for r in rows), max(r[0] + r[2] for r in rows),
            max(r[1] + r[3] for r in rows))


def expand_box(box: tuple[float, float, float, float], factor: float = EXPAND, *,
               square: bool = False) -> tuple[float, float, float, float]:
    """Grows (x0, y0, x1, y1) about its centre: width and height times (1 + factor), squared first."""
    x0, y0, x1, y1 = box
    cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
    if square:
        w = h = max(w, h)
    w, h = w * (1 + factor), h * (1 + factor)
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def clip_box(box: tuple[float, float, float, float], height: int, width: int) -> tuple[int, int, int, int]:
    """Whole pixels covering `box` (floor / ceil), clipped to the image; raises if nothing is left."""
    x0, y0, x1, y1 = box
    out = (max(0, math.floor(x0 + _EPS)), max(0, math.floor(y0 + _EPS)),
           min(width, math.ceil(x1 - _EPS)), min(height, math.ceil(y1 - _EPS)))
    if out[2] <= out[0] or out[3] <= out[1]:
        raise ValueError(f"crop box {box} lies outside the {width}x{height} image")
    return out


def crop_box(boxes, height: int, width: int, recipe: str) -> tuple[int, int, int, int]:
    """The pixel box (x0, y0, x1, y1) that `recipe` crops from a `height` x `width` image."""
    check_boxes(boxes, height, width)
    return clip_box(expand_box(union_box(boxes), square=recipe in SQUARE), height, width)


def crop(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return image[y0:y1, x0:x1]


def _pil(image: np.ndarray) -> Image.Image:
    image = np.ascontiguousarray(image, np.uint8)
    return Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image)


def _hwc(image: Image.Image) -> np.ndarray:
    a = np.asarray(image, np.uint8)
    return a[..., None] if a.ndim == 2 else a


def to_grey(image: np.ndarray) -> np.ndarray:
    """HWC uint8 RGB -> HW1 ITU-R 601-2 luma, L = (299 R + 587 G + 114 B) / 1000 (rounded); 1 channel passes."""
    return image if image.shape[-1] == 1 else _hwc(_pil(image).convert("L"))


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """HWC uint8 -> [size, size, C] uint8 (bilinear, antialiased when shrinking)."""
    return _hwc(_pil(image).resize((size, size), Image.BILINEAR))


def _finish(image: Image.Image, recipe: str) -> np.ndarray:
    """Colour conversion then resize, on a cropped Pillow image (the shared tail of both entry points)."""
    r = get_recipe(recipe)
    mode = "L" if r.grey else "RGB"
    if image.mode != mode:
        image = image.convert(mode)
    return _hwc(image.resize((r.size, r.size), Image.BILINEAR))


def apply_recipe(image: np.ndarray, boxes, recipe: str) -> np.ndarray:
    """A format-1 image (HWC uint8) and its digit boxes [k, 4] -> the recipe's uint8 [S, S, C] crop:
    ``resize(to_grey(crop(image, crop_box(...))))`` (without the grey step for RGB recipes)."""
    return apply_recipe_pil(_pil(image), boxes, recipe)


def apply_recipe_pil(image: Image.Image, boxes, recipe: str) -> np.ndarray:
    """`apply_recipe` on a decoded Pillow image (skips two array copies; the worker's entry point)."""
    return _finish(image.crop(crop_box(boxes, image.height, image.width, recipe)), recipe)


def resize_whole(image: np.ndarray, recipe: str) -> np.ndarray:
    """An image without boxes (e.g. a user's photo of a house number) -> the recipe's [S, S, C] input:
    the whole image stands for the crop."""
    image = np.asarray(image, np.uint8)
    return _finish(_pil(image if image.ndim == 3 else image[..., None]), recipe)


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """RGB uint8 [H, W, 3] -> (uint8 [size, size, 3], scale, (left, top)): the photo scaled (area
    averaging) so its longer side is `size`, centred on its mean colour. A photo point (x, y) lands at
    (left + x * scale, top + y * scale)."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = np.asarray(Image.fromarray(image).resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=3.0))
    canvas = np.empty((size, size, 3), np.uint8)
    canvas[:] = small.reshape(-1, 3).mean(0).astype(np.uint8)
    left, top = (size - nw) // 2, (size - nh) // 2
    canvas[top:top + nh, left:left + nw] = small
    return canvas, scale, (left, top)
