"""Where each dataset's split files live, and making sure they exist before training.

Files follow the data contract (`svhn_jax.data.store`) at
``<data_dir>/<dataset>/<recipe>/<split>.h5``. Generated sources (synthetic, multi_mnist) are made
on first use, TFDS ones (svhn_cropped) built through TFDS; downloaded ones (svhn) name the `prepare`
command to run when missing.
"""
from __future__ import annotations

import os
from pathlib import Path

import ml_collections

from svhn_jax.data.preprocess import RECIPES  # name -> (height/width, greyscale)

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
        if config.dataset == "multi_mnist":  # a cache of a pure composition, remade when stale
            _ensure_multi_mnist(config, split, path)
            continue
        if config.dataset == "synthetic" and _stored_source(path) != _synthetic_source(config, split):
            _make_synthetic(config, split, path)  # absent, or rendered with another seed or size
            continue
        if path.exists():
            continue
        if config.dataset == "svhn_cropped":  # TFDS: needs the network (and TensorFlow) on first use
            from svhn_jax.data import tfds_sources
            try:
                tfds_sources.prepare_svhn_cropped(data_dir(config), [split], config.recipe)
            except tfds_sources.TfdsError as e:
                raise DataMissingError(f"{path} is missing and could not be made: {e}") from None
        elif config.dataset == "synthetic":
            _make_synthetic(config, split, path)
        else:
            raise DataMissingError(
                f"{path} is missing; make it with: python -m svhn_jax.prepare --dataset={config.dataset} "
                f"--splits={','.join(splits)} --recipe={config.recipe} --data_dir={data_dir(config)}")
    return [paths[s] for s in config.train_splits], paths[config.eval_split]


def _ensure_multi_mnist(config: ml_collections.ConfigDict, split: str, path: Path) -> None:
    """Composes a multi-digit MNIST split: the eval split from the held-out digits, the others from
    the training digits (`multi_mnist` docstring); from ``config.mnist_npz`` or else TFDS mnist."""
    from svhn_jax.data import multi_mnist, tfds_sources
    from svhn_jax.data.preprocess import get_recipe
    is_eval = split == config.eval_split
    try:
        size, grey = get_recipe(config.recipe)
        if not grey:
            raise ValueError(f"multi_mnist needs a greyscale recipe (multi64_grey), not {config.recipe!r}")
        num = config.get("num_multi_mnist_test" if is_eval else "num_multi_mnist_train", 5000)
        multi_mnist.ensure_file(
            path, "test" if is_eval else "train", num, _SYNTHETIC_SEEDS.get(split, 5),
            mnist_npz=config.get("mnist_npz", "") or None,
            holdout_fraction=config.get("holdout_fraction", multi_mnist.DEFAULT_HOLDOUT),
            tfds_dir=tfds_sources.tfds_dir_for(data_dir(config)), size=size, recipe=config.recipe)
    except (tfds_sources.TfdsError, ValueError, OSError) as e:
        raise DataMissingError(f"{path} could not be composed: {e}") from None


def _synthetic_seed_and_num(config: ml_collections.ConfigDict, split: str) -> tuple[int, int]:
    num = config.num_synthetic_test if split == config.eval_split else config.num_synthetic_train
    return _SYNTHETIC_SEEDS.get(split, 5), num


def _synthetic_source(config: ml_collections.ConfigDict, split: str) -> str:
    seed, num = _synthetic_seed_and_num(config, split)
    return f"synthetic(seed={seed}, num={num})"


def _stored_source(path: Path) -> str | None:
    """The ``source`` attribute of a split file; None when absent or unreadable."""
    import h5py
    try:
        with h5py.File(path, "r") as f:
            return str(f.attrs.get("source"))
    except OSError:
        return None


def _make_synthetic(config: ml_collections.ConfigDict, split: str, path: Path) -> None:
    """Renders a synthetic release into ``<data_dir>/synthetic/raw/<split>/`` (as `svhn_jax.synth`
    does) and ingests it with the real release's code; the release is reused while it holds `num`."""
    import shutil

    from svhn_jax.data import svhn, synthetic
    seed, num = _synthetic_seed_and_num(config, split)
    raw = data_dir(config) / "synthetic" / "raw" / split
    # One process per core (the bytes do not depend on it); on small splits starting them costs more.
    workers = len(os.sched_getaffinity(0)) if num >= 1000 else 1
    if raw.exists() and sum(1 for _ in raw.glob("*.png")) != num:
        shutil.rmtree(raw)
    if not raw.exists():
        synthetic.write_release(raw, num, seed, workers=workers)
    svhn.prepare_split_from_folder(raw, path, config.recipe, workers=workers,
                                   source=_synthetic_source(config, split))
