"""Reads the house number in users' own photos: finds it, then reads it.

  python -m svhn_jax.predict photo.jpg more_photos/ [--json] [--min_confidence=0.7] [--annotate=DIR]
                             [--box=x,y,w,h | --boxes=labels.csv] [--workdir=W] [--localiser=L|none]
                             [--backend=jax|onnx] [--onnx_dir=DIR]

Without ``--workdir`` the reader that ships with the package (`svhn_jax.pretrained`, `infer.weights`) reads; without
``--localiser`` the shipped localiser finds the number (`svhn_jax.infer.whole_photo`: anywhere in the
photo, any size, digits stacked vertically read top to bottom). ``--box=x,y,w,h`` (pixels,
left/top/width/height, after EXIF rotation) or a ``--boxes`` CSV says where the digits are instead,
and the crop is made exactly as in training (the box expanded by the recipe's margin).
``--localiser=none`` reads the whole photo as the crop.

Per image, one line: ``photo.jpg: 123 (confidence 0.982, box 40,12,60,30)``; ``photo.jpg: unsure, best
guess 67 at 0.650 (confidence below 0.9, box ...)`` when there is a reading but its confidence is below
``--min_confidence`` or the finders doubt the photo holds a number (the reason says which); or
``photo.jpg: no number (REASON; confidence 0.000)`` when nothing is read. The default
``--min_confidence`` is the shipped calibrator's (`svhn_jax/pretrained/calibrator.json`, chosen on
held-out synthetic scenes by ``scripts/fit_calibrator.py``; ``--help`` shows its value);
``--min_confidence=0`` answers every reading. The confidence is the calibrator's probability that the
reading is the number (`svhn_jax.infer.whole_photo`). ``--json`` prints JSON lines instead: ``{"file",
"number" (null: see "reason"; with a "reading", the unsure guess), "reading", "confidence", "box"
[x, y, w, h] or null, "box_confidence" (the localiser's; null for a given box), "reason" (only when
"number" is null)}``. ``--annotate=DIR`` writes each photo as
``DIR/<photo's name>.annotated.png`` (``house.jpg`` -> ``house.jpg.annotated.png``) with the box and the
reading drawn on it, and never over a file it did not write: a name that is one of the photos read, was
already written in this run (two photos of one name in two folders) or holds a file of anyone else
becomes ``<photo's name>.annotated-2.png``, ``-3``, ...; with ``--json`` each answer says where
(``"annotated"``).

Images: PNG, JPEG, BMP, GIF (first frame) or WebP, any mode — grey, 16-bit, palette, CMYK, and
transparent ones composited over white — with EXIF orientation applied. A folder argument is read
non-recursively (files with those suffixes, sorted). A file that cannot be read (missing, empty,
truncated, not an image, over ``--max_pixels``, under 3 pixels on a side, no permission, not a regular
file: a FIFO or a device is never opened for reading, so it cannot block), a folder that cannot be listed or one
without images gives one line naming it (stderr, or a JSON ``{"file", "error"}`` line with
``--json``); the other images are still answered and the exit status is 1. A run that cannot be
loaded (no checkpoint, a checkpoint of another model or shape) is one line naming it, exit status 2.

Compiled programs are kept in the persistent JAX compilation cache of `svhn_jax.core.compilation_cache`
(``--cache_dir``, else ``$SVHN_JAX_COMPILATION_CACHE``, else the user cache folder), so only the
first call on a machine compiles.

``--backend=onnx`` reads with the models exported to ONNX on onnxruntime instead (`svhn_jax.infer.onnx`;
the ``[onnx]`` extra): the same readings, no JAX imported, nothing compiled. ``--onnx_dir`` is a folder
that ``python -m svhn_jax.export`` wrote (default: the shipped weights' graphs, `svhn_jax/pretrained/onnx`);
a run of one's own (``--workdir``, ``--localiser=<run>``) is exported first, then named by ``--onnx_dir``.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence, TextIO

from absl import flags, logging

from svhn_jax.core import fileio
from svhn_jax.core.cli import cli, load_problem, quiet_libraries, run_program
from svhn_jax.core.errors import one_line
from svhn_jax.infer import drawing, whole_photo
from svhn_jax.infer.backends import BACKENDS, load_models
from svhn_jax.infer.photos import DEFAULT_MAX_PIXELS, ImageError, find_images, match_boxes, read_labels
from svhn_jax.infer.reader import Reader


def parse_box(text: str) -> tuple[int, int, int, int]:
    """"x,y,w,h" -> ints; raises ValueError with a one-line reason."""
    try:
        x, y, w, h = (int(round(float(v))) for v in text.split(","))
    except (ValueError, OverflowError):  # not four numbers, or NaN / infinite
        raise ValueError(f"--box={text!r}: expected four finite numbers x,y,w,h") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"--box={text!r}: width and height must be positive")
    return x, y, w, h


def format_answer(a: dict[str, Any]) -> str:
    where = f", box {','.join(map(str, a['box']))}" if a.get("box") else ""
    if a.get("box_clipped_from"):
        where += f": clipped to the photo from {','.join(map(str, a['box_clipped_from']))}"
    if a["number"] is not None:
        return f"{a['file']}: {a['number']} (confidence {a['confidence']:.3f}{where})"
    if a["reading"]:  # a reading, not sure enough to be the answer: said as a guess, never as "no number"
        return f"{a['file']}: unsure, best guess {a['reading']} at {a['confidence']:.3f} ({a['reason']}{where})"
    return f"{a['file']}: no number ({a['reason']}; confidence {a['confidence']:.3f}{where})"


# ----------------------------------------------------------------------------- CLI

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The CLI's flags, defined only when run as a program (importing this module defines none)."""
    flags.DEFINE_string("workdir", None, "A trained run's working directory (with checkpoints/); "
                        "default: the reader that ships with the package.")
    flags.DEFINE_bool("json", False, "Print JSON lines instead of text.")
    flags.DEFINE_float("min_confidence", whole_photo.DEFAULT_MIN_CONFIDENCE,
                      "Below this confidence a reading is said as 'unsure, best guess ...', not as the number "
                      "(0-1; the default is the shipped calibrator's; 0 answers every reading).")
    flags.DEFINE_string("box", "", "x,y,w,h: the digits' box in pixels; crop to it as in training.")
    flags.DEFINE_string("boxes", "", "A CSV of file,number,x,y,w,h (as score_photos reads): each named "
                        "photo's box (the number column is ignored). A row names a photo by its bare name, or "
                        "by a path from here or from the CSV's folder; a row without a box, or naming no photo "
                        "given and no file, is refused.")
    flags.DEFINE_bool("tta", True, "Read 27 views of each box (scaled, shifted) and vote.")
    flags.DEFINE_string("localiser", "", "Where to look without a box: '' -> the shipped localiser, a "
                        "localiser run's workdir, or 'none' (the whole photo is the crop).")
    flags.DEFINE_string("annotate", "", "A folder: write each photo there with its box and reading drawn (PNG).")
    flags.DEFINE_integer("max_pixels", DEFAULT_MAX_PIXELS, "Refuse images with more pixels than this.")
    flags.DEFINE_string("cache_dir", "", "Persistent JAX compilation cache folder ('' -> "
                        "$SVHN_JAX_COMPILATION_CACHE or the user cache folder, 'none' -> off).")
    flags.DEFINE_enum("backend", "jax", list(BACKENDS), "Run the models with JAX, or their ONNX export on onnxruntime "
                      "(no JAX imported; the [onnx] extra).")
    flags.DEFINE_string("onnx_dir", "", "With --backend=onnx: a folder `python -m svhn_jax.export` wrote "
                        "('' -> the shipped weights' graphs).")


def run(reader: Reader, paths: Sequence[str], *, localiser: Any = None, as_json: bool = False,
        min_confidence: float = 0.0, box: tuple[int, int, int, int] | None = None,
        boxes: dict[str, tuple[int, int, int, int]] | None = None, tta: bool = True,
        max_pixels: int = DEFAULT_MAX_PIXELS, annotate_dir: str | Path | None = None,
        out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Answers every image in turn; returns the exit status: 0, or 1 if any input failed.

    `box` applies to every image, `boxes` (a photo's real path, or its name -> box: `match_boxes`) to
    the images it names; the others are
    localised by `localiser` (None: the whole photo is read as the crop). `annotate_dir` receives
    each photo with its box and reading drawn (PNG, named after the photo: `annotation_path`)."""
    out, err = out or sys.stdout, err or sys.stderr
    status = 0
    found = list(find_images(paths))
    inputs = {os.path.realpath(file) for file, error in found if error is None}
    written: set[str] = set()
    if annotate_dir is not None:
        Path(annotate_dir).mkdir(parents=True, exist_ok=True)
    for file, error in found:
        if error is None:
            try:
                boxes = boxes or {}
                file_box = boxes.get(os.path.realpath(file), boxes.get(Path(file).name, box))
                result, image, scale = whole_photo.read_file(reader, localiser, file, file_box, tta, max_pixels)
                a = whole_photo.answer(file, result, min_confidence)
                if annotate_dir is not None:
                    drawn = drawing.annotation_path(Path(annotate_dir), file, inputs, written)
                    written.add(os.path.realpath(drawn))
                    drawing.write_annotated(image, a, drawn, scale)
                    a["annotated"] = str(drawn)
                print(json.dumps(a) if as_json else format_answer(a), file=out, flush=True)
                continue
            except ImageError as e:
                error = str(e)
            except OSError as e:  # an annotation that cannot be written
                error = f"cannot write the annotated picture ({e.strerror or e})"
            except Exception as e:  # a decoder's surprise must not stop the others
                error = f"cannot read ({type(e).__name__}: {e})"
        if as_json:
            print(json.dumps({"file": file, "error": error}), file=out, flush=True)
        else:
            print(f"{file}: {error}", file=err, flush=True)
        status = 1
    return status


def onnx_flag_problem(workdir: str | None, localiser: str, onnx_dir: str) -> str | None:
    """Why --backend=onnx cannot take these flags (a run of one's own is exported first), or None."""
    runs = ([f"--workdir={workdir}"] if workdir else []) + ([f"--localiser={localiser}"]
                                                            if localiser not in ("", "none") else [])
    if not runs:
        return None
    out = onnx_dir or "DIR"
    return (f"--backend=onnx reads exported graphs, not a run's checkpoints: export {' and '.join(runs)} first "
            f"(python -m svhn_jax.export --format=onnx {' '.join(runs)} --out={out}), then pass --onnx_dir={out}")


@cli
def main(argv: list[str]) -> int:
    paths = argv[1:]
    if not paths:
        print("usage: python -m svhn_jax.predict [--workdir=W] IMAGE_OR_FOLDER...", file=sys.stderr)
        return 2
    try:
        box = parse_box(FLAGS.box) if FLAGS.box else None
        boxes = None
        if FLAGS.boxes:
            photos = [file for file, error in find_images(paths) if error is None]
            boxes = match_boxes(read_labels(FLAGS.boxes), FLAGS.boxes, photos)
    except (OSError, ValueError) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    if FLAGS.annotate:  # before anything loads: a folder it cannot write to is one line, not one per photo
        try:
            fileio.writable_folder(FLAGS.annotate)
        except OSError as e:
            print(f"error: --annotate={FLAGS.annotate}: cannot write there ({e.strerror or e})", file=sys.stderr)
            return 2
    if not 0.0 <= FLAGS.min_confidence <= 1.0:
        print(f"--min_confidence={FLAGS.min_confidence}: must lie in 0-1", file=sys.stderr)
        return 2
    if not FLAGS["verbosity"].present:  # keep the answers clean of the libraries' progress lines
        logging.set_verbosity(logging.ERROR)
    if FLAGS.backend == "onnx":
        problem = onnx_flag_problem(FLAGS.workdir, FLAGS.localiser, FLAGS.onnx_dir)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    elif FLAGS.onnx_dir:
        print("error: --onnx_dir is for --backend=onnx", file=sys.stderr)
        return 2
    quiet_libraries()  # orbax's noise when a checkpoint does not restore: the line below says it
    try:
        reader, localiser = load_models(FLAGS.backend, FLAGS.workdir, FLAGS.localiser, FLAGS.onnx_dir,
                                        FLAGS.cache_dir)
    except Exception as e:  # one line, never a traceback
        print(load_problem(e, FLAGS.workdir), file=sys.stderr)
        return 2
    return run(reader, paths, localiser=localiser, as_json=FLAGS.json, min_confidence=FLAGS.min_confidence,
               box=box, boxes=boxes, tta=FLAGS.tta, max_pixels=FLAGS.max_pixels,
               annotate_dir=FLAGS.annotate or None)


def run_as_program() -> None:
    """Runs the command (`python -m svhn_jax.predict`)."""
    define_flags()
    run_program(main)

