"""Scores the reader (and the localiser) on a folder of labelled photos: what a user needs to judge
them on their own photos, and how the project's held-out photos are scored.

  python -m svhn_jax.score_photos --labels=labels.csv PHOTO_FOLDER [--workdir=W] [--localiser=L]
                                  [--min_confidence=0.7] [--json_out=scores.json]

Labels: a CSV of ``file,number[,x,y,w,h]`` (a first line ``file,number,...`` is a header; the box is the digits' union
in pixels; the number ``none`` marks a photo without a house number) or a JSON list of ``{"file",
"number" (null: none), "box": [x, y, w, h]}``. Each photo is read exactly as ``predict`` reads it:
as the user would hand it over (no box: the localiser finds it) and, when the labels give a box, with
the box. A reading is right only when the whole number is (no partial credit); a photo without a
number is right when the answer is ``number: null``. Printed per photo and as a summary: accuracy
(count and percent) in each mode, the box found (IoU >= 0.5 with the labelled box) and the mean
IoU, and the precision and coverage of the confident answers (confidence >= --min_confidence,
by default predict's: the answers predict gives with no flags; the others it calls "unsure" or "no number").
A labelled photo
that cannot be read (missing, misspelt, damaged) is never scored: one line on stderr names it, the
summary counts it apart, and the exit status is 1.
"""
from __future__ import annotations

import errno
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from absl import flags, logging

from svhn_jax.core.cli import cli, load_problem, quiet_libraries, run_program
from svhn_jax.core.errors import UserError, one_line
from svhn_jax.core.fileio import atomic_write, writable_folder
from svhn_jax.infer import whole_photo
from svhn_jax.infer.backends import load_models
from svhn_jax.infer.photos import ImageError, read_labels
from svhn_jax.infer.reader import Reader
from svhn_jax.models.decoding import iou

FOUND_IOU = 0.5


def is_right(a: dict[str, Any], truth: str) -> bool:
    """The whole number read (`truth` "" : the photo holds none, and the answer says so)."""
    return a.get("number") is None and not a.get("error") if truth == "" else a.get("reading") == truth


def score(answers: Sequence[dict[str, Any]], labels: Sequence[dict[str, Any]], min_confidence: float) -> dict[str, Any]:
    """Accuracy, box overlap and confident-answer precision of `answers` (predict's dicts) against `labels`."""
    right = [is_right(a, row["number"]) for a, row in zip(answers, labels)]
    confident = [r for a, r in zip(answers, right)
                 if a.get("number") is not None and a["confidence"] >= min_confidence]
    overlaps = [float(iou(a["box"], row["box"])) if a.get("box") else 0.0
                for a, row in zip(answers, labels) if row["box"]]
    return {"num": len(right), "right": int(sum(right)), "accuracy": float(np.mean(right)) if right else None,
            "confident": len(confident), "confident_right": int(sum(confident)),
            "confident_precision": float(np.mean(confident)) if confident else None,
            "confident_coverage": len(confident) / len(right) if right else None,
            "boxes": len(overlaps), "box_found": int(sum(o >= FOUND_IOU for o in overlaps)),
            "mean_iou": float(np.mean(overlaps)) if overlaps else None}


def read_all(reader: Reader, localiser: Any, folder: Path, labels: list[dict[str, Any]],
             use_box: bool) -> list[dict[str, Any]]:
    """predict's answer for every labelled photo, read as `predict` reads it (an unreadable file answers nothing)."""
    out = []
    for row in labels:
        try:
            result, _, _ = whole_photo.read_file(reader, localiser, str(folder / row["file"]),
                                                 row["box"] if use_box else None)
        except Exception as e:  # a photo that cannot be read (or a decoder's surprise) must not lose the run
            error = str(e) if isinstance(e, ImageError) else f"cannot read ({type(e).__name__}: {one_line(e)})"
            out.append({"file": row["file"], "number": None, "reading": None, "confidence": 0.0, "box": None,
                        "error": error})
            continue
        out.append(whole_photo.answer(row["file"], result, 0.0))
    return out


FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("labels", None, "CSV (file,number[,x,y,w,h]) or JSON list of {file, number, box}.")
    flags.DEFINE_string("workdir", "", "A trained reader run; '' -> the shipped reader.")
    flags.DEFINE_string("localiser", "", "A localiser run; '' -> the shipped localiser; 'none' -> the whole photo.")
    flags.DEFINE_float("min_confidence", whole_photo.DEFAULT_MIN_CONFIDENCE,
                       "Answers at or above this confidence count as confident (default: predict's).")
    flags.DEFINE_string("json_out", "", "Also write every answer and the summary here.")


def summary_line(mode: str, s: dict[str, Any], min_confidence: float) -> str:
    prec = f"{s['confident_right']}/{s['confident']}"
    found = (f"; box found (IoU >= {FOUND_IOU}) {s['box_found']}/{s['boxes']}, mean IoU {s['mean_iou']:.2f}"
             if s["boxes"] and mode == "no_box" else "")
    return (f"{mode}: {s['right']}/{s['num']} right ({100 * s['accuracy']:.1f} %){found}; "
            f"confidence >= {min_confidence:g}: {prec} right (coverage {100 * s['confident_coverage']:.0f} %)")


@cli
def main(argv: list[str]) -> int:
    if len(argv) != 2 or not FLAGS.labels:
        print("usage: python -m svhn_jax.score_photos --labels=FILE PHOTO_FOLDER", file=sys.stderr)
        return 2
    folder = Path(argv[1])
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder of photos")
    out = Path(FLAGS.json_out) if FLAGS.json_out else None
    if out is not None:  # before the photos are read: a place it cannot write to is one line, and early
        try:
            writable_folder(out.parent)
            if out.is_dir():
                raise IsADirectoryError(errno.EISDIR, "a folder", str(out))
        except OSError as e:
            raise UserError(f"--json_out={out}: cannot write there ({e.strerror or e})") from None
    try:
        labels = read_labels(FLAGS.labels)
    except ValueError as e:  # read_labels' messages name the file (and the line)
        print(f"error: cannot read the labels: {one_line(e)}", file=sys.stderr)
        return 1
    except (OSError, KeyError, IndexError, TypeError) as e:
        print(f"error: cannot read the labels: {FLAGS.labels}: {one_line(e)}", file=sys.stderr)
        return 1
    if not labels:
        print(f"error: {FLAGS.labels}: no labelled photos", file=sys.stderr)
        return 1
    if not FLAGS["verbosity"].present:  # keep the table clean of the libraries' progress lines
        logging.set_verbosity(logging.ERROR)
    quiet_libraries()
    try:
        reader, localiser = load_models("jax", FLAGS.workdir, FLAGS.localiser, cache_dir="none")
    except Exception as e:  # one line, as predict says it (a broken config.json, no checkpoint, ...)
        print(load_problem(e, FLAGS.workdir), file=sys.stderr)
        return 2
    modes = {"no_box": read_all(reader, localiser, folder, labels, use_box=False)}
    if any(r["box"] for r in labels):
        modes["box"] = read_all(reader, localiser, folder, labels, use_box=True)
    # A photo that could not be read is named and set apart, never scored as a wrong reading.
    not_read = {}
    for answers in modes.values():
        for a in answers:
            if a.get("error") and a["file"] not in not_read:
                not_read[a["file"]] = a["error"]
                print(f"{folder / a['file']}: {a['error']}", file=sys.stderr)
    kept = [i for i, row in enumerate(labels) if row["file"] not in not_read]
    labels = [labels[i] for i in kept]
    modes = {mode: [answers[i] for i in kept] for mode, answers in modes.items()}
    if not labels:
        raise UserError(f"none of the {len(not_read)} labelled photos in {folder} could be read (named above)")
    summary = {mode: score(answers, labels, FLAGS.min_confidence) for mode, answers in modes.items()}
    for i, row in enumerate(labels):
        cells = []
        for mode, answers in modes.items():
            a = answers[i]
            shown = mode == "no_box" and row["box"] and a.get("box")
            overlap = f" IoU {iou(a['box'], row['box']):.2f}" if shown else ""
            cells.append(f"{mode}: {a['reading'] or '-'!s:>6} ({a['confidence']:.2f}){overlap} "
                         f"{'ok ' if is_right(a, row['number']) else 'BAD'}")
        print(f"{row['file']:>40}  truth {row['number'] or 'none':>6}  " + "   ".join(cells))
    for mode, s in summary.items():
        print(summary_line(mode, s, FLAGS.min_confidence))
    if not_read:
        print(f"{len(not_read)} of the {len(labels) + len(not_read)} labelled photos not read (named on stderr), "
              "so not scored")
    if out is not None:
        # each answer beside its label: "number" is predict's answer at --min_confidence=0 (its reading)
        modes = {mode: [{**a, "truth": row["number"], "right": is_right(a, row["number"])}
                        for a, row in zip(answers, labels)] for mode, answers in modes.items()}
        text = json.dumps({"summary": summary, "answers": modes, "not_read": [
            {"file": f, "error": e} for f, e in not_read.items()]}, indent=1) + "\n"
        try:
            atomic_write(out, lambda p: p.write_text(text))
        except OSError as e:  # a full disk: the earlier file, if any, is kept
            raise UserError(f"--json_out={out}: cannot write there ({e.strerror or e}); an earlier file is kept") \
                from None
    return 1 if not_read else 0


def run_as_program() -> None:
    """Runs the command (`python -m svhn_jax.score_photos`)."""
    define_flags()
    run_program(main)

