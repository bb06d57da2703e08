"""What a ``digitStruct.mat`` holds (`Entry`, `DigitBox`) and the HDF5 constants its reader and writer share."""
from __future__ import annotations

import dataclasses

import numpy as np

FIELDS = ("height", "label", "left", "top", "width")  # struct fields, in the (sorted) order of the file
SIGNATURE = b"\x89HDF\r\n\x1a\n"  # starts an HDF5 superblock


def word(signature: bytes) -> np.uint64:
    """8 bytes as the little-endian uint64 they read as."""
    return np.frombuffer(signature, "<u8")[0]


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
