"""The weights that ship with the package.

``pretrained/<name>/`` holds ``config.json`` (the run's config), ``variables.msgpack`` (the model's
variables, flax msgpack) and ``info.json`` (step, ``params_sha256``, the command that trained it).
`load` reads them back; `svhn_jax.infer.weights` decides between them and a user's run, and
``scripts/export_pretrained.py`` writes them from a trained workdir.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import flax.linen as nn
import flax.serialization
import ml_collections

from svhn_jax.core import config as config_lib
from svhn_jax.core.errors import UserError
from svhn_jax.models import create_model

DIR = Path(__file__).resolve().parent


class PretrainedError(UserError):
    """Shipped weights are missing or unreadable."""


def folder(name: str) -> Path:
    return DIR / name


def load(name: str = "reader") -> tuple[ml_collections.ConfigDict, nn.Module, dict[str, Any]]:
    """(config, model, variables) of the shipped weights `name`."""
    src = folder(name)
    try:
        config = config_lib.saved(src / "config.json")  # keys added since at their defaults
        variables = flax.serialization.msgpack_restore((src / "variables.msgpack").read_bytes())
    except (OSError, ValueError) as e:
        raise PretrainedError(f"the shipped weights {name!r} cannot be read from {src} ({e})") from None
    return config, create_model(config), variables
