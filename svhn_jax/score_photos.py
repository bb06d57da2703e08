"""Scores a reader on a folder of labelled photos: what a user needs to judge it on their own photos.

  python -m svhn_jax.score_photos --labels=labels.csv PHOTO_FOLDER [--workdir=W] [--min_confidence=0.9]
                                  [--json_out=scores.json]

Labels: a CSV of ``file,number[,x,y,w,h]`` (a header line is skipped; the box is the digits' union in
pixels) or a JSON list of ``{"file", "number", "box": [x, y, w, h]}``. Each photo is read as the user
would hand it over (no box) and, when the labels give a box, with the box. A reading is right only
when the whole number is (no partial credit). Printed per photo and as a summary: accuracy (count and
percent) in each mode, and the precision of the confident answers (confidence >= --min_confidence).
Without ``--workdir`` the shipped reader is used.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from absl import app, flags

from svhn_jax import predict
from svhn_jax.errors import cli
from svhn_jax.photos import ImageError, load_image, read_labels


def score(answers: Sequence[dict[str, Any]], truths: Sequence[str], min_confidence: float) -> dict[str, Any]:
    """Accuracy and confident-answer precision of `answers` (predict's dicts) against `truths`."""
    right = [a.get("reading") == t for a, t in zip(answers, truths)]
    confident = [r for a, r in zip(answers, right) if a.get("confidence", 0.0) >= min_confidence]
    return {"num": len(right), "right": int(sum(right)), "accuracy": float(np.mean(right)) if right else None,
            "confident": len(confident), "confident_right": int(sum(confident)),
            "confident_precision": float(np.mean(confident)) if confident else None}


def read_all(reader: predict.Reader, folder: Path, labels: list[dict[str, Any]], use_box: bool) -> list[dict]:
    """predict's answer for every labelled photo, read as `predict` reads it (an unreadable file answers nothing)."""
    out = []
    for row in labels:
        try:
            image = load_image(folder / row["file"])
            crops = predict.views(image, reader.config.recipe, row["box"] if use_box else None, tta=True)
        except ImageError as e:
            out.append({"file": row["file"], "reading": None, "confidence": 0.0, "error": str(e)})
            continue
        out.append(predict.answer(row["file"], *predict.vote(*reader.read(crops)), 0.0))
    return out


FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("labels", None, "CSV (file,number[,x,y,w,h]) or JSON list of {file, number, box}.")
    flags.DEFINE_string("workdir", "", "A trained run; '' -> the shipped reader.")
    flags.DEFINE_float("min_confidence", 0.9, "Answers at or above this confidence count as confident.")
    flags.DEFINE_string("json_out", "", "Also write every answer and the summary here.")


@cli
def main(argv: list[str]) -> int:
    if len(argv) != 2 or not FLAGS.labels:
        print("usage: python -m svhn_jax.score_photos --labels=FILE PHOTO_FOLDER", file=sys.stderr)
        return 2
    folder = Path(argv[1])
    try:
        labels = read_labels(FLAGS.labels)
    except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
        print(f"error: {FLAGS.labels}: cannot read the labels ({e})", file=sys.stderr)
        return 1
    reader = predict.Reader.load(FLAGS.workdir)
    truths = [r["number"] for r in labels]
    modes = {"no_box": read_all(reader, folder, labels, use_box=False)}
    if any(r["box"] for r in labels):
        modes["box"] = read_all(reader, folder, labels, use_box=True)
    summary = {mode: score(answers, truths, FLAGS.min_confidence) for mode, answers in modes.items()}
    for i, row in enumerate(labels):
        cells = [f"{m}: {a[i]['reading']!s:>6} ({a[i]['confidence']:.2f}) "
                 f"{'ok ' if a[i]['reading'] == row['number'] else 'BAD'}" for m, a in modes.items()]
        print(f"{row['file']:>40}  truth {row['number']:>6}  " + "   ".join(cells))
    for mode, s in summary.items():
        prec = f"{s['confident_right']}/{s['confident']}" if s["confident"] else "0/0"
        print(f"{mode}: {s['right']}/{s['num']} right ({100 * s['accuracy']:.1f} %); "
              f"confidence >= {FLAGS.min_confidence}: {prec} right")
    if FLAGS.json_out:
        Path(FLAGS.json_out).write_text(json.dumps({"summary": summary, "answers": modes}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
