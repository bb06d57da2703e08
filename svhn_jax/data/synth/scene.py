"""Synthetic whole photos for the localiser: a house number anywhere in a scene, or none at all.

`render_scene(seed, index)` draws one scene and letterboxes it into the localiser's square input
(`preprocess.letterbox`, the same function `predict` applies to a user's photo): uint8 [SIZE, SIZE, 3] and the
number's union box (x, y, w, h in those pixels; NaN when the scene holds no number). Kinds:

- "svhn": an SVHN format-1 photo as `render.render` draws it (mostly tight around the number);
- "wall": a photo of a wall, door or facade with the number anywhere at 5-90 % of the photo's width,
  clutter, words and stray digits around it, sometimes a street name under it and a phone number or
  date elsewhere (digits that are not the house number); sometimes the digits are stacked vertically;
- "none": the same walls, clutter and words, without a number.

With ``scene_facades`` > 0 (a config key), that share of "wall" and "none" scenes is drawn as a house
front (`facade.house_front`: doors, windows, shutters, lamps, siding, plants). Then, scene-wide: a
night exposure (dark scene, bright digits stay bright) or a tilted photo (rotated,
black corners, as users' edited photos are). `write_scenes` renders a set into one HDF5 file (whole or
not at all: a full disk raises an OSError and leaves nothing); `ensure_split` is dataset=scenes in the
data registry (`data/sources.py`): it renders a split once.
"""
from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

import h5py
import ml_collections
import numpy as np
from PIL import Image
from tqdm import tqdm

from svhn_jax.core.fileio import atomic_write
from svhn_jax.core.signals import ordered
from svhn_jax.data import paths
from svhn_jax.data.preprocess import get_recipe, letterbox
from svhn_jax.data.synth.facade import house_front
from svhn_jax.data.synth.geometry import Layout, example_rngs, sample_layout
from svhn_jax.data.synth.materials import text_font, text_mask
from svhn_jax.data.synth.render import render, render_wall

SIZE = get_recipe("scene128_rgb").size  # the localiser's input: the photo letterboxed into SIZE x SIZE
VERSION = 3                     # bump when the scenes change: cached scene files are named with it
KIND_P = {"svhn": 0.35, "wall": 0.5, "none": 0.15}
WIDTH_FRACTION = (0.05, 0.9)    # "wall": the number's width as a fraction of the photo's (log-uniform)
ASPECT = (0.56, 1.8)            # "wall", "none": photo width / height (log-uniform)
P_VERTICAL, P_NIGHT, P_TILT = 0.25, 0.1, 0.1
P_CAPTION, P_PHONE = 0.3, 0.2   # "wall": a street name under the number; a phone number or date elsewhere
STREETS = ("BENSON", "REGENT", "Golden", "OAK", "Maple", "Church", "MILL", "Station", "HIGH", "King", "Elm",
           "ROSE", "Victoria", "Park", "Your")
STREET_KINDS = ("STREET", "AVENUE", "Square", "ROAD", "Lane", "DRIVE", "Court", "Close", "Way", "PLACE", "Gardens")
MAX_TILT = 20.0                 # degrees
MIN_DIGIT_PX = 3                # the smallest digit height drawn in the SIZE-pixel photo
FACADE_STREAM = 4               # the house fronts' own random stream (with seed, index): other draws unchanged


def _photo_size(rng: np.random.Generator) -> tuple[int, int]:
    aspect = math.exp(rng.uniform(*np.log(ASPECT)))
    return (SIZE, max(16, round(SIZE / aspect))) if aspect >= 1 else (max(16, round(SIZE * aspect)), SIZE)


def wall_layout(rng: np.random.Generator) -> Layout:
    """A number from the SVHN statistics placed anywhere on a bigger photo (maybe stacked vertically)."""
    number = sample_layout(rng)
    boxes = number.boxes.astype(float)
    if len(boxes) > 1 and rng.random() < P_VERTICAL:  # one digit under the other, centred, small gaps
        w, h = boxes[:, 2], boxes[:, 3]
        gaps = h * rng.uniform(0.05, 0.35)
        tops = np.r_[0, np.cumsum(h[:-1] + gaps[:-1])]
        boxes = np.c_[(w.max() - w) / 2, tops, w, h]
    boxes[:, :2] -= boxes[:, :2].min(0)
    union_w, union_h = (boxes[:, :2] + boxes[:, 2:]).max(0)
    width, height = _photo_size(rng)
    fraction = math.exp(rng.uniform(*np.log(WIDTH_FRACTION)))
    scale = min(fraction * width / union_w, 0.9 * height / union_h, 0.95 * width / union_w)
    scale = max(scale, MIN_DIGIT_PX / boxes[:, 3].min())
    boxes = boxes * scale
    union_w, union_h = union_w * scale, union_h * scale
    if union_w > width - 2 or union_h > height - 2:  # too small to draw at this size: a bigger photo
        width, height = max(width, math.ceil(union_w) + 2), max(height, math.ceil(union_h) + 2)
    x0, y0 = rng.uniform(0, width - union_w - 1), rng.uniform(0, height - union_h - 1)
    boxes[:, :2] += [x0, y0]
    xy = np.floor(boxes[:, :2])
    wh = np.maximum(np.round(boxes[:, 2:]), [2, MIN_DIGIT_PX])
    wh = np.minimum(wh, [width, height] - xy)
    return Layout(width=width, height=height, labels=number.labels, boxes=np.c_[xy, wh].astype(np.int64))


def _ink(image: np.ndarray, box: np.ndarray) -> tuple[int, int, int]:
    """The colour of the number's ink: the pixel in its box farthest in luminance from the box's median."""
    x, y, w, h = np.round(box).astype(int)
    region = image[y:y + max(1, h), x:x + max(1, w)].reshape(-1, 3).astype(np.float32)
    lum = region @ np.array([0.299, 0.587, 0.114], np.float32)
    return tuple(int(v) for v in region[np.argmax(np.abs(lum - np.median(lum)))])


def _write(rng: np.random.Generator, image: np.ndarray, text: str, height: int, xy: tuple[int, int],
           colour: tuple[int, int, int]) -> np.ndarray:
    mask = text_mask(text_font(rng), text, max(3, height), rng.uniform(0.7, 1.1))
    picture = Image.fromarray(image)
    picture.paste(colour, xy, mask)
    return np.asarray(picture)


def _caption(rng: np.random.Generator, image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """A street name in the number's ink, under it (or over it), smaller: "67 BENSON STREET"."""
    x, y, w, h = box
    text = f"{rng.choice(STREETS)} {rng.choice(STREET_KINDS)}" if rng.random() < 0.7 else str(rng.choice(STREETS))
    th = int(round(h * rng.uniform(0.2, 0.4)))
    gap = h * rng.uniform(0.1, 0.3)
    top = y + h + gap if rng.random() < 0.8 else y - gap - th
    width = th * 0.6 * len(text)
    return _write(rng, image, text, th, (int(x + w / 2 - width / 2), int(top)), _ink(image, box))


def _phone(rng: np.random.Generator, image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """A phone number or a date, small, somewhere off the number (digits that are not the house number)."""
    digits = "".join(str(d) for d in rng.integers(0, 10, int(rng.integers(6, 11))))
    text = digits if rng.random() < 0.6 else f"{digits[:2]} {digits[2:4]} {digits[4:6]}"
    th = max(3, int(round(box[3] * rng.uniform(0.15, 0.4))))
    h, w = image.shape[:2]
    for _ in range(5):
        xy = (int(rng.uniform(0, w * 0.8)), int(rng.uniform(0, h - th)))
        if not (xy[0] < box[0] + box[2] + th and box[0] - th * len(text) < xy[0]
                and xy[1] < box[1] + box[3] + th and box[1] - th < xy[1]):
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            return _write(rng, image, text, th, xy, colour)
    return image


def _night(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """A dark exposure: shadows sink, the brightest things (lit digits, lamps) stay bright."""
    x = image.astype(np.float32) / 255.0
    return (255.0 * x ** rng.uniform(1.8, 3.5)).astype(np.uint8)


def _tilt(rng: np.random.Generator, image: np.ndarray, box: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The photo rotated about its centre onto a larger black canvas (as users' straightened photos are);
    the box spanned by the rotated box's corners."""
    angle = rng.uniform(-MAX_TILT, MAX_TILT)
    h, w = image.shape[:2]
    rotated = np.asarray(Image.fromarray(image).rotate(angle, Image.Resampling.BILINEAR, expand=True))
    if box is None:
        return rotated, None
    x, y, bw, bh = box
    corners = np.array([[x, y], [x + bw, y], [x, y + bh], [x + bw, y + bh]]) - [w / 2, h / 2]
    t = math.radians(angle)  # PIL turns counter-clockwise on screen (y down)
    rot = np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
    size = np.array([rotated.shape[1], rotated.shape[0]])
    p = np.clip(corners @ rot.T + size / 2, 0, size)
    return rotated, np.r_[p.min(0), p.max(0) - p.min(0)]


def _kind_and_layout(geometry: np.random.Generator) -> tuple[str, Layout | None]:
    """A scene's first draws: its kind and, unless it is "none", its number's layout."""
    kind = str(geometry.choice(list(KIND_P), p=list(KIND_P.values())))
    if kind == "none":
        return kind, None
    return kind, sample_layout(geometry) if kind == "svhn" else wall_layout(geometry)


def scene_photo(seed: int, index: int, scale: int = 1, facades: float = 0.0) -> tuple[np.ndarray, np.ndarray | None]:
    """Scene `index` of the set `seed` as a photo, before letterboxing, drawn `scale` times larger (the
    same kind, number and layout; a photo's resolution for `whole_photo.read_photo` to read): (uint8
    [H, W, 3], float [4] union box x, y, w, h in its pixels, or None when it holds no number).
    `facades`: the share of "wall" and "none" scenes drawn as a house front (`facade.house_front`, from
    draws of their own: with 0 the scenes are those of before)."""
    geometry, appearance = example_rngs(seed, index)
    kind, layout = _kind_and_layout(geometry)
    box = None
    if layout is None:
        width, height = _photo_size(geometry)
        text_height = SIZE * math.exp(geometry.uniform(math.log(0.03), math.log(0.3)))
        image = render_wall(appearance, width * scale, height * scale, d=text_height * scale)
    else:
        if scale != 1:
            layout = Layout(width=layout.width * scale, height=layout.height * scale, labels=layout.labels,
                            boxes=layout.boxes * scale)
        image, boxes = render(layout, appearance)
        box = np.r_[boxes[:, :2].min(0), (boxes[:, :2] + boxes[:, 2:]).max(0) - boxes[:, :2].min(0)].astype(float)
        if kind == "wall" and appearance.random() < P_CAPTION:
            image = _caption(appearance, image, box)
        if kind == "wall" and appearance.random() < P_PHONE:
            image = _phone(appearance, image, box)
    if facades > 0 and kind != "svhn":
        front = np.random.default_rng([int(seed), int(index), FACADE_STREAM])
        if front.random() < facades:
            image = house_front(front, image, box)
    if kind != "svhn" and appearance.random() < P_NIGHT:
        image = _night(appearance, image)
    if kind != "svhn" and appearance.random() < P_TILT:
        image, box = _tilt(appearance, image, box)
    return image, box


def render_scene(seed: int, index: int, facades: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Scene `index` of the set `seed`: (uint8 [SIZE, SIZE, 3], float32 [4] union box x, y, w, h in its
    pixels, all NaN when it holds no number). Depends only on (seed, index, facades)."""
    image, box = scene_photo(seed, index, facades=facades)
    canvas, scale, (left, top) = letterbox(image, SIZE)
    if box is None:
        return canvas, np.full(4, np.nan, np.float32)
    return canvas, (np.r_[box[:2] * scale + [left, top], box[2:] * scale]).astype(np.float32)


def scene_number(seed: int, index: int) -> str:
    """The house number scene `index` of the set `seed` shows ("" when none), from the same draws as
    `render_scene` (`_kind_and_layout`), for scoring whole-photo reading on scenes."""
    _, layout = _kind_and_layout(example_rngs(seed, index)[0])
    return "" if layout is None else "".join(str(label % 10) for label in layout.labels)


def _render_range(task: tuple[int, int, int, float]) -> tuple[np.ndarray, np.ndarray]:
    seed, start, stop, facades = task
    scenes = [render_scene(seed, i, facades) for i in range(start, stop)]
    return np.stack([s[0] for s in scenes]), np.stack([s[1] for s in scenes])


def write_scenes(path: str | os.PathLike, num: int, seed: int, workers: int = 2, chunk: int = 250,
                 facades: float = 0.0) -> Path:
    """Renders scenes 0 .. num-1 of `seed` (`facades`: as `scene_photo`) into the HDF5 file `path`
    ("images" uint8 [N, S, S, 3], "boxes" float32 [N, 4]), written whole or not at all; the same
    (num, seed, facades) give the same bytes."""
    path = Path(path)
    tasks = [(seed, s, min(s + chunk, num), facades) for s in range(0, num, chunk)]

    def write(tmp: Path) -> None:
        # HDF5's chunk cache is off, as in `store.SplitWriter`: a failed write (a full disk) raises in the
        # assignment that made it, not later in a cache flush h5py can only report from a destructor
        # (where it ended in a segfault).
        f = h5py.File(tmp, "w", rdcc_nbytes=0)
        try:
            images = f.create_dataset("images", (num, SIZE, SIZE, 3), np.uint8, chunks=(min(64, num), SIZE, SIZE, 3))
            boxes = f.create_dataset("boxes", (num, 4), np.float32)
            f.attrs.update(seed=seed, num=num, size=SIZE, version=VERSION, facades=facades)
            # closed here, so an error or a signal ends the workers now, not when the generator is collected
            with contextlib.closing(ordered(_render_range, [(task,) for task in tasks], workers)) as done:
                for (_, start, stop, _), (im, bx) in tqdm(zip(tasks, done), total=len(tasks),
                                                          desc=f"render {path.name}", unit="chunk", leave=False):
                    images[start:stop], boxes[start:stop] = im, bx
        except BaseException:
            with contextlib.suppress(OSError, RuntimeError):  # the error that stopped the writing is the one
                f.close()                                      # to report, not a failed close after it
            raise
        f.close()

    atomic_write(path, write)
    return path


def read_scenes(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, S, S, 3], boxes float32 [N, 4]) of a file `write_scenes` wrote."""
    with h5py.File(path, "r") as f:
        return f["images"][()], f["boxes"][()]


def seed_and_num(config: ml_collections.ConfigDict, split: str) -> tuple[int, int]:
    """(seed, number of scenes) of a split of dataset=scenes."""
    num = config.num_scenes_test if split == config.eval_split else config.num_scenes_train
    return config.scene_seed + paths.split_seed(split), num


def _stored(path: Path) -> tuple | None:
    """(seed, num, version) a scene file was rendered with; None when absent or unreadable."""
    try:
        with h5py.File(path, "r") as f:
            return tuple(int(f.attrs[k]) for k in ("seed", "num", "version"))
    except (OSError, KeyError):
        return None


def ensure_split(config: ml_collections.ConfigDict, split: str, path: Path) -> None:
    """Renders `split` into `path` unless it already holds these very scenes (seed, number, version)."""
    seed, num = seed_and_num(config, split)
    if _stored(path) != (seed, num, VERSION):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_scenes(path, num, seed, facades=float(config.get("scene_facades", 0.0)))
