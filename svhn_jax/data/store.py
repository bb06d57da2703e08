"""The HDF5 data contract: one file per split, written atomically, read into memory.

Every data source (real SVHN, the synthetic renderer, multi-digit MNIST, TFDS) writes through
`SplitWriter` so that the files are identical in layout:

- ``images``    uint8 [N, H, W, C]
- ``lengths``   int32 [N]     number of digits, 1-5
- ``digits``    int32 [N, 5]  0-9 (SVHN's label 10 means 0), `PAD` (10) after the last digit
- ``filenames`` utf-8 strings [N]
- attributes: ``recipe``, ``source``, ``num_dropped`` (plus any extra ones a source adds)

A split is written to ``<path>.tmp-<pid>`` and renamed into place only once it was closed without
error, re-opened and checked (`check_split`) and synced to disk, so a crash or a full disk never
leaves a half-written file that looks finished, and an existing file is never clobbered by a failed
run. dataset=hdf5 trains on such files named by ``config.train_file`` / ``config.eval_file``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping

import h5py
import ml_collections
import numpy as np

from svhn_jax.core import fileio
from svhn_jax.data.labels import MAX_DIGITS, PAD
from svhn_jax.data.sources import DataMissingError, DataWriteError, describe

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

    Use as a context manager: the file appears at `path` only if the block exits cleanly and the
    file then closes, checks and syncs without error; otherwise the temporary file is removed and an
    OS error (full disk, no permission) becomes a one-line `DataWriteError`. It keeps its own
    temporary file (`fileio.atomic_write` wants the whole write as one call, this one spans many
    `append` calls). HDF5's chunk cache is off: a failed write then raises in the `append` that made
    it, instead of later in a cache flush that h5py can only report from a destructor (where a full
    disk ended in a segfault, after the broken file had been renamed into place).
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

    def _error(self, e: OSError) -> DataWriteError:
        return DataWriteError(f"cannot write {self.path} ({describe(e)}); an earlier file there is kept")

    def __enter__(self) -> "SplitWriter":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fileio.mark_unfinished(self.tmp_path)
            f = h5py.File(self.tmp_path, "w", rdcc_nbytes=0)
        except OSError as e:
            raise self._error(e) from None
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
        try:
            for name, value in (("images", images), ("lengths", lengths), ("digits", digits),
                                ("filenames", np.asarray([str(s) for s in filenames], dtype=object))):
                f[name].resize(stop, axis=0)
                f[name][start:stop] = value
        except OSError as e:
            raise self._error(e) from None
        self.count = stop

    def set_attr(self, name: str, value: Any) -> None:
        self.attrs[name] = value

    def __exit__(self, exc_type, exc, tb) -> None:
        f, self._file = self._file, None
        try:
            if exc_type is not None:
                # The error that ended the block is the one to report, not a failed close after it
                # (h5py raises some of those as RuntimeError).
                with contextlib.suppress(OSError, RuntimeError):
                    f.close()
                return
            try:
                for k, v in self.attrs.items():
                    f.attrs[k] = v
                f.attrs["num_examples"] = self.count
                f.close()
                check_split(self.tmp_path)
                fd = os.open(self.tmp_path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(self.tmp_path, self.path)
            except OSError as e:
                raise self._error(e) from None
        finally:
            self.tmp_path.unlink(missing_ok=True)
            fileio.mark_finished(self.tmp_path)


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


def check_split(path: str | os.PathLike) -> int:
    """Cheaply checks that `path` is a complete split; returns its number of examples.

    Complete: it opens, its four arrays hold the ``num_examples`` the writer records last, and their
    last rows read back. Raises OSError (HDF5's own, or one naming `path`) otherwise.
    """
    with h5py.File(path, "r") as f:
        n = f.attrs.get("num_examples")
        arrays = [f.get(name) for name in ("images", "lengths", "digits", "filenames")]
        if n is None or any(a is None or len(a) != n for a in arrays):
            raise OSError(f"{path}: incomplete split (no num_examples, or arrays of another length)")
        for a in arrays:
            _ = a[max(n - 1, 0):n]  # the last rows read back: the file is whole up to its end
    return int(n)


def ensure_split(config: ml_collections.ConfigDict, split: str, path: Path) -> None:
    """dataset=hdf5: the files the config names are the user's; nothing is made, a missing one is named."""
    if not path.is_file():
        raise DataMissingError(f"{path} is missing (config.{split} of dataset=hdf5)")


def stored_source(path: str | os.PathLike) -> str | None:
    """The ``source`` attribute of a split file (what it was made from); None when absent or unreadable."""
    try:
        with h5py.File(path, "r") as f:
            return str(f.attrs.get("source"))
    except OSError:
        return None
