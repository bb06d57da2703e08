"""An answer drawn on its photo: the box in red, the reading and its confidence above it.

`draw_answer` is what ``predict --annotate`` writes and what the photo page (`python -m svhn_jax.demo`)
shows, so both draw the same picture.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def draw_answer(image: np.ndarray, a: dict[str, Any], scale: float = 1.0, max_side: int = 1600) -> Image.Image:
    """`image` (the photo decoded at 1/`scale`, uint8 RGB) at most `max_side` pixels on its longer side,
    with the answer's box (`a["box"]`, in the photo's pixels) and its reading and confidence drawn."""
    picture = Image.fromarray(image)
    shrink = min(1.0, max_side / max(picture.size))
    if shrink < 1.0:
        picture = picture.resize((max(1, round(picture.width * shrink)), max(1, round(picture.height * shrink))),
                                 Image.Resampling.BILINEAR, reducing_gap=3.0)
    draw = ImageDraw.Draw(picture)
    width = max(2, round(max(picture.size) / 250))
    label = a["number"] if a["number"] is not None else f"no number ({a['reading'] or '-'})"
    font = ImageFont.load_default(size=max(12, round(max(picture.size) / 25)))
    x, y = 2, 2
    if a.get("box"):
        bx, by, bw, bh = (v * shrink / scale for v in a["box"])
        draw.rectangle((bx, by, bx + bw, by + bh), outline=(255, 0, 0), width=width)
        x, y = bx, max(0, by - font.size - 2 * width)
    text = f"{label} {a['confidence']:.2f}"
    draw.rectangle(draw.textbbox((x, y), text, font=font), fill=(0, 0, 0))
    draw.text((x, y), text, fill=(255, 255, 0), font=font)
    return picture
