"""Writes a synthetic release in the SVHN format-1 layout: DIR/<split>/{1.png, 2.png, ..., digitStruct.mat}.

  python -m svhn_jax.synth --out=DIR --split=train --num=N --seed=S [--workers=2] [--fonts=open]

The same (seed, num) gives byte-identical files whatever the number of workers; ingest the folder with
the same code as the real release (``python -m svhn_jax.prepare --dataset=svhn --source_dir=DIR``).
``python -m svhn_jax.prepare --dataset=synthetic`` makes the HDF5 splits training reads in one go.
A user error ends the program with one line, ``error: ...``.
"""
from __future__ import annotations

import time
from pathlib import Path

from absl import flags

from svhn_jax.core.cli import cli, run_program
from svhn_jax.core.errors import UserError

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "", "Folder that receives <split>/ (created if missing).")
flags.DEFINE_string("split", "train", "Name of the split folder written under --out.")
flags.DEFINE_integer("num", 1000, "Number of images.")
flags.DEFINE_integer("seed", 0, "Release seed; image i is a function of (seed, i) alone.")
flags.DEFINE_integer("workers", 2, "Rendering processes.")
flags.DEFINE_enum("fonts", "matplotlib", ["matplotlib", "open"],
                  "The digits' faces: matplotlib's, or those plus the open-licence font packages.")


@cli
def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {' '.join(argv[1:])}")
    from svhn_jax.data.synth import release as synthetic

    if not FLAGS.out:
        raise UserError("--out=DIR is required")
    if not FLAGS.split or "/" in FLAGS.split or FLAGS.split in (".", ".."):
        raise UserError(f"--split={FLAGS.split!r} must be a plain folder name")
    if FLAGS.num < 1 or FLAGS.workers < 1:
        raise UserError("--num and --workers must be at least 1")
    folder = Path(FLAGS.out).expanduser() / FLAGS.split
    if folder.exists():
        raise UserError(f"{folder} already exists; remove it or choose another --out/--split")
    start = time.perf_counter()
    try:
        synthetic.write_release(folder, FLAGS.num, FLAGS.seed, workers=FLAGS.workers, fonts=FLAGS.fonts)
    except OSError as e:
        raise UserError(f"cannot write {folder}: {e}") from None
    seconds = time.perf_counter() - start
    print(f"wrote {FLAGS.num} images + digitStruct.mat to {folder} in {seconds:.1f} s "
          f"({FLAGS.num / seconds:.0f} images/s)")


def run_as_program() -> None:
    """Runs the command (`python -m svhn_jax.synth`)."""
    run_program(main)

