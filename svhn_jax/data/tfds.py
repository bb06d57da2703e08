"""dataset=svhn_cropped, and MNIST digits: TFDS read through `tfds.data_source` (ArrayRecord, no TensorFlow).

  python -m svhn_jax.prepare --dataset=svhn_cropped --splits=train,test --recipe=seed32_grey

- ``svhn_cropped``: SVHN "format 2", cropped 32x32x3 single digits (labels 0-9; TFDS already maps
  SVHN's 10 to 0). Converted into the data contract as length-1 sequences, the whole image taken
  as the crop of `preprocess.resize_whole` (seed32_grey: ITU-R 601 luma; seed32_rgb: unchanged), at
  ``<data_dir>/svhn_cropped/<recipe>/<split>.h5``.
- ``mnist``: 28x28 digits, the default source of the multi-digit MNIST composer.

The TFDS copies live in ``<data_dir>/tfds`` (`paths.tfds_dir`) unless a ``tfds_dir`` is given. Reading them needs only
``tensorflow-datasets`` and ``array_record`` (pinned in pyproject.toml). Building them on first use
downloads the release (svhn_cropped: train, test and extra together, about 1.5 GB; mnist: 11 MB),
and in tensorflow-datasets 4.9.10 the build step itself still imports TensorFlow (the builders read
with ``tf.io.gfile`` and PNG-encode with ``tf.image``; upstream tensorflow/datasets#11058): install
``tensorflow-cpu`` for that one step, or copy an already built ArrayRecord copy into the TFDS
folder. Either failure is reported as one `TfdsError` line.
"""
from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path
from typing import Any, Iterable, Sequence

import ml_collections
import numpy as np

from svhn_jax.core.errors import UserError
from svhn_jax.data import paths, preprocess, store
from svhn_jax.data.labels import MAX_DIGITS, PAD
from svhn_jax.data.sources import DataMissingError

SVHN_CROPPED_SPLITS = ("train", "test", "extra")
MNIST_SPLITS = ("train", "test")
_CHUNK = 2048


class TfdsError(UserError):
    """A TFDS dataset could not be built or read; the message is one line saying why and what to do."""


_DOWNLOAD_HOSTS = {"svhn_cropped": ("ufldl.stanford.edu", 80), "mnist": ("storage.googleapis.com", 443)}


def _check_can_build(name: str, tfds_dir: Path) -> None:
    """Before TFDS builds `name` into `tfds_dir`: fail fast (one line) without TensorFlow or network.

    Without this, a missing TensorFlow shows only after the whole download, and an offline machine
    waits minutes for TFDS's download retries.
    """
    import tensorflow_datasets as tfds
    from absl import logging
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)  # "Variant folder ... has no dataset_info.json" is expected here
    try:
        builder = tfds.builder(name, data_dir=os.fspath(tfds_dir), file_format="array_record")
        if builder.is_prepared() or not Path(builder.data_dir).is_relative_to(tfds_dir):
            return  # already built, or TFDS reads it from somewhere else (e.g. tfds.testing.mock_data)
    finally:
        logging.set_verbosity(verbosity)
    if importlib.util.find_spec("tensorflow") is None:
        raise TfdsError(
            f"building TFDS {name} in {tfds_dir} needs TensorFlow once (tensorflow-datasets 4.9.10, "
            f"tensorflow/datasets#11058): pip install tensorflow-cpu and rerun; reading needs no TensorFlow")
    host, port = _DOWNLOAD_HOSTS.get(name, ("storage.googleapis.com", 443))
    try:
        socket.create_connection((host, port), timeout=10).close()
    except OSError as e:
        raise TfdsError(f"TFDS {name} is not built in {tfds_dir} and {host} is unreachable "
                        f"(offline? {e}); its first use needs the network") from None


def data_source(name: str, split: str, tfds_dir: str | os.PathLike, *,
                download: bool = True) -> Sequence[dict[str, Any]]:
    """`tfds.data_source` in ArrayRecord format under `tfds_dir`; any failure becomes one `TfdsError` line."""
    import tensorflow_datasets as tfds

    tfds_dir = Path(tfds_dir).expanduser().absolute()
    if download:
        _check_can_build(name, tfds_dir)
    try:
        return tfds.data_source(name, split=split, data_dir=os.fspath(tfds_dir), download=download,
                                builder_kwargs={"file_format": "array_record"})
    except Exception as e:  # network, checksum, disk, missing files: TFDS raises many kinds
        msg = (str(e).strip().splitlines() or [""])[0]
        raise TfdsError(f"TFDS {name} split {split!r} unavailable in {tfds_dir} "
                        f"({type(e).__name__}: {msg[:300]})") from None


def single_digit_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Digit classes 0-9 [N] -> (lengths int32 [N] all 1, digits int32 [N, 5] padded with PAD)."""
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"single-digit labels must lie in 0-9, got {labels.min()}..{labels.max()}")
    digits = np.full((labels.size, MAX_DIGITS), PAD, np.int32)
    digits[:, 0] = labels
    return np.ones((labels.size,), np.int32), digits


def _chunks(source: Sequence[dict[str, Any]]) -> Iterable[tuple[int, list[dict[str, Any]]]]:
    n = len(source)
    for start in range(0, n, _CHUNK):
        yield start, [source[i] for i in range(start, min(start + _CHUNK, n))]


def write_svhn_cropped_split(source: Sequence[dict[str, Any]], out: str | os.PathLike, *, split: str,
                             recipe: str) -> Path:
    """Writes TFDS svhn_cropped examples (dicts with image [32,32,3] and label) as a contract file.

    Each whole 32x32 image goes through `preprocess.resize_whole` (greyscale and size by recipe).
    """
    with store.SplitWriter(out, preprocess.image_shape(recipe), recipe=recipe,
                           source=f"tfds:svhn_cropped/{split}", attrs={"tfds_split": split}) as w:
        for start, examples in _chunks(source):
            images = np.stack([preprocess.resize_whole(np.asarray(ex["image"], np.uint8), recipe)
                               for ex in examples])
            lengths, digits = single_digit_labels(np.array([int(ex["label"]) for ex in examples]))
            names = [f"{split}/{start + i:06d}" for i in range(len(examples))]
            w.append(images, lengths, digits, names)
    return Path(out)


def prepare_svhn_cropped(data_dir: str | os.PathLike, splits: Iterable[str], recipe: str, *,
                         tfds_dir: str | os.PathLike | None = None, download: bool = True) -> list[Path]:
    """Writes ``<data_dir>/svhn_cropped/<recipe>/<split>.h5`` for each split; returns the paths.

    `recipe` is one of `preprocess.RECIPES` (seed32_grey, seed32_rgb are the native 32x32 ones).
    Raises `TfdsError` when TFDS cannot build or read the dataset, ValueError on a bad argument.
    """
    preprocess.get_recipe(recipe)
    splits = list(splits)
    unknown = [s for s in splits if s not in SVHN_CROPPED_SPLITS]
    if unknown:
        raise ValueError(f"svhn_cropped: unknown split(s) {unknown}; choose from {list(SVHN_CROPPED_SPLITS)}")
    tfds_dir = Path(tfds_dir) if tfds_dir else paths.tfds_dir(data_dir)
    written = []
    for split in splits:
        source = data_source("svhn_cropped", split, tfds_dir, download=download)
        out = paths.split_path(data_dir, "svhn_cropped", recipe, split)
        written.append(write_svhn_cropped_split(source, out, split=split, recipe=recipe))
    return written


def ensure_split(config: ml_collections.ConfigDict, split: str, path: Path) -> None:
    """dataset=svhn_cropped: built through TFDS when missing (needs the network, and TensorFlow, once)."""
    if path.exists():
        return
    try:
        prepare_svhn_cropped(paths.data_dir(config), [split], config.recipe)
    except TfdsError as e:
        raise DataMissingError(f"{path} is missing and could not be made: {e}") from None


def load_mnist(split: str, tfds_dir: str | os.PathLike, *,
               download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """TFDS mnist split -> (images uint8 [N, 28, 28], labels int64 [N])."""
    if split not in MNIST_SPLITS:
        raise ValueError(f"mnist: unknown split {split!r}; choose from {list(MNIST_SPLITS)}")
    source = data_source("mnist", split, tfds_dir, download=download)
    images = np.empty((len(source), 28, 28), np.uint8)
    labels = np.empty((len(source),), np.int64)
    for i in range(len(source)):
        ex = source[i]
        images[i] = np.asarray(ex["image"], np.uint8).reshape(28, 28)
        labels[i] = int(ex["label"])
    return images, labels
