"""Where each dataset's split files live, and making sure they exist before training.

Files follow the data contract (`svhn_jax.data.store`) at
``<data_dir>/<dataset>/<recipe>/<split>.h5``. Generated sources (synthetic) are made on first use;
downloaded ones (svhn, ...) name the `prepare` command to run when missing.
"""
from __future__ import annotations

import os
from pathlib import Path

import ml_collections

RECIPES = {  # name -> (height/width, greyscale)
    "seed32_grey": (32, True),
    "seed32_rgb": (32, False),
    "goodfellow64_rgb": (64, False),
}
_SYNTHETIC_SEEDS = {"train": 1, "test": 2, "extra": 3, "val": 4}


class DataMissingError(RuntimeError):
    """A split file is absent; the message says which command makes it."""


def default_data_dir() -> Path:
    env = os.environ.get("SVHN_JAX_DATA")
    if env:
        return Path(env).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser()
    return cache / "svhn_jax" / "data"


def data_dir(config: ml_collections.ConfigDict) -> Path:
    return Path(config.data_dir).expanduser() if config.data_dir else default_data_dir()


def split_file(config: ml_collections.ConfigDict, split: str) -> Path:
    return data_dir(config) / config.dataset / config.recipe / f"{split}.h5"


def ensure_splits(config: ml_collections.ConfigDict) -> tuple[list[Path], Path]:
    """Returns (training files, evaluation file), making generated ones when missing."""
    if config.dataset == "hdf5":
        return [Path(p) for p in str(config.train_file).split(",")], Path(config.eval_file)
    splits = [*config.train_splits, config.eval_split]
    paths = {s: split_file(config, s) for s in splits}
    for split, path in paths.items():
        if path.exists():
            continue
        if config.dataset == "synthetic":
            from svhn_jax.data import synthetic
            size, grey = RECIPES[config.recipe]
            num = config.num_synthetic_test if split == config.eval_split else config.num_synthetic_train
            synthetic.make_split(path, num, _SYNTHETIC_SEEDS.get(split, 5), size=size, grey=grey,
                                 recipe=config.recipe)
        else:
            raise DataMissingError(
                f"{path} is missing; make it with: python -m svhn_jax.prepare --dataset={config.dataset} "
                f"--splits={','.join(splits)} --recipe={config.recipe} --data_dir={data_dir(config)}")
    return [paths[s] for s in config.train_splits], paths[config.eval_split]
