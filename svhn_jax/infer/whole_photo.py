"""Reading a whole photo: find the house number (the localiser), then read it there (the reader).

`read_photo` is what `predict` and `score_photos` do with one photo:

1. the localiser (`infer.localiser.Localiser`) sees the photo downscaled and letterboxed (bounded memory
   and time whatever the photo's size) and proposes up to `NUM_CANDIDATES` boxes with its
   confidence, and the probability that the photo holds no number;
2. each proposal is refined by a second look at the photo around it, zoomed so the number fills it
   as an SVHN photo does (small numbers in big photos are found coarsely, then boxed closely);
3. the reader reads every candidate box (27 test-time views voted, `reader.views`), and a box taller
   than wide is also read as digits stacked vertically (cut into 2-5 rows at the gaps between the
   digits, laid side by side, read top to bottom; tried only where every cut falls in a gap, kept
   only when the reader reads one digit a row);
4. the answer is the candidate with the highest reader x localiser confidence; its confidence is
   that product;
5. when that confidence is below `LOOK_CLOSER` (or the whole look says "no number"), the localiser
   also looks closer: at overlapping windows of 0.45 x the photo's longer side (`tiles`), each seen at
   its full 128 pixels, where a number at 3 % of the photo's width is as wide as the whole look shows
   one at 8 %. Their boxes that the whole look missed (`closer_candidates`) are read as in 2-4 and
   compete with the same score;
6. when the answer is still that unsure, the photo's own marks are looked at (`line_candidates`):
   lines of two to five digit-like marks (`infer.digit_lines`: side by side or stacked) that the
   localiser, looking at each up close, agrees hold a number are read as in 3 and compete, scored by
   that close look's confidence. A photo where no look finds a number answers ``number: null`` with
   a reason.

A user's `box` skips 1-2: the box is read as given (its localiser confidence is then None), clipped to
the photo when it reaches outside it ("box_clipped_from" keeps the box given).
`read_file` does it all for a photo file; `answer` turns a result into predict's answer.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from svhn_jax.infer.localiser import Localiser
from svhn_jax.infer.photos import DEFAULT_MAX_PIXELS, ImageError, load_photo
from svhn_jax.infer.reader import Reader, ranked, views, vote
from svhn_jax.models.decoding import iou

NUM_CANDIDATES = 3
MIN_CANDIDATE_CONFIDENCE = 0.05  # proposals below this are not read
NO_NUMBER = 0.5                  # the localiser's p(no number) above which the photo holds none
ZOOM_CONTEXT = 2.5               # the refining look spans the box's larger side times this
MIN_ZOOM_SIDE = 24               # pixels: a refining look never spans less of the photo
TALL = 1.3                       # height / width above which a box is also read as stacked rows
STACK_ROWS = (2, 3, 4, 5)
MAX_GAP_INK = 0.5                # stacked rows are tried only where every cut falls in a gap (`gap_ink`)
ROW_MARGIN = 0.08                # of the box's width, each side of a stacked row (the gap between digits)
NUM_NEXT = 3                     # next readings a result lists (the photo page shows them)
TILE_SIDE = 0.45                 # the closer looks' side, of the photo's longer side (`tiles`)
MIN_TILE_SIDE = 32               # pixels: no closer look at less (the reader's own crop size)
NUM_TILE_CANDIDATES = 2          # boxes the closer looks may add
MIN_TILE_CONFIDENCE = 0.3        # the localiser's confidence a closer look's box needs
TILE_NEW_IOU = 0.3               # a closer look's box is new when it overlaps every earlier box less
LOOK_CLOSER = 0.1                # closer looks are read when the best answer's confidence is below this
EDGE = 0.03                      # a closer look's box this near (of its side) to its inner edge is cut by it
NUM_LINE_CANDIDATES = 3          # lines of digit-like marks read (those the close look is surest of)
MAX_LINES = 64                   # lines looked at up close, tallest marks first (bounded time)
LINE_AGREE_IOU = 0.3             # a line counts when the close look's box overlaps it this much
READ_LINES = LOOK_CLOSER         # lines are read when the best answer's confidence is still below this
DEFAULT_MIN_CONFIDENCE = 0.7     # predict's and score_photos' default: the lowest threshold (0.1 steps) whose
                                 # answers are >= 97 % right on held-out synthetic scenes
                                 # (scripts/calibrate_confidence.py, docs/localiser.md)
DECODE_SIDE = 1600               # big JPEGs are decoded at a reduced scale, longer side >= this, to be localised


def _crop(image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pixels of `box` (x, y, w, h; clipped to the photo) and the clipped box's top-left corner."""
    h, w = image.shape[:2]
    x0, y0 = np.clip(np.floor(box[:2]), 0, [w - 1, h - 1]).astype(int)
    x1, y1 = np.clip(np.ceil(box[:2] + box[2:]), [x0 + 1, y0 + 1], [w, h]).astype(int)
    return image[y0:y1, x0:x1], np.array([x0, y0], float)


def close_look(localiser: Localiser, image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, float]:
    """The localiser's look at the photo around `box`, zoomed so a number there fills it as an SVHN photo
    does: (its best box, in the photo's pixels, and its confidence in it)."""
    side = max(MIN_ZOOM_SIDE, ZOOM_CONTEXT * float(box[2:].max()))
    centre = box[:2] + box[2:] / 2
    region, origin = _crop(image, np.r_[centre - side / 2, side, side])
    boxes, confidence, _ = localiser.locate([region], k=1)
    found = boxes[0, 0].copy()
    found[:2] += origin
    return found, float(confidence[0, 0])


def refine(localiser: Localiser, image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """`box` redrawn from a second look at the photo around it (the localiser's best box there)."""
    found, confidence = close_look(localiser, image, box)
    return box if confidence <= 0.0 else found


def row_cuts(region: np.ndarray, rows: int) -> np.ndarray:
    """Where to cut `region` (the box's pixels) into `rows` rows: [rows + 1] offsets from its top, each
    inner cut moved (by up to a third of a row) to the pixel row with the least ink (the least
    luminance spread), i.e. into the gap between two stacked digits."""
    return _cuts_and_gap_ink(region, rows)[0]


def _ink_profile(region: np.ndarray) -> np.ndarray:
    lum = region.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return lum.std(axis=1)


def gap_ink(region: np.ndarray, rows: int) -> float:
    """The most ink any of `row_cuts`' inner cuts crosses, relative to the box's median pixel row: near 0
    when every cut falls in a gap between stacked digits, near 1 or more when one cuts a digit (a "1"
    is as tall as two stacked digits, but a cut through it crosses its stem)."""
    return _cuts_and_gap_ink(region, rows)[1]


def _cuts_and_gap_ink(region: np.ndarray, rows: int) -> tuple[np.ndarray, float]:
    ink = _ink_profile(region)
    h = len(ink)
    cuts = [0.0]
    for k in range(1, rows):
        centre, reach = k * h / rows, h / rows / 3
        lo, hi = int(max(cuts[-1] + 1, centre - reach)), int(min(h - 1, centre + reach)) + 1
        cuts.append(float(lo + np.argmin(ink[lo:hi])) if hi > lo else centre)
    crossed = max(ink[int(c)] for c in cuts[1:]) if rows > 1 else 0.0
    return np.array(cuts + [float(h)]), float(crossed / max(float(np.median(ink)), 1e-6))


def stacked_rows(image: np.ndarray, box: np.ndarray, rows: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The box cut into `rows` equal rows laid side by side (left to right = top to bottom), each with
    a thin side margin of the photo, on a border of the rows' median colour (so the reader's crop
    margin sees no neighbouring row): (image, the rows' union box in it)."""
    x, y, w, h = box
    cuts = row_cuts(_crop(image, box)[0], rows) + y
    tiles = [_crop(image, np.array([x - ROW_MARGIN * w, top, (1 + 2 * ROW_MARGIN) * w, bottom - top]))[0]
             for top, bottom in zip(cuts[:-1], cuts[1:])]
    height = max(8, max(t.shape[0] for t in tiles))
    tiles = [np.asarray(Image.fromarray(t).resize((max(1, round(t.shape[1] * height / t.shape[0])), height)))
             for t in tiles]
    strip = np.concatenate(tiles, axis=1)
    pad_y, pad_x = int(round(0.25 * height)), int(round(0.2 * strip.shape[1]))
    colour = np.median(strip.reshape(-1, 3), axis=0).astype(np.uint8)
    canvas = np.empty((height + 2 * pad_y, strip.shape[1] + 2 * pad_x, 3), np.uint8)
    canvas[:] = colour
    canvas[pad_y:pad_y + height, pad_x:pad_x + strip.shape[1]] = strip
    return canvas, (pad_x, pad_y, strip.shape[1], height)


def clip(image: np.ndarray, box: np.ndarray | tuple) -> np.ndarray:
    """`box` (x, y, w, h) cut to the photo, whole pixels, at least one pixel."""
    region, corner = _crop(image, np.asarray(box, float))
    return np.r_[corner, region.shape[1], region.shape[0]]


def read_box(reader: Reader, image: np.ndarray, box: np.ndarray | tuple, tta: bool = True,
             others: list[tuple[str, float]] | None = None) -> tuple[str, float]:
    """(reading, reader confidence) of the number in `box`; a tall box is also tried as stacked rows.
    `others`, when given, receives every reading the views gave with its confidence (`reader.ranked`)."""
    box = np.asarray(box, float)
    recipe = reader.config.recipe
    tries = [(None, views(image, recipe, tuple(int(round(v)) for v in box), tta))]
    if box[3] > TALL * box[2]:
        region = _crop(image, box)[0]
        for rows in (r for r in STACK_ROWS if gap_ink(region, r) < MAX_GAP_INK):
            strip, inner = stacked_rows(image, box, rows)
            tries.append((rows, views(strip, recipe, inner, tta)))
    lengths, digits, confidence = reader.read_crops(np.concatenate([crops for _, crops in tries]))
    best, start = ("", 0.0), 0
    for rows, crops in tries:
        part = slice(start, start + len(crops))
        start += len(crops)
        n, row_digits, conf = vote(lengths[part], digits[part], confidence[part])
        reading = "".join(str(int(d)) for d in row_digits[:n])
        if (rows is None or n == rows) and conf > best[1]:
            best = (reading, float(conf))
        if others is not None:
            others += [(r, c) for r, c in ranked(lengths[part], digits[part], confidence[part])
                       if rows is None or len(r) == rows]
    return best


def next_readings(best: str, scored: list[tuple[str, float]], k: int = NUM_NEXT) -> list[list]:
    """The `k` most confident readings other than `best` (each at its highest score), as [reading, score]."""
    top: dict[str, float] = {}
    for reading, score in scored:
        if reading and reading != best:
            top[reading] = max(top.get(reading, 0.0), score)
    return [[r, top[r]] for r in sorted(top, key=lambda r: -top[r])[:k]]


def tiles(width: int, height: int, side: float = TILE_SIDE) -> list[np.ndarray]:
    """Square windows (x, y, w, h) of `side` x the photo's longer side, overlapping by a quarter, that
    together cover the photo: the localiser's closer looks for numbers too small to see whole. None
    when a window would be under `MIN_TILE_SIDE` pixels."""
    t = side * max(width, height)
    if t < MIN_TILE_SIDE:
        return []
    def starts(length: int) -> np.ndarray:
        n = 1 if length <= t else int(np.ceil((length - t) / (0.75 * t))) + 1
        return np.linspace(0.0, max(0.0, length - t), n)
    return [np.array([x, y, min(t, width), min(t, height)]) for y in starts(height) for x in starts(width)]


def _touches_inner_edge(box: np.ndarray, window: np.ndarray, width: int, height: int) -> bool:
    """Whether `box` reaches (within `EDGE` of the window's side) an edge of `window` inside the photo."""
    margin = EDGE * window[2]
    x0, y0, x1, y1 = box[0], box[1], box[0] + box[2], box[1] + box[3]
    wx0, wy0, wx1, wy1 = window[0], window[1], window[0] + window[2], window[1] + window[3]
    return bool((wx0 > 0 and x0 < wx0 + margin) or (wy0 > 0 and y0 < wy0 + margin)
                or (wx1 < width and x1 > wx1 - margin) or (wy1 < height and y1 > wy1 - margin))


def candidates(localiser: Localiser, image: np.ndarray,
               k: int = NUM_CANDIDATES) -> tuple[list[np.ndarray], list[float], float]:
    """Where the number may be: (up to `k` refined boxes in the photo's pixels, best first, the
    localiser's confidence in each, its probability that the photo holds no number). Proposals after
    the first below `MIN_CANDIDATE_CONFIDENCE` are dropped."""
    boxes, confidence, p_none = localiser.locate([image], k=k)
    kept = [n for n in range(k) if n == 0 or confidence[0, n] >= MIN_CANDIDATE_CONFIDENCE]
    return ([clip(image, refine(localiser, image, boxes[0, n])) for n in kept],
            [float(confidence[0, n]) for n in kept], float(p_none[0]))


def closer_candidates(localiser: Localiser, image: np.ndarray,
                      found: list[np.ndarray]) -> tuple[list[np.ndarray], list[float]]:
    """Boxes the closer looks (`tiles`) find that the whole photo's look missed (a number too small for
    it): up to `NUM_TILE_CANDIDATES`, best first, each with the localiser's confidence in its window
    (at least `MIN_TILE_CONFIDENCE`), not cut by its window's edge, refined, overlapping no box in
    `found` (IoU < `TILE_NEW_IOU`)."""
    height, width = image.shape[:2]
    windows = tiles(width, height)
    if not windows:
        return [], []
    looks = [localiser.locate([_crop(image, w)[0]], k=1) for w in windows]  # one at a time: one compiled shape
    boxes, confidence, p_none = (np.concatenate([look[i] for look in looks]) for i in (0, 1, 2))
    new: list[np.ndarray] = []
    new_conf: list[float] = []
    for t in sorted(range(len(windows)), key=lambda t: -confidence[t, 0]):
        if len(new) == NUM_TILE_CANDIDATES or confidence[t, 0] < MIN_TILE_CONFIDENCE:
            break
        if p_none[t] > NO_NUMBER:
            continue
        box = boxes[t, 0] + np.r_[windows[t][:2], 0, 0]
        if _touches_inner_edge(box, windows[t], width, height):
            continue  # the window cut the number: a part of it
        box = clip(image, refine(localiser, image, box))
        if all(iou(box, other) < TILE_NEW_IOU for other in found + new):
            new.append(box)
            new_conf.append(float(confidence[t, 0]))
    return new, new_conf


def line_candidates(localiser: Localiser, image: np.ndarray) -> tuple[list[np.ndarray], list[float]]:
    """Lines of digit-like marks in the photo (`digit_lines`; at most `MAX_LINES`) that the localiser,
    looking at each up close (`close_look`), agrees hold a number (its box overlaps the line, IoU >=
    `LINE_AGREE_IOU`): up to `NUM_LINE_CANDIDATES` line boxes, surest first, with that look's confidence."""
    from svhn_jax.infer import digit_lines  # OpenCV and SciPy (0.3 s to import) only for photos that need them
    scored = []
    for line in digit_lines.lines(digit_lines.components(image))[:MAX_LINES]:
        line = clip(image, line)
        found, confidence = close_look(localiser, image, line)
        if confidence > 0.0 and iou(found, line) >= LINE_AGREE_IOU:
            scored.append((confidence, line))
    scored.sort(key=lambda s: -s[0])
    return [line for _, line in scored[:NUM_LINE_CANDIDATES]], [c for c, _ in scored[:NUM_LINE_CANDIDATES]]


def read_photo(reader: Reader, localiser: Localiser | None, image: np.ndarray,
               box: tuple[int, int, int, int] | None = None, tta: bool = True) -> dict[str, Any]:
    """One photo's answer: {"reading", "confidence", "box" [x, y, w, h] or None, "box_confidence",
    "no_number" (the localiser's probability of none), "reason" (why there is no reading, or None),
    "next_readings" (the next most confident readings and their confidence, `next_readings`)}."""
    if box is not None or localiser is None:
        height, width = image.shape[:2]
        given = None
        if box is not None:  # the user's box: refused quoting it when wholly outside, else clipped to the photo
            x, y, w, h = box
            if x >= width or y >= height or x + w <= 0 or y + h <= 0:
                raise ImageError(f"the box {x},{y},{w},{h} lies outside the {width}x{height} photo")
            given, box = [int(v) for v in box], tuple(int(v) for v in clip(image, box))
        others: list[tuple[str, float]] = []
        reading, conf = read_box(reader, image, box if box is not None else (0, 0, width, height), tta, others)
        result = {"reading": reading, "confidence": conf, "box": None if box is None else list(box),
                  "box_confidence": None, "no_number": None, "reason": None if reading else "no digit read",
                  "next_readings": next_readings(reading, others)}
        if given is not None and given != result["box"]:
            result["box_clipped_from"] = given
        return result
    found, box_conf, p_none = candidates(localiser, image)
    if p_none > NO_NUMBER:  # none in the whole look: only the closer looks may still find one
        found, box_conf = [], []
    best: dict[str, Any] = {"reading": "", "confidence": -1.0}
    scored: list[tuple[str, float]] = []

    def read_all(boxes: list[np.ndarray], confidences: list[float]) -> None:
        nonlocal best
        for box, box_confidence in zip(boxes, confidences):
            others: list[tuple[str, float]] = []
            reading, conf = read_box(reader, image, box, tta, others)
            scored.extend((r, c * box_confidence) for r, c in others)
            score = conf * box_confidence
            if score > best["confidence"]:
                best = {"reading": reading, "confidence": score, "box": [int(round(v)) for v in box],
                        "box_confidence": box_confidence, "no_number": p_none,
                        "reason": None if reading else "no digit read in the box found"}

    read_all(found, box_conf)
    if best["confidence"] < LOOK_CLOSER:  # unsure: the number may be too small for the whole look
        read_all(*closer_candidates(localiser, image, found))
    if best["confidence"] < READ_LINES:  # still unsure: the localiser may have missed it; the marks' lines
        read_all(*line_candidates(localiser, image))
    if best["confidence"] < 0:  # no box anywhere
        return {"reading": "", "confidence": 0.0, "box": None, "box_confidence": None, "no_number": p_none,
                "reason": f"no house number found (the localiser gives {p_none:.2f} to none)", "next_readings": []}
    best["next_readings"] = next_readings(best["reading"], scored)
    return best


def read_file(reader: Reader, localiser: Localiser | None, path: str, box: tuple[int, int, int, int] | None = None,
              tta: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[dict[str, Any], np.ndarray, float]:
    """`read_photo` on the photo in `path`: (result with its box in the photo's pixels, the decoded
    image, photo pixels per decoded pixel). Without a box a big JPEG is decoded at a reduced scale
    (`DECODE_SIDE`): bounded time and memory, and numbers of >= 5 % of the width keep plenty of pixels."""
    image, scale = load_photo(path, max_pixels, max_side=DECODE_SIDE if box is None and localiser is not None else 0)
    result = read_photo(reader, localiser, image, box, tta)
    if result["box"] is not None and scale != 1.0:
        result["box"] = [int(round(v * scale)) for v in result["box"]]
    return result, image, scale


def answer(file: str, result: dict[str, Any], min_confidence: float) -> dict[str, Any]:
    """One image's answer from `read_photo`'s result: "number" is None when nothing is
    read, the localiser finds no number, or the confidence is below `min_confidence` ("reason" says
    which); "reading" is the best guess, "box" where it was read."""
    reading, confidence = result["reading"], float(result["confidence"])
    reason = result.get("reason")
    if reason is None and confidence < min_confidence:
        reason = f"confidence below {min_confidence:g}"
    a = {"file": file, "number": reading if reason is None else None, "reading": reading,
         "confidence": confidence, "box": result.get("box"), "box_confidence": result.get("box_confidence")}
    if result.get("box_clipped_from"):  # a given box that reached outside the photo, read clipped to it
        a["box_clipped_from"] = result["box_clipped_from"]
    return {**a, "reason": reason} if reason is not None else a
