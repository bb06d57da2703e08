"""Writes ``digitStruct.mat`` in the real release's MATLAB v7.3 layout, laying the HDF5 bytes out itself.

libhdf5 is slow per object created, and an image has ~17 objects, so the writer lays the bytes out
itself: the structures libhdf5 writes with libver="earliest" and no timestamps (superblock 0, version-1
object headers, symbol-table groups, contiguous data, vlen strings in global heaps), without the spare
room libhdf5 leaves in object headers and heaps; the same bytes for the same entries. Addresses count
from the superblock.
"""
from __future__ import annotations

import functools
import itertools
import math
import os
import string
import struct
from pathlib import Path
from typing import Sequence

import numpy as np

from svhn_jax.core.fileio import atomic_write
from svhn_jax.data.svhn.digitstruct.schema import FIELDS, SIGNATURE, Entry, word

_MAT_HEADER = (b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Fri Dec 16 14:31:59 2011 "
               b"HDF5 schema 1.00 .")
_USERBLOCK = 512
_UNDEF = 0xFFFF_FFFF_FFFF_FFFF
_LEAF_K, _NODE_K = 4, 16  # libhdf5's defaults: 2K links per symbol node, 2K children per B-tree node
_SNOD_SIZE = 8 + 2 * _LEAF_K * 40
_TREE_SIZE = 24 + 2 * _NODE_K * 8 + (2 * _NODE_K + 1) * 8
_F64 = bytes.fromhex("11203f00" "08000000" "0000" "4000" "34" "0b" "00" "34" "ff030000")
_U8, _U16, _U64 = (bytes.fromhex("10000000") + struct.pack("<IHH", n, 0, 8 * n) for n in (1, 2, 8))
_I32 = bytes.fromhex("10080000" "04000000" "0000" "2000")
_OBJ_REF = bytes.fromhex("17000000" "08000000")          # object reference
_VLEN_S1 = bytes.fromhex("19000000" "10000000" "13010000" "01000000")  # sequence of 1-byte strings
_FILL = bytes.fromhex("02020201" "00000000")         # fill value message, as libhdf5 writes it
_NO_CACHE = bytes(24)                                 # symbol-table entry of a dataset: nothing cached
_GCOL_SIZE, _GCOL_GROUPS = 4096, 33                   # a global heap holds the field names of 33 structs


def _pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % 8)


def _msg(mtype: int, body: bytes, flags: int = 0) -> bytes:
    body = _pad(body)
    return struct.pack("<HHB3x", mtype, len(body), flags) + body


def _header(*msgs: bytes) -> bytes:
    """A version-1 object header (reference count 1)."""
    return struct.pack("<BxHII4x", 1, len(msgs), 1, sum(map(len, msgs))) + b"".join(msgs)


def _space(dims: tuple[int, ...]) -> bytes:
    return struct.pack(f"<BBB5x{2 * len(dims)}Q", 1, len(dims), int(bool(dims)), *dims, *dims)


def _attr(name: bytes, dtype: bytes, value: bytes, dims: tuple[int, ...] = ()) -> bytes:
    name, space = name + b"\0", _space(dims)
    return _msg(0xC, struct.pack("<BxHHH", 1, len(name), len(dtype), len(space))
                + _pad(name) + _pad(dtype) + _pad(space) + value)


def _class(cls: bytes) -> bytes:
    return _attr(b"MATLAB_class", struct.pack("<BxxxI", 0x13, len(cls)), cls)


_CHAR = (_class(b"char"), _attr(b"MATLAB_int_decode", _I32, struct.pack("<i", 2)))
_DOUBLE, _CELL, _STRUCT = _class(b"double"), _class(b"cell"), _class(b"struct")
_EMPTY = (_class(b"canonical empty"), _attr(b"MATLAB_empty", _U8, b"\1"))


class _Dataset:
    """Bytes of a dataset (header, then its contiguous data) of one type, shape and attributes."""

    def __init__(self, dtype: bytes, itemsize: int, dims: tuple[int, ...], attrs: tuple[bytes, ...]):
        self.nbytes = itemsize * math.prod(dims)
        before = (_msg(0x1, _space(dims)), _msg(0x3, dtype, 1), _msg(0x5, _FILL, 1))
        header = _header(*before, _msg(0x8, struct.pack("<BBQQ", 3, 1, 0, self.nbytes)), *attrs)
        at = 16 + sum(map(len, before)) + 8 + 2  # the data address in the layout message
        self.pre, self.post, self.size = header[:at], header[at + 8:], len(header)

    def __call__(self, addr: int, data: bytes) -> bytes:
        """`data`: `nbytes` bytes, zero-padded to a multiple of 8."""
        where = addr + self.size if self.nbytes else _UNDEF
        return b"".join((self.pre, where.to_bytes(8, "little"), self.post, data))


_dataset = functools.lru_cache(maxsize=None)(_Dataset)
_SCALAR = _dataset(_F64, 8, (1, 1), (_DOUBLE,))


def _group(addr: int, attrs: Sequence[bytes], links: Sequence[tuple[bytes, int, bytes]]) -> tuple[bytes, bytes]:
    """A group of at most 2 * _LEAF_K links (name, object address, cache), sorted by name: its header,
    B-tree, symbol node and local heap, and the cache of a link to it (its B-tree and heap)."""
    tree = addr + 16 + 24 + sum(map(len, attrs))
    snod, heap = tree + _TREE_SIZE, tree + _TREE_SIZE + _SNOD_SIZE
    names = [_pad(name + b"\0") for name, _, _ in links]
    offsets = list(itertools.accumulate(map(len, names), initial=8))
    symbols = b"".join(struct.pack("<QQ", at, obj) + cache
                       for at, (_, obj, cache) in zip(offsets, links))
    data = bytes(8) + b"".join(names)
    out = b"".join((
        _header(_msg(0x11, struct.pack("<QQ", tree, heap)), *attrs),
        (b"TREE" + struct.pack("<BBH5Q", 0, 0, 1, _UNDEF, _UNDEF, 0, snod, offsets[-2])).ljust(_TREE_SIZE, b"\0"),
        (b"SNOD" + struct.pack("<BxH", 1, len(links)) + symbols).ljust(_SNOD_SIZE, b"\0"),
        b"HEAP" + struct.pack("<4xQQQ", len(data), 1, heap + 32), data))  # free list: none (1)
    return out, struct.pack("<I4xQQ", 1, tree, heap)


def _struct_attrs(gcol: int, first: int) -> tuple[bytes, bytes]:
    """MATLAB_class and MATLAB_fields of a bbox struct whose field names are objects first+1.. of `gcol`."""
    refs = b"".join(struct.pack("<IQI", len(f), gcol, first + 1 + j) for j, f in enumerate(FIELDS))
    return _STRUCT, _attr(b"MATLAB_fields", _VLEN_S1, refs, (len(FIELDS),))


def _global_heap() -> bytes:
    """A global heap collection holding FIELDS _GCOL_GROUPS times, then its free space."""
    objs = b"".join(struct.pack("<HH4xQ", i, 0, len(f)) + _pad(f.encode())
                    for i, f in enumerate(FIELDS * _GCOL_GROUPS, 1))
    free = _GCOL_SIZE - 16 - len(objs)
    return b"GCOL" + struct.pack("<B3xQ", 1, _GCOL_SIZE) + objs + struct.pack("<HH4xQ", 0, 0, free) + bytes(free - 16)


_BBOX_SIZE = len(_group(0, _struct_attrs(0, 0), [(f.encode(), 0, _NO_CACHE) for f in FIELDS])[0])


def _ref_names(count: int) -> np.ndarray:
    """MATLAB's names for the objects in #refs# (a..z A..Z 0..9, then two characters, and so on), as
    null-padded uint8 [count, 8]."""
    alphabet = np.frombuffer((string.ascii_lowercase + string.ascii_uppercase + string.digits).encode(), np.uint8)
    out, n, start, length = np.zeros((count, 8), np.uint8), np.arange(count), 0, 1
    while start < count:
        size = len(alphabet) ** length
        if length > 7:
            raise ValueError(f"too many objects for a digitStruct: {count}")
        rows = slice(start, min(count, start + size))
        rest = n[rows] - start
        for k in reversed(range(length)):
            out[rows, k] = alphabet[rest % len(alphabet)]
            rest //= len(alphabet)
        start, length = start + size, length + 1
    return out


def _tree_nodes(start: int, children: np.ndarray, keys: np.ndarray) -> tuple[list[np.ndarray], int]:
    """A group's B-tree over `children` (symbol nodes, in name order), keys[i] being the heap offset of
    the last name under children[i]: its nodes as uint64 words, level by level, and its root's address."""
    levels, level = [], 0
    while True:
        n = -(-len(children) // (2 * _NODE_K))
        addrs = start + _TREE_SIZE * np.arange(n, dtype=np.uint64)
        words = np.zeros((n, _TREE_SIZE // 8), np.uint64)
        used = np.minimum(2 * _NODE_K, len(children) - 2 * _NODE_K * np.arange(n)).astype(np.uint64)
        words[:, 0] = word(b"TREE\0\0\0\0") | np.uint64(level << 40) | (used << np.uint64(48))
        words[:, 1] = np.concatenate([[_UNDEF], addrs[:-1]])
        words[:, 2] = np.concatenate([addrs[1:], [_UNDEF]])
        bounds = np.zeros(2 * _NODE_K * n + 1, np.uint64)  # bounds[i], bounds[i + 1]: names under child i
        bounds[1:len(keys) + 1] = keys
        words[:, 3::2] = np.lib.stride_tricks.sliding_window_view(bounds, 2 * _NODE_K + 1)[::2 * _NODE_K]
        slots = np.zeros(2 * _NODE_K * n, np.uint64)
        slots[:len(children)] = children
        words[:, 4::2] = slots.reshape(n, -1)
        levels.append(words)
        if n == 1:
            return levels, int(addrs[0])
        start += _TREE_SIZE * n
        children, keys, level = addrs, keys[np.minimum(len(keys), 2 * _NODE_K * np.arange(1, n + 1)) - 1], level + 1


def _refs_group(start: int, addrs: np.ndarray, caches: np.ndarray) -> tuple[list[bytes], int, bytes]:
    """The #refs# group holding objects `addrs` (in naming order; `caches` [N, 3] words of their
    symbol-table entries) at `start`: (its chunks, its header's address, the cache of a link to it)."""
    names = _ref_names(len(addrs))
    heap, data_size = start, 8 + names.size
    snod = heap + 32 + data_size
    order = np.argsort(names.view(">u8")[:, 0], kind="stable")  # byte order, as strcmp compares
    rows = -(-len(addrs) // (2 * _LEAF_K))
    symbols = np.zeros((rows * 2 * _LEAF_K, 5), np.uint64)
    symbols[:len(addrs), 0] = 8 + 8 * order
    symbols[:len(addrs), 1] = addrs[order]
    symbols[:len(addrs), 2:] = caches[order]
    used = np.minimum(2 * _LEAF_K, len(addrs) - 2 * _LEAF_K * np.arange(rows)).astype(np.uint64)
    nodes = np.concatenate([(word(b"SNOD\1\0\0\0") | (used << np.uint64(48)))[:, None],
                            symbols.reshape(rows, -1)], axis=1)
    last = symbols[np.minimum(len(addrs), 2 * _LEAF_K * np.arange(1, rows + 1)) - 1, 0]
    levels, root = _tree_nodes(snod + _SNOD_SIZE * rows, snod + _SNOD_SIZE * np.arange(rows, dtype=np.uint64),
                               last)
    header_at = snod + _SNOD_SIZE * rows + _TREE_SIZE * sum(map(len, levels))
    chunks = [b"HEAP" + struct.pack("<4xQQQ", data_size, 1, heap + 32), bytes(8), names.tobytes(),
              nodes.tobytes(), *(words.tobytes() for words in levels),
              _header(_msg(0x11, struct.pack("<QQ", root, heap)))]
    return chunks, header_at, struct.pack("<I4xQQ", 1, root, heap)


class _Out:
    """The file's bytes after the user block, as a list of chunks."""

    def __init__(self):
        self.chunks: list[bytes] = []
        self.size = 0

    def put(self, data: bytes) -> int:
        self.chunks.append(data)
        self.size += len(data)
        return self.size - len(data)

    def dataset(self, template: _Dataset, data: bytes) -> int:
        return self.put(template(self.size, data))


def write_digitstruct(path: str | os.PathLike, entries: Sequence[Entry]) -> None:
    """Writes `entries` as a ``digitStruct.mat`` in the real release's MATLAB v7.3 layout (atomically).

    Objects are named in #refs# and laid out in the order MATLAB creates them: per image its name,
    its bbox struct, then the cells' numbers field by field.
    """
    if not entries:
        raise ValueError("a digitStruct needs at least one entry")
    out = _Out()
    out.put(bytes(96))  # the superblock, written last
    objects = [out.dataset(_dataset(_U64, 8, (2,), _EMPTY), bytes(16))]  # in #refs#, in naming order
    structs: list[tuple[int, bytes]] = []  # (index in objects, cache of a link) of the bbox structs
    name_refs, bbox_refs = [], []
    for i, entry in enumerate(entries):
        chars = entry.name.encode("utf-16-le")
        objects.append(out.dataset(_dataset(_U16, 2, (len(chars) // 2, 1), _CHAR), _pad(chars)))
        name_refs.append(objects[-1])
        if i % _GCOL_GROUPS == 0:
            gcol = out.put(_global_heap())
        at, slot, index = out.size, len(out.chunks), len(objects)
        objects.append(at)
        out.put(bytes(_BBOX_SIZE))  # the struct, written once its fields are
        fields = []
        for field in FIELDS:
            values = [struct.pack("<d", getattr(b, field)) for b in entry.boxes]
            if len(values) == 1:
                fields.append((field.encode(), out.dataset(_SCALAR, values[0]), _NO_CACHE))
                continue
            cell = [out.dataset(_SCALAR, v) for v in values]
            objects.extend(cell)
            fields.append((field.encode(), out.dataset(_dataset(_OBJ_REF, 8, (len(cell), 1), (_CELL,)),
                                                       struct.pack(f"<{len(cell)}Q", *cell)), _NO_CACHE))
        out.chunks[slot], cache = _group(at, _struct_attrs(gcol, len(FIELDS) * (i % _GCOL_GROUPS)), fields)
        structs.append((index, cache))
        bbox_refs.append(at)
    caches = np.zeros((len(objects), 3), np.uint64)
    for index, cache in structs:
        caches[index] = np.frombuffer(cache, "<u8")
    chunks, refs_at, refs_cache = _refs_group(out.size, np.array(objects, np.uint64), caches)
    for chunk in chunks:
        out.put(chunk)
    cell = _dataset(_OBJ_REF, 8, (len(entries), 1), (_CELL,))
    top = [(b"bbox", out.dataset(cell, np.array(bbox_refs, "<u8").tobytes()), _NO_CACHE),
           (b"name", out.dataset(cell, np.array(name_refs, "<u8").tobytes()), _NO_CACHE)]
    chunk, top_cache = _group(out.size, (_STRUCT,), top)
    top_at = out.put(chunk)
    chunk, root_cache = _group(out.size, (), [(b"#refs#", refs_at, refs_cache), (b"digitStruct", top_at, top_cache)])
    root_at = out.put(chunk)
    out.chunks[0] = (SIGNATURE + bytes(5) + b"\x08\x08\0"  # superblock 0; 8-byte addresses and lengths
                     + struct.pack("<HHIQQQQ", _LEAF_K, _NODE_K, 0, _USERBLOCK, _UNDEF, _USERBLOCK + out.size, _UNDEF)
                     + struct.pack("<QQ", 0, root_at) + root_cache)
    # MATLAB's 128-byte header: 116 text bytes, 8 subsystem bytes, version, endian; then zeros.
    userblock = (_MAT_HEADER.ljust(116, b" ") + b" " * 8 + b"\x00\x02" + b"IM").ljust(_USERBLOCK, b"\0")

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(userblock)
            f.writelines(out.chunks)
    atomic_write(path, write)
