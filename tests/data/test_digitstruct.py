"""digitStruct.mat: the writer's MATLAB v7.3 layout, and both parsers agreeing on it and its variants."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from conftest import SHARED, needs_shared

from svhn_jax.data.svhn import digitstruct as ds
from svhn_jax.data.svhn.digitstruct import DigitBox, Entry, bulk, writer

ENTRIES = [
    Entry("1.png", (DigitBox(1, 246.0, 77.0, 81.0, 219.0), DigitBox(9, 323.0, 81.0, 96.0, 219.0))),
    Entry("2.png", (DigitBox(10, 17.5, 5.0, 8.0, 15.25),)),
    Entry("10.png", tuple(DigitBox(d, 10.0 * d, 3.0, 9.0, 20.0) for d in (4, 5, 6))),
    Entry("345.png", tuple(DigitBox(d, 5.0 * d, -1.0, 5.0, 12.0) for d in (1, 2, 3, 4, 5, 6))),
    Entry("12345.png", (DigitBox(7, 0.0, 0.0, 1.0, 1.0),)),
]


@pytest.fixture(scope="module")
def mat(tmp_path_factory):
    path = tmp_path_factory.mktemp("ds") / "digitStruct.mat"
    ds.write_digitstruct(path, ENTRIES)
    return path


def test_layout_is_matlab_v73(mat):
    header = mat.read_bytes()[:128]
    assert header.startswith(b"MATLAB 7.3 MAT-file") and header[124:128] == b"\x00\x02IM"
    with h5py.File(mat, "r") as f:
        assert f.userblock_size == 512
        assert sorted(f) == ["#refs#", "digitStruct"] and sorted(f["digitStruct"]) == ["bbox", "name"]
        names, bboxes = f["digitStruct/name"], f["digitStruct/bbox"]
        assert names.shape == bboxes.shape == (5, 1)
        assert h5py.check_dtype(ref=names.dtype) is h5py.Reference
        name = f[names[2, 0]]
        assert name.dtype == np.uint16 and name.shape == (6, 1)
        assert name.attrs["MATLAB_class"] == b"char" and name.attrs["MATLAB_int_decode"] == 2
        assert "".join(map(chr, name[:, 0])) == "10.png"
        one = f[bboxes[1, 0]]  # one digit: the values themselves, 1x1 doubles
        assert one.attrs["MATLAB_class"] == b"struct" and sorted(one) == list(ds.FIELDS)
        assert one["label"].shape == (1, 1) and one["label"].dtype == np.float64
        assert one["label"][0, 0] == 10 and one["height"][0, 0] == 15.25
        assert one["top"].attrs["MATLAB_class"] == b"double"
        three = f[bboxes[2, 0]]  # several digits: cells of references to 1x1 doubles
        assert three["left"].shape == (3, 1) and three["left"].attrs["MATLAB_class"] == b"cell"
        assert [f[r][0, 0] for r in three["left"][:, 0]] == [40.0, 50.0, 60.0]
        assert [f[r].shape for r in three["label"][:, 0]] == [(1, 1)] * 3
        assert [b"".join(name).decode() for name in one.attrs["MATLAB_fields"]] == list(ds.FIELDS)
        empty = f["#refs#/a"]  # MATLAB's canonical empty array comes first
        assert empty.attrs["MATLAB_class"] == b"canonical empty" and empty.attrs["MATLAB_empty"] == 1
        assert empty.dtype == np.uint64 and list(empty[()]) == [0, 0]


def test_same_entries_give_the_same_bytes(mat, tmp_path):
    ds.write_digitstruct(tmp_path / "again.mat", ENTRIES)
    assert (tmp_path / "again.mat").read_bytes() == mat.read_bytes()


def test_ref_names_follow_matlab():
    names = [bytes(n).rstrip(b"\0").decode() for n in writer._ref_names(3907)]
    assert names[:3] == ["a", "b", "c"] and names[26] == "A" and names[52] == "0" and names[61] == "9"
    assert names[62:64] == ["aa", "ab"] and names[3905] == "99" and names[3906] == "aaa"


def test_thousands_of_objects_are_indexed_for_hdf5(tmp_path):
    """12,001 objects in #refs#: a three-level B-tree, which libhdf5 walks, searches and extends."""
    rng = np.random.default_rng(0)
    entries = [Entry(f"{i + 1}.png", tuple(DigitBox(int(d), 10.0 * j, 2.0, 3.0, float(i))
                                           for j, d in enumerate(rng.integers(1, 11, 2)))) for i in range(1000)]
    path = tmp_path / "big.mat"
    ds.write_digitstruct(path, entries)
    assert bulk.read_bulk(path) == entries
    # per image: its name, its struct, then two numbers for each of the five fields
    names = [bytes(n).rstrip(b"\0").decode() for n in writer._ref_names(1 + 12 * len(entries))]
    addr = lambda obj: h5py.h5o.get_info(obj.id).addr
    with h5py.File(path, "r+") as f:
        refs = f["#refs#"]
        assert list(refs) == sorted(names, key=str.encode)  # iteration follows the B-tree in name order
        for i in (0, 1, 499, 998, 999):
            assert addr(refs[names[1 + 12 * i]]) == addr(f[f["digitStruct/name"][i, 0]])
            assert addr(refs[names[2 + 12 * i]]) == addr(f[f["digitStruct/bbox"][i, 0]])
            assert refs[names[3 + 12 * i]][0, 0] == i  # the height of its first digit
        assert all(name in refs for name in names[::7])
        for i in range(300):  # into full symbol nodes and B-tree nodes: they split
            refs.create_dataset(f"new{i}", data=[[i]])
    with h5py.File(path, "r") as f:
        assert len(f["#refs#"]) == len(names) + 300 and all(name in f["#refs#"] for name in names[::7])
        assert f["#refs#/new299"][0, 0] == 299
    assert bulk.read_bulk(path) == entries


def test_both_parsers_read_back_exactly(mat):
    assert ds.read_digitstruct_per_object(mat) == ENTRIES
    assert bulk.read_bulk(mat) == ENTRIES  # the bulk path itself, no fallback
    assert ds.read_digitstruct(mat) == ENTRIES


def _write_variant(path, entries, *, libver: str, compress: bool) -> None:
    """The same logical layout written by h5py's high-level API with other storage choices."""
    with h5py.File(path, "w", libver=libver) as f:
        refs = f.create_group("#refs#")
        n = iter(range(10**6))
        name_refs, bbox_refs = [], []
        for e in entries:
            chars = np.array([[ord(c)] for c in e.name], np.uint16)
            name_refs.append(refs.create_dataset(f"n{next(n)}", data=chars).ref)
            g = refs.create_group(f"g{next(n)}")
            for field in ds.FIELDS:
                values = [float(getattr(b, field)) for b in e.boxes]
                if len(values) == 1:
                    g.create_dataset(field, data=[[values[0]]])
                else:
                    cell = [refs.create_dataset(f"s{next(n)}", data=[[v]]).ref for v in values]
                    g.create_dataset(field, data=np.array(cell, h5py.ref_dtype).reshape(-1, 1))
            bbox_refs.append(g.ref)
        kw = dict(chunks=(2, 1), compression="gzip") if compress else {}
        for key, refs_ in (("name", name_refs), ("bbox", bbox_refs)):
            f.create_dataset(f"digitStruct/{key}", data=np.array(refs_, h5py.ref_dtype).reshape(-1, 1), **kw)


def test_compressed_reference_arrays_still_read_in_bulk(tmp_path):
    path = tmp_path / "compressed.mat"
    _write_variant(path, ENTRIES, libver="earliest", compress=True)
    assert bulk.read_bulk(path) == ENTRIES


def test_unknown_layout_falls_back_to_per_object(tmp_path):
    path = tmp_path / "v2headers.mat"
    _write_variant(path, ENTRIES, libver="latest", compress=False)  # version-2 object headers
    with pytest.raises(bulk.Unsupported):
        bulk.read_bulk(path)
    assert ds.read_digitstruct(path) == ENTRIES


def test_fields_of_different_lengths_are_an_error(tmp_path):
    path = tmp_path / "bad.mat"
    ds.write_digitstruct(path, ENTRIES[:1])
    with h5py.File(path, "r+") as f:  # drop one digit's width from the first entry
        group = f[f["digitStruct/bbox"][0, 0]]
        first = group["width"][0, 0]
        del group["width"]
        group.create_dataset("width", data=np.array([[first]], h5py.ref_dtype))
    for read in (ds.read_digitstruct, ds.read_digitstruct_per_object):
        with pytest.raises(ValueError, match="1.png: its box fields disagree"):
            read(path)


@needs_shared("data", "svhn_train_labels.json")
def test_real_train_labels_round_trip_a_slice(tmp_path):
    """100 real entries of ../shared."""
    labels = SHARED / "data" / "svhn_train_labels.json"
    raw = json.loads(labels.read_text())[:100]
    entries = [Entry(e["filename"], tuple(DigitBox(b["label"], b["xmin"], b["ymin"], b["xmax"] - b["xmin"],
                                                   b["ymax"] - b["ymin"]) for b in e["boxes"]))
               for e in raw]
    ds.write_digitstruct(tmp_path / "d.mat", entries)
    assert bulk.read_bulk(tmp_path / "d.mat") == entries
