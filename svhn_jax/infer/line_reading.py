"""Digit lines: crops of text boxes, CTC decoding over blank + digits, and stacked digits joined into one number.

The line reader (`infer.text_models.LineReader`, or the same API on onnxruntime) maps a batch of line
images [N, 3, 48, W] to per-step probabilities [N, T, 11] over blank (index 0) and the digits (index
1 + d). This module prepares its input and reads its output:

- `rotate_crop`: a text box's quad cut out and straightened (a perspective warp, as PaddleOCR's
  ``get_rotate_crop_image``); `turned` gives the crop a quarter turn either way (a line written upwards
  or downwards).
- `line_batches`: crops resized to `HEIGHT` pixels high, width by their aspect, normalised as the
  recogniser was trained (BGR, ``(x / 255 - 0.5) / 0.5``), padded on the right with 0 (mid grey) to a width
  of the few `WIDTHS` (one compiled program each for the JAX reader), grouped by that width in
  batches of at most `BATCH` (a power of two, padded: few program shapes).
- `ctc_decode`: greedy CTC (the most likely class a step, repeats merged, blanks dropped) with the
  confidence as the mean of the kept steps' probabilities (RapidOCR's score) and their minimum.
- `stacked_columns`: single-digit boxes one above another (a number written downwards, 278 on a
  post) grouped into columns, read top to bottom. PP-OCR's recogniser, given the whole column, reads
  only its top digit.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

HEIGHT = 48                           # the recogniser's input height
WIDTHS = (320, 480, 640, 960, 1280)  # padded input widths (PaddleOCR pads to >= 320; a longer line is squeezed)
BATCH = 8                             # lines read at once at most (batches padded to a power of two)
BLANK = 0                             # CTC blank's class; digit d is class 1 + d
TALL = 1.5                            # height / width at or above which a line is also read turned


@dataclasses.dataclass(frozen=True)
class Reading:
    """A line's digits, the mean and the least of its kept steps' probabilities (1.0 and 1.0 when empty:
    a sure "no digit")."""

    text: str
    confidence: float
    least: float


def ctc_decode(probs: np.ndarray) -> Reading:
    """Greedy CTC over [T, 11] probabilities (blank + digits): the best class a step, runs merged, blanks
    dropped, e.g. steps "1 1 blank 1 2" -> "112"."""
    probs = np.asarray(probs, np.float32)
    best = probs.argmax(axis=1)
    top = probs.max(axis=1)
    keep = best != BLANK
    keep[1:] &= best[1:] != best[:-1]
    if not keep.any():
        return Reading("", 0.0, 0.0)
    return Reading("".join(str(int(c) - 1) for c in best[keep]), float(top[keep].mean()), float(top[keep].min()))


def rotate_crop(image: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The quad (4 corners clockwise from the top left, photo pixels) cut out of `image` and warped to an
    upright rectangle of the quad's longer edge lengths (at least 1 x 1; edges replicated outside)."""
    import cv2
    quad = np.asarray(quad, np.float32)
    w = max(1, int(round(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3])))))
    h = max(1, int(round(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))))
    target = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    matrix = cv2.getPerspectiveTransform(quad, target)
    return cv2.warpPerspective(image, matrix, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def box_quad(box: Sequence[float], pad: float = 0.0) -> np.ndarray:
    """An axis box (x, y, w, h), grown by `pad` of its height on each side, as a quad."""
    x, y, w, h = (float(v) for v in box)
    p = pad * h
    return np.array([[x - p, y - p], [x + w + p, y - p], [x + w + p, y + h + p], [x - p, y + h + p]], np.float32)


def turned(crop: np.ndarray) -> list[np.ndarray]:
    """`crop` a quarter turn anticlockwise and clockwise (a line written upwards, and downwards)."""
    return [np.ascontiguousarray(np.rot90(crop, 1)), np.ascontiguousarray(np.rot90(crop, -1))]


def input_width(width: int, height: int) -> int:
    """The line's width once `HEIGHT` high (its aspect kept; at least 8 px, at most the widest `WIDTHS`)."""
    return int(min(WIDTHS[-1], max(8, np.ceil(HEIGHT * width / max(height, 1)))))


def padded_width(width: int) -> int:
    """The smallest of `WIDTHS` that holds a line `width` pixels wide."""
    return next(w for w in WIDTHS if w >= width)


def normalise_line(crop: np.ndarray, width: int) -> np.ndarray:
    """RGB uint8 `crop` -> [3, HEIGHT, padded_width] floats: resized to `HEIGHT` x `width`, in BGR order (as
    PaddleOCR trained the weights), ``x / 127.5 - 1``, zero (grey) on the right."""
    import cv2
    resized = cv2.resize(crop, (width, HEIGHT), interpolation=cv2.INTER_LINEAR)[:, :, ::-1].astype(np.float32)
    out = np.zeros((3, HEIGHT, padded_width(width)), np.float32)
    out[:, :, :width] = resized.transpose(2, 0, 1) / 127.5 - 1.0
    return out


def line_batches(crops: Sequence[np.ndarray]) -> list[tuple[list[int], np.ndarray]]:
    """(indices into `crops`, [B, 3, HEIGHT, W] batch) groups: crops of one padded width together, at most
    `BATCH` at a time, each batch padded with blank lines to a power of two."""
    widths = [input_width(c.shape[1], c.shape[0]) for c in crops]
    groups: dict[int, list[int]] = {}
    for i, w in enumerate(widths):
        groups.setdefault(padded_width(w), []).append(i)
    out = []
    for _, members in sorted(groups.items()):
        for start in range(0, len(members), BATCH):
            chunk = members[start:start + BATCH]
            size = 1 << (len(chunk) - 1).bit_length()
            batch = np.stack([normalise_line(crops[i], widths[i]) for i in chunk])
            if size > len(chunk):
                batch = np.concatenate([batch, np.zeros((size - len(chunk), *batch.shape[1:]), np.float32)])
            out.append((chunk, batch))
    return out


def read_lines(recognise: Callable[[np.ndarray], np.ndarray], crops: Sequence[np.ndarray]) -> list[Reading]:
    """Each crop's `Reading`: `recognise` ([B, 3, 48, W] -> [B, T, 11] probabilities) over `line_batches`."""
    readings: list[Reading | None] = [None] * len(crops)
    for members, batch in line_batches(crops):
        probs = np.asarray(recognise(batch))
        for row, i in enumerate(members):
            readings[i] = ctc_decode(probs[row])  # every step, the grey padding too (as PaddleOCR decodes)
    return [r if r is not None else Reading("", 0.0, 0.0) for r in readings]


def stacked_columns(boxes: Sequence[np.ndarray], max_gap: float = 0.6, min_overlap: float = 0.5,
                    size_ratio: float = 1.6) -> list[list[int]]:
    """Columns of 2 or more boxes (x, y, w, h) standing one above another: each next box below the last
    with a vertical gap under `max_gap` x the taller's height, overlapping it horizontally by at least
    `min_overlap` of the narrower width, heights within `size_ratio` of each other. Returned as index
    lists, top to bottom; a box joins at most one column (the boxes are taken top down)."""
    boxes = [np.asarray(b, float) for b in boxes]
    order = sorted(range(len(boxes)), key=lambda i: boxes[i][1])
    used: set[int] = set()
    columns = []
    for start in order:
        if start in used:
            continue
        column = [start]
        while True:
            last = boxes[column[-1]]
            below = [j for j in order if j not in used and j not in column and _stacks(last, boxes[j], max_gap,
                                                                                       min_overlap, size_ratio)]
            if not below:
                break
            column.append(min(below, key=lambda j: boxes[j][1]))
        if len(column) >= 2:
            columns.append(column)
            used.update(column)
    return columns


def _stacks(top: np.ndarray, low: np.ndarray, max_gap: float, min_overlap: float, size_ratio: float) -> bool:
    gap = low[1] - (top[1] + top[3])
    tall = max(top[3], low[3])
    overlap = min(top[0] + top[2], low[0] + low[2]) - max(top[0], low[0])
    return bool(-0.25 * tall <= gap <= max_gap * tall and overlap >= min_overlap * min(top[2], low[2])
                and max(top[3], low[3]) <= size_ratio * min(top[3], low[3]))
