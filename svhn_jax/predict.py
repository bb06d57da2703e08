"""Reads the house number in users' own photos with the shipped reader or a trained run.

  python -m svhn_jax.predict photo.jpg more_photos/ [--workdir=W] [--json] [--min_confidence=0.9]
                             [--box=x,y,w,h]

Without ``--workdir`` the reader that ships with the package (`svhn_jax.pretrained`) reads.

Per image, one line: ``photo.jpg: 123 (confidence 0.982)``, or ``photo.jpg: unreadable (best guess
17, confidence 0.214)`` when the confidence (the probability the model gives to the whole sequence
it read) is below ``--min_confidence`` or the model reads no digit at all. ``--json`` prints JSON
lines instead: ``{"file", "number" (null when unreadable), "reading", "confidence"}``.

Without ``--box`` the whole picture is resized as the recipe resizes its crops, so a photo should
be framed around the number; ``--box=x,y,w,h`` (pixels, left/top/width/height, after EXIF rotation)
marks where the digits are, and the crop is made exactly as in training (the box expanded by the
recipe's margin).

Images: PNG, JPEG, BMP, GIF (first frame) or WebP, any mode — grey, 16-bit, palette, CMYK, and
transparent ones composited over white — with EXIF orientation applied. A folder argument is read
non-recursively (files with those suffixes, sorted). A file that cannot be read (missing, empty,
truncated, not an image, over ``--max_pixels``, no permission, not a regular file: a FIFO or a
device is never opened for reading, so it cannot block), a folder that cannot be listed or one
without images gives one line naming it (stderr, or a JSON ``{"file", "error"}`` line with
``--json``); the other images are still answered and the exit status is 1. A run that cannot be
loaded (no checkpoint, a checkpoint of another model or shape) is one line naming it, exit status 2.

Compiled programs are kept in the persistent JAX compilation cache of `svhn_jax.compilation_cache`
(``--cache_dir``, else ``$SVHN_JAX_COMPILATION_CACHE``, else the user cache folder), so only the
first call on a machine compiles.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence, TextIO

import numpy as np
from absl import app, flags, logging

from svhn_jax import compilation_cache
from svhn_jax.errors import UserError, cli, one_line
from svhn_jax.photos import DEFAULT_MAX_PIXELS, ImageError, find_images, load_image, read_labels

BATCH_SIZE = 16  # fixed, so one compiled program serves any number of images
_MAX_REASON = 300  # characters of a library's error message shown (orbax's run to kilobytes)


def parse_box(text: str) -> tuple[int, int, int, int]:
    """"x,y,w,h" -> ints; raises ValueError with a one-line reason."""
    try:
        x, y, w, h = (int(round(float(v))) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--box={text!r}: expected four numbers x,y,w,h") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"--box={text!r}: width and height must be positive")
    return x, y, w, h


def preprocess(image: np.ndarray, recipe: str, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> the recipe's uint8 input [S, S, C], exactly as the training data."""
    from svhn_jax.data import preprocess as pp
    if box is None:
        return pp.resize_whole(image, recipe)
    try:
        return pp.apply_recipe(image, np.array([box], np.float64), recipe)
    except ValueError as e:
        raise ImageError(f"--box={','.join(map(str, box))}: {e}") from None


# Test-time views of a box: a box drawn a little larger or smaller, or off-centre, reads the same number.
TTA_SCALES, TTA_SHIFTS_X, TTA_SHIFTS_Y = (0.9, 1.0, 1.12), (-0.08, 0.0, 0.08), (-0.06, 0.0, 0.06)


def views(image: np.ndarray, recipe: str, box: tuple[int, int, int, int] | None, tta: bool) -> np.ndarray:
    """The crops the reader reads for one photo, uint8 [V, S, S, C]: the box's crop, or with `tta` the
    27 crops of the box scaled by `TTA_SCALES` and shifted by `TTA_SHIFTS_*` (of its size)."""
    if box is None or not tta:
        return preprocess(image, recipe, box)[None]
    x, y, w, h = box
    boxes = [(x + w * (1 - s) / 2 + dx * w, y + h * (1 - s) / 2 + dy * h, w * s, h * s)
             for s in TTA_SCALES for dx in TTA_SHIFTS_X for dy in TTA_SHIFTS_Y]
    return np.stack([preprocess(image, recipe, tuple(int(round(v)) for v in b)) for b in boxes])


def vote(lengths: np.ndarray, digits: np.ndarray, confidence: np.ndarray) -> tuple[int, np.ndarray, float]:
    """One reading from the readings of several views: the one with the largest summed confidence.

    Its confidence is the mean over views of the probability each gives it, counted as 0 where a view
    reads another number (a lower bound), so views that disagree lower the confidence."""
    readings = ["".join(str(d) for d in row[:n]) for n, row in zip(lengths, digits)]
    totals: dict[str, float] = {}
    for r, c in zip(readings, confidence):
        totals[r] = totals.get(r, 0.0) + float(c)
    best = max(totals, key=totals.get)
    i = readings.index(best)
    return int(lengths[i]), digits[i], totals[best] / len(readings)


# ----------------------------------------------------------------------------- model

@dataclasses.dataclass
class Reader:
    """A trained run ready to read batches of preprocessed images."""

    config: Any
    variables: Any
    infer: Any  # jitted (variables, uint8 [B, S, S, C]) -> (length [B], digits [B, 5], confidence [B])

    @classmethod
    def load(cls, workdir: str | os.PathLike | None = None) -> "Reader":
        """The latest checkpoint of `workdir`, or the shipped reader when `workdir` is None or ''."""
        import jax

        from svhn_jax import inference, pretrained
        from svhn_jax import workdir as workdir_lib
        config, model, variables = (workdir_lib.load_for_inference(workdir) if workdir
                                    else pretrained.load("reader"))

        def infer(variables, images):  # variables as an argument: not baked into the program
            reading, _ = inference.read(model, config, variables, images)
            return reading

        return cls(config=config, variables=variables, infer=jax.jit(infer))

    def read(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """uint8 [N, S, S, C] -> (lengths [N], digits [N, 5], confidence [N]) in fixed-size batches."""
        outputs = []
        for start in range(0, len(images), BATCH_SIZE):
            chunk = images[start:start + BATCH_SIZE]
            padded = np.concatenate([chunk, np.zeros((BATCH_SIZE - len(chunk), *chunk.shape[1:]), chunk.dtype)])
            outputs.append([np.asarray(a)[:len(chunk)] for a in self.infer(self.variables, padded)])
        if not outputs:
            return np.zeros((0,), np.int32), np.zeros((0, 5), np.int32), np.zeros((0,), np.float32)
        lengths, digits, confidence = (np.concatenate(parts) for parts in zip(*outputs))
        return lengths, digits, confidence


def answer(file: str, length: int, digits: np.ndarray, confidence: float, min_confidence: float) -> dict[str, Any]:
    """One image's answer: "number" is None when unreadable; "reading" is the best guess."""
    reading = "".join(str(int(d)) for d in digits[:length])
    readable = bool(reading) and confidence >= min_confidence
    return {"file": file, "number": reading if readable else None, "reading": reading,
            "confidence": float(confidence)}


def format_answer(a: dict[str, Any]) -> str:
    if a["number"] is not None:
        return f"{a['file']}: {a['number']} (confidence {a['confidence']:.3f})"
    guess = f"best guess {a['reading']}, " if a["reading"] else ""
    return f"{a['file']}: unreadable ({guess}confidence {a['confidence']:.3f})"


# ----------------------------------------------------------------------------- CLI

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The CLI's flags, defined only when run as a program (importing this module defines none)."""
    flags.DEFINE_string("workdir", None, "A trained run's working directory (with checkpoints/); "
                        "default: the reader that ships with the package.")
    flags.DEFINE_bool("json", False, "Print JSON lines instead of text.")
    flags.DEFINE_float("min_confidence", 0.0, "Answer 'unreadable' below this confidence (0-1).")
    flags.DEFINE_string("box", "", "x,y,w,h: the digits' box in pixels; crop to it as in training.")
    flags.DEFINE_string("boxes", "", "A CSV of file,number,x,y,w,h (as score_photos reads): each named "
                        "photo's box (the number column is ignored).")
    flags.DEFINE_bool("tta", True, "With a box: read 27 views of it (scaled, shifted) and vote.")
    flags.DEFINE_integer("max_pixels", DEFAULT_MAX_PIXELS, "Refuse images with more pixels than this.")
    flags.DEFINE_string("cache_dir", "", "Persistent JAX compilation cache folder ('' -> "
                        "$SVHN_JAX_COMPILATION_CACHE or the user cache folder, 'none' -> off).")


def run(reader: Reader, paths: Sequence[str], *, as_json: bool = False, min_confidence: float = 0.0,
        box: tuple[int, int, int, int] | None = None, boxes: dict[str, tuple[int, int, int, int]] | None = None,
        tta: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS, out: TextIO | None = None,
        err: TextIO | None = None) -> int:
    """Answers every image (a batch at a time); returns the exit status: 0, or 1 if any input failed.

    `box` applies to every image, `boxes` (file name -> box) to the images it names."""
    out, err = out or sys.stdout, err or sys.stderr
    status, files, images = 0, [], []

    def answer_batch() -> None:
        lengths, digits, confidence = reader.read(np.concatenate(images))
        start = 0
        for file, crops in zip(files, images):
            part = slice(start, start + len(crops))
            start += len(crops)
            a = answer(file, *vote(lengths[part], digits[part], confidence[part]), min_confidence)
            print(json.dumps(a) if as_json else format_answer(a), file=out, flush=True)
        files.clear()
        images.clear()

    for file, error in find_images(paths):
        if error is None:
            try:
                file_box = (boxes or {}).get(Path(file).name, box)
                images.append(views(load_image(file, max_pixels), reader.config.recipe, file_box, tta))
                files.append(file)
                if len(files) == BATCH_SIZE:
                    answer_batch()
                continue
            except ImageError as e:
                error = str(e)
            except Exception as e:  # a decoder's surprise must not stop the others
                error = f"cannot read ({type(e).__name__}: {e})"
        if as_json:
            print(json.dumps({"file": file, "error": error}), file=out, flush=True)
        else:
            print(f"{file}: {error}", file=err, flush=True)
        status = 1
    if files:
        answer_batch()
    return status


@cli
def main(argv: list[str]) -> int:
    paths = argv[1:]
    if not paths:
        print("usage: python -m svhn_jax.predict [--workdir=W] IMAGE_OR_FOLDER...", file=sys.stderr)
        return 2
    try:
        box = parse_box(FLAGS.box) if FLAGS.box else None
        boxes = {r["file"]: r["box"] for r in read_labels(FLAGS.boxes) if r["box"]} if FLAGS.boxes else None
    except (OSError, ValueError, KeyError, IndexError) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    if not 0.0 <= FLAGS.min_confidence <= 1.0:
        print(f"--min_confidence={FLAGS.min_confidence}: must lie in 0-1", file=sys.stderr)
        return 2
    if not FLAGS["verbosity"].present:  # keep the answers clean of the libraries' progress lines
        logging.set_verbosity(logging.ERROR)
    if FLAGS.cache_dir != "none":
        compilation_cache.enable(FLAGS.cache_dir or None)
    try:
        hook, sys.unraisablehook = sys.unraisablehook, lambda unraisable: None  # orbax's abandoned reads
        reader = Reader.load(FLAGS.workdir)
        sys.unraisablehook = hook
    except Exception as e:  # one line, never a traceback
        # A checkpoint of another model or shape: orbax's abandoned reads are collected later, each
        # printed as an "Exception ignored" traceback (hundreds of lines); this line already says it.
        sys.unraisablehook = lambda unraisable: None
        if isinstance(e, UserError):  # the workdir's own one-line errors already name it
            print(one_line(e), file=sys.stderr)
            return 2
        reason = one_line(e)
        reason = reason if len(reason) <= _MAX_REASON else reason[:_MAX_REASON] + " ..."
        print(f"{FLAGS.workdir or 'the shipped reader'}: cannot load a trained run ({type(e).__name__}: {reason})",
              file=sys.stderr)
        return 2
    return run(reader, paths, as_json=FLAGS.json, min_confidence=FLAGS.min_confidence, box=box, boxes=boxes,
               tta=FLAGS.tta, max_pixels=FLAGS.max_pixels)


if __name__ == "__main__":
    define_flags()
    app.run(main)
