"""The bulk ``digitStruct.mat`` parser: the small objects of a split resolved with vectorised numpy gathers.

It reads the two reference arrays with HDF5, then resolves the objects in bulk: an object reference
is the file address of the object's header, and the objects of a split come in a handful of identical
header layouts, so it parses one header of each layout and checks and reads all the others with
vectorised gathers from the memory-mapped file. Whatever it does not recognise (another object-header
version, chunked or filtered data, new-style groups...) raises `Unsupported`, and
`reader.read_digitstruct` falls back to the per-object parser.
"""
from __future__ import annotations

import dataclasses
import os
import struct

import h5py
import numpy as np
from h5py import h5s, h5t

from svhn_jax.data.svhn.digitstruct.schema import FIELDS, SIGNATURE, DigitBox, Entry, word


class Unsupported(Exception):
    """The file uses an HDF5 feature the bulk parser does not read (the per-object parser does)."""


_DTYPES = {  # datatype message after its class byte -> numpy dtype
    (1, bytes.fromhex("203f00" "08000000" "0000" "4000" "34" "0b" "00" "34" "ff030000")): np.dtype("<f8"),
    (0, bytes.fromhex("000000" "02000000" "0000" "1000")): np.dtype("<u2"),
}
_REF = np.dtype("<u8")  # object references: the address of the object header
_ROWS = 1 << 16         # objects per gather, to bound memory


_TREE = word(b"TREE\x00\x00\x01\x00")  # group B-tree node, leaf, one child
_SNOD = word(b"SNOD\x01\x00" + struct.pack("<H", len(FIELDS)))
_HEAP = word(b"HEAP\x00\x00\x00\x00")


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
            if sb + 16 <= len(self.buf) and self.buf[sb:sb + 8].tobytes() == SIGNATURE:
                break
        else:
            raise Unsupported("no HDF5 superblock")
        version = int(self.buf[sb + 8])
        sizes = self.buf[sb + 13:sb + 15] if version < 2 else self.buf[sb + 9:sb + 11]
        if list(sizes) != [8, 8]:
            raise Unsupported("offsets or lengths not 8 bytes wide")
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
            raise Unsupported("object header is not version 1")
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
                    raise Unsupported("object header message overruns its block")
                masks[bi][rel:rel + 5] = b"\xff" * 5
                if mtype == 0x10:  # continuation: the rest of the messages lie at another address
                    addr, length = struct.unpack_from("<QQ", b, origin + data)
                    blocks.append((bi, data, self.base + addr, 0, length))
                    masks.append(bytearray(length))
                    masks[bi][data + 8:data + 16] = b"\xff" * 8
                elif mtype in (0x1, 0x3, 0x8, 0x11):
                    if flags & 0x2:
                        raise Unsupported("shared object header message")
                    msgs[mtype] = (bi, data, msize)
                    if mtype != 0x11:
                        masks[bi][data:data + msize] = b"\xff" * msize
                elif mtype in (0x2, 0x6, 0x7, 0xB):
                    raise Unsupported(f"object header message {mtype:#x} (links, external data or filters)")
                rel = data + msize
            bi += 1
        if 0x11 in msgs:
            layout = dict(where=msgs[0x11][:2], group=True)
        elif all(t in msgs for t in (0x1, 0x3, 0x8)):
            layout = self._dataset(msgs, [blocks[i][2] for i in range(len(blocks))], masks)
        else:
            raise Unsupported("object is neither an old-style group nor a dataset")
        compiled = []
        for (parent, pos, origin, _, _), mask in zip(blocks, masks):
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
            raise Unsupported("dataspace")
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
                raise Unsupported("datatype other than float64, uint16 or object reference")
        bi, rel, msize = msgs[0x8]  # data layout
        o = rel + origins[bi]
        size = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
        if b[o] != 3 or b[o + 1] not in (0, 1):
            raise Unsupported("data layout other than compact or contiguous")
        compact = b[o + 1] == 0
        if compact:
            stored, = struct.unpack_from("<H", b, o + 2)
            masks[bi][rel + 4:rel + msize] = bytes(msize - 4)
            where = (bi, rel + 4)
        else:
            addr, stored = struct.unpack_from("<QQ", b, o + 2)
            if addr == 0xFFFFFFFFFFFFFFFF:
                raise Unsupported("dataset without stored data")
            masks[bi][rel + 2:rel + 10] = bytes(8)
            where = (bi, rel + 2)
        if stored != size or size == 0:
            raise Unsupported("dataset size")
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
            raise Unsupported("object reference outside the file")
        pending, out = np.arange(len(offsets)), []
        while pending.size:
            if len(out) == 256:
                raise Unsupported("too many distinct object layouts")
            layout = self.parse(int(offsets[pending[0]]))
            found, origins = self.match(layout, offsets[pending])
            if found.size == 0 or found[0] != 0:
                raise Unsupported("object header does not match its own layout")
            block, rel = layout.where
            at = origins[block] + rel
            if layout.group:
                payload = (self.u64(at), self.u64(at + 8))
            else:
                if not layout.compact:
                    at = self.base + self.u64(at)
                    if at.max() + layout.size > len(self.buf):
                        raise Unsupported("dataset data outside the file")
                payload = self.bytes(at, layout.size).view(layout.dtype)
            out.append((pending[found], layout, payload))
            pending = np.delete(pending, found)
        return out

    def strings(self, addresses: np.ndarray) -> list[str]:
        """MATLAB char arrays (uint16 code units) -> str."""
        out = np.empty(len(addresses), object)
        for index, layout, chars in self.resolve(addresses):
            if layout.group or layout.dtype != np.dtype("<u2"):
                raise Unsupported("a name is not a uint16 character array")
            out[index] = np.ascontiguousarray(chars, "<u4").view(f"<U{chars.shape[1]}")[:, 0]
        return out.tolist()

    def struct_fields(self, addresses: np.ndarray) -> np.ndarray:
        """Old-style groups holding exactly FIELDS -> the fields' object addresses [N, len(FIELDS)]."""
        trees, heaps = np.empty(len(addresses), np.int64), np.empty(len(addresses), np.int64)
        for index, layout, (tree, heap) in self.resolve(addresses):
            if not layout.group:
                raise Unsupported("a bbox is not a group")
            trees[index], heaps[index] = tree, heap
        trees, heaps = self.base + trees, self.base + heaps
        if np.any(self.words(trees, np.zeros(1, np.int64))[:, 0] != _TREE):
            raise Unsupported("bbox group B-tree is not a single leaf")
        nodes = self.base + self.u64(trees + 32)
        if np.any(self.words(nodes, np.zeros(1, np.int64))[:, 0] != _SNOD) or np.any(
                self.words(heaps, np.zeros(1, np.int64))[:, 0] != _HEAP):
            raise Unsupported("bbox group is not a symbol table of the five fields")
        entries = nodes[:, None] + 8 + 40 * np.arange(len(FIELDS))
        name_at = self.base + self.u64(heaps + 24)[:, None] + self.u64(entries.ravel()).reshape(entries.shape)
        for j, field in enumerate(FIELDS):
            expected = np.frombuffer(field.encode() + b"\0", np.uint8)
            if np.any(self.bytes(name_at[:, j], len(expected)) != expected):
                raise Unsupported("bbox group fields are not height, label, left, top, width")
        return self.u64((entries + 8).ravel()).reshape(entries.shape)

    def numbers(self, addresses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Numeric datasets, or cells of references to 1x1 ones -> (count per dataset, flat float64)."""
        counts = np.zeros(len(addresses), np.int64)
        direct, cells = [], []
        for index, layout, data in self.resolve(addresses):
            if layout.group:
                raise Unsupported("a box field is a group")
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
                    raise Unsupported("a cell of a box field does not hold a 1x1 number")
                values[at[index]] = data[:, 0]
        return counts, values


def _references(dataset: h5py.Dataset) -> np.ndarray:
    """An object-reference dataset read (by HDF5) as raw header addresses, uint64 [N]."""
    if h5py.check_dtype(ref=dataset.dtype) is None:
        raise Unsupported(f"{dataset.name} does not hold object references")
    out = np.empty(dataset.shape, np.uint64)
    dataset.id.read(h5s.ALL, h5s.ALL, out, mtype=h5t.STD_REF_OBJ)
    return out.ravel()


def read_bulk(path: str | os.PathLike) -> list[Entry]:
    """All entries of a ``digitStruct.mat``; raises `Unsupported` on an HDF5 feature it does not read."""
    with h5py.File(path, "r") as f:
        name_refs, bbox_refs = _references(f["digitStruct/name"]), _references(f["digitStruct/bbox"])
    if len(name_refs) != len(bbox_refs):
        raise Unsupported("digitStruct/name and digitStruct/bbox differ in length")
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
        raise Unsupported("a label is not a finite number")
    height, left, top, width = (columns[:, FIELDS.index(c)].tolist() for c in ("height", "left", "top", "width"))
    label = columns[:, 1].astype(np.int64).tolist()
    entries, p = [], 0
    for name, n in zip(names, k.tolist()):
        entries.append(Entry(name, tuple(DigitBox(label[i], left[i], top[i], width[i], height[i])
                                         for i in range(p, p + n))))
        p += n
    return entries

