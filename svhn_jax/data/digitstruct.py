"""SVHN format-1 labels: reading and writing ``digitStruct.mat`` (MATLAB v7.3, i.e. HDF5).

Layout of the real release, reproduced exactly by `write_digitstruct`:

- ``digitStruct/name`` and ``digitStruct/bbox``: [N, 1] object references (MATLAB stores a 1xN struct
  array column-major); the referenced objects live in the ``#refs#`` group.
- a name is a uint16 character array [len, 1] (``MATLAB_class`` "char", ``MATLAB_int_decode`` 2);
- a bbox is a struct group with fields ``height``, ``label``, ``left``, ``top``, ``width``; each field
  is a 1x1 double dataset holding the value when the image has one digit, and a [k, 1] array of
  references ("cell") to 1x1 double datasets when it has k > 1 digits;
- the file starts with MATLAB's 512-byte user block (a 128-byte text header, then zeros).

`read_digitstruct_per_object` is the usual parser: one ``file[ref]`` per object, ~0.5 million HDF5
calls for the train split. `read_digitstruct` reads the two reference arrays with HDF5, then resolves
the small objects in bulk: an object reference is the file address of the object's header, and the
objects of a split come in a handful of identical header layouts, so it parses one header of each
layout and checks and reads all the others with vectorised numpy gathers from the memory-mapped file.
Whatever it does not recognise (another object-header version, chunked or filtered data, new-style
groups...) makes it fall back to the per-object parser, so both always return the same entries.

`write_digitstruct` lays the HDF5 structures out itself, as libhdf5 would (see the writing section):
about 50 times faster than one libhdf5 call per object, and the same bytes for the same entries.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import math
import os
import string
import struct
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
from h5py import h5s, h5t

FIELDS = ("height", "label", "left", "top", "width")  # struct fields, in the (sorted) order of the file
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
#
# The writer lays the bytes out itself: libhdf5 costs ~0.1 ms per object created, and an image has ~17.
# It writes the structures libhdf5 writes with libver="earliest" and no timestamps (superblock 0,
# version-1 object headers, symbol-table groups, contiguous data, vlen strings in global heaps), without
# the spare room libhdf5 leaves in object headers and heaps. Addresses count from the superblock.

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
        words[:, 0] = _word(b"TREE\0\0\0\0") | np.uint64(level << 40) | (used << np.uint64(48))
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
    nodes = np.concatenate([(_word(b"SNOD\1\0\0\0") | (used << np.uint64(48)))[:, None],
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
    out.chunks[0] = (_SIGNATURE + bytes(5) + b"\x08\x08\0"  # superblock 0; 8-byte addresses and lengths
                     + struct.pack("<HHIQQQQ", _LEAF_K, _NODE_K, 0, _USERBLOCK, _UNDEF, _USERBLOCK + out.size, _UNDEF)
                     + struct.pack("<QQ", 0, root_at) + root_cache)
    # MATLAB's 128-byte header: 116 text bytes, 8 subsystem bytes, version, endian; then zeros.
    userblock = (_MAT_HEADER.ljust(116, b" ") + b" " * 8 + b"\x00\x02" + b"IM").ljust(_USERBLOCK, b"\0")
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(userblock)
            f.writelines(out.chunks)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# ------------------------------------------------------------------------------ per-object parser

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


# ------------------------------------------------------------------------------------ bulk parser

class _Unsupported(Exception):
    """The file uses an HDF5 feature the bulk parser does not read (the per-object parser does)."""


_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_DTYPES = {  # datatype message after its class byte -> numpy dtype
    (1, bytes.fromhex("203f00" "08000000" "0000" "4000" "34" "0b" "00" "34" "ff030000")): np.dtype("<f8"),
    (0, bytes.fromhex("000000" "02000000" "0000" "1000")): np.dtype("<u2"),
}
_REF = np.dtype("<u8")  # object references: the address of the object header
_ROWS = 1 << 16         # objects per gather, to bound memory


def _word(signature: bytes) -> np.uint64:
    return np.frombuffer(signature, "<u8")[0]


_TREE = _word(b"TREE\x00\x00\x01\x00")  # group B-tree node, leaf, one child
_SNOD = _word(b"SNOD\x01\x00" + struct.pack("<H", len(FIELDS)))
_HEAP = _word(b"HEAP\x00\x00\x00\x00")


@dataclasses.dataclass(frozen=True)
class _Layout:
    """The shape of one object header, parsed once and matched against many.

    `blocks[i]` = (parent block, offset of its address in the parent, word indices, words, masks): the
    header prefix and messages (block 0) and continuation blocks; `where` = (block, byte offset) of the
    payload: the data (compact), the data address (contiguous) or the symbol-table message (group).
    """

    blocks: tuple[tuple[int, int, np.ndarray, np.ndarray, np.ndarray], ...]
    where: tuple[int, int]
    group: bool = False
    dtype: np.dtype | None = None
    size: int = 0
    compact: bool = False


class _Bytes:
    """An HDF5 file's bytes, memory-mapped, with vectorised reads of words at many offsets."""

    def __init__(self, path: str | os.PathLike):
        self.buf = np.memmap(path, np.uint8, mode="r")
        for sb in (0, *(512 << i for i in range(16))):
            if sb + 16 <= len(self.buf) and self.buf[sb:sb + 8].tobytes() == _SIGNATURE:
                break
        else:
            raise _Unsupported("no HDF5 superblock")
        version = int(self.buf[sb + 8])
        sizes = self.buf[sb + 13:sb + 15] if version < 2 else self.buf[sb + 9:sb + 11]
        if list(sizes) != [8, 8]:
            raise _Unsupported("offsets or lengths not 8 bytes wide")
        self.base = sb  # HDF5 addresses count from the superblock (after the user block)
        self.views = [np.frombuffer(self.buf, "<u8", (len(self.buf) - s) // 8, s) for s in range(8)]

    def words(self, offsets: np.ndarray, index: np.ndarray) -> np.ndarray:
        """uint64 [N, K]: the little-endian words at offsets[n] + 8 * index[k]."""
        out = np.empty((len(offsets), len(index)), np.uint64)
        shift = offsets & 7
        shifts = np.flatnonzero(np.bincount(shift, minlength=8))
        for s in shifts:
            rows = np.arange(len(offsets)) if len(shifts) == 1 else np.flatnonzero(shift == s)
            for r in range(0, len(rows), _ROWS):
                chunk = rows[r:r + _ROWS]
                out[chunk] = self.views[s][((offsets[chunk] - s) >> 3)[:, None] + index]
        return out

    def u64(self, offsets: np.ndarray) -> np.ndarray:
        return self.words(offsets, np.zeros(1, np.int64))[:, 0].astype(np.int64)

    def bytes(self, offsets: np.ndarray, n: int) -> np.ndarray:
        out = np.empty((len(offsets), n), np.uint8)
        for r in range(0, len(offsets), _ROWS):
            out[r:r + _ROWS] = self.buf[offsets[r:r + _ROWS, None] + np.arange(n)]
        return out

    def parse(self, off: int) -> _Layout:
        """Parses one version-1 object header (Python; done once per distinct layout)."""
        b = self.buf
        if off + 16 > len(b) or b[off] != 1:
            raise _Unsupported("object header is not version 1")
        nmsgs, = struct.unpack_from("<H", b, off + 2)
        size, = struct.unpack_from("<I", b, off + 8)
        blocks = [(-1, 0, off, 16, 16 + size)]  # parent, address position in parent, origin, start, end
        masks = [bytearray(16 + size)]
        masks[0][0:4] = masks[0][8:12] = b"\xff" * 4  # version, number of messages, header size
        msgs: dict[int, tuple[int, int, int]] = {}
        seen, bi = 0, 0
        while bi < len(blocks) and seen < nmsgs:
            _, _, origin, rel, end = blocks[bi]
            while rel + 8 <= end and seen < nmsgs:
                mtype, msize, flags = struct.unpack_from("<HHB", b, origin + rel)
                data, seen = rel + 8, seen + 1
                if data + msize > end:
                    raise _Unsupported("object header message overruns its block")
                masks[bi][rel:rel + 5] = b"\xff" * 5
                if mtype == 0x10:  # continuation: the rest of the messages lie at another address
                    addr, length = struct.unpack_from("<QQ", b, origin + data)
                    blocks.append((bi, data, self.base + addr, 0, length))
                    masks.append(bytearray(length))
                    masks[bi][data + 8:data + 16] = b"\xff" * 8
                elif mtype in (0x1, 0x3, 0x8, 0x11):
                    if flags & 0x2:
                        raise _Unsupported("shared object header message")
                    msgs[mtype] = (bi, data, msize)
                    if mtype != 0x11:
                        masks[bi][data:data + msize] = b"\xff" * msize
                elif mtype in (0x2, 0x6, 0x7, 0xB):
                    raise _Unsupported(f"object header message {mtype:#x} (links, external data or filters)")
                rel = data + msize
            bi += 1
        if 0x11 in msgs:
            layout = dict(where=msgs[0x11][:2], group=True)
        elif all(t in msgs for t in (0x1, 0x3, 0x8)):
            layout = self._dataset(msgs, [blocks[i][2] for i in range(len(blocks))], masks)
        else:
            raise _Unsupported("object is neither an old-style group nor a dataset")
        compiled = []
        for (parent, pos, origin, _, end), mask in zip(blocks, masks):
            mask = np.frombuffer(bytes(mask) + bytes(-len(mask) % 8), "<u8")
            index = np.flatnonzero(mask).astype(np.int64)
            words = self.words(np.array([origin], np.int64), index)[0] & mask[index]
            compiled.append((parent, pos, index, words, mask[index]))
        return _Layout(blocks=tuple(compiled), **layout)

    def _dataset(self, msgs, origins, masks) -> dict:
        b = self.buf
        bi, o, _ = msgs[0x1]  # dataspace
        o += origins[bi]
        version, rank = int(b[o]), int(b[o + 1])
        if version not in (1, 2) or (version == 2 and b[o + 3] == 2):
            raise _Unsupported("dataspace")
        dims = struct.unpack_from(f"<{rank}Q", b, o + (8 if version == 1 else 4))
        bi, o, msize = msgs[0x3]  # datatype
        o += origins[bi]
        cls = int(b[o]) & 0xF
        if cls == 7 and int(b[o + 1]) & 0xF == 0 and struct.unpack_from("<I", b, o + 4)[0] == 8:
            dtype = _REF
        else:
            dtype = next((dt for (c, sig), dt in _DTYPES.items()
                          if c == cls and b[o + 1:o + 1 + len(sig)].tobytes() == sig), None)
            if dtype is None:
                raise _Unsupported("datatype other than float64, uint16 or object reference")
        bi, rel, msize = msgs[0x8]  # data layout
        o = rel + origins[bi]
        size = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
        if b[o] != 3 or b[o + 1] not in (0, 1):
            raise _Unsupported("data layout other than compact or contiguous")
        compact = b[o + 1] == 0
        if compact:
            stored, = struct.unpack_from("<H", b, o + 2)
            masks[bi][rel + 4:rel + msize] = bytes(msize - 4)
            where = (bi, rel + 4)
        else:
            addr, stored = struct.unpack_from("<QQ", b, o + 2)
            if addr == 0xFFFFFFFFFFFFFFFF:
                raise _Unsupported("dataset without stored data")
            masks[bi][rel + 2:rel + 10] = bytes(8)
            where = (bi, rel + 2)
        if stored != size or size == 0:
            raise _Unsupported("dataset size")
        return dict(where=where, dtype=dtype, size=size, compact=compact)

    def match(self, layout: _Layout, offsets: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Which headers at `offsets` have `layout`: (their indices, the origin of each block)."""
        keep = np.arange(len(offsets))
        origins = [offsets]
        for parent, pos, index, words, masks in layout.blocks:
            if parent >= 0:
                addr = self.u64(origins[parent] + pos)
                ok = (addr >= 0) & (addr < len(self.buf) - self.base - 8 * (int(index.max(initial=0)) + 1))
                keep, origins = keep[ok], [o[ok] for o in origins]
                origins.append(self.base + addr[ok])
            ok = np.all((self.words(origins[-1] if parent >= 0 else origins[0], index) & masks) == words,
                        axis=1)
            keep, origins = keep[ok], [o[ok] for o in origins]
        return keep, origins

    def resolve(self, addresses: np.ndarray) -> list[tuple[np.ndarray, _Layout, object]]:
        """Reads many objects: [(indices into `addresses`, their layout, payload)].

        Payload: uint8->dtype data [n, values] for datasets, (B-tree, heap) addresses for groups.
        """
        offsets = self.base + addresses.astype(np.int64)
        if len(offsets) and (offsets.min() < self.base or offsets.max() + 16 > len(self.buf)):
            raise _Unsupported("object reference outside the file")
        pending, out = np.arange(len(offsets)), []
        while pending.size:
            if len(out) == 256:
                raise _Unsupported("too many distinct object layouts")
            layout = self.parse(int(offsets[pending[0]]))
            found, origins = self.match(layout, offsets[pending])
            if found.size == 0 or found[0] != 0:
                raise _Unsupported("object header does not match its own layout")
            block, rel = layout.where
            at = origins[block] + rel
            if layout.group:
                payload = (self.u64(at), self.u64(at + 8))
            else:
                if not layout.compact:
                    at = self.base + self.u64(at)
                    if at.max() + layout.size > len(self.buf):
                        raise _Unsupported("dataset data outside the file")
                payload = self.bytes(at, layout.size).view(layout.dtype)
            out.append((pending[found], layout, payload))
            pending = np.delete(pending, found)
        return out

    def strings(self, addresses: np.ndarray) -> list[str]:
        """MATLAB char arrays (uint16 code units) -> str."""
        out = np.empty(len(addresses), object)
        for index, layout, chars in self.resolve(addresses):
            if layout.group or layout.dtype != np.dtype("<u2"):
                raise _Unsupported("a name is not a uint16 character array")
            out[index] = np.ascontiguousarray(chars, "<u4").view(f"<U{chars.shape[1]}")[:, 0]
        return out.tolist()

    def struct_fields(self, addresses: np.ndarray) -> np.ndarray:
        """Old-style groups holding exactly FIELDS -> the fields' object addresses [N, len(FIELDS)]."""
        trees, heaps = np.empty(len(addresses), np.int64), np.empty(len(addresses), np.int64)
        for index, layout, (tree, heap) in self.resolve(addresses):
            if not layout.group:
                raise _Unsupported("a bbox is not a group")
            trees[index], heaps[index] = tree, heap
        trees, heaps = self.base + trees, self.base + heaps
        if np.any(self.words(trees, np.zeros(1, np.int64))[:, 0] != _TREE):
            raise _Unsupported("bbox group B-tree is not a single leaf")
        nodes = self.base + self.u64(trees + 32)
        if np.any(self.words(nodes, np.zeros(1, np.int64))[:, 0] != _SNOD) or np.any(
                self.words(heaps, np.zeros(1, np.int64))[:, 0] != _HEAP):
            raise _Unsupported("bbox group is not a symbol table of the five fields")
        entries = nodes[:, None] + 8 + 40 * np.arange(len(FIELDS))
        name_at = self.base + self.u64(heaps + 24)[:, None] + self.u64(entries.ravel()).reshape(entries.shape)
        for j, field in enumerate(FIELDS):
            expected = np.frombuffer(field.encode() + b"\0", np.uint8)
            if np.any(self.bytes(name_at[:, j], len(expected)) != expected):
                raise _Unsupported("bbox group fields are not height, label, left, top, width")
        return self.u64((entries + 8).ravel()).reshape(entries.shape)

    def numbers(self, addresses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Numeric datasets, or cells of references to 1x1 ones -> (count per dataset, flat float64)."""
        counts = np.zeros(len(addresses), np.int64)
        direct, cells = [], []
        for index, layout, data in self.resolve(addresses):
            if layout.group:
                raise _Unsupported("a box field is a group")
            counts[index] = data.shape[1]
            (cells if layout.dtype == _REF else direct).append((index, data))
        starts = np.cumsum(counts) - counts
        values = np.empty(int(counts.sum()), np.float64)
        for index, data in direct:
            values[starts[index][:, None] + np.arange(data.shape[1])] = data
        if cells:
            at = np.concatenate([(starts[i][:, None] + np.arange(d.shape[1])).ravel() for i, d in cells])
            refs = np.concatenate([d.ravel() for _, d in cells])
            for index, layout, data in self.resolve(refs):
                if layout.group or layout.dtype == _REF or data.shape[1] != 1:
                    raise _Unsupported("a cell of a box field does not hold a 1x1 number")
                values[at[index]] = data[:, 0]
        return counts, values


def _references(dataset: h5py.Dataset) -> np.ndarray:
    """An object-reference dataset read (by HDF5) as raw header addresses, uint64 [N]."""
    if h5py.check_dtype(ref=dataset.dtype) is None:
        raise _Unsupported(f"{dataset.name} does not hold object references")
    out = np.empty(dataset.shape, np.uint64)
    dataset.id.read(h5s.ALL, h5s.ALL, out, mtype=h5t.STD_REF_OBJ)
    return out.ravel()


def _read_bulk(path: str | os.PathLike) -> list[Entry]:
    with h5py.File(path, "r") as f:
        name_refs, bbox_refs = _references(f["digitStruct/name"]), _references(f["digitStruct/bbox"])
    if len(name_refs) != len(bbox_refs):
        raise _Unsupported("digitStruct/name and digitStruct/bbox differ in length")
    data = _Bytes(path)
    names = data.strings(name_refs)
    counts, values = data.numbers(data.struct_fields(bbox_refs).ravel())
    counts = counts.reshape(len(names), len(FIELDS))
    bad = np.flatnonzero(np.any(counts != counts[:, :1], axis=1))
    if bad.size:
        raise ValueError(f"digitStruct entry {names[bad[0]]}: its box fields disagree in length")
    k = counts[:, 0]
    starts = (np.cumsum(counts.ravel()) - counts.ravel()).reshape(counts.shape)
    within = np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k)
    columns = values[np.repeat(starts, k, axis=0) + within[:, None]]  # [digits, FIELDS]
    if not np.all(np.isfinite(columns[:, 1])):
        raise _Unsupported("a label is not a finite number")
    height, left, top, width = (columns[:, FIELDS.index(c)].tolist() for c in ("height", "left", "top", "width"))
    label = columns[:, 1].astype(np.int64).tolist()
    entries, p = [], 0
    for name, n in zip(names, k.tolist()):
        entries.append(Entry(name, tuple(DigitBox(label[i], left[i], top[i], width[i], height[i])
                                         for i in range(p, p + n))))
        p += n
    return entries


def read_digitstruct(path: str | os.PathLike) -> list[Entry]:
    """Reads a ``digitStruct.mat``: the same entries as `read_digitstruct_per_object`, in bulk."""
    try:
        return _read_bulk(path)
    except (_Unsupported, IndexError, KeyError, struct.error) as e:
        logging.warning("%s: bulk digitStruct parser not applicable (%s); reading object by object", path, e)
        return read_digitstruct_per_object(path)
