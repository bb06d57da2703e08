"""The registry of data sources: making sure every split a config reads exists before training.

Each dataset is a module under `svhn_jax.data` with the same function,
``ensure_split(config, split, path)``, that makes or checks the file `path` of `split`
(`svhn_jax.data.paths` says where it lies). Generated sources (synthetic, multi_mnist, scenes) are made on
first use and remade when stale, TFDS ones (svhn_cropped) built through TFDS; the downloaded one (svhn)
names the `prepare` command to run when missing; dataset=hdf5 reads the files the config names.

Making files takes the lock of the dataset's folder (`preparing`): runs that start together on a fresh
data folder take turns instead of racing on the same names, and the later ones find the files made.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import os
from pathlib import Path
from typing import Callable, Iterator

import ml_collections

from svhn_jax.core.errors import UserError
from svhn_jax.core.fileio import wait_for_lock
from svhn_jax.data import paths

EnsureSplit = Callable[[ml_collections.ConfigDict, str, Path], None]

# config.dataset -> module under svhn_jax.data with `ensure_split` (imported on first use)
REGISTRY = {
    "synthetic": "synth.source",
    "svhn": "svhn.ingest",
    "svhn_cropped": "tfds",
    "multi_mnist": "multi_mnist",
    "hdf5": "store",
    "scenes": "synth.scene",  # whole photos with the number's box, for the localiser
    "lines": "lines",  # 48-pixel-high digit lines (real SVHN + renders), for the line reader
}


class DataMissingError(UserError):
    """A split file is absent and cannot be made here; the message says which command makes it."""


class DataWriteError(UserError):
    """Data cannot be written or read (full disk, no permission); files made earlier are kept."""


def describe(e: OSError) -> str:
    """The short reason of an OS error, e.g. "No space left on device: '/data/x'" (HDF5's own
    messages run to several lines of C details, the errno says it all)."""
    reason = os.strerror(e.errno) if e.errno else str(e)
    return f"{reason}: {str(e.filename)!r}" if e.filename else reason


@contextlib.contextmanager
def preparing(folder: Path) -> Iterator[None]:
    """Holds the lock ``folder/.lock`` while files of `folder` are made; an OSError meanwhile (full
    disk, read-only or unwritable folder) becomes a one-line `DataWriteError`. A folder that exists
    but cannot be written (data on a read-only share) is only read, so it needs no lock."""
    try:
        if folder.is_dir() and not os.access(folder, os.W_OK):
            lock = contextlib.nullcontext()
        else:
            folder.mkdir(parents=True, exist_ok=True)
            lock = wait_for_lock(folder / ".lock", on_wait=lambda: logging.warning(
                "%s: another process is preparing data here; waiting for it", folder))
        with lock:
            yield
    except OSError as e:
        raise DataWriteError(f"cannot prepare the data in {folder} ({describe(e)})") from None


def get(name: str) -> EnsureSplit:
    """The `ensure_split` of dataset `name`."""
    if name not in REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(REGISTRY)}")
    return importlib.import_module(f"svhn_jax.data.{REGISTRY[name]}").ensure_split


def ensure_splits(config: ml_collections.ConfigDict) -> tuple[list[Path], Path]:
    """Returns (training files, evaluation file), making generated ones when missing or stale
    (under the dataset folder's lock; dataset=hdf5 makes nothing, so it takes none)."""
    ensure_split = get(config.dataset)
    lock = (contextlib.nullcontext() if config.dataset == "hdf5"
            else preparing(paths.data_dir(config) / paths.dataset_folder(config)))
    with lock:
        for split, path in paths.named_split_files(config):
            ensure_split(config, split, path)
    return paths.split_files(config)
