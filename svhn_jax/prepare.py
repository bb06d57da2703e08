"""Data CLI: from nothing (or a downloaded release) to split files in the HDF5 data contract.

  python -m svhn_jax.prepare --dataset=svhn --splits=train,test,extra --recipe=seed32_grey --data_dir=DIR
  python -m svhn_jax.prepare --dataset=svhn --source_dir=PATH ...      # ingest an already downloaded release
  python -m svhn_jax.prepare --dataset=multi_mnist --mnist_npz=PATH --num_examples=N --seed=S --out=FILE.h5
  python -m svhn_jax.prepare --dataset=svhn_cropped --splits=train,test --data_dir=DIR

Each dataset's work lives in its module under `svhn_jax.data`; this file only parses flags.
"""
from __future__ import annotations

import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_enum("dataset", "svhn", ["svhn", "synthetic", "multi_mnist", "svhn_cropped"], "What to prepare.")
flags.DEFINE_string("splits", "train,test", "Comma-separated split names.")
flags.DEFINE_string("recipe", "seed32_grey", "Preprocessing recipe (seed32_grey | goodfellow64_rgb).")
flags.DEFINE_string("data_dir", "", "Root of the prepared files ('' -> $SVHN_JAX_DATA or ~/.cache/svhn_jax/data).")
flags.DEFINE_string("source_dir", "", "An already downloaded release (.tar.gz files or extracted folders).")
flags.DEFINE_string("base_url", "http://ufldl.stanford.edu/housenumbers", "Where the release is downloaded from.")
flags.DEFINE_bool("strict", False, "Treat a bad image or label as an error instead of skipping it.")
flags.DEFINE_integer("workers", 2, "Processes used for preprocessing.")
flags.DEFINE_string("mnist_npz", "", "multi_mnist: an .npz with images uint8 [N,28,28] and labels (default: TFDS mnist).")
flags.DEFINE_integer("num_examples", 10000, "multi_mnist: examples to compose.")
flags.DEFINE_integer("seed", 0, "multi_mnist / synthetic: seed.")
flags.DEFINE_string("out", "", "multi_mnist: output HDF5 file.")


def main(argv: list[str]) -> None:
    del argv
    raise NotImplementedError(f"--dataset={FLAGS.dataset} is not wired yet")


def run() -> None:
    app.run(main)


if __name__ == "__main__":
    sys.exit(run())
