"""Precision and coverage of whole-photo answers against their confidence, on held-out synthetic
scenes: a check of the shipped default ``--min_confidence`` (`infer.whole_photo.DEFAULT_MIN_CONFIDENCE`,
chosen with the calibrator by ``scripts/fit_calibrator.py``; reported as ``default_min_confidence``).
Never on real photos: those only check it (``score_photos``, docs/localiser.md).

  python scripts/calibrate_confidence.py [--num=500] [--scale=1] [--target=0.97] [--out=calibration.json]

Scene ``i`` of the set ``--seed`` (`data.synth.scene.render_scene`; 987654 is never a training seed)
is read as ``predict`` reads a photo with no box (`whole_photo.read_photo`, the shipped reader and
localiser, 27 views). An answer is right when the whole number is; a scene without a number answered
with one is wrong. For each threshold 0.1, 0.2, ..., 0.9: the share answered (coverage) and the
share of those right (precision); ``chosen`` is the lowest threshold whose precision reaches
``--target``. JSON on stdout (and in ``--out``, written whole or not at all). A flag out of range
(``--num`` or ``--scale`` under 1, ``--target`` outside (0, 1]) or an ``--out`` that cannot be written
is one line before any scene is read.
"""
from __future__ import annotations

import errno
import json
import sys
import time
from pathlib import Path

import numpy as np
from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as `python scripts/calibrate_confidence.py` from a checkout: its svhn_jax
    sys.path.insert(0, str(REPO))

from svhn_jax.core.cli import cli, quiet_libraries
from svhn_jax.core.errors import UserError
from svhn_jax.core.fileio import atomic_write, writable_folder

FLAGS = flags.FLAGS
flags.DEFINE_integer("num", 500, "Scenes read.")
flags.DEFINE_integer("seed", 987_654, "The scene set (never a training seed).")
flags.DEFINE_float("target", 0.97, "The precision the chosen threshold must reach.")
flags.DEFINE_integer("scale", 1, "Scenes drawn this many times larger, read at a photo's resolution "
                     "(`scene.scene_photo`); 1: the localiser's 128-pixel scenes, as trained on.")
flags.DEFINE_string("out", "", "Also write the JSON here.")

THRESHOLDS = tuple(round(0.1 * k, 1) for k in range(1, 10))


def table(confidence: np.ndarray, right: np.ndarray, target: float) -> dict:
    """Coverage and precision at each of `THRESHOLDS`, and the lowest one reaching `target` (or None)."""
    rows = []
    for t in THRESHOLDS:
        answered = confidence >= t
        rows.append({"threshold": t, "coverage": float(answered.mean()), "answered": int(answered.sum()),
                     "precision": float(right[answered].mean()) if answered.any() else None})
    chosen = next((r["threshold"] for r in rows if r["precision"] is not None and r["precision"] >= target), None)
    return {"rows": rows, "chosen": chosen}


def check_flags() -> None:
    """A flag the run cannot use, or an --out it could not write at its end: one line now, before any scene."""
    if FLAGS.num < 1:
        raise UserError(f"--num={FLAGS.num}: must be at least 1 (scenes read)")
    if FLAGS.scale < 1:
        raise UserError(f"--scale={FLAGS.scale}: must be at least 1 (1: the localiser's 128-pixel scenes)")
    if not 0.0 < FLAGS.target <= 1.0:
        raise UserError(f"--target={FLAGS.target}: must lie in (0, 1] (a precision)")
    if FLAGS.out:
        out = Path(FLAGS.out)
        try:
            writable_folder(out.parent)
            if out.is_dir():
                raise IsADirectoryError(errno.EISDIR, "a folder", str(out))
        except OSError as e:
            raise UserError(f"--out={out}: cannot write there ({e.strerror or e})") from None


@cli
def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise UserError(f"unexpected arguments {' '.join(argv[1:])!r} (flags only: --num, --seed, --scale, "
                        "--target, --out)")
    check_flags()
    from svhn_jax.data.synth.scene import render_scene, scene_number, scene_photo
    from svhn_jax.infer import whole_photo
    from svhn_jax.infer.localiser import Localiser
    from svhn_jax.infer.reader import Reader

    quiet_libraries()
    reader, localiser = Reader.load(), Localiser.load()
    start = time.perf_counter()
    confidence, right = [], []
    for i in range(FLAGS.num):
        truth = scene_number(FLAGS.seed, i)
        photo = render_scene(FLAGS.seed, i)[0] if FLAGS.scale == 1 else scene_photo(FLAGS.seed, i, FLAGS.scale)[0]
        result = whole_photo.read_photo(reader, localiser, photo)
        confidence.append(result["confidence"] if result["reading"] else 0.0)
        right.append(bool(truth) and result["reading"] == truth)
    confidence, right = np.array(confidence), np.array(right)
    report = {"benchmark": "confidence_calibration", "num": FLAGS.num, "seed": FLAGS.seed, "scale": FLAGS.scale,
              "target": FLAGS.target,
              "accuracy": float(right.mean()), "default_min_confidence": whole_photo.DEFAULT_MIN_CONFIDENCE,
              **table(confidence, right, FLAGS.target), "seconds": round(time.perf_counter() - start, 1),
              "date": time.strftime("%Y-%m-%d")}
    text = json.dumps(report, indent=1)
    print(text, flush=True)
    if FLAGS.out:  # whole or not at all: a full disk keeps an earlier file as it was
        try:
            atomic_write(FLAGS.out, lambda p: p.write_text(text + "\n"))
        except OSError as e:
            raise UserError(f"--out={FLAGS.out}: cannot write there ({e.strerror or e}); the table is above, "
                            "an earlier file is kept") from None


if __name__ == "__main__":
    app.run(main)
