"""Text boxes from a DB-style text detector's probability map (PP-OCR's post-processing), in numpy and OpenCV.

The detector (`infer.text_models.TextDetector`, or the same API on onnxruntime) maps a photo to a
probability map of "text here" at the photo's (scaled) resolution. `db_boxes` turns that map into text
boxes as PaddleOCR's ``DBPostProcess`` does: the map thresholded at `THRESH`, each connected region's
minimum-area rectangle scored by the map's mean inside it (regions under `BOX_THRESH` dropped), then
grown ("unclipped") by ``area x UNCLIP_RATIO / perimeter`` on every side, the offset that undoes the
shrinking the detector was trained with. PaddleOCR grows the rectangle with pyclipper and takes the
minimum-area rectangle of the grown polygon again; for a rectangle that second rectangle is exactly
the first one grown by the offset on each side, so no polygon library is needed here.

`find_text` runs the detector on a photo at a size `detector_size` picks (the longer side capped at
`MAX_SIDE`: bounded memory and time whatever the photo; small photos upscaled so that their shorter
side reaches `MIN_SIDE`, as PP-OCR's own ``limit_type: min`` does; both multiples of 32), and maps the
boxes back to the photo's pixels. `tile_windows` gives the second, closer look (overlapping windows
seen at the same cap) for numbers too small for the first. At most `MAX_BOXES` boxes come out of a
look, the highest scores first: bounded work downstream whatever the photo holds.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

THRESH = 0.3         # the map's probability above which a pixel is text (PaddleOCR's det_db_thresh)
BOX_THRESH = 0.5     # a region's mean probability below which it is dropped (det_db_box_thresh)
UNCLIP_RATIO = 1.6   # the growth of each box (det_db_unclip_ratio; RapidOCR 3.10's default)
MIN_SIZE = 3         # map pixels: regions whose shorter side is less are noise
MAX_CANDIDATES = 400  # regions scored at most (the largest first): bounded time on a page of text
MAX_BOXES = 64       # boxes a look returns at most (the highest scores first)
MAX_SIDE = 960       # the detector's input: longer side at most this many pixels
MIN_SIDE = 640       # ... and a small photo's shorter side upscaled to this (within MAX_SIDE)
STRIDE = 32          # the detector's input sides are multiples of this


@dataclasses.dataclass(frozen=True)
class TextBox:
    """A text box: `quad` [4, 2] float corners (x, y) clockwise from the top left (of the line as read,
    for a rotated rectangle the corner nearest the image's top left), `score` the map's mean in it."""

    quad: np.ndarray
    score: float

    @property
    def box(self) -> np.ndarray:
        """The axis-aligned box (x, y, w, h) around the quad."""
        lo, hi = self.quad.min(axis=0), self.quad.max(axis=0)
        return np.r_[lo, hi - lo]

    @property
    def size(self) -> tuple[float, float]:
        """(width, height) of the quad: its top and left edges' lengths."""
        q = self.quad
        return float(np.linalg.norm(q[1] - q[0])), float(np.linalg.norm(q[3] - q[0]))


def order_quad(points: np.ndarray) -> np.ndarray:
    """The 4 corners of a rectangle as [top-left, top-right, bottom-right, bottom-left] (PaddleOCR's
    ``get_mini_boxes`` order: the two leftmost points give the left side, each pair ordered by y)."""
    p = points[np.argsort(points[:, 0], kind="stable")]
    left, right = p[:2], p[2:]
    tl, bl = left[np.argsort(left[:, 1], kind="stable")]
    tr, br = right[np.argsort(right[:, 1], kind="stable")]
    return np.array([tl, tr, br, bl], np.float32)


def _rect_quad(rect: tuple) -> np.ndarray:
    import cv2
    return order_quad(cv2.boxPoints(rect).astype(np.float32))


def box_score(prob: np.ndarray, quad: np.ndarray) -> float:
    """The mean of `prob` inside `quad` (PaddleOCR's ``box_score_fast``)."""
    import cv2
    h, w = prob.shape
    x0, y0 = np.clip(np.floor(quad.min(axis=0)).astype(int), 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(quad.max(axis=0)).astype(int), 0, [w - 1, h - 1])
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    cv2.fillPoly(mask, [(quad - [x0, y0]).astype(np.int32)], 1)
    return float(cv2.mean(prob[y0:y1 + 1, x0:x1 + 1], mask)[0])


def unclip(rect: tuple, ratio: float = UNCLIP_RATIO) -> tuple:
    """The rotated rectangle ``((cx, cy), (w, h), angle)`` grown by ``area x ratio / perimeter`` on each side."""
    (cx, cy), (w, h), angle = rect
    d = w * h * ratio / max(2.0 * (w + h), 1e-6)
    return (cx, cy), (w + 2 * d, h + 2 * d), angle


def db_boxes(prob: np.ndarray, thresh: float = THRESH, box_thresh: float = BOX_THRESH,
             unclip_ratio: float = UNCLIP_RATIO, max_boxes: int = MAX_BOXES) -> list[TextBox]:
    """Text boxes in a probability map `prob` [H, W] (floats in 0-1), in the map's pixels, highest score
    first (at most `max_boxes`): PaddleOCR's DB post-processing (module docstring)."""
    import cv2
    prob = np.asarray(prob, np.float32)
    height, width = prob.shape
    mask = cv2.dilate((prob > thresh).astype(np.uint8), np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    if len(contours) > MAX_CANDIDATES:
        contours = sorted(contours, key=lambda c: -cv2.contourArea(c))[:MAX_CANDIDATES]
    boxes = []
    for contour in contours:
        rect = cv2.minAreaRect(contour)
        if min(rect[1]) < MIN_SIZE:
            continue
        score = box_score(prob, _rect_quad(rect))
        if score < box_thresh:
            continue
        grown = unclip(rect, unclip_ratio)
        if min(grown[1]) < MIN_SIZE + 2:
            continue
        quad = _rect_quad(grown)
        quad[:, 0] = np.clip(quad[:, 0], 0, width)
        quad[:, 1] = np.clip(quad[:, 1], 0, height)
        boxes.append(TextBox(quad, score))
    boxes.sort(key=lambda b: -b.score)
    return boxes[:max_boxes]


def detector_size(width: int, height: int, max_side: int = MAX_SIDE, min_side: int = MIN_SIDE) -> tuple[int, int]:
    """The detector's input (width, height) for a `width` x `height` image: scaled so that the shorter side
    is `min_side` (never more than 1: no upscaling past it) unless the longer side would pass `max_side`
    (then that is the longer side), each side rounded to a multiple of `STRIDE` (at least one)."""
    scale = min(max_side / max(width, height), max(1.0, min_side / min(width, height)))
    return (max(STRIDE, int(round(width * scale / STRIDE)) * STRIDE),
            max(STRIDE, int(round(height * scale / STRIDE)) * STRIDE))


def normalise(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The detector's input: RGB uint8 `image` resized to `size` (w, h), in BGR order (PaddleOCR's, the
    weights were trained so), ``(x / 255 - 0.5) / 0.5``, [1, 3, H, W]."""
    import cv2
    resized = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
    return np.ascontiguousarray(((resized.astype(np.float32) / 127.5) - 1.0).transpose(2, 0, 1)[None])


def find_text(detect: Callable[[np.ndarray], np.ndarray], image: np.ndarray, max_side: int = MAX_SIDE,
              min_side: int = MIN_SIDE, max_boxes: int = MAX_BOXES) -> list[TextBox]:
    """The text boxes in RGB uint8 `image`, in its pixels: `detect` ([1, 3, H, W] normalised -> [1, 1, H, W]
    probabilities) run at `detector_size`, then `db_boxes`."""
    height, width = image.shape[:2]
    size = detector_size(width, height, max_side, min_side)
    prob = np.asarray(detect(normalise(image, size)))[0, 0]
    sx, sy = width / size[0], height / size[1]
    return [TextBox(b.quad * np.array([sx, sy], np.float32), b.score)
            for b in db_boxes(prob, max_boxes=max_boxes)]


def tile_windows(width: int, height: int, side: float, overlap: float = 0.25) -> list[tuple[int, int, int, int]]:
    """Windows (x, y, w, h) of at most `side` pixels a side, overlapping by `overlap` of it, covering the image."""
    def starts(length: int) -> Sequence[int]:
        if length <= side:
            return [0]
        n = int(np.ceil((length - side) / ((1 - overlap) * side))) + 1
        return [int(round(v)) for v in np.linspace(0, length - side, n)]
    s = int(side)
    return [(x, y, min(s, width - x), min(s, height - y)) for y in starts(height) for x in starts(width)]


def dedupe(boxes: Sequence[TextBox], iou_max: float = 0.5) -> list[TextBox]:
    """`boxes` (highest score first is kept) without those whose axis box overlaps a kept one by IoU > `iou_max`."""
    kept: list[TextBox] = []
    for b in sorted(boxes, key=lambda b: -b.score):
        if all(_iou(b.box, k.box) <= iou_max for k in kept):
            kept.append(b)
    return kept


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0
