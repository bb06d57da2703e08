"""A house front drawn over a scene: doors, windows with frames and bars, shutters, lamps, a mailbox,
siding, plants and steps, none of it over the number.

On ordinary photos of a house number the localiser's wrong boxes land on exactly these (a window, a
door's panels, a lamp, a shutter's slats); scenes with them teach it what they are. `house_front`
draws them on a finished scene (any size: sizes are fractions of the photo), softened by the same
small blur, so they are not sharper than the rest. Used by `scene.scene_photo` when a config asks
for facades (``scene_facades``); the default scenes have none.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from svhn_jax.data.synth.materials import random_colour

DOOR_COLOURS = ((110, 70, 40), (150, 100, 60), (240, 240, 235), (160, 30, 30), (60, 80, 110), (40, 40, 45),
                (90, 120, 90))
KEEP_CLEAR = 0.3  # of the number's larger side, around it: nothing is drawn there


def _hits(a: tuple, b: np.ndarray | None) -> bool:
    return b is not None and a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _shade(colour: tuple, factor: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in colour)


def _door(rng: np.random.Generator, draw: ImageDraw.ImageDraw, r: tuple, colour: tuple) -> None:
    x0, y0, x1, y1 = r
    w, h = x1 - x0, y1 - y0
    frame = _shade(colour, rng.choice([0.5, 1.5]))
    draw.rectangle(r, fill=colour, outline=frame, width=max(1, round(w * rng.uniform(0.03, 0.08))))
    rows, cols = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    if rng.random() < 0.7:  # panels
        for i in range(rows):
            for j in range(cols):
                px0 = x0 + w * (0.12 + j * 0.78 / cols)
                py0 = y0 + h * (0.08 + i * 0.84 / rows)
                panel = (px0, py0, px0 + w * (0.78 / cols - 0.08), py0 + h * (0.84 / rows - 0.05))
                draw.rectangle(panel, outline=_shade(colour, rng.uniform(0.5, 0.8)), width=max(1, round(w * 0.025)))
    if rng.random() < 0.4:  # glass at the top
        draw.rectangle((x0 + w * 0.2, y0 + h * 0.08, x1 - w * 0.2, y0 + h * 0.3),
                       fill=random_colour(rng, rng.uniform(60, 220), 0.3))
    knob = (x0 + w * rng.choice([0.12, 0.82]), y0 + h * 0.52)
    k = max(1.0, w * 0.04)
    draw.ellipse((knob[0] - k, knob[1] - k, knob[0] + k, knob[1] + k), fill=(200, 170, 80) if rng.random() < 0.5
                 else (30, 30, 30))


def _window(rng: np.random.Generator, draw: ImageDraw.ImageDraw, r: tuple, shutters: bool) -> None:
    x0, y0, x1, y1 = r
    w, h = x1 - x0, y1 - y0
    glass = random_colour(rng, rng.uniform(30, 230), rng.uniform(0, 0.6))
    frame = (235, 235, 230) if rng.random() < 0.6 else random_colour(rng, rng.uniform(20, 120), 0.3)
    bar = max(1, round(min(w, h) * rng.uniform(0.03, 0.07)))
    draw.rectangle(r, fill=glass, outline=frame, width=bar + 1)
    for k in range(1, int(rng.integers(1, 4))):  # bars: 1-3 columns, 1-2 rows of panes
        draw.line((x0 + w * k / 3, y0, x0 + w * k / 3, y1), fill=frame, width=bar)
    if rng.random() < 0.6:
        draw.line((x0, y0 + h / 2, x1, y0 + h / 2), fill=frame, width=bar)
    if shutters:
        colour = random_colour(rng, rng.uniform(30, 200), rng.uniform(0.2, 1.0))
        for sx0 in (x0 - w * 0.45, x1 + w * 0.05):
            draw.rectangle((sx0, y0, sx0 + w * 0.4, y1), fill=colour, outline=_shade(colour, 0.6))
            for y in np.arange(y0 + h * 0.06, y1, max(2.0, h * rng.uniform(0.05, 0.1))):  # slats
                draw.line((sx0 + 1, y, sx0 + w * 0.4 - 1, y), fill=_shade(colour, 0.7), width=1)


def house_front(rng: np.random.Generator, image: np.ndarray, box: np.ndarray | None) -> np.ndarray:
    """`image` (uint8 [H, W, 3]) with a house front drawn on it, clear of the number's `box` (x, y, w, h)
    grown by `KEEP_CLEAR`; None: a scene without a number."""
    height, width = image.shape[:2]
    keep = None
    if box is not None:
        m = KEEP_CLEAR * max(box[2], box[3])
        keep = np.array([box[0] - m, box[1] - m, box[0] + box[2] + m, box[1] + box[3] + m])
    wall = tuple(int(v) for v in np.median(image.reshape(-1, 3), axis=0))
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    placed: list[tuple] = []

    def place(w: float, h: float, bottom: bool = False) -> tuple | None:
        for _ in range(6):
            x0 = rng.uniform(-0.1 * w, width - 0.9 * w)
            y0 = height - h * rng.uniform(0.8, 1.0) if bottom else rng.uniform(-0.1 * h, height - 0.9 * h)
            r = (x0, y0, x0 + w, y0 + h)
            if not _hits(r, keep) and not any(_hits(r, np.array(p)) for p in placed):
                placed.append(r)
                return r
        return None

    if rng.random() < 0.35:  # siding or brick courses: lines across the wall, stopping at the number
        step = height * rng.uniform(0.03, 0.08)
        colour = _shade(wall, rng.uniform(0.6, 0.85))
        for y in np.arange(rng.uniform(0, step), height, step):
            if keep is not None and keep[1] <= y <= keep[3]:
                draw.line((0, y, max(0, keep[0]), y), fill=colour, width=1)
                draw.line((min(width, keep[2]), y, width, y), fill=colour, width=1)
            else:
                draw.line((0, y, width, y), fill=colour, width=1)
    if rng.random() < 0.6:
        r = place(width * rng.uniform(0.15, 0.35), height * rng.uniform(0.5, 0.95), bottom=True)
        if r:
            _door(rng, draw, r, DOOR_COLOURS[int(rng.integers(len(DOOR_COLOURS)))])
    for _ in range(int(rng.integers(0, 4))):
        r = place(width * rng.uniform(0.1, 0.3), height * rng.uniform(0.12, 0.35))
        if r:
            _window(rng, draw, r, shutters=rng.random() < 0.3)
    if rng.random() < 0.4:  # a lamp on its bracket
        s = min(width, height) * rng.uniform(0.04, 0.1)
        r = place(s, 1.6 * s)
        if r:
            bright = rng.random() < 0.5
            draw.line((r[0], r[1] + 0.3 * s, r[0] + 0.5 * s, r[1] + 0.3 * s), fill=(30, 30, 30),
                      width=max(1, round(s / 8)))
            draw.ellipse((r[0] + 0.2 * s, r[1] + 0.3 * s, r[2], r[3]),
                         fill=(255, 240, 190) if bright else random_colour(rng, rng.uniform(20, 90), 0.2),
                         outline=(30, 30, 30))
    if rng.random() < 0.2:  # a mailbox with its slot
        s = min(width, height) * rng.uniform(0.06, 0.14)
        r = place(1.3 * s, s)
        if r:
            colour = random_colour(rng, rng.uniform(20, 200), rng.uniform(0, 1.0))
            draw.rectangle(r, fill=colour, outline=_shade(colour, 0.5))
            draw.line((r[0] + 0.2 * s, r[1] + 0.3 * s, r[2] - 0.2 * s, r[1] + 0.3 * s), fill=(20, 20, 20),
                      width=max(1, round(s / 10)))
    if rng.random() < 0.3:  # plants along the bottom
        for _ in range(int(rng.integers(2, 7))):
            s = min(width, height) * rng.uniform(0.05, 0.2)
            x, y = rng.uniform(0, width), height - rng.uniform(0, 0.5) * s
            r = (x - s, y - s, x + s, y + s)
            if not _hits(r, keep):
                flowers = rng.random() < 0.2
                draw.ellipse(r, fill=random_colour(rng, rng.uniform(30, 120), rng.uniform(0.6, 1.4)) if flowers
                             else (int(rng.integers(20, 70)), int(rng.integers(60, 140)), int(rng.integers(20, 60))))
    layer = layer.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 0.8)))
    picture = Image.fromarray(image).convert("RGBA")
    picture.alpha_composite(layer)
    return np.asarray(picture.convert("RGB"))
