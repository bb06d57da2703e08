"""An answer drawn on its photo: the box in red, the reading and its confidence above it.

`draw_answer` is what ``predict --annotate`` writes and what the photo page (`python -m svhn_jax.demo`)
shows, so both draw the same picture. `annotation_path` picks where a drawing goes without ever
naming a photo or a file someone else wrote; `write_annotated` writes it, marked as ours.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from svhn_jax.core.fileio import atomic_write


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


ANNOTATION_MARK = ("Software", "svhn_jax.predict --annotate")  # a PNG text chunk in every drawn copy


def _ours(path: Path) -> bool:
    """Whether `path` is a regular file this program drew earlier (a PNG carrying `ANNOTATION_MARK`)."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):  # a link, folder or FIFO is never ours to replace
            return False
        with Image.open(path) as im:
            return im.format == "PNG" and im.info.get(ANNOTATION_MARK[0]) == ANNOTATION_MARK[1]
    except Exception:  # unreadable or not an image: someone else's
        return False



def annotation_path(folder: Path, file: str, inputs: set[str], written: set[str]) -> Path:
    """Where the drawn copy of the photo `file` goes in `folder`: ``<photo's name>.annotated.png`` (the
    whole name: ``house.jpg`` and ``house.png`` never share one), else ``.annotated-2.png``, ``-3``, ...:
    the first name that is none of the photos read (`inputs`, real paths), was not written in this run
    (`written`, real paths) and holds no file, or one this program drew (`_ours`)."""
    name, n = Path(file).name, 1
    while True:
        path = folder / (f"{name}.annotated.png" if n == 1 else f"{name}.annotated-{n}.png")
        real = os.path.realpath(path)
        if real not in inputs and real not in written and (not os.path.lexists(path) or _ours(path)):
            return path
        n += 1



def write_annotated(image: np.ndarray, a: dict[str, Any], path: Path, scale: float = 1.0, max_side: int = 1600) -> None:
    """Writes `image` (the photo decoded at 1/`scale`; drawn at most `max_side` pixels) as a PNG with the
    answer's box and reading drawn on it (`infer.drawing.draw_answer`, as the photo page shows it), marked
    as ours (`ANNOTATION_MARK`)."""
    picture = draw_answer(image, a, scale, max_side)
    mark = PngImagePlugin.PngInfo()
    mark.add_text(*ANNOTATION_MARK)
    atomic_write(path, lambda p: picture.save(p, format="PNG", pnginfo=mark))
