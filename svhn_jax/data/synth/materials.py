"""The materials of a synthetic street photo: fonts, colours, contrast, wall textures, clutter and text.

`palette` picks what the number is painted with and on; `background` paints a wall with clutter and
distractor words or digits, never over the number; `glyph` gives a digit's ink in a TrueType or
OpenType face of a `font_set`: the faces inside matplotlib's wheel, and with "open" also the faces of
the font packages in `OPEN_FONTS`. `render` puts these together into a photo.
"""
from __future__ import annotations

import functools
import importlib.util
import math
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# What makes the task hard (tune here): how often each nuisance happens and how strong it gets.
SCHEME_P = {"dark_on_light": 0.3, "light_on_dark": 0.25, "wall": 0.37, "tiles": 0.08}
P_DISTRACT, P_CLUTTER = 0.45, 0.5  # distractor words or digits; clutter (frames, lamps, wires)
MIN_CONTRAST = 65.0           # luminance difference between digits and what they sit on (0-255) ...
LOW_CONTRAST, P_LOW_CONTRAST = 35.0, 0.3  # ... or, in faded or dim photos, at least this much
_FONT_DIR = Path(importlib.util.find_spec("matplotlib").origin).parent / "mpl-data" / "fonts" / "ttf"
FONTS = {  # TrueType faces shipped inside matplotlib's wheel -> how often house numbers use them
    "DejaVuSans-Bold.ttf": 4, "DejaVuSans.ttf": 3, "DejaVuSansMono-Bold.ttf": 2, "DejaVuSansMono.ttf": 1,
    "DejaVuSerif-Bold.ttf": 2, "DejaVuSerif.ttf": 1.5, "STIXGeneralBol.ttf": 2, "STIXGeneral.ttf": 1,
    "cmb10.ttf": 1.5, "cmss10.ttf": 1.5, "cmr10.ttf": 0.7, "cmtt10.ttf": 0.5,
    "DejaVuSans-BoldOblique.ttf": 0.7, "DejaVuSans-Oblique.ttf": 0.3, "DejaVuSansMono-BoldOblique.ttf": 0.2,
    "DejaVuSansMono-Oblique.ttf": 0.1, "DejaVuSerif-BoldItalic.ttf": 0.4, "DejaVuSerif-Italic.ttf": 0.2,
    "STIXGeneralBolIta.ttf": 0.4, "STIXGeneralItalic.ttf": 0.2, "cmti10.ttf": 0.2,
}
OPEN_FONTS = {  # faces with an open licence (SIL OFL 1.1, Apache 2.0) from font packages on PyPI, pinned in
    # pyproject.toml: (package, file in its files/ folder) -> how often; `font_set("open")` adds them
    ("font_lato", "Lato-Black.ttf"): 1, ("font_lato", "Lato-Bold.ttf"): 1.5, ("font_lato", "Lato-Regular.ttf"): 1,
    ("font_lato", "Lato-Italic.ttf"): 0.2, ("font_lato", "Lato-BoldItalic.ttf"): 0.3,
    ("font_manrope", "Manrope-ExtraBold.ttf"): 1, ("font_manrope", "Manrope-Bold.ttf"): 1,
    ("font_manrope", "Manrope-Regular.ttf"): 0.7,
    ("font_rhd", "RedHatDisplay-Black.ttf"): 1, ("font_rhd", "RedHatDisplay-Bold.ttf"): 1,
    ("font_rhd", "RedHatDisplay-Medium.ttf"): 0.7, ("font_rhd", "RedHatDisplay-BoldItalic.ttf"): 0.3,
    ("font_hanken_grotesk", "HankenGrotesk-Bold.otf"): 1, ("font_hanken_grotesk", "HankenGrotesk-Regular.otf"): 0.7,
    ("font_hanken_grotesk", "HankenGrotesk-Light.otf"): 0.3,
    ("font_source_sans_pro", "SourceSansPro-Black.ttf"): 1, ("font_source_sans_pro", "SourceSansPro-Bold.ttf"): 1,
    ("font_source_sans_pro", "SourceSansPro-Regular.ttf"): 0.7,
    ("font_source_serif_pro", "SourceSerifPro-Bold.ttf"): 1,
    ("font_source_serif_pro", "SourceSerifPro-Semibold.ttf"): 1,
    ("font_source_serif_pro", "SourceSerifPro-Regular.ttf"): 0.7,
    ("font_caladea", "Caladea-Bold.ttf"): 1, ("font_caladea", "Caladea-Regular.ttf"): 0.7,
    ("font_caladea", "Caladea-BoldItalic.ttf"): 0.3,
    ("font_fjallaone", "FjallaOne-Regular.ttf"): 1.5,      # condensed
    ("font_fredoka_one", "FredokaOne-Regular.ttf"): 1,     # rounded
    ("font_amatic_sc", "AmaticSC-Bold.ttf"): 0.7,          # hand-drawn, narrow
    ("font_intuitive", "Intuitive.ttf"): 0.5,              # hand-drawn
}
FONT_SETS = ("matplotlib", "open")
_MATPLOTLIB_PATHS = tuple(str(_FONT_DIR / name) for name in FONTS)


def _package_font(package: str, name: str) -> str:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"synthetic_fonts=open needs the font package {package.replace('_', '-')}: "
                                  f"pip install -e . (it is a dependency of svhn_jax)")
    return str(Path(spec.submodule_search_locations[0]) / "files" / name)


@functools.lru_cache(maxsize=None)
def font_set(name: str = "matplotlib") -> tuple[tuple[str, ...], np.ndarray]:
    """(font files, how often each is drawn) of the digits' faces: "matplotlib" (the faces inside
    matplotlib's wheel: renderer 2's images) or "open" (those plus `OPEN_FONTS`)."""
    if name not in FONT_SETS:
        raise ValueError(f"unknown font set {name!r}: choose one of {', '.join(FONT_SETS)}")
    files, weights = list(_MATPLOTLIB_PATHS), list(FONTS.values())
    if name == "open":
        files += [_package_font(package, file) for package, file in OPEN_FONTS]
        weights += list(OPEN_FONTS.values())
    return tuple(files), np.array(weights) / sum(weights)


def text_font(rng: np.random.Generator) -> str:
    """A face for words and other text on the wall (matplotlib's faces, uniformly)."""
    return _MATPLOTLIB_PATHS[int(rng.integers(len(_MATPLOTLIB_PATHS)))]


_GLYPH_PX = 72
_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZabcdehknorstuy"
_WORDS = ("ST", "AVE", "RD", "No", "APT", "DR", "LN", "BLVD", "WAY", "CT", "SUITE", "OPEN", "EXIT",
          "N", "S", "E", "W", "PL", "HWY", "Ste", "Unit", "CAFE", "BAR", "SHOP", "INN", "PARK")
_LUMA = np.array([0.299, 0.587, 0.114])


@functools.lru_cache(maxsize=None)
def truetype(font: str) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font, _GLYPH_PX)


@functools.lru_cache(maxsize=None)
def glyph(font: str, char: str) -> Image.Image:
    """The ink of `char` in the font file `font`, cropped tight ('L' mask)."""
    f = truetype(font)
    if char == "0" and "Mono" in Path(font).name:
        char = "O"  # DejaVu Sans Mono slashes its zero; house numbers don't
    left, top, right, bottom = f.getbbox(char)
    canvas = Image.new("L", (right - left + 4, bottom - top + 4))
    ImageDraw.Draw(canvas).text((2 - left, 2 - top), char, font=f, fill=255)
    return canvas.crop(canvas.getbbox())


def luminance(colour: Sequence[float]) -> float:
    return float(np.dot(colour, _LUMA))


def random_colour(rng: np.random.Generator, lum: float, sat: float) -> tuple[int, int, int]:
    """A colour of luminance ~`lum` (0-255) and saturation ~`sat` (0 grey .. 2 vivid)."""
    v = rng.standard_normal(3)
    c = np.clip(lum + sat * 45.0 * (v - v @ _LUMA), 0, 255)
    return tuple(int(x) for x in c)


def contrasting(rng: np.random.Generator, base: tuple[int, int, int], lighter: bool | None = None,
                 contrast: float = MIN_CONTRAST) -> tuple[int, int, int]:
    """An ink colour whose luminance differs from `base` by at least `contrast`."""
    lb = luminance(base)
    can_up, can_down = lb + contrast <= 250, lb - contrast >= 5
    if lighter is None or not (can_up if lighter else can_down):
        lighter = bool(can_up and (not can_down or rng.random() < 0.5))
    lo, hi = (lb + contrast, 250.0) if lighter else (5.0, lb - contrast)
    ink = random_colour(rng, rng.uniform(lo, hi), rng.uniform(0, 1.2) * (rng.random() < 0.5))
    if abs(luminance(ink) - lb) < 0.8 * contrast:  # clipping ate the contrast: plain grey instead
        g = int(rng.uniform(lo, hi))
        ink = (g, g, g)
    return ink


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell_y: float, cell_x: float) -> np.ndarray:
    """Band-limited noise (float32 [h, w], roughly unit variance) with features ~cell pixels."""
    gh, gw = int(math.ceil(h / max(cell_y, 1.0))) + 2, int(math.ceil(w / max(cell_x, 1.0))) + 2
    small = Image.fromarray(rng.standard_normal((gh, gw)).astype(np.float32))
    return np.asarray(small.resize((w, h), Image.Resampling.BICUBIC), np.float32)


def _texture(rng: np.random.Generator, h: int, w: int, d: float) -> np.ndarray:
    """A wall's relief (float32 [h, w], about -1..1): stucco, boards, planks or bricks; `d` = digit height."""
    kind = rng.choice(["flat", "stucco", "boards", "wood", "brick"], p=[0.25, 0.25, 0.2, 0.15, 0.15])
    grain = rng.standard_normal((h, w), dtype=np.float32) * np.float32(0.25)
    if kind == "flat":
        return grain + 0.4 * _smooth_noise(rng, h, w, d, d)
    if kind == "stucco":
        return grain + 0.6 * _smooth_noise(rng, h, w, d * 0.15 + 1, d * 0.15 + 1)
    if kind in ("boards", "wood"):  # a profile across the boards, streaks along them
        period = d * rng.uniform(0.3, 0.9)
        horizontal = (kind == "boards") == (rng.random() < 0.8)
        phase = (np.arange(h if horizontal else w, dtype=np.float32) / period) % 1.0
        profile = 0.8 * phase - 0.4 - 1.2 * (phase < rng.uniform(0.06, 0.15)).astype(np.float32)
        if horizontal:
            return profile[:, None] + 0.4 * _smooth_noise(rng, h, w, 1.5, d) + grain
        return profile[None, :] + 0.4 * _smooth_noise(rng, h, w, d, 1.5) + grain
    bh = d * rng.uniform(0.25, 0.55)
    bw = bh * rng.uniform(2.0, 3.2)
    y, x = np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None, :]
    row = np.floor(y / bh)
    xs = x + (row % 2) * (bw / 2)
    brick = ((row * 37 + np.floor(xs / bw) * 11) % 512).astype(np.intp)  # a shade per brick
    shade = rng.uniform(-0.5, 0.5, 512).astype(np.float32)[brick]
    mortar = ((y % bh) < bh * 0.12) | ((xs % bw) < bh * 0.12)
    return np.where(mortar, np.float32(rng.choice([-1.2, 1.2])), shade) + grain


def _rect_hits(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def text_mask(font: str, text: str, height: int, condense: float) -> Image.Image:
    """`text` as one 'L' mask `height` pixels tall (glyph tops aligned, a small gap between)."""
    glyphs = [glyph(font, c) for c in text if c != " "]
    ref = max(g.height for g in glyphs)
    sizes = [(max(1, round(g.width * height / ref * condense)), max(1, round(g.height * height / ref)))
             for g in glyphs]
    gap = max(1, height // 8)
    mask = Image.new("L", (sum(w for w, _ in sizes) + gap * (len(sizes) - 1), height))
    x = 0
    for g, (w, h) in zip(glyphs, sizes):
        mask.paste(g.resize((w, h), Image.Resampling.BILINEAR), (x, height - h if h < height * 0.8 else 0))
        x += w + gap
    return mask


def palette(rng: np.random.Generator) -> tuple[str, tuple, tuple, tuple]:
    """(scheme, wall colour, colour the digits sit on, ink colour)."""
    scheme = str(rng.choice(list(SCHEME_P), p=np.asarray(list(SCHEME_P.values()))))
    wall = random_colour(rng, rng.uniform(20, 235), rng.uniform(0, 1.2) ** 2)
    if scheme == "wall":
        base = wall
    else:
        light = {"dark_on_light": True, "light_on_dark": False}.get(scheme, rng.random() < 0.6)
        base = random_colour(rng, rng.uniform(150, 250) if light else rng.uniform(10, 110),
                       rng.uniform(0, 0.7) if light else rng.uniform(0.2, 1.5))
    contrast = LOW_CONTRAST if rng.random() < P_LOW_CONTRAST else MIN_CONTRAST
    ink = contrasting(rng, base, lighter={"dark_on_light": False, "light_on_dark": True}.get(scheme),
                       contrast=contrast)
    return scheme, wall, base, ink


def background(rng: np.random.Generator, size: tuple[int, int], d: float, union: np.ndarray,
                scheme: str, wall: tuple, ink: tuple, digit_text_p: float = 0.35) -> Image.Image:
    """A textured wall with clutter and distractor text, none of it over the number.

    `digit_text_p`: how often a distractor is a digit string (0 for scenes that must hold no number)."""
    ww, wh = size
    amp = rng.uniform(4, 30) if scheme == "wall" else rng.uniform(4, 55)
    tint = (amp * (1.0 + rng.normal(0, 0.15, 3))).astype(np.float32)
    bg = _texture(rng, wh, ww, d)[..., None] * tint + np.asarray(wall, np.float32)
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    keep_out = union + np.array([-1, -1, 1, 1]) * 0.25 * d
    if rng.random() < P_CLUTTER:  # window frames, doors, lamps, wires
        for _ in range(int(rng.integers(1, 5))):
            cx, cy = rng.uniform(-0.1, 1.1) * ww, rng.uniform(-0.1, 1.1) * wh
            rw, rh = rng.uniform(0.05, 0.8) * ww, rng.uniform(0.05, 0.8) * wh
            shape = (cx - rw / 2, cy - rh / 2, cx + rw / 2, cy + rh / 2)
            if _rect_hits(shape, keep_out):
                continue
            colour = random_colour(rng, rng.uniform(0, 255), rng.uniform(0, 1.5))
            kind = rng.integers(4)
            if kind == 0:
                draw.rectangle(shape, fill=colour)
            elif kind == 1:
                draw.rectangle(shape, outline=colour, width=max(1, int(d * rng.uniform(0.05, 0.2))))
            elif kind == 2:
                draw.ellipse(shape, fill=colour)
            else:
                draw.line(shape, fill=colour, width=max(1, int(d * rng.uniform(0.03, 0.15))))
    if rng.random() < P_DISTRACT:  # words and letters anywhere off the number; digits off its crop
        uw, uh = union[2] - union[0], union[3] - union[1]
        for _ in range(int(rng.integers(1, 4))):
            if rng.random() < digit_text_p:
                text = "".join(str(c) for c in rng.integers(0, 10, int(rng.integers(1, 4))))
                forbid = union + np.array([-1, -1, 1, 1]) * np.array([0.25 * uw + 0.3 * d, 0.25 * uh + 0.3 * d] * 2)
            else:
                text = str(rng.choice(_WORDS)) if rng.random() < 0.6 else str(rng.choice(list(_LETTERS)))
                forbid = union + np.array([-1, -1, 1, 1]) * 0.15 * d
            th = max(5, int(d * rng.uniform(0.35, 1.0)))
            mask = text_mask(text_font(rng), text, th, rng.uniform(0.7, 1.1))
            for _ in range(4):
                x, y = int(rng.uniform(-0.2, 1.0) * ww), int(rng.uniform(-0.2, 1.0) * wh)
                if not _rect_hits((x, y, x + mask.width, y + mask.height), forbid):
                    img.paste(ink if rng.random() < 0.5 else contrasting(rng, wall), (x, y), mask)
                    break
    return img
