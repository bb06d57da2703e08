"""The weights that ship with the package, and how they are made and loaded.

``pretrained/<name>/`` holds ``config.json`` (the run's config), ``variables.msgpack`` (the model's
variables, flax msgpack) and ``info.json`` (step, ``params_sha256``, the command that trained it).
`export` writes them from a trained workdir; `load` reads them back for `predict` (no ``--workdir``)
and for ``--config.init_from=pretrained``.

  python scripts/export_pretrained.py --workdir=workdirs/reader --name=reader
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import flax.linen as nn
import flax.serialization
import jax
import ml_collections
import numpy as np

from svhn_jax.core.errors import UserError
from svhn_jax.core.fileio import atomic_write

DIR = Path(__file__).resolve().parent


class PretrainedError(UserError):
    """Shipped weights are missing or unreadable."""


def folder(name: str) -> Path:
    return DIR / name


def export(workdir: str | Path, name: str, command: str) -> dict[str, Any]:
    """Copies the latest checkpoint's variables and config of `workdir` into ``pretrained/<name>/``."""
    from svhn_jax.core import workdir as workdir_lib
    config, _, variables = workdir_lib.load_for_inference(workdir)
    variables = jax.device_get(variables)
    steps = [int(p.name) for p in (Path(workdir) / "checkpoints").iterdir() if p.name.isdigit()]
    metrics = Path(workdir) / "metrics.jsonl"
    records = [json.loads(line) for line, _ in (workdir_lib.read_metrics(metrics) if metrics.exists() else [])]
    final = [r for r in records if r["split"] == "eval" and r["step"] == max(steps)]
    final_eval = {k: v for k, v in (final[-1] if final else {}).items() if k.startswith("eval_")}
    info = {"params_sha256": workdir_lib.tree_sha256(variables["params"]), "step": max(steps), "command": command,
            "exported": datetime.date.today().isoformat(),
            "synthetic_test_sequence_accuracy": final_eval.get("eval_sequence_accuracy"),
            "synthetic_test": final_eval}
    out = folder(name)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "variables.msgpack", lambda p: p.write_bytes(flax.serialization.msgpack_serialize(variables)))
    atomic_write(out / "config.json", lambda p: p.write_text(config.to_json_best_effort(indent=2) + "\n"))
    atomic_write(out / "info.json", lambda p: p.write_text(json.dumps(info, indent=2) + "\n"))
    return info


def load(name: str = "reader") -> tuple[ml_collections.ConfigDict, nn.Module, dict[str, Any]]:
    """(config, model, variables) of the shipped weights `name`."""
    from svhn_jax.core.workdir import saved_config
    from svhn_jax.models import create_model
    src = folder(name)
    try:
        config = saved_config(src / "config.json")  # keys added since at their defaults
        variables = flax.serialization.msgpack_restore((src / "variables.msgpack").read_bytes())
    except (OSError, ValueError) as e:
        raise PretrainedError(f"the shipped weights {name!r} cannot be read from {src} ({e})") from None
    return config, create_model(config), variables


def initial_variables(spec: str) -> dict[str, Any]:
    """The variables ``--config.init_from`` names: 'pretrained' (the shipped reader), 'pretrained:NAME',
    or a workdir (its latest checkpoint)."""
    if spec == "pretrained" or spec.startswith("pretrained:"):
        return load(spec.partition(":")[2] or "reader")[2]
    from svhn_jax.core import workdir as workdir_lib
    return jax.device_get(workdir_lib.load_for_inference(spec)[2])


def initialize(state: Any, spec: str) -> Any:
    """`state` (a host TrainState) with its params and BatchNorm statistics taken from `spec`.

    The model of `spec` must have exactly the shapes of this run's: fine-tuning changes the data and
    the optimiser, never the network. An empty `spec` returns `state` as it is.
    """
    if not spec:
        return state
    source = initial_variables(spec)
    target = {"params": state.params, "batch_stats": state.batch_stats}
    source = {"params": source["params"], "batch_stats": source.get("batch_stats", {})}
    shapes = lambda tree: jax.tree.map(lambda a: (tuple(a.shape), str(a.dtype)), tree)
    if shapes(source) != shapes(target):
        raise PretrainedError(f"--config.init_from={spec}: its model has other layers or shapes than this "
                              "run's (model, head and recipe must match)")
    cast = lambda tree, like: jax.tree.map(lambda a, b: np.asarray(a, b.dtype), tree, like)
    return state.replace(params=cast(source["params"], state.params),
                         batch_stats=cast(source["batch_stats"], state.batch_stats))
