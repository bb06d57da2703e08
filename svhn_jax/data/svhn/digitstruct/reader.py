"""Reads ``digitStruct.mat``: the bulk parser, with the usual per-object parser as fallback and reference.

`read_digitstruct_per_object` is the usual parser: one ``file[ref]`` per object, ~0.5 million HDF5
calls for the train split. `read_digitstruct` tries `bulk.read_bulk` first; whatever that does not
recognise makes it fall back to the per-object parser, so both always return the same entries.
"""
from __future__ import annotations

import logging
import os
import struct
from typing import Sequence

import h5py

from svhn_jax.data.svhn.digitstruct import bulk
from svhn_jax.data.svhn.digitstruct.schema import FIELDS, DigitBox, Entry


def _entry(name: str, columns: Sequence[Sequence[float]]) -> Entry:
    """`columns` in FIELDS order."""
    if len({len(c) for c in columns}) != 1:
        raise ValueError(f"digitStruct entry {name}: its box fields disagree in length")
    height, label, left, top, width = columns
    return Entry(name, tuple(DigitBox(int(l), x, y, w, h)
                             for h, l, x, y, w in zip(height, label, left, top, width)))


def read_digitstruct_per_object(path: str | os.PathLike) -> list[Entry]:
    """The common parser: dereferences one object at a time (slow; the reference for the fast one)."""
    entries = []
    with h5py.File(path, "r") as f:
        names, bboxes = f["digitStruct/name"][()].ravel(), f["digitStruct/bbox"][()].ravel()
        for name_ref, bbox_ref in zip(names, bboxes):
            name = "".join(chr(c) for c in f[name_ref][()].ravel())
            group = f[bbox_ref]
            columns = []
            for field in FIELDS:
                value = group[field][()].ravel()
                if h5py.check_dtype(ref=value.dtype) is not None:
                    value = [f[r][()].item() for r in value]
                columns.append([float(v) for v in value])
            entries.append(_entry(name, columns))
    return entries


def read_digitstruct(path: str | os.PathLike) -> list[Entry]:
    """Reads a ``digitStruct.mat``: the same entries as `read_digitstruct_per_object`, in bulk."""
    try:
        return bulk.read_bulk(path)
    except (bulk.Unsupported, IndexError, KeyError, struct.error) as e:
        logging.warning("%s: bulk digitStruct parser not applicable (%s); reading object by object", path, e)
        return read_digitstruct_per_object(path)
