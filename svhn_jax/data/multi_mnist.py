"""dataset=multi_mnist: 64x64 images holding 1-5 MNIST digits in a row, the seed report's second step.

  python -m svhn_jax.prepare --dataset=multi_mnist --mnist_npz=PATH --num_examples=N --seed=S --out=FILE.h5

`compose` is a pure function of (source digits, labels, count, seed): it draws, per image, a length
uniform in 1-5, that many source digits (uniformly, with replacement), a common digit height with a
±10 % per-digit variation, gaps between neighbours from slight overlap (at most half the narrower
digit, so reading order holds) to a little space, a per-digit vertical jitter, and a placement;
each digit is cropped to its ink box, resized (bilinear) and drawn with `max` onto a black canvas.
Everything is shrunk as needed to keep every digit wholly inside the image.

The randomness is numpy's PCG64 (`np.random.default_rng(seed)`) rather than a `jax.random` key:
the work is a sequential, variable-length loop on the host, numpy is faster there, and PCG64's
stream is identical on every platform, so a seed fixes the file bit for bit.

Train/test separation by source digit (`digit_pool`): with TFDS mnist the ``train`` pool is its
train split and the ``test`` pool its test split; with an .npz, a fixed permutation (PCG64 seeded
with `POOL_SEED`, independent of the composition seed) of its N digits puts the last
``round(N * holdout_fraction)`` in the ``test`` pool and the rest in the ``train`` pool. A test file
is thus composed only of digits no training file ever uses, whatever seeds the files were made with.
Training composes its splits on first use (`ensure_split`) and recomposes them when the settings change.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterator

import h5py
import ml_collections
import numpy as np
from PIL import Image

from svhn_jax.data import paths, preprocess, store
from svhn_jax.data import tfds as tfds_sources
from svhn_jax.data.labels import MAX_DIGITS
from svhn_jax.data.sources import DataMissingError

POOLS = ("train", "test")
POOL_SEED = 0
DEFAULT_HOLDOUT = 0.2
_HEIGHT = (0.40, 0.70)      # common digit height, fraction of the image size
_HEIGHT_JITTER = 0.10       # per-digit height variation, fraction of the common height
_GAP = (-0.12, 0.25)        # gap between neighbours, fraction of the height (< 0: overlap)
_V_JITTER = 0.08            # per-digit vertical jitter, fraction of the image size
_MARGIN = 1                 # pixels kept free at the border


@dataclasses.dataclass(frozen=True)
class Composed:
    """Composed examples; `boxes` and `sources` say where each digit went and where it came from."""

    images: np.ndarray    # uint8 [N, S, S, 1]
    lengths: np.ndarray   # int32 [N]
    digits: np.ndarray    # int32 [N, 5], PAD after the last digit
    boxes: np.ndarray     # int32 [N, 5, 4] (x, y, w, h) per digit, zeros after the last
    sources: np.ndarray   # int64 [N, 5] index into the source images, -1 after the last


def load_npz(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """An .npz with ``images`` uint8 [N, 28, 28] (or [N, 28, 28, 1]) and ``labels`` 0-9 [N]."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in ("images", "labels") if k in f.files}
    except Exception as e:  # not a zip, truncated, an .npy, pickled objects...
        raise ValueError(f"{path}: not a readable .npz ({type(e).__name__}: {e})") from None
    if len(arrays) < 2:
        raise ValueError(f"{path}: needs arrays images and labels, found only {sorted(arrays)}")
    images, labels = arrays["images"], arrays["labels"]
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{path}: images must be uint8 [N, 28, 28], got {images.dtype} {list(images.shape)}")
    if not np.issubdtype(labels.dtype, np.integer) or labels.shape != images.shape[:1]:
        raise ValueError(f"{path}: labels must be integers [{images.shape[0]}], "
                         f"got {labels.dtype} {list(labels.shape)}")
    if labels.size == 0 or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{path}: need at least one digit, with labels in 0-9")
    return images, labels.astype(np.int64)


def pool_indices(num_source: int, pool: str, holdout_fraction: float = DEFAULT_HOLDOUT) -> np.ndarray:
    """Indices of one pool of an .npz source of `num_source` digits (see the module docstring)."""
    if pool not in POOLS:
        raise ValueError(f"digit pool must be one of {POOLS}, got {pool!r}")
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must lie strictly between 0 and 1, got {holdout_fraction}")
    order = np.random.default_rng(POOL_SEED).permutation(num_source)
    num_test = int(round(num_source * holdout_fraction))
    if not 0 < num_test < num_source:
        raise ValueError(f"holdout_fraction {holdout_fraction} of {num_source} digits leaves a pool empty")
    return np.sort(order[num_source - num_test:] if pool == "test" else order[:num_source - num_test])


def ink_boxes(images: np.ndarray) -> np.ndarray:
    """[N, H, W] -> int [N, 4] (top, bottom, left, right) of the nonzero pixels; the whole image if none."""
    n, h, w = images.shape
    rows, cols = images.any(axis=2), images.any(axis=1)
    top, bottom = rows.argmax(1), h - rows[:, ::-1].argmax(1)
    left, right = cols.argmax(1), w - cols[:, ::-1].argmax(1)
    empty = ~rows.any(1)
    return np.stack([np.where(empty, 0, top), np.where(empty, h, bottom),
                     np.where(empty, 0, left), np.where(empty, w, right)], 1)


def _round(v: float) -> int:
    """Half-up rounding (monotonic, unlike Python's round-half-even)."""
    return int(np.floor(v + 0.5))


def _compose_one(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, boxes: np.ndarray,
                 size: int) -> tuple[np.ndarray, list[int], np.ndarray, np.ndarray]:
    length = int(rng.integers(1, MAX_DIGITS + 1))
    src = rng.integers(0, images.shape[0], length)
    box = boxes[src]
    ink_h, ink_w = (box[:, 1] - box[:, 0]).astype(float), (box[:, 3] - box[:, 2]).astype(float)
    heights = rng.uniform(*_HEIGHT) * size * rng.uniform(1 - _HEIGHT_JITTER, 1 + _HEIGHT_JITTER, length)
    widths = ink_w * heights / ink_h
    gaps = rng.uniform(*_GAP, length - 1) * heights[:-1]
    jitter = rng.uniform(-_V_JITTER, _V_JITTER, length) * size
    # Overlap at most half the narrower neighbour, so the digits stay in reading order.
    gaps = np.maximum(gaps, -0.5 * np.minimum(widths[:-1], widths[1:]))
    room = size - 2 * _MARGIN
    shrink = min(1.0, room / (widths.sum() + gaps.sum()), (room - 2 * np.abs(jitter).max()) / heights.max())
    heights, widths, gaps, jitter = heights * shrink, widths * shrink, gaps * shrink, jitter * shrink
    lefts = np.concatenate([[0.0], np.cumsum(widths[:-1] + gaps)])
    x0 = _MARGIN + rng.uniform(0.0, max(0.0, room - (lefts[-1] + widths[-1])))
    band = heights.max() + 2 * np.abs(jitter).max()
    yc = _MARGIN + band / 2 + rng.uniform(0.0, max(0.0, room - band))
    canvas = np.zeros((size, size), np.uint8)
    out_boxes = np.zeros((MAX_DIGITS, 4), np.int32)
    for i in range(length):
        w, h = max(1, _round(widths[i])), max(1, _round(heights[i]))
        x = min(max(_round(x0 + lefts[i]), 0), size - w)
        y = min(max(_round(yc + jitter[i] - h / 2), 0), size - h)
        t, b, l, r = box[i]
        digit = np.asarray(Image.fromarray(images[src[i], t:b, l:r]).resize((w, h), Image.BILINEAR))
        np.maximum(canvas[y:y + h, x:x + w], digit, out=canvas[y:y + h, x:x + w])
        out_boxes[i] = (x, y, w, h)
    sources = np.full((MAX_DIGITS,), -1, np.int64)
    sources[:length] = src
    return canvas, [int(d) for d in labels[src]], out_boxes, sources


def iter_compose(images: np.ndarray, labels: np.ndarray, num: int, seed: int, *,
                 size: int = 64, chunk: int = 1024) -> Iterator[Composed]:
    """`compose` in chunks of `chunk` examples (same examples, whatever the chunk size)."""
    images = np.asarray(images, np.uint8)
    labels = np.asarray(labels, np.int64)
    if images.ndim != 3 or images.shape[0] == 0 or labels.shape != images.shape[:1]:
        raise ValueError(f"need source images [N, H, W] and labels [N], got {images.shape}, {labels.shape}")
    if size < 16:
        raise ValueError(f"image size must be at least 16, got {size}")
    rng = np.random.default_rng(seed)
    boxes = ink_boxes(images)
    for start in range(0, num, chunk):
        parts = [_compose_one(rng, images, labels, boxes, size) for _ in range(min(chunk, num - start))]
        canvases, seqs, out_boxes, sources = zip(*parts)
        lengths, digits = store.encode_labels(list(seqs))
        yield Composed(np.stack(canvases)[..., None], lengths, digits, np.stack(out_boxes),
                       np.stack(sources))


def compose(images: np.ndarray, labels: np.ndarray, num: int, seed: int, *, size: int = 64) -> Composed:
    """Composes `num` images of `size` x `size` from source digits [N, 28, 28] and labels [N]."""
    parts = list(iter_compose(images, labels, num, seed, size=size))
    if not parts:
        k = MAX_DIGITS
        return Composed(np.zeros((0, size, size, 1), np.uint8), np.zeros((0,), np.int32),
                        np.zeros((0, k), np.int32), np.zeros((0, k, 4), np.int32), np.zeros((0, k), np.int64))
    return Composed(*(np.concatenate([getattr(p, f.name) for p in parts])
                      for f in dataclasses.fields(Composed)))


def _source_name(pool: str, mnist_npz: str | os.PathLike | None, holdout_fraction: float) -> str:
    if mnist_npz:
        return f"multi_mnist:{Path(mnist_npz).name}:{pool}[holdout={holdout_fraction}]"
    return f"multi_mnist:tfds:mnist/{pool}"


def source_pool(pool: str, *, mnist_npz: str | os.PathLike | None = None,
                holdout_fraction: float = DEFAULT_HOLDOUT,
                tfds_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of one digit pool: of an .npz, or of TFDS mnist (pool = split) in `tfds_dir`."""
    if pool not in POOLS:
        raise ValueError(f"digit pool must be one of {POOLS}, got {pool!r}")
    if mnist_npz:
        images, labels = load_npz(mnist_npz)
        idx = pool_indices(len(labels), pool, holdout_fraction)
        return images[idx], labels[idx]
    if tfds_dir is None:
        raise ValueError("TFDS mnist needs a tfds_dir")
    return tfds_sources.load_mnist(pool, tfds_dir)


def image_size(recipe: str) -> int:
    """The image size of `recipe`, which must be a greyscale one; ValueError otherwise."""
    size, grey = preprocess.get_recipe(recipe)
    if not grey:
        raise ValueError(f"multi_mnist needs a greyscale recipe such as multi64_grey, not {recipe!r}")
    return size


def write_file(out: str | os.PathLike, pool: str, num: int, seed: int, *,
               mnist_npz: str | os.PathLike | None = None, holdout_fraction: float = DEFAULT_HOLDOUT,
               tfds_dir: str | os.PathLike | None = None, size: int = 64,
               recipe: str = "multi64_grey") -> Path:
    """Composes `num` examples from one digit pool into a contract file at `out` (atomically)."""
    if num < 1:
        raise ValueError(f"num_examples must be positive, got {num}")
    images, labels = source_pool(pool, mnist_npz=mnist_npz, holdout_fraction=holdout_fraction,
                                 tfds_dir=tfds_dir)
    attrs = {"digit_pool": pool, "pool_size": int(len(labels)), "seed": int(seed)}
    with store.SplitWriter(out, (size, size, 1), recipe=recipe, attrs=attrs,
                           source=_source_name(pool, mnist_npz, holdout_fraction)) as w:
        for part in iter_compose(images, labels, num, seed, size=size):
            start = w.count
            w.append(part.images, part.lengths, part.digits,
                     [f"{pool}-s{seed}/{start + i:07d}" for i in range(len(part.lengths))])
    return Path(out)


def ensure_file(out: str | os.PathLike, pool: str, num: int, seed: int, *,
                mnist_npz: str | os.PathLike | None = None, holdout_fraction: float = DEFAULT_HOLDOUT,
                tfds_dir: str | os.PathLike | None = None, size: int = 64,
                recipe: str = "multi64_grey") -> Path:
    """`write_file`, unless `out` already holds this very composition (its attributes say so)."""
    out = Path(out)
    want = {"source": _source_name(pool, mnist_npz, holdout_fraction), "digit_pool": pool,
            "seed": seed, "num_examples": num, "recipe": recipe}
    try:
        with h5py.File(out, "r") as f:
            have = {k: f.attrs.get(k) for k in want}
            have_size = f["images"].shape[1]
        if all(str(have[k]) == str(v) for k, v in want.items()) and have_size == size:
            return out
    except (OSError, KeyError):
        pass  # absent or unreadable: (re)compose
    return write_file(out, pool, num, seed, mnist_npz=mnist_npz, holdout_fraction=holdout_fraction,
                      tfds_dir=tfds_dir, size=size, recipe=recipe)


def ensure_split(config: ml_collections.ConfigDict, split: str, path: Path) -> None:
    """Composes `split` unless `path` holds it already: the evaluation split from the held-out digits,
    the others from the training digits, of ``config.mnist_npz`` or else TFDS mnist."""
    is_eval = split == config.eval_split
    try:
        ensure_file(path, "test" if is_eval else "train",
                    config.num_multi_mnist_test if is_eval else config.num_multi_mnist_train,
                    paths.split_seed(split), mnist_npz=config.mnist_npz or None,
                    holdout_fraction=config.holdout_fraction, tfds_dir=paths.tfds_dir(paths.data_dir(config)),
                    size=image_size(config.recipe), recipe=config.recipe)
    except (tfds_sources.TfdsError, ValueError, OSError) as e:
        raise DataMissingError(f"{path} could not be composed: {e}") from None
