"""Draws a synthetic house number as a street photo: plaque, digits, perspective, occlusion, camera.

`render(layout, rng)` draws a `geometry.Layout` on a wall from `materials`. Drawing happens on a "work"
canvas where digits are 28-40 pixels tall (`WORK_DIGIT_HEIGHT`); the result is then scaled to the full
image size: down, like a camera averaging a small number's pixels, or up, as large real SVHN images
are upscaled street-view crops anyway. Every labelled digit keeps at least the middle 65 % of its box
free of its neighbours' ink, and its ink contrasts with what it sits on. Digits are never mirrored.
"""
from __future__ import annotations

import io
import math
import os
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from svhn_jax.data.synth.geometry import Layout
from svhn_jax.data.synth.materials import background, contrasting, font_set, glyph, palette, random_colour

WORK_DIGIT_HEIGHT = (28, 40)  # digits are drawn this tall (at most 4x supersampled), then rescaled
P_WARP, P_OCCLUDE, P_JPEG = 0.7, 0.06, 0.5
P_LOW_RES, P_BLUR = 0.5, 0.7  # a lower-resolution capture; a Gaussian blur (real crops are soft)
MAX_LOW_RES = 3.5             # the lowest resolution, as a factor, keeping digits >= 8 px tall
MAX_BLUR = 0.1                # blur radius, as a fraction of the digit height
MAX_NOISE = 9.0               # sensor noise standard deviation (0-255)


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3x3 projective map taking 4 points `src` [4, 2] to `dst` [4, 2]."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    return np.append(np.linalg.solve(np.array(rows, float), np.array(rhs, float)), 1.0).reshape(3, 3)


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    q = np.c_[pts, np.ones(len(pts))] @ m.T
    return q[:, :2] / q[:, 2:]


def _warp(rng: np.random.Generator, centre: np.ndarray, radius: float, d: float) -> np.ndarray:
    """Rotation, shear, stretch and a perspective tilt about `centre` (work pixels)."""
    t = float(np.clip(rng.normal(0, 0.06), -0.2, 0.2))
    k = float(np.clip(rng.normal(0, 0.12), -0.35, 0.35))
    a = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]]) @ np.array(
        [[math.exp(rng.normal(0, 0.08)), k], [0.0, 1.0]])
    src = centre + radius * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float)
    dst = centre + (src - centre) @ a.T + rng.normal(0, 0.06 * d, (4, 2))
    return _homography(src, dst)


def _boxes_after(m: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Boxes [k, 4] (x0, y0, x1, y1) of the digits in `boxes` after the warp `m`.

    Spanned by the images of each box's edge midpoints: a slanted digit's box grows by its slant no
    more than an annotator's box around its ink does (the corners' hull would, and would bury narrow
    neighbours)."""
    x0, y0, x1, y1 = boxes.T
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    mids = np.stack([np.c_[x0, cy], np.c_[x1, cy], np.c_[cx, y0], np.c_[cx, y1]], axis=1).reshape(-1, 2)
    p = _apply(m, mids).reshape(-1, 4, 2)
    return np.c_[p[:, 0, 0], p[:, 2, 1], p[:, 1, 0], p[:, 3, 1]]


def _plaque(rng: np.random.Generator, draw: ImageDraw.ImageDraw, boxes: np.ndarray, union: np.ndarray,
            d: float, scheme: str, base: tuple, ink: tuple) -> None:
    """A plaque (rounded or oval, maybe bordered) around the number, or one tile per digit."""
    if scheme in ("dark_on_light", "light_on_dark"):
        px, py = d * rng.uniform(0.12, 0.7), d * rng.uniform(0.08, 0.45)
        rect = (union[0] - px, union[1] - py, union[2] + px, union[3] + py)
        border = max(1, round(d * rng.uniform(0.03, 0.1)))
        outline = (ink if rng.random() < 0.6 else random_colour(rng, rng.uniform(0, 255), 1.0)) + (255,)
        has_border = rng.random() < 0.4
        if rng.random() < 0.1:
            ex, ey = 0.2 * (union[2] - union[0]) + 0.2 * d, 0.2 * d
            draw.ellipse((rect[0] - ex, rect[1] - ey, rect[2] + ex, rect[3] + ey), fill=base + (255,),
                         outline=outline if has_border else None, width=border)
        else:
            radius = rng.uniform(0, 0.45) * min(rect[2] - rect[0], rect[3] - rect[1])
            draw.rounded_rectangle(rect, radius=radius, fill=base + (255,),
                                   outline=outline if has_border else None, width=border)
            if has_border and rng.random() < 0.3:
                inset = border + max(1, round(d * 0.08))
                draw.rounded_rectangle((rect[0] + inset, rect[1] + inset, rect[2] - inset, rect[3] - inset),
                                       radius=max(0.0, radius - inset), outline=outline, width=1)
    elif scheme == "tiles":
        pad = d * rng.uniform(0.06, 0.2)
        radius = d * rng.uniform(0, 0.2)
        for x0, y0, x1, y1 in boxes:
            draw.rounded_rectangle((x0 - pad, y0 - pad, x1 + pad, y1 + pad), radius=radius, fill=base + (255,))


def _digits(rng: np.random.Generator, layer: Image.Image, labels: Sequence[int], boxes: np.ndarray,
            d: float, small: bool, scheme: str, base: tuple, ink: tuple, fonts: str) -> None:
    """Draws each digit inside its box: one font (of the `font_set` `fonts`), width and weight for the
    number; shadow, outline."""
    files, p = font_set(fonts)
    font = files[int(rng.choice(len(files), p=p))]
    condense = rng.uniform(0.75, 1.15)
    bold = int(rng.choice([0, 3, 5], p=[0.2, 0.4, 0.4] if small else [0.5, 0.3, 0.2]))
    name = os.path.basename(font)
    if "Bol" in name or "Black" in name or name == "cmb10.ttf":
        bold = min(bold, 3)  # already heavy
    shadow = scheme != "tiles" and rng.random() < 0.3
    shadow_colour = (0, 0, 0, 110) if scheme == "wall" else tuple(int(c * 0.55) for c in base) + (255,)
    outline_colour = contrasting(rng, ink) + (255,) if rng.random() < 0.1 else None
    shadow_off = (d * rng.uniform(0.03, 0.1) * rng.choice([-1, 1]), d * rng.uniform(0.03, 0.1))
    # Ink stays inside its box and mostly off its neighbours' ink: overlapping boxes split the overlap,
    # but every digit keeps at least the middle 65 % of its box.
    mid = (boxes[1:, 0] + boxes[:-1, 2]) / 2
    ink_x0 = np.r_[boxes[0, 0], np.maximum(boxes[1:, 0], mid)]
    ink_x1 = np.r_[np.minimum(boxes[:-1, 2], mid), boxes[-1, 2]]
    centre, half = (boxes[:, 0] + boxes[:, 2]) / 2, 0.325 * (boxes[:, 2] - boxes[:, 0])
    ink_x0, ink_x1 = np.minimum(ink_x0, centre - half), np.maximum(ink_x1, centre + half)
    for label, x0, x1, (_, y0, _, y1) in zip(labels, ink_x0, ink_x1, boxes):
        g = glyph(font, str(label % 10))
        gh = max(3, round((y1 - y0) * rng.uniform(0.85, 1.0)))
        natural = g.width * gh / g.height * condense  # the font's width, squeezed if the box is narrower
        gw = max(2, min(round(natural), math.floor((x1 - x0) * rng.uniform(0.9, 1.0))))
        mask = g.resize((gw, gh), Image.Resampling.BILINEAR)
        if bold and gw >= 5 * bold:  # a heavier weight: dilate the ink (not of squeezed narrow digits)
            mask = mask.filter(ImageFilter.MaxFilter(bold))
        x = int(round(x0 + rng.uniform(0, 1) * max(0.0, (x1 - x0) - gw)))
        y = int(round(y0 + rng.uniform(0, 1) * max(0.0, (y1 - y0) - gh)))
        if shadow:
            layer.paste(shadow_colour, (x + round(shadow_off[0]), y + round(shadow_off[1])), mask)
        if outline_colour is not None and gw >= 15:  # an outline would fill a narrow digit's holes
            layer.paste(outline_colour, (x, y), mask.filter(ImageFilter.MaxFilter(3)))
        layer.paste(ink + (255,), (x, y), mask)


def _occlude(rng: np.random.Generator, img: Image.Image, boxes: np.ndarray, d: float) -> None:
    """A pole or wire across the edge of one digit, or leaves over one of its corners."""
    x0, y0, x1, y1 = boxes[int(rng.integers(len(boxes)))]
    colour = random_colour(rng, rng.uniform(10, 140), rng.uniform(0, 1.5))
    draw = ImageDraw.Draw(img)
    if rng.random() < 0.5:
        x = x0 + (x1 - x0) * rng.choice([rng.uniform(0.0, 0.2), rng.uniform(0.8, 1.0)])
        slant = d * rng.normal(0, 0.3)
        draw.line((x - slant, y0 - d, x + slant, y1 + d), fill=colour,
                  width=max(1, round(d * rng.uniform(0.06, 0.15))))
    else:
        cx, cy = rng.choice([x0, x1]), rng.choice([y0, y1])
        r = d * rng.uniform(0.1, 0.2)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)


def _camera(rng: np.random.Generator, img: Image.Image, d: float, size: tuple[int, int]) -> np.ndarray:
    """Low resolution, blur, scaling to `size`, lighting, noise and JPEG: uint8 [H, W, 3]."""
    ww, wh = img.size
    full_w, full_h = size
    if rng.random() < P_LOW_RES and d > 11:  # digits keep at least ~8 px at the lowest resolution
        f = rng.uniform(1.3, min(MAX_LOW_RES, d / 8))
        img = img.resize((max(1, round(ww / f)), max(1, round(wh / f))), Image.Resampling.BILINEAR).resize((ww, wh))
    if rng.random() < P_BLUR:
        img = img.filter(ImageFilter.GaussianBlur(d * rng.uniform(0.0, MAX_BLUR)))
    if (ww, wh) != (full_w, full_h):
        img = img.resize((full_w, full_h), rng.choice([Image.Resampling.BILINEAR, Image.Resampling.BICUBIC]))
    # Light and sensor in one pass: a gradient, sometimes a soft cast shadow, colour cast, exposure, noise.
    yy = np.linspace(-0.5, 0.5, full_h, dtype=np.float32)[:, None]
    xx = np.linspace(-0.5, 0.5, full_w, dtype=np.float32)[None, :]
    phi = rng.uniform(0, 2 * math.pi)
    light = 1.0 + rng.uniform(-0.5, 0.5) * (math.cos(phi) * xx + math.sin(phi) * yy)
    if rng.random() < 0.15:
        side = math.cos(phi + 1.0) * xx + math.sin(phi + 1.0) * yy - rng.uniform(-0.3, 0.3)
        light = light * (1.0 - rng.uniform(0.2, 0.5) * np.clip(0.5 + side / rng.uniform(0.02, 0.1), 0, 1))
    gain = (rng.uniform(0.7, 1.2) * (1.0 + rng.normal(0, 0.06, 3))).astype(np.float32)
    pixels = np.asarray(img, np.float32) * (light[..., None] * gain) + np.float32(rng.uniform(-15, 15))
    sigma = rng.uniform(0, MAX_NOISE)
    if sigma > 1:
        pixels += np.float32(sigma) * rng.standard_normal((full_h, full_w, 3 if rng.random() < 0.5 else 1),
                                                          dtype=np.float32)
    img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if rng.random() < P_JPEG:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=int(rng.integers(20, 86)))
        img = Image.open(buf).convert("RGB")
    return np.asarray(img)


def render(layout: Layout, rng: np.random.Generator, fonts: str = "matplotlib") -> tuple[np.ndarray, np.ndarray]:
    """Draws `layout` as a photo: (uint8 [H, W, 3], boxes int64 [k, 4] left, top, width, height), its
    digits in a face of the `materials.font_set` `fonts`.

    The boxes are the layout's, or (after a perspective warp) the boxes spanned by the warped edge
    midpoints of the layout's, rounded and clipped to the image, as an annotator would box the ink.
    """
    full_w, full_h = layout.width, layout.height
    h_full = float(layout.boxes[0, 3])
    scale = min(4.0, rng.uniform(*WORK_DIGIT_HEIGHT) / h_full)
    ww, wh = max(1, round(full_w * scale)), max(1, round(full_h * scale))
    sx, sy = ww / full_w, wh / full_h
    xyxy = np.c_[layout.boxes[:, :2], layout.boxes[:, :2] + layout.boxes[:, 2:]].astype(float)
    boxes = xyxy * [sx, sy, sx, sy]  # work pixels
    d = float(boxes[0, 3] - boxes[0, 1])
    union = np.r_[boxes[:, :2].min(0), boxes[:, 2:].max(0)]

    scheme, wall, base, ink = palette(rng)
    img = background(rng, (ww, wh), d, union, scheme, wall, ink)
    layer = Image.new("RGBA", (ww, wh), base + (0,))  # plaque and digits, warped together
    _plaque(rng, ImageDraw.Draw(layer), boxes, union, d, scheme, base, ink)
    _digits(rng, layer, layout.labels, boxes, d, h_full < 16, scheme, base, ink, fonts)
    warped = None
    if rng.random() < P_WARP:  # perspective about the number's centre, if it stays inside the image
        centre = (union[:2] + union[2:]) / 2
        m = _warp(rng, centre, max(union[2] - union[0], union[3] - union[1]) / 2 + d, d)
        after = _boxes_after(m, boxes)
        if after[:, :2].min() >= 0 and (after[:, 2:] <= [ww, wh]).all():
            inv = np.linalg.inv(m)
            layer = layer.transform((ww, wh), Image.Transform.PERSPECTIVE, tuple((inv / inv[2, 2]).ravel()[:8]),
                                    Image.Resampling.BILINEAR)
            warped = after
    img.paste(layer, (0, 0), layer)
    if rng.random() < P_OCCLUDE:
        _occlude(rng, img, boxes if warped is None else warped, d)
    image = _camera(rng, img, d, (full_w, full_h))
    if warped is None:
        return image, layout.boxes.copy()
    full = warped / [sx, sy, sx, sy]
    x0y0 = np.clip(np.rint(full[:, :2]), 0, None)
    x1y1 = np.maximum(np.minimum(np.rint(full[:, 2:]), [full_w, full_h]), x0y0 + 1)
    return image, np.c_[x0y0, x1y1 - x0y0].astype(np.int64)


def render_wall(rng: np.random.Generator, width: int, height: int, d: float) -> np.ndarray:
    """A photo of a wall with clutter and words but no number: uint8 [height, width, 3] (`d`: the text's
    scale in pixels, as a number's digit height would be)."""
    scale = min(4.0, rng.uniform(*WORK_DIGIT_HEIGHT) / d)
    ww, wh = max(1, round(width * scale)), max(1, round(height * scale))
    scheme, wall, _, ink = palette(rng)
    far = np.array([-1e6, -1e6, -1e6 + 1, -1e6 + 1])  # no number to keep clear of
    img = background(rng, (ww, wh), d * scale, far, scheme, wall, ink, digit_text_p=0.0)
    return _camera(rng, img, d * scale, (width, height))
