"""Finding digits, not only a number: lines of digit-like marks in a photo, as boxes to read.

The localiser sees a whole photo at 128 pixels and proposes where the number is; on a photo unlike its
synthetic scenes it can miss a number a person sees at once. This module proposes places from the
photo's own marks instead:

1. `components`: maximally stable extremal regions (OpenCV's MSER, dark-on-light and light-on-dark)
   of digit shape (taller than wide, at least `MIN_HEIGHT` of the photo's longer side), each mark
   once (MSER finds one at several thresholds); at most `MAX_MARKS`, the largest (a page of dense
   print or noise holds thousands: 13,090 on a 6 KB PNG of bars, which took 9 GB and a minute before
   the cap; the photos people take hold at most a few hundred);
2. `lines`: chains of components of about the same height, side by side on one line (a number) or one
   under the other with their centres aligned (a stacked number), of `MIN_DIGITS`-`MAX_DIGITS` marks;
   each line's box is the union of its marks. The marks are compared in blocks of `BLOCK` rows, so
   memory grows with the number of marks, not its square.

`whole_photo.line_candidates` has the localiser look at each line up close and the reader read the
most likely ones. Pure functions of the pixels (numpy, OpenCV, SciPy).
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

WORK_SIDE = 1024          # the photo's longer side as the marks are found (bounded time)
MIN_HEIGHT = 0.01         # a mark's height, at least this of the longer side (and 8 pixels)
MAX_HEIGHT = 0.9          # ... at most this of the photo's height
ASPECT = (1.0, 5.0)       # a digit-like mark's height / width ("1" is the narrowest)
SAME_MARK = (0.8, 0.5)    # a mark this much inside a kept one at least this share of its area is the same
                          # mark (MSER finds one at several thresholds: a digit's outline and its ink)
SAME_HEIGHT = 1.4         # marks on one line differ in height by at most this factor
ALIGN = 0.3               # ... their centres differ across the line by at most this of the smaller height
ROW_GAP, STACK_GAP = 1.0, 0.6  # ... and the gap between them is at most this of the smaller height
MIN_DIGITS, MAX_DIGITS = 2, 5  # a line: at least two marks (single strokes are everywhere), SVHN's most
MAX_CANDIDATES = 4000     # MSER's digit-shaped regions looked at, the largest first (real photos: <= 860)
MAX_MARKS = 1000          # marks kept, the largest (real photos, real_photos_dev: <= 321)
BLOCK = 64                # marks compared with all the others at a time in `lines`


def _same_mark(box: np.ndarray, kept: np.ndarray) -> bool:
    """Whether `box` lies mostly inside one of the (larger) `kept` boxes and is nearly as big."""
    x0 = np.maximum(box[0], kept[:, 0])
    y0 = np.maximum(box[1], kept[:, 1])
    x1 = np.minimum(box[0] + box[2], kept[:, 0] + kept[:, 2])
    y1 = np.minimum(box[1] + box[3], kept[:, 1] + kept[:, 3])
    area = box[2] * box[3]
    inside = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None) / area
    return bool(((inside >= SAME_MARK[0]) & (area >= SAME_MARK[1] * kept[:, 2] * kept[:, 3])).any())


def components(image: np.ndarray) -> np.ndarray:
    """Digit-like marks of an RGB uint8 photo: float [N, 4] boxes (x, y, w, h) in its pixels."""
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    scale = min(1.0, WORK_SIDE / max(grey.shape))
    if scale < 1.0:
        grey = cv2.resize(grey, (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    height, width = grey.shape
    min_h = max(8.0, MIN_HEIGHT * max(height, width))
    mser = cv2.MSER_create(delta=5, min_area=max(20, int(height * width * 3e-5)), max_area=int(height * width * 0.2))
    _, found = mser.detectRegions(grey)
    boxes = np.asarray(found, np.float64).reshape(-1, 4)
    aspect = boxes[:, 3] / np.maximum(boxes[:, 2], 1.0)
    boxes = boxes[(boxes[:, 3] >= min_h) & (boxes[:, 3] <= MAX_HEIGHT * height)
                  & (aspect >= ASPECT[0]) & (aspect <= ASPECT[1])]
    return _distinct(_largest(np.unique(boxes, axis=0), MAX_CANDIDATES)) / scale


def _largest(boxes: np.ndarray, limit: int) -> np.ndarray:
    """The `limit` largest `boxes`, largest first; ties in `boxes`' order (np.unique's: deterministic)."""
    return boxes[np.argsort(-boxes[:, 2] * boxes[:, 3], kind="stable")[:limit]]


def _distinct(boxes: np.ndarray) -> np.ndarray:
    """`boxes` (largest first) without those that are the same mark as a larger kept one, at most `MAX_MARKS`."""
    kept = np.empty((min(len(boxes), MAX_MARKS), 4))
    n = 0
    for box in boxes:
        if n == len(kept):
            break
        if n == 0 or not _same_mark(box, kept[:n]):
            kept[n], n = box, n + 1
    return kept[:n]


def _adjacent(marks: np.ndarray, rows: slice) -> tuple[np.ndarray, np.ndarray]:
    """Which marks lie next to the marks `rows` on one line, as (row, column) pairs of indices into
    `marks`: side by side, and stacked."""
    x, y, w, h = marks.T
    cx, cy = x + w / 2, y + h / 2
    r = np.arange(len(marks))[rows][:, None]
    low, high = np.minimum(h[r], h), np.maximum(h[r], h)
    similar = (high <= SAME_HEIGHT * low) & (r != np.arange(len(marks)))
    dx, dy = np.abs(cx[r] - cx), np.abs(cy[r] - cy)
    gap_x = dx - (w[r] + w) / 2
    gap_y = dy - (h[r] + h) / 2
    side_by_side = similar & (dy < ALIGN * low) & (gap_x < ROW_GAP * low) & (gap_x > -0.3 * np.minimum(w[r], w))
    stacked = (similar & (dx < ALIGN * np.maximum(w[r], w)) & (gap_y < STACK_GAP * low) & (gap_y > -0.1 * low))
    return side_by_side.nonzero(), stacked.nonzero()


def lines(marks: np.ndarray) -> list[np.ndarray]:
    """Boxes (x, y, w, h) of the lines `marks` form: side by side (a number) or stacked (digits one under
    the other), of `MIN_DIGITS` to `MAX_DIGITS` marks; the tallest marks' lines first."""
    n = len(marks)
    if n < MIN_DIGITS:
        return []
    pairs: tuple[list, list] = ([], [])
    for start in range(0, n, BLOCK):
        for kind, (i, j) in zip(pairs, _adjacent(marks, slice(start, start + BLOCK))):
            kind.append((i + start, j))
    found: list[tuple[float, np.ndarray]] = []
    for kind in pairs:
        i, j = (np.concatenate(part) for part in zip(*kind))
        _, group = connected_components(csr_matrix((np.ones(len(i), bool), (i, j)), shape=(n, n)), directed=False)
        for g in np.unique(group):
            members = marks[group == g]
            if MIN_DIGITS <= len(members) <= MAX_DIGITS:
                x0, y0 = members[:, :2].min(0)
                x1, y1 = (members[:, :2] + members[:, 2:]).max(0)
                found.append((float(members[:, 3].max()), np.array([x0, y0, x1 - x0, y1 - y0])))
    return [box for _, box in sorted(found, key=lambda f: -f[0])]
