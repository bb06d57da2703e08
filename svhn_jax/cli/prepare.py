"""Data CLI: from nothing (or a downloaded release) to split files in the HDF5 data contract.

  python -m svhn_jax.prepare --dataset=svhn --splits=train,test,extra --recipe=seed32_grey --data_dir=DIR
  python -m svhn_jax.prepare --dataset=svhn --source_dir=PATH ...      # ingest an already downloaded release
  python -m svhn_jax.prepare --dataset=synthetic --splits=train,test [--num_examples=N]
  python -m svhn_jax.prepare --dataset=multi_mnist --mnist_npz=PATH --num_examples=N --seed=S --out=FILE.h5
      [--digit_pool=train|test] [--holdout_fraction=0.2]     # test files use only held-out digits
  python -m svhn_jax.prepare --dataset=svhn_cropped --splits=train,test --data_dir=DIR

Each dataset's work lives in its module under `svhn_jax.data`; this file only parses flags. The files
land where training looks for them (`svhn_jax.data.paths`); --dataset=synthetic makes exactly the
splits `main` makes with the default config (sizes ``num_synthetic_train`` / ``num_synthetic_test``,
or --num_examples for every split). To write a raw synthetic release (PNGs + digitStruct.mat) instead,
use ``python -m svhn_jax.synth``. A user error ends the program with one line, ``error: ...``; so do
Ctrl-C and SIGTERM, after removing the temporary files of the split being made. Runs preparing the
same dataset folder at once take turns (`svhn_jax.data.sources.preparing`).
"""
from __future__ import annotations

from absl import flags

from svhn_jax.core.cli import cli, run_program
from svhn_jax.core.errors import UserError
from svhn_jax.data.svhn.release import BASE_URL

FLAGS = flags.FLAGS
flags.DEFINE_enum("dataset", "svhn", ["svhn", "synthetic", "multi_mnist", "svhn_cropped"], "What to prepare.")
flags.DEFINE_string("splits", "train,test", "Comma-separated split names.")
flags.DEFINE_string("recipe", "seed32_grey", "Preprocessing recipe (seed32_grey | goodfellow64_rgb).")
flags.DEFINE_string("data_dir", "", "Root of the prepared files ('' -> $SVHN_JAX_DATA or ~/.cache/svhn_jax/data).")
flags.DEFINE_string("source_dir", "", "An already downloaded release (.tar.gz files or extracted folders).")
flags.DEFINE_string("base_url", BASE_URL, "svhn: where the release is downloaded from.")
flags.DEFINE_bool("strict", False, "Treat a bad image or label as an error instead of skipping it.")
flags.DEFINE_integer("workers", 2, "svhn: processes used for preprocessing.")
flags.DEFINE_string("mnist_npz", "", "multi_mnist: an .npz with images uint8 [N,28,28] and labels "
                    "(default: TFDS mnist).")
flags.DEFINE_integer("num_examples", 10000, "multi_mnist: examples to compose; synthetic: images per split "
                     "(default there: the default config's num_synthetic_train / num_synthetic_test).")
flags.DEFINE_integer("seed", 0, "multi_mnist: seed (synthetic splits have fixed seeds, as in training).")
flags.DEFINE_string("out", "", "multi_mnist: output HDF5 file.")
flags.DEFINE_enum("digit_pool", "train", ["train", "test"],
                  "multi_mnist: which source digits to compose from. TFDS mnist: its train or test split. "
                  "--mnist_npz: a fixed permutation (independent of --seed) of the file's digits puts the last "
                  "--holdout_fraction of them in 'test' and the rest in 'train', so a test file never shares a "
                  "source digit with a train file.")
flags.DEFINE_float("holdout_fraction", 0.2, "multi_mnist, --mnist_npz: share of its digits held out for 'test'.")


def _splits() -> list[str]:
    return [s for s in FLAGS.splits.split(",") if s]


def _data_dir() -> str:
    from svhn_jax.data import paths
    return FLAGS.data_dir or str(paths.default_data_dir())


def _svhn() -> None:
    from svhn_jax.data.svhn import ingest as svhn
    svhn.prepare(_splits(), FLAGS.recipe, _data_dir(), source_dir=FLAGS.source_dir or None,
                 base_url=FLAGS.base_url, strict=FLAGS.strict, workers=FLAGS.workers)


def _synthetic() -> None:
    from svhn_jax.core import config as config_lib
    from svhn_jax.data import paths, sources
    from svhn_jax.data.synth import source as synthetic_source
    config = config_lib.reader()
    config.update(dataset="synthetic", recipe=FLAGS.recipe, data_dir=_data_dir())
    if FLAGS["num_examples"].present:
        config.num_synthetic_train = config.num_synthetic_test = FLAGS.num_examples
    with sources.preparing(paths.data_dir(config) / "synthetic"):
        for split in _splits():
            path = paths.split_file(config, split)
            synthetic_source.ensure_split(config, split, path)
            print(f"{path}: {synthetic_source.source_name(config, split)}")


def _multi_mnist() -> None:
    from svhn_jax.data import multi_mnist, paths
    if not FLAGS.out:
        raise UserError("--dataset=multi_mnist needs --out=FILE.h5")
    recipe = FLAGS.recipe if FLAGS["recipe"].present else "multi64_grey"
    multi_mnist.write_file(FLAGS.out, FLAGS.digit_pool, FLAGS.num_examples, FLAGS.seed,
                           mnist_npz=FLAGS.mnist_npz or None, holdout_fraction=FLAGS.holdout_fraction,
                           tfds_dir=paths.tfds_dir(_data_dir()), size=multi_mnist.image_size(recipe),
                           recipe=recipe)


def _svhn_cropped() -> None:
    from svhn_jax.data import tfds as tfds_sources
    tfds_sources.prepare_svhn_cropped(_data_dir(), _splits(), FLAGS.recipe)


# --dataset -> function doing the work from FLAGS
_DATASETS = {"svhn": _svhn, "synthetic": _synthetic, "multi_mnist": _multi_mnist, "svhn_cropped": _svhn_cropped}


@cli
def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise UserError(f"unexpected arguments {argv[1:]}")
    from svhn_jax.data.sources import describe
    try:
        _DATASETS[FLAGS.dataset]()
    except ValueError as e:  # a bad argument or file, found by the data code
        raise UserError(str(e)) from None
    except OSError as e:
        raise UserError(describe(e)) from None


def run_as_program() -> None:
    """Runs the command (`python -m svhn_jax.prepare`)."""
    run_program(main)

