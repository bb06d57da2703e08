"""The HDF5 data contract: one file per split, written atomically, read into memory.

Every data source (real SVHN, the synthetic renderer, multi-digit MNIST, TFDS) writes through
`SplitWriter` so that the files are identical in layout:

- ``images``    uint8 [N, H, W, C]
- ``lengths``   int32 [N]     number of digits, 1-5
- ``digits``    int32 [N, 5]  0-9 (SVHN's label 10 means 0), `PAD` (10) after the last digit
- ``filenames`` utf-8 strings [N]
- attributes: ``recipe``, ``source``, ``num_dropped`` (plus any extra ones a source adds)

A split is written to ``<path>.tmp-<pid>`` and renamed into place only when complete, so a crash
never leaves a half-written file that looks finished, and an existing file is never clobbered by a
failed run. dataset=hdf5 trains on such files named by ``config.train_file`` / ``config.eval_file``.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping

import h5py
import ml_collections
import numpy as np

from svhn_jax.data.sources import DataMissingError
from svhn_jax.labels import MAX_DIGITS, PAD

_STR = h5py.string_dtype("utf-8")


@dataclasses.dataclass(frozen=True)
class Split:
    """A whole split held in host memory (images stay uint8)."""

    images: np.ndarray     # uint8 [N, H, W, C]
    lengths: np.ndarray    # int32 [N]
    digits: np.ndarray     # int32 [N, 5]
    filenames: np.ndarray  # object (str) [N]
    attrs: Mapping[str, Any]

    def __len__(self) -> int:
        return int(self.images.shape[0])


def encode_labels(sequences: list[list[int]] | list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Digit sequences (ints 0-9 or strings like "123") -> (lengths int32 [N], digits int32 [N, 5])."""
    n = len(sequences)
    lengths = np.zeros((n,), np.int32)
    digits = np.full((n, MAX_DIGITS), PAD, np.int32)
    for i, seq in enumerate(sequences):
        seq = [int(c) for c in seq]
        if not 1 <= len(seq) <= MAX_DIGITS or any(not 0 <= d <= 9 for d in seq):
            raise ValueError(f"sequence {seq!r} must hold 1-{MAX_DIGITS} digits in 0-9")
        lengths[i] = len(seq)
        digits[i, : len(seq)] = seq
    return lengths, digits


def decode_labels(lengths: np.ndarray, digits: np.ndarray) -> list[str]:
    """(lengths, digits) -> digit strings, e.g. (2, [1, 9, 10, 10, 10]) -> "19"."""
    return ["".join(str(int(d)) for d in row[:n]) for n, row in zip(lengths, digits)]


class SplitWriter:
    """Appends examples in chunks to a new HDF5 split; memory does not grow with the split size.

    Use as a context manager: the file appears at `path` only if the block exits cleanly. It keeps
    its own temporary file (`fileio.atomic_write` wants the whole write as one call, this one spans
    many `append` calls).
    """

    def __init__(self, path: str | os.PathLike, image_shape: tuple[int, int, int], *, recipe: str,
                 source: str, chunk: int = 1024, attrs: Mapping[str, Any] | None = None):
        self.path = Path(path)
        self.tmp_path = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        self.image_shape = tuple(int(s) for s in image_shape)
        self.attrs = {"recipe": recipe, "source": source, "num_dropped": 0, **(attrs or {})}
        self.chunk = chunk
        self._file: h5py.File | None = None
        self.count = 0

    def __enter__(self) -> "SplitWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = h5py.File(self.tmp_path, "w")
        c = self.chunk
        f.create_dataset("images", (0, *self.image_shape), np.uint8, maxshape=(None, *self.image_shape),
                         chunks=(min(c, 256), *self.image_shape))
        f.create_dataset("lengths", (0,), np.int32, maxshape=(None,), chunks=(c,))
        f.create_dataset("digits", (0, MAX_DIGITS), np.int32, maxshape=(None, MAX_DIGITS),
                         chunks=(c, MAX_DIGITS))
        f.create_dataset("filenames", (0,), _STR, maxshape=(None,), chunks=(c,))
        self._file = f
        return self

    def append(self, images: np.ndarray, lengths: np.ndarray, digits: np.ndarray,
               filenames: list[str] | np.ndarray) -> None:
        """Appends a chunk of examples (validated against the contract)."""
        images = np.asarray(images)
        lengths = np.asarray(lengths, np.int32)
        digits = np.asarray(digits, np.int32)
        n = images.shape[0]
        if images.dtype != np.uint8 or images.shape[1:] != self.image_shape:
            raise ValueError(f"images must be uint8 {self.image_shape}, got {images.dtype} {images.shape[1:]}")
        if lengths.shape != (n,) or digits.shape != (n, MAX_DIGITS) or len(filenames) != n:
            raise ValueError("images, lengths, digits and filenames disagree in size")
        if n and (lengths.min() < 1 or lengths.max() > MAX_DIGITS):
            raise ValueError("lengths must lie in 1-5")
        positions = np.arange(MAX_DIGITS)[None, :]
        inside = positions < lengths[:, None]
        if np.any(inside & ((digits < 0) | (digits > 9))) or np.any(~inside & (digits != PAD)):
            raise ValueError("digits must be 0-9 inside the length and PAD after it")
        f = self._file
        assert f is not None, "use SplitWriter as a context manager"
        start, stop = self.count, self.count + n
        for name, value in (("images", images), ("lengths", lengths), ("digits", digits),
                            ("filenames", np.asarray([str(s) for s in filenames], dtype=object))):
            f[name].resize(stop, axis=0)
            f[name][start:stop] = value
        self.count = stop

    def set_attr(self, name: str, value: Any) -> None:
        self.attrs[name] = value

    def __exit__(self, exc_type, exc, tb) -> None:
        f, self._file = self._file, None
        try:
            if exc_type is None:
                for k, v in self.attrs.items():
                    f.attrs[k] = v
                f.attrs["num_examples"] = self.count
            f.close()
        finally:
            if exc_type is None:
                os.replace(self.tmp_path, self.path)
            else:
                self.tmp_path.unlink(missing_ok=True)


def write_split(path: str | os.PathLike, images: np.ndarray, lengths: np.ndarray, digits: np.ndarray,
                filenames: list[str] | np.ndarray, *, recipe: str, source: str, num_dropped: int = 0,
                attrs: Mapping[str, Any] | None = None) -> Path:
    """Writes a whole in-memory split in one go (atomically). Returns the path."""
    with SplitWriter(path, images.shape[1:], recipe=recipe, source=source,
                     attrs={"num_dropped": int(num_dropped), **(attrs or {})}) as w:
        w.append(images, lengths, digits, filenames)
    return Path(path)


def read_split(path: str | os.PathLike) -> Split:
    """Reads a whole split into memory. Raises FileNotFoundError / ValueError with a clear message."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such data file")
    try:
        with h5py.File(path, "r") as f:
            missing = {"images", "lengths", "digits", "filenames"} - set(f.keys())
            if missing:
                raise ValueError(f"{path}: not a svhn_jax split (missing {sorted(missing)})")
            return Split(images=f["images"][...], lengths=f["lengths"][...].astype(np.int32),
                         digits=f["digits"][...].astype(np.int32),
                         filenames=f["filenames"].asstr()[...], attrs=dict(f.attrs))
    except OSError as e:
        raise ValueError(f"{path}: unreadable HDF5 file ({e})") from None


def ensure_split(config: ml_collections.ConfigDict, split: str, path: Path) -> None:
    """dataset=hdf5: the files the config names are the user's; nothing is made, a missing one is named."""
    if not path.is_file():
        raise DataMissingError(f"{path} is missing (config.{split} of dataset=hdf5)")
