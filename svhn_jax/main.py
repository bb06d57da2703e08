"""Launch a training run: ``python -m svhn_jax.main --config=configs/quickstart.py --workdir=DIR``.

Config values are overridden on the command line (``--config.learning_rate=1e-3``); the config is
locked, so a misspelt key is an error. Running the same command again resumes the run.
"""
from __future__ import annotations

import logging
import sys

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from svhn_jax import compilation_cache, train
from svhn_jax.data.sources import DataMissingError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to an ml_collections config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Where the run writes everything (and resumes from).")
flags.DEFINE_bool("overwrite", False, "Allow a workdir that holds a run of another config.")
flags.mark_flags_as_required(["config", "workdir"])


def quiet_libraries() -> None:
    """Keeps orbax's per-save INFO chatter out of the console (warnings still show)."""
    absl_logging.get_absl_handler().addFilter(
        lambda r: r.levelno >= logging.WARNING or "/orbax/" not in r.pathname)


def main(argv: list[str]) -> None:
    quiet_libraries()
    compilation_cache.enable()
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        train.train_and_evaluate(FLAGS.config, FLAGS.workdir, overwrite=FLAGS.overwrite)
    except (train.RunError, DataMissingError, ValueError) as e:
        sys.exit(f"error: {e}")


def parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing, with config errors (e.g. a misspelt key) as one line instead of a traceback."""
    try:
        argv = FLAGS(argv)
        FLAGS.config.get("model")  # the config file loads lazily: surface its errors here
        return argv
    except flags.Error as e:
        sys.exit("error: " + " ".join(str(e).split()))
    except (AttributeError, KeyError, TypeError, ValueError, OSError, ImportError) as e:
        text = " ".join(str(e).replace("\\n", " ").replace("\\'", "").replace("'", "").split())
        text = text.replace("Configuration is not available because of an earlier failure to load: ", "")
        sys.exit(f"error: unknown or invalid --config key: {text}")


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
