"""Reading a whole photo: find the number's lines (a text detector and the localiser), read them (a CTC digit
line reader and the SVHN reader), and let a small calibrator say which reading is the number and how sure.

`read_photo` is what `predict`, `score_photos` and the photo page do with one photo:

1. finders: the text detector (PP-OCRv6 small's DB detector, `infer.text_models`) sees the photo at its
   resolution (longer side capped at `text_detection.MAX_SIDE`, small photos raised to `MIN_SIDE`) and
   gives text boxes (`text_detection.find_text`, at most `MAX_LINES` read, tallest first); the localiser
   (`infer.localiser`, trained on SVHN-like scenes: it finds street-view numbers the detector misses)
   proposes up to `NUM_CANDIDATES` boxes, each refined by a closer look;
2. digit lines: each text box cut out straight (`line_reading.rotate_crop`); a box taller than wide is
   also read turned a quarter turn either way and cut into 2-5 stacked rows laid side by side
   (`stacked_rows`); single-digit boxes standing one above another are joined top to bottom
   (`line_reading.stacked_columns`); each localiser box is a line too (padded `LOCALISER_PAD`);
3. readers: the line reader (PP-OCRv6's recogniser cut to blank + digits, no length limit) reads every
   line; the SVHN reader (27 views voted) reads the localiser's boxes and the `NUM_SECOND_OPINIONS`
   tallest small text boxes (under `SMALL_LINE` pixels high: low resolution, where it was trained);
4. the answer: every distinct reading gets features (`FEATURES`: the readers' confidences, whether they
   agree, the finders' scores, its height in the photo, its digits) and the calibrator's probability
   that it is the number (`Calibrator`: logistic regression fitted on held-out synthetic scenes by
   ``scripts/fit_calibrator.py``, never on the dev photos, shipped as
   ``svhn_jax/pretrained/calibrator.json``); the most probable reading is the answer, that probability
   its confidence. Nothing read anywhere answers ``number: null`` with a reason.

A user's `box` skips 1: the box is read by both readers as in 2-3 (its localiser confidence is then
None), clipped to the photo when it reaches outside it ("box_clipped_from" keeps the box given). No
localiser (``predict --localiser=none``): the whole photo is that box, and the answer names no box.
`read_file` does it all for a photo file; `answer` turns a result into predict's answer. The text
models are the backend's (`set_text_models`, called by `infer.backends.load_models`); JAX's shipped
ones are loaded on first use otherwise.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from svhn_jax.infer import line_reading, text_detection
from svhn_jax.infer.localiser import Localiser
from svhn_jax.infer.photos import DEFAULT_MAX_PIXELS, ImageError, load_photo
from svhn_jax.infer.reader import Reader, ranked, views, vote
from svhn_jax.models.decoding import iou

NUM_CANDIDATES = 3
MIN_CANDIDATE_CONFIDENCE = 0.05  # localiser proposals after the first below this are not read
NO_NUMBER = 0.5                  # the localiser's p(no number) above which its proposals are not read
ZOOM_CONTEXT = 2.5               # the refining look spans the box's larger side times this
MIN_ZOOM_SIDE = 24               # pixels: a refining look never spans less of the photo
TALL = 1.3                       # height / width above which a box is also read as stacked rows / turned
STACK_ROWS = (2, 3, 4, 5)
MAX_GAP_INK = 0.5                # stacked rows are tried only where every cut falls in a gap (`gap_ink`)
ROW_MARGIN = 0.08                # of the box's width, each side of a stacked row (the gap between digits)
NUM_NEXT = 3                     # next readings a result lists (the photo page shows them)
MAX_LINES = 24                   # text boxes read at most (the tallest first): bounded time on a page of text
LOCALISER_PAD = 0.15             # a localiser box read as a line, grown by this of its height on each side
SMALL_LINE = 64                  # photo pixels: text boxes lower than this also get the SVHN reader's opinion
NUM_SECOND_OPINIONS = 2          # ... the tallest this many of them
DECODE_SIDE = 1600               # big JPEGs are decoded at a reduced scale, longer side >= this
CALIBRATOR = Path(__file__).resolve().parents[1] / "pretrained" / "calibrator.json"
FEATURES = ("line", "line_least", "svhn", "agree", "detector", "localiser", "height", "digits", "votes",
            "stacked", "bias")


@dataclasses.dataclass(frozen=True)
class Calibrator:
    """p(a reading is the number) = sigmoid(weights . features), over `FEATURES` (`features`); the answers'
    default threshold `min_confidence` was chosen with it on held-out scenes (scripts/fit_calibrator.py)."""

    weights: tuple[float, ...]
    min_confidence: float

    @classmethod
    def load(cls, path: str | Path = CALIBRATOR) -> "Calibrator":
        """The shipped calibrator; before one is fitted (or if it names other features): the line reader's
        confidence alone, threshold 0.9."""
        try:
            data = json.loads(Path(path).read_text())
            if tuple(data["features"]) == FEATURES:
                return cls(tuple(float(w) for w in data["weights"]), float(data["min_confidence"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return cls(tuple(8.0 if f == "line" else -4.0 if f == "bias" else 0.0 for f in FEATURES), 0.9)

    def probability(self, features: np.ndarray) -> np.ndarray:
        """[N, len(FEATURES)] -> [N] probabilities."""
        z = np.asarray(features, np.float64) @ np.asarray(self.weights)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


_CALIBRATOR = Calibrator.load()
DEFAULT_MIN_CONFIDENCE = _CALIBRATOR.min_confidence  # predict's and score_photos' default (calibrator.json)


@dataclasses.dataclass
class TextModels:
    """The text detector and the line reader a backend reads with (`infer.text_models` API): `detect`
    [1, 3, H, W] normalised -> [1, 1, H, W] probabilities; `recognise` [B, 3, 48, W] -> [B, T, 11]."""

    detect: Callable[[np.ndarray], np.ndarray]
    recognise: Callable[[np.ndarray], np.ndarray]


_TEXT_MODELS: TextModels | None = None


def set_text_models(models: TextModels | None) -> None:
    """The text models `read_photo` uses from now on (None: JAX's shipped ones, loaded on first use)."""
    global _TEXT_MODELS
    _TEXT_MODELS = models


def text_models() -> TextModels:
    """The text models set by `set_text_models`, else JAX's shipped ones (loaded once)."""
    global _TEXT_MODELS
    if _TEXT_MODELS is None:
        from svhn_jax.infer.text_models import LineReader, TextDetector
        _TEXT_MODELS = TextModels(TextDetector.load(), LineReader.load())
    return _TEXT_MODELS


@dataclasses.dataclass
class Line:
    """A digit line to read: its `crop` (upright), where it is (`box` x, y, w, h in the photo), which finder
    gave it (`detector` DB score, `localiser` confidence; 0 when not that finder), and how it was made."""

    crop: np.ndarray
    box: np.ndarray
    detector: float = 0.0
    localiser: float = 0.0
    stacked: bool = False
    rows: int = 0            # > 0: a stack cut into this many rows; only a reading of that many digits counts


@dataclasses.dataclass
class Vote:
    """One reading of one line by one reader."""

    text: str
    line: float              # the line reader's confidence (0: the SVHN reader's vote)
    least: float
    svhn: float              # the SVHN reader's confidence (0: the line reader's vote)
    where: Line


def lines_of(image: np.ndarray, boxes: Sequence[text_detection.TextBox]) -> list[Line]:
    """The digit lines of the detector's boxes: each box straight; a tall one also turned both ways and cut
    into stacked rows (`stacked_rows`)."""
    out = []
    for b in boxes:
        crop = line_reading.rotate_crop(image, b.quad)
        box = clip(image, b.box)
        out.append(Line(crop, box, detector=b.score))
        w, h = b.size
        if h >= TALL * w:
            out += [Line(c, box, detector=b.score) for c in line_reading.turned(crop)]
            out += stack_lines(image, box, detector=b.score)
    return out


def stack_lines(image: np.ndarray, box: np.ndarray, detector: float = 0.0, localiser: float = 0.0) -> list[Line]:
    """A tall box cut into 2-5 rows laid side by side (`stacked_rows`), where every cut falls in a gap."""
    region = _crop(image, box)[0]
    if min(region.shape[:2]) < 4:
        return []
    out = []
    for rows in STACK_ROWS:
        if gap_ink(region, rows) < MAX_GAP_INK:
            strip, inner = stacked_rows(image, box, rows)
            x, y, w, h = inner
            pad = int(round(0.15 * h))
            crop = strip[max(0, y - pad):y + h + pad, max(0, x - pad):x + w + pad]
            out.append(Line(crop, box, detector, localiser, stacked=True, rows=rows))
    return out


def read_lines(models: TextModels, lines: Sequence[Line]) -> list[Vote]:
    """The line reader's vote on every line (a stack's only when it reads one digit a row)."""
    votes = []
    for line, r in zip(lines, line_reading.read_lines(models.recognise, [ln.crop for ln in lines])):
        if r.text and (line.rows == 0 or len(r.text) == line.rows):
            votes.append(Vote(r.text, r.confidence, r.least, 0.0, line))
    return votes


def column_votes(votes: Sequence[Vote]) -> list[Vote]:
    """Single digits the line reader read in detector boxes standing one above another, joined top to bottom
    (a number written downwards: PP-OCR's detector boxes each digit, or its recogniser reads only the top)."""
    singles = {}
    for v in votes:
        if len(v.text) == 1 and v.where.detector > 0 and not v.where.stacked:
            key = tuple(np.round(v.where.box, 1))
            if key not in singles or v.line > singles[key].line:
                singles[key] = v
    singles_list = list(singles.values())
    out = []
    for column in line_reading.stacked_columns([v.where.box for v in singles_list]):
        members = [singles_list[i] for i in column]
        boxes = np.array([m.where.box for m in members])
        x0, y0 = boxes[:, :2].min(axis=0)
        x1, y1 = (boxes[:, :2] + boxes[:, 2:]).max(axis=0)
        where = Line(members[0].where.crop, np.array([x0, y0, x1 - x0, y1 - y0]),
                     detector=min(m.where.detector for m in members), stacked=True)
        out.append(Vote("".join(m.text for m in members), float(np.mean([m.line for m in members])),
                        min(m.least for m in members), 0.0, where))
    return out


def svhn_votes(reader: Reader, image: np.ndarray, lines: Sequence[Line], tta: bool,
               others: list[tuple[str, float]] | None = None) -> list[Vote]:
    """The SVHN reader's vote on each line's box (`read_box`)."""
    out = []
    for line in lines:
        text, conf = read_box(reader, image, line.box, tta, others)
        if text:
            out.append(Vote(text, 0.0, 0.0, conf, line))
    return out


def features(votes: Sequence[Vote], photo_height: int) -> tuple[list[str], np.ndarray]:
    """(the distinct readings, [N, len(FEATURES)] their features): per reading the best line-reader and
    SVHN-reader confidences, whether both read it, the best finder scores of the lines that gave it, the
    log of its tallest line's height over the photo's, its digits (log), its votes (log), whether it was
    read as stacked digits, and 1 (the bias)."""
    by_text: dict[str, list[Vote]] = {}
    for v in votes:
        by_text.setdefault(v.text, []).append(v)
    texts = sorted(by_text)
    rows = []
    for t in texts:
        vs = by_text[t]
        line = max(v.line for v in vs)
        svhn = max(v.svhn for v in vs)
        height = max(float(v.where.box[3]) for v in vs)
        rows.append([line, max(v.least for v in vs), svhn, float(line > 0 and svhn > 0),
                     max(v.where.detector for v in vs), max(v.where.localiser for v in vs),
                     math.log(max(height, 1.0) / max(photo_height, 1)), math.log(len(t)), math.log(len(vs)),
                     float(any(v.where.stacked for v in vs)), 1.0])
    return texts, np.array(rows, np.float64).reshape(len(texts), len(FEATURES))


def collect_votes(reader: Reader, localiser: Localiser | None, image: np.ndarray,
                  box: tuple[int, int, int, int] | None, tta: bool, models: TextModels,
                  others: list[tuple[str, float]] | None = None) -> tuple[list[Vote], float | None]:
    """Every reader's vote on every line of the photo (or of the user's `box`), and the localiser's
    probability that the photo holds no number (None when it did not look)."""
    if box is not None or localiser is None:
        h, w = image.shape[:2]
        box_arr = np.asarray(box if box is not None else (0, 0, w, h), float)
        line = Line(line_reading.rotate_crop(image, line_reading.box_quad(box_arr, LOCALISER_PAD)), box_arr)
        lines = [line]
        if box_arr[3] >= TALL * box_arr[2]:
            lines += [Line(c, box_arr) for c in line_reading.turned(line.crop)] + stack_lines(image, box_arr)
        return read_lines(models, lines) + svhn_votes(reader, image, [line], tta, others), None
    found = text_detection.find_text(models.detect, image)
    found = sorted(found, key=lambda b: -b.size[1])[:MAX_LINES]
    lines = lines_of(image, found)
    loc_boxes, loc_conf, p_none = candidates(localiser, image)
    loc_lines = []
    if p_none <= NO_NUMBER:
        for b, c in zip(loc_boxes, loc_conf):
            crop = line_reading.rotate_crop(image, line_reading.box_quad(b, LOCALISER_PAD))
            loc_lines.append(Line(crop, np.asarray(b, float), localiser=c))
            if b[3] >= TALL * b[2]:
                loc_lines += stack_lines(image, np.asarray(b, float), localiser=c)
    votes = read_lines(models, lines + loc_lines)
    votes += column_votes(votes)
    small: list[Line] = []
    seen: set[tuple] = set()
    for ln in sorted((ln for ln in lines if not ln.stacked and ln.box[3] < SMALL_LINE), key=lambda ln: -ln.box[3]):
        key = tuple(ln.box)
        if key not in seen and len(small) < NUM_SECOND_OPINIONS:
            seen.add(key)
            small.append(ln)
    opinion_lines = [ln for ln in loc_lines if not ln.stacked] + small
    votes += svhn_votes(reader, image, opinion_lines, tta, others)
    return votes, p_none


def read_photo(reader: Reader, localiser: Localiser | None, image: np.ndarray,
               box: tuple[int, int, int, int] | None = None, tta: bool = True,
               models: TextModels | None = None, calibrator: Calibrator | None = None) -> dict[str, Any]:
    """One photo's answer: {"reading", "confidence", "box" [x, y, w, h] or None, "box_confidence" (the
    localiser's, when its box gave the answer), "no_number" (the localiser's probability of none),
    "reason" (why there is no reading, or None), "next_readings" (the next most probable readings and
    their probability)}."""
    height, width = image.shape[:2]
    given = None
    if box is not None:  # the user's box: refused quoting it when wholly outside, else clipped to the photo
        x, y, w, h = box
        if x >= width or y >= height or x + w <= 0 or y + h <= 0:
            raise ImageError(f"the box {x},{y},{w},{h} lies outside the {width}x{height} photo")
        given, box = [int(v) for v in box], tuple(int(v) for v in clip(image, box))
    models = models or text_models()
    calibrator = calibrator or _CALIBRATOR
    votes, p_none = collect_votes(reader, localiser, image, box, tta, models)
    texts, feats = features(votes, height)
    if not texts:
        reason = ("no digit read" if box is not None or localiser is None else
                  f"no house number found (the localiser gives {p_none:.2f} to none)")
        result = {"reading": "", "confidence": 0.0, "box": None if box is None else list(box),
                  "box_confidence": None, "no_number": p_none, "reason": reason, "next_readings": []}
    else:
        p = calibrator.probability(feats)
        order = np.argsort(-p, kind="stable")
        best = texts[order[0]]
        where = max((v for v in votes if v.text == best), key=lambda v: (v.line + v.svhn, v.where.box[3])).where
        result = {"reading": best, "confidence": float(p[order[0]]),
                  "box": list(box) if box is not None else None if localiser is None else
                  [int(round(v)) for v in where.box],
                  "box_confidence": (where.localiser or None) if box is None and localiser is not None else None,
                  "no_number": p_none, "reason": None,
                  "next_readings": [[texts[i], float(p[i])] for i in order[1:1 + NUM_NEXT]]}
    if given is not None and given != result["box"]:
        result["box_clipped_from"] = given
    return result


def next_readings(best: str, scored: list[tuple[str, float]], k: int = NUM_NEXT) -> list[list]:
    """The `k` most confident readings other than `best` (each at its highest score), as [reading, score]."""
    top: dict[str, float] = {}
    for reading, score in scored:
        if reading and reading != best:
            top[reading] = max(top.get(reading, 0.0), score)
    return [[r, top[r]] for r in sorted(top, key=lambda r: -top[r])[:k]]


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


def candidates(localiser: Localiser, image: np.ndarray,
               k: int = NUM_CANDIDATES) -> tuple[list[np.ndarray], list[float], float]:
    """Where the number may be: (up to `k` refined boxes in the photo's pixels, best first, the
    localiser's confidence in each, its probability that the photo holds no number). Proposals after
    the first below `MIN_CANDIDATE_CONFIDENCE` are dropped."""
    boxes, confidence, p_none = localiser.locate([image], k=k)
    kept = [n for n in range(k) if n == 0 or confidence[0, n] >= MIN_CANDIDATE_CONFIDENCE]
    return ([clip(image, refine(localiser, image, boxes[0, n])) for n in kept],
            [float(confidence[0, n]) for n in kept], float(p_none[0]))


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


# --- retired from `read_photo` by issue 27 (the text detector and line reader took their place; what each was
# worth: docs/peers.md). Kept while tests elsewhere pin them (tests/tasks/test_localise.py,
# tests/infer/test_digit_lines.py); the lead removes them with those tests.
TILE_SIDE = 0.45                 # the closer looks' side, of the photo's longer side (`tiles`)
MIN_TILE_SIDE = 32               # pixels: no closer look at less (the reader's own crop size)
NUM_TILE_CANDIDATES = 2          # boxes the closer looks may add
MIN_TILE_CONFIDENCE = 0.3        # the localiser's confidence a closer look's box needs
TILE_NEW_IOU = 0.3               # a closer look's box is new when it overlaps every earlier box less
EDGE = 0.03                      # a closer look's box this near (of its side) to its inner edge is cut by it
NUM_LINE_CANDIDATES = 3          # lines of digit-like marks read (those the close look is surest of)
MAX_MARK_LINES = 64              # lines looked at up close, tallest marks first (bounded time)
LINE_AGREE_IOU = 0.3             # a line counts when the close look's box overlaps it this much


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
    """Lines of digit-like marks in the photo (`digit_lines`; at most `MAX_MARK_LINES`) that the localiser,
    looking at each up close (`close_look`), agrees hold a number (its box overlaps the line, IoU >=
    `LINE_AGREE_IOU`): up to `NUM_LINE_CANDIDATES` line boxes, surest first, with that look's confidence."""
    from svhn_jax.infer import digit_lines  # OpenCV and SciPy (0.3 s to import) only for photos that need them
    scored = []
    for line in digit_lines.lines(digit_lines.components(image))[:MAX_MARK_LINES]:
        line = clip(image, line)
        found, confidence = close_look(localiser, image, line)
        if confidence > 0.0 and iou(found, line) >= LINE_AGREE_IOU:
            scored.append((confidence, line))
    scored.sort(key=lambda s: -s[0])
    return [line for _, line in scored[:NUM_LINE_CANDIDATES]], [c for c, _ in scored[:NUM_LINE_CANDIDATES]]
