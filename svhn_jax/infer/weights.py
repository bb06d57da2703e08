"""Which weights a reading uses, decided in one place: a user's run (its workdir) or the shipped ones.

`load(kind, workdir)` returns (config, model, variables) of a "reader" or "localiser": the newest
good checkpoint of `workdir` (`from_workdir`, restored without the trainer), else the weights that
ship with the package (`svhn_jax.pretrained`). A workdir that holds the other kind of model is
refused in one line naming both.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import orbax.checkpoint as ocp

from svhn_jax import pretrained
from svhn_jax.core import config as config_lib
from svhn_jax.core import workdir as workdir_lib
from svhn_jax.core.state import create_train_state, make_optimizer
from svhn_jax.data.model_input import input_shape
from svhn_jax.data.preprocess import get_recipe
from svhn_jax.models import create_model

Weights = tuple[ml_collections.ConfigDict, nn.Module, dict[str, Any]]


class WrongModelError(workdir_lib.RunError):
    """A workdir holds another kind of model than the one asked for."""


def from_workdir(workdir: str | os.PathLike) -> Weights:
    """(config, model, variables) of the latest good checkpoint in `workdir`, on one device."""
    workdir = Path(workdir)
    config_path = workdir / "config.json"
    if not config_path.exists():
        raise workdir_lib.RunError(f"{workdir} holds no run (no config.json)")
    config = config_lib.saved(config_path)
    manager = ocp.CheckpointManager((workdir / "checkpoints").absolute(),
                                    options=ocp.CheckpointManagerOptions(read_only=True))
    if manager.latest_step() is None:
        raise workdir_lib.RunError(f"{workdir} holds no checkpoint")
    model = create_model(config)
    tx, _ = make_optimizer(config)  # the checkpoint holds the whole train state: its structure is needed
    size, grey = get_recipe(config.recipe)
    stored = (size, size, 1 if grey else 3)
    shape = input_shape(config, stored) if config_lib.task_of(config) == "reader" else stored  # crop_size
    like = jax.eval_shape(lambda r: create_train_state(r, model, tx, shape), jax.random.key(0))
    state = workdir_lib.restore_latest(manager, like, jax.sharding.SingleDeviceSharding(jax.local_devices()[0]))
    return config, model, state.variables()


def load(kind: str, workdir: str | os.PathLike | None = None) -> Weights:
    """The `kind` ("reader" or "localiser") of `workdir`'s run, or the shipped one when `workdir` is None or ''."""
    if workdir:
        saved = Path(workdir) / "config.json"
        config = config_lib.saved(saved) if saved.exists() else None
        if config is not None and (held := config_lib.task_of(config)) != kind:
            model = f" (model {config.model})" if held == "reader" else ""
            flag = "--localiser" if held == "localiser" else "--workdir"
            raise WrongModelError(f"{workdir}: that workdir holds a {held}{model}, not a {kind}; give it as {flag}")
        return from_workdir(workdir)
    return pretrained.load(kind)
