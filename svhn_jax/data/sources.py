"""The registry of data sources: making sure every split a config reads exists before training.

Each dataset is a module under `svhn_jax.data` with the same function,
``ensure_split(config, split, path)``, that makes or checks the file `path` of `split`
(`svhn_jax.data.paths` says where it lies). Generated sources (synthetic, multi_mnist) are made on
first use and remade when stale, TFDS ones (svhn_cropped) built through TFDS; the downloaded one (svhn)
names the `prepare` command to run when missing; dataset=hdf5 reads the files the config names.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

import ml_collections

from svhn_jax.data import paths
from svhn_jax.errors import UserError

EnsureSplit = Callable[[ml_collections.ConfigDict, str, Path], None]

# config.dataset -> module under svhn_jax.data with `ensure_split` (imported on first use)
REGISTRY = {
    "synthetic": "synthetic_source",
    "svhn": "svhn",
    "svhn_cropped": "tfds_sources",
    "multi_mnist": "multi_mnist",
    "hdf5": "store",
}


class DataMissingError(UserError):
    """A split file is absent and cannot be made here; the message says which command makes it."""


def get(name: str) -> EnsureSplit:
    """The `ensure_split` of dataset `name`."""
    if name not in REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(REGISTRY)}")
    return importlib.import_module(f"svhn_jax.data.{REGISTRY[name]}").ensure_split


def ensure_splits(config: ml_collections.ConfigDict) -> tuple[list[Path], Path]:
    """Returns (training files, evaluation file), making generated ones when missing or stale."""
    ensure_split = get(config.dataset)
    for split, path in paths.named_split_files(config):
        ensure_split(config, split, path)
    return paths.split_files(config)
