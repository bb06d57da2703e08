"""Launch a training run: ``python -m svhn_jax.main --config=configs/quickstart.py --workdir=DIR``.

Config values are overridden on the command line (``--config.learning_rate=1e-3``); the config is
locked, so a misspelt key is an error. Running the same command again resumes the run; SIGTERM or
Ctrl-C saves a checkpoint and exits 128 + signal (143, 130) for a scheduler to requeue it.
"""
from __future__ import annotations

import re
from typing import Sequence

from absl import app, flags
from ml_collections import config_flags

from svhn_jax import trainer
from svhn_jax.core import compilation_cache, parallel, xla_flags
from svhn_jax.core.cli import cli, quiet_libraries, run_program
from svhn_jax.core.config import check_keys, load_file
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


def config_spec(argv: Sequence[str]) -> str | None:
    """The last ``--config=PATH[:ARG]`` (or ``--config PATH``) of `argv`, as absl reads it; None if none."""
    spec = None
    for i, arg in enumerate(argv[1:], 1):
        if arg == "--":
            break
        if re.match(r"--?config=", arg):
            spec = arg.split("=", 1)[1]
        elif arg in ("--config", "-config") and i + 1 < len(argv):
            spec = argv[i + 1]
    return spec


@cli
def parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing, with config errors (a file that is not a Python config, or that lacks or misspells
    keys; a misspelt --config. key) as one line instead of a traceback."""
    spec = config_spec(argv)
    if spec is not None:  # before absl runs it: its failures (a YAML file, a syntax error) would be tracebacks
        try:
            load_file(spec)
        except ValueError as e:
            raise UserError(one_line(e)) from None
    try:
        argv = FLAGS(argv)
        FLAGS.config.get("model")  # the config file loads lazily: surface its errors here
        check_keys(FLAGS.config, f"--config={spec.split(':', 1)[0]}" if spec else "the config")
        return argv
    except flags.Error as e:
        raise UserError(one_line(e)) from None
    except ValueError as e:
        if str(e).startswith("--config="):  # check_keys: already one line naming the file
            raise UserError(one_line(e)) from None
        raise UserError(f"unknown or invalid --config key: {_cleaned(e)}") from None
    except (AttributeError, KeyError, TypeError, OSError, ImportError) as e:
        raise UserError(f"unknown or invalid --config key: {_cleaned(e)}") from None


def _cleaned(e: BaseException) -> str:
    """ml_collections' message on one line, without its quoting and its "earlier failure" preamble."""
    text = one_line(str(e).replace("\\n", " ").replace("\\'", "").replace("'", ""))
    return text.replace("Configuration is not available because of an earlier failure to load: ", "")


def run_as_program() -> None:
    """Runs the command (`python -m svhn_jax.main`)."""
    run_program(main, flags_parser=parse_flags)

