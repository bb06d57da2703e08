"""dataset=lines: digit lines 48 pixels high for the line reader's fine-tune (`tasks.line_reader`).

A line is the union box of a photo's digit boxes grown by ``config.line_pad`` of its height on each
side and cut out as the whole-photo pipeline cuts a localiser box (`infer.line_reading.box_quad` and
`rotate_crop`: the same warp, written here again as data sits below inference), then resized to
`HEIGHT` pixels high keeping its aspect (as `line_reading.input_width`: at least 8 pixels, at most
`WIDTH` wide, a longer line squeezed) and laid on the left of a mid-grey (`PAD_VALUE`)
canvas of `WIDTH` pixels: the reader's 48 x 320 input, stored as uint8 in the project's HDF5 contract
(`data.store`; at most 5 digits a line, longer numbers dropped and counted). The device step turns
the grey canvas into the exact zeros the reader is padded with (`tasks.line_reader.prepare`).

A split holds
- the real photos of ``<config.real_dir>/<split>/`` (SVHN format 1: PNGs + digitStruct.mat) when
  ``config.real_dir`` is set, with their official boxes;
- and, for a split of ``config.train_splits``, ``config.num_line_renders`` lines cut from the project's renderer
  (`data.synth.release.render_example`: SVHN-like photos with their blur, low resolution, fonts and
  plates; seed ``paths.split_seed(split)``); an evaluation split without real photos holds
  ``config.num_line_renders_test`` renders instead.
The file's ``source`` attribute records all of it; a file made from anything else is remade.

  python -m svhn_jax.main --config=configs/line_reader.py --workdir=DIR   # makes the splits on first use
"""
from __future__ import annotations

from pathlib import Path

import ml_collections
import numpy as np
from PIL import Image

from svhn_jax.data import paths, store
from svhn_jax.data.labels import MAX_DIGITS
from svhn_jax.data.sources import DataMissingError
from svhn_jax.data.svhn.digitstruct import read_digitstruct
from svhn_jax.data.synth.release import RENDERER_VERSION, render_example

VERSION = 1          # bump when a change here changes the lines: cached splits are remade
HEIGHT = 48          # the recogniser's input height
WIDTH = 320          # PaddleOCR's narrowest padded line (`infer.line_reading.WIDTHS`' first)
PAD_VALUE = 128      # the canvas right of the line (mid grey; zero once normalised on device)


def line_image(crop: np.ndarray, width: int = WIDTH) -> np.ndarray:
    """RGB uint8 crop -> uint8 [HEIGHT, width, 3]: resized to HEIGHT high (aspect kept, at most `width`
    wide), on the left of a `PAD_VALUE` canvas."""
    import cv2
    w = int(min(width, max(8, np.ceil(HEIGHT * crop.shape[1] / max(crop.shape[0], 1)))))
    out = np.full((HEIGHT, width, 3), PAD_VALUE, np.uint8)
    out[:, :w] = cv2.resize(np.ascontiguousarray(crop), (w, HEIGHT), interpolation=cv2.INTER_LINEAR)
    return out


def union_box(boxes: np.ndarray) -> tuple[float, float, float, float]:
    """[k, 4] digit boxes (left, top, width, height) -> their union as (x, y, w, h)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
    return (float(x0), float(y0), float((boxes[:, 0] + boxes[:, 2]).max() - x0),
            float((boxes[:, 1] + boxes[:, 3]).max() - y0))


def cut_line(image: np.ndarray, boxes: np.ndarray, pad: float) -> np.ndarray:
    """The line of `image` holding the digit boxes, as the pipeline cuts a box (pad: of its height, each
    side): the padded box warped (bicubic, edges replicated) to its rounded size."""
    import cv2
    x, y, w, h = union_box(boxes)
    p = pad * h
    quad = np.array([[x - p, y - p], [x + w + p, y - p], [x + w + p, y + h + p], [x - p, y + h + p]], np.float32)
    out_w, out_h = max(1, int(round(w + 2 * p))), max(1, int(round(h + 2 * p)))
    target = np.array([[0, 0], [out_w, 0], [out_w, out_h], [0, out_h]], np.float32)
    return cv2.warpPerspective(image, cv2.getPerspectiveTransform(quad, target), (out_w, out_h),
                               flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def real_lines(folder: Path, pad: float) -> tuple[list[np.ndarray], list[str], list[str], int]:
    """(line images, digit strings, file names, number dropped) of an SVHN format-1 folder, in its
    digitStruct.mat's order; photos of more than 5 digits are dropped."""
    mat = folder / "digitStruct.mat"
    if not mat.is_file():
        raise DataMissingError(f"{mat} is missing: real_dir must hold SVHN format-1 folders (PNGs + digitStruct.mat)")
    images, texts, names, dropped = [], [], [], 0
    for entry in read_digitstruct(mat):
        if not 1 <= len(entry.boxes) <= MAX_DIGITS:
            dropped += 1
            continue
        try:
            with Image.open(folder / entry.name) as im:
                photo = np.asarray(im.convert("RGB"))
        except OSError as e:
            raise DataMissingError(f"{folder / entry.name}: cannot read the photo ({e})") from None
        boxes = np.array([[b.left, b.top, b.width, b.height] for b in entry.boxes])
        images.append(line_image(cut_line(photo, boxes, pad)))
        texts.append("".join(str(b.label % 10) for b in entry.boxes))
        names.append(f"{folder.name}/{entry.name}")
    return images, texts, names, dropped


def rendered_lines(seed: int, num: int, pad: float) -> tuple[list[np.ndarray], list[str], list[str]]:
    """(line images, digit strings, names) of renders 0..num-1 of the release `seed`."""
    images, texts, names = [], [], []
    for index in range(num):
        photo, boxes = render_example(seed, index)
        images.append(line_image(cut_line(photo, np.array([[b.left, b.top, b.width, b.height] for b in boxes]),
                                          pad)))
        texts.append("".join(str(b.label % 10) for b in boxes))
        names.append(f"render-{seed}/{index}")
    return images, texts, names


def split_plan(config: ml_collections.ConfigDict, split: str) -> tuple[Path | None, int, int]:
    """(real folder or None, number of renders, their seed) of `split`."""
    real = Path(config.real_dir).expanduser().absolute() / split if config.real_dir else None
    if split in config.train_splits:  # (an evaluation on a training split reads that very file)
        renders = config.num_line_renders
    else:
        renders = 0 if real is not None else config.num_line_renders_test
    return real, int(renders), paths.split_seed(split)


def source_name(config: ml_collections.ConfigDict, split: str) -> str:
    """The ``source`` attribute of a split file: what it was made from."""
    real, renders, seed = split_plan(config, split)
    return (f"lines(version={VERSION}, real={real or ''}, renders={renders}, seed={seed}, "
            f"renderer={RENDERER_VERSION}, pad={float(config.line_pad)}, width={WIDTH})")



def ensure_split(config: ml_collections.ConfigDict, split: str, path: Path) -> None:
    """Makes `split`'s line file at `path` unless it already holds these very lines (`source_name`)."""
    source = source_name(config, split)
    if store.stored_source(path) == source:
        return
    real, renders, seed = split_plan(config, split)
    images, texts, names, dropped = real_lines(real, float(config.line_pad)) if real else ([], [], [], 0)
    more = rendered_lines(seed, renders, float(config.line_pad))
    images, texts, names = images + more[0], texts + more[1], names + more[2]
    if not images:
        raise DataMissingError(f"split {split} of dataset=lines would hold no line (set real_dir or "
                               "num_line_renders)")
    lengths, digits = store.encode_labels(texts)
    store.write_split(path, np.stack(images), lengths, digits, names, recipe=config.recipe, source=source,
                      num_dropped=dropped)
