"""Data CLI: from nothing (or a downloaded release) to split files in the HDF5 data contract.

  python -m svhn_jax.prepare --dataset=svhn --splits=train,test,extra --recipe=seed32_grey --data_dir=DIR
  python -m svhn_jax.prepare --dataset=svhn --source_dir=PATH ...      # ingest an already downloaded release
  python -m svhn_jax.prepare --dataset=multi_mnist --mnist_npz=PATH --num_examples=N --seed=S --out=FILE.h5
      [--digit_pool=train|test] [--holdout_fraction=0.2]     # test files use only held-out digits
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
flags.DEFINE_enum("digit_pool", "train", ["train", "test"],
                  "multi_mnist: which source digits to compose from. TFDS mnist: its train or test split. "
                  "--mnist_npz: a fixed permutation (independent of --seed) of the file's digits puts the last "
                  "--holdout_fraction of them in 'test' and the rest in 'train', so a test file never shares a "
                  "source digit with a train file.")
flags.DEFINE_float("holdout_fraction", 0.2, "multi_mnist, --mnist_npz: share of its digits held out for 'test'.")


def _svhn() -> None:
    from svhn_jax.data import sources, svhn
    data_dir = FLAGS.data_dir or str(sources.default_data_dir())
    splits = [s for s in FLAGS.splits.split(",") if s]
    try:
        svhn.prepare(splits, FLAGS.recipe, data_dir, source_dir=FLAGS.source_dir or None,
                     base_url=FLAGS.base_url, strict=FLAGS.strict, workers=FLAGS.workers)
    except (svhn.DataError, OSError) as e:
        raise SystemExit(f"prepare: {e}") from None


def _multi_mnist() -> None:
    from svhn_jax.data import multi_mnist, preprocess, sources, tfds_sources
    if not FLAGS.out:
        raise SystemExit("prepare: --dataset=multi_mnist needs --out=FILE.h5")
    recipe = FLAGS.recipe if FLAGS["recipe"].present else "multi64_grey"
    try:
        size, grey = preprocess.get_recipe(recipe)
        if not grey:
            raise ValueError(f"multi_mnist needs a greyscale recipe such as multi64_grey, not {recipe!r}")
        multi_mnist.write_file(FLAGS.out, FLAGS.digit_pool, FLAGS.num_examples, FLAGS.seed,
                               mnist_npz=FLAGS.mnist_npz or None, holdout_fraction=FLAGS.holdout_fraction,
                               tfds_dir=tfds_sources.tfds_dir_for(FLAGS.data_dir or sources.default_data_dir()),
                               size=size, recipe=recipe)
    except (tfds_sources.TfdsError, ValueError, OSError) as e:
        raise SystemExit(f"prepare: {e}") from None


def _svhn_cropped() -> None:
    from svhn_jax.data import sources, tfds_sources
    splits = [s for s in FLAGS.splits.split(",") if s]
    try:
        tfds_sources.prepare_svhn_cropped(FLAGS.data_dir or sources.default_data_dir(), splits, FLAGS.recipe)
    except (tfds_sources.TfdsError, ValueError, OSError) as e:
        raise SystemExit(f"prepare: {e}") from None


# --dataset -> function doing the work from FLAGS
_DATASETS = {"svhn": _svhn, "multi_mnist": _multi_mnist, "svhn_cropped": _svhn_cropped}


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise SystemExit(f"prepare: unexpected arguments {argv[1:]}")
    if FLAGS.dataset not in _DATASETS:
        raise SystemExit(f"prepare: --dataset={FLAGS.dataset} is not wired yet")
    _DATASETS[FLAGS.dataset]()


def run() -> None:
    app.run(main)


if __name__ == "__main__":
    sys.exit(run())
