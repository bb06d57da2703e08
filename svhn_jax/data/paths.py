"""Where the data lives: pure path computation from a config, nothing is made here.

  <data_dir>/<dataset>/<recipe>/<split>.h5   one contract file per split (`svhn_jax.data.store`)
  <data_dir>/<dataset>/raw/<split>/          a release in SVHN format 1 (svhn, synthetic)
                                             (<dataset> is synthetic_open for the open font set)
  <data_dir>/tfds/                           TFDS copies (svhn_cropped, mnist)

``data_dir`` is ``config.data_dir``, else ``$SVHN_JAX_DATA``, else ``<user cache>/data``. Generated
datasets draw split `s` with seed ``split_seed(s)``, so a split is the same file on every machine.
"""
from __future__ import annotations

import os
from pathlib import Path

import ml_collections

from svhn_jax.core import fileio

SPLIT_SEEDS = {"train": 1, "test": 2, "extra": 3, "val": 4}  # generated datasets (synthetic, multi_mnist)
OTHER_SPLIT_SEED = 5


def split_seed(split: str) -> int:
    """The seed a generated dataset draws `split` with."""
    return SPLIT_SEEDS.get(split, OTHER_SPLIT_SEED)


def default_data_dir() -> Path:
    """``$SVHN_JAX_DATA``, else ``<user cache>/data`` (``~/.cache/svhn_jax/data``)."""
    env = os.environ.get("SVHN_JAX_DATA")
    return Path(env).expanduser() if env else fileio.user_cache_dir() / "data"


def data_dir(config: ml_collections.ConfigDict) -> Path:
    """The data root of `config` (``config.data_dir``, else `default_data_dir`)."""
    return Path(config.data_dir).expanduser() if config.data_dir else default_data_dir()


def split_path(root: str | os.PathLike, dataset: str, recipe: str, split: str) -> Path:
    """The contract file of one split under the data root `root`."""
    return Path(root).expanduser() / dataset / recipe / f"{split}.h5"


def dataset_folder(config: ml_collections.ConfigDict) -> str:
    """The folder of ``config.dataset`` under the data root: its name, ``synthetic_open`` for synthetic
    photos in another font set than matplotlib's (``config.synthetic_fonts``) and ``scenes_facadesNN`` for
    scenes with NN % house fronts (``config.scene_facades``), so every set is kept."""
    fonts = config.get("synthetic_fonts", "matplotlib")
    if config.dataset == "synthetic" and fonts != "matplotlib":
        return f"synthetic_{fonts}"
    facades = float(config.get("scene_facades", 0.0))
    if config.dataset == "scenes" and facades > 0:
        return f"scenes_facades{round(100 * facades)}"
    return config.dataset


def split_file(config: ml_collections.ConfigDict, split: str) -> Path:
    """The contract file of `split` of ``config.dataset`` in ``config.recipe``."""
    return split_path(data_dir(config), dataset_folder(config), config.recipe, split)


def raw_dir(config: ml_collections.ConfigDict, split: str) -> Path:
    """The folder of a release's `split` (PNGs + digitStruct.mat) of ``config.dataset``."""
    return data_dir(config) / dataset_folder(config) / "raw" / split


def tfds_dir(root: str | os.PathLike) -> Path:
    """Where the TFDS ArrayRecord copies live under the data root `root`."""
    return Path(root).expanduser() / "tfds"


def split_files(config: ml_collections.ConfigDict) -> tuple[list[Path], Path]:
    """(training files, evaluation file) that `config` reads; dataset=hdf5 names them explicitly."""
    if config.dataset == "hdf5":
        return [Path(p) for p in str(config.train_file).split(",")], Path(config.eval_file)
    return [split_file(config, s) for s in config.train_splits], split_file(config, config.eval_split)


def named_split_files(config: ml_collections.ConfigDict) -> list[tuple[str, Path]]:
    """`split_files` as (split name, file) pairs, training ones first; dataset=hdf5 names its files
    after their config keys (``train_file``, ``eval_file``)."""
    train, evaluation = split_files(config)
    if config.dataset == "hdf5":
        return [("train_file", p) for p in train] + [("eval_file", evaluation)]
    return [*zip(config.train_splits, train), (config.eval_split, evaluation)]
