"""Launch a training run: ``python -m svhn_jax.main --config=configs/quickstart.py --workdir=DIR``.

Config values are overridden on the command line (``--config.learning_rate=1e-3``); the config is
locked, so a misspelt key is an error. Running the same command again resumes the run; SIGTERM or
Ctrl-C saves a checkpoint and exits 128 + signal (143, 130) for a scheduler to requeue it.
"""
from __future__ import annotations

from absl import app, flags
from ml_collections import config_flags

from svhn_jax import trainer
from svhn_jax.core import compilation_cache, parallel, xla_flags
from svhn_jax.core.cli import cli, quiet_libraries
from svhn_jax.core.errors import UserError, one_line
from svhn_jax.models import BATCH_NORM_MODELS

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to an ml_collections config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Where the run writes everything (and resumes from).")
flags.DEFINE_bool("overwrite", False, "Start afresh in a workdir that holds a run (of any config): the earlier "
                  "run is moved into WORKDIR/overwritten-<time>/ once the new config is known to work.")
flags.DEFINE_string("coordinator_address", "", "Multi-process: HOST:PORT of process 0's coordinator.")
flags.DEFINE_integer("num_processes", 0, "Multi-process: how many processes take part.")
flags.DEFINE_integer("process_id", -1, "Multi-process: this process's index, 0..num_processes-1.")
flags.DEFINE_string("cpu_devices", "auto", "Host CPU devices for XLA: a count, or 'auto': one per core "
                    "when the step needs no in-program collective (one process, --config.parallel auto or "
                    "host_reduce, a model without BatchNorm), else 1 (XLA:CPU's all-reduce can deadlock: "
                    "svhn_jax/core/xla_flags.py). XLA_FLAGS wins.")
flags.mark_flags_as_required(["config", "workdir"])


@cli
def main(argv: list[str]) -> None:
    config = FLAGS.config
    one_process = FLAGS.num_processes <= 1 and not parallel.cluster_detected()
    collective_free = (one_process and config.parallel in ("auto", "host_reduce")
                       and config.model not in BATCH_NORM_MODELS)
    try:  # before anything starts JAX's backend
        xla_flags.use_cpu_devices(FLAGS.cpu_devices, collective_free)
    except ValueError:
        raise UserError(f"--cpu_devices must be a positive integer or 'auto', got {FLAGS.cpu_devices!r}") from None
    quiet_libraries()
    compilation_cache.enable()
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        parallel.initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
        trainer.train_and_evaluate(FLAGS.config, FLAGS.workdir, overwrite=FLAGS.overwrite)
    except ValueError as e:  # a config value the code refuses (UserErrors pass through to `cli`)
        raise UserError(e) from None


@cli
def parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing, with config errors (e.g. a misspelt key) as one line instead of a traceback."""
    try:
        argv = FLAGS(argv)
        FLAGS.config.get("model")  # the config file loads lazily: surface its errors here
        return argv
    except flags.Error as e:
        raise UserError(one_line(e)) from None
    except (AttributeError, KeyError, TypeError, ValueError, OSError, ImportError) as e:
        text = one_line(str(e).replace("\\n", " ").replace("\\'", "").replace("'", ""))
        text = text.replace("Configuration is not available because of an earlier failure to load: ", "")
        raise UserError(f"unknown or invalid --config key: {text}") from None


def run_as_program() -> None:
    """Runs the command (`python -m svhn_jax.main`)."""
    app.run(main, flags_parser=parse_flags)

