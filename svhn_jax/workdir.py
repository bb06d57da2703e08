"""A run's working directory: its config, metrics log, checkpoints and results, and reading it back.

Layout: config.json (the run's config; a rerun with another config is refused), metrics.jsonl and
tensorboard/ (`MetricsLog`), checkpoints/ (orbax, one folder per step), eval_predictions.npz and
final_metrics.json (`write_results`, with `params_sha256`). Every file is written whole (temporary
file, then renamed), so a crash never leaves half a file; `load_for_inference` reads the latest
checkpoint back for `predict` without the trainer.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from tensorboardX import SummaryWriter

from configs import default as default_config
from svhn_jax.data.preprocess import get_recipe
from svhn_jax.data.model_input import input_shape
from svhn_jax.errors import UserError
from svhn_jax.fileio import atomic_write
from svhn_jax.models import create_model
from svhn_jax.state import TrainState, create_train_state, make_optimizer

# Keys that may change when a run is resumed: they do not change what is computed at a given step.
RESUMABLE_CHANGES = frozenset({"num_train_steps", "log_every_steps", "eval_every_steps", "checkpoint_every_steps",
                               "keep_checkpoints", "max_eval_examples", "eval_batch_size", "data_dir"})
PREDICTION_IMAGES = 2000  # eval images kept in eval_predictions.npz for the report's grids


class RunError(UserError):
    """A run cannot go on; the message is one line for the user."""


def prepare(config: ml_collections.ConfigDict, workdir: Path, overwrite: bool = False) -> None:
    """Checks that `workdir` is writable and holds no run of another config; saves config.json."""
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        probe = workdir / f".write-test-{jax.process_index()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise RunError(f"workdir {workdir} is not writable: {e.strerror or e}") from None
    saved = workdir / "config.json"
    if saved.exists() and not overwrite:
        old, new = saved_config(saved).to_dict(), json.loads(config.to_json_best_effort())
        changed = sorted(k for k in old.keys() | new.keys()
                         if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES)
        if changed:
            raise RunError(f"workdir {workdir} holds a run of another config (differs in {', '.join(changed)}); "
                           "use a new workdir or --overwrite")
    if jax.process_index() == 0:
        atomic_write(saved, lambda p: p.write_text(config.to_json_best_effort(indent=2) + "\n"))


def saved_config(path: Path) -> ml_collections.ConfigDict:
    """A run's config.json, keys added to `configs/default.py` since it was written at their defaults."""
    defaults = json.loads(default_config.get_config().to_json_best_effort())
    return ml_collections.ConfigDict({**defaults, **json.loads(path.read_text())})


def checkpoint_manager(workdir: Path, config: ml_collections.ConfigDict) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=config.keep_checkpoints, create=True,
                                           enable_async_checkpointing=False)
    return ocp.CheckpointManager((workdir / "checkpoints").absolute(), options=options)


def restore_latest(manager: ocp.CheckpointManager, like: Any, sharding: jax.sharding.Sharding) -> Any | None:
    """The latest checkpoint as arrays placed by `sharding`, structured like `like` (arrays or shape
    structs); None when there is none."""
    step = manager.latest_step()
    if step is None:
        return None
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), like)
    return manager.restore(step, args=ocp.args.StandardRestore(target))


def save_checkpoint(manager: ocp.CheckpointManager, step: int, state: Any, workdir: Path) -> None:
    """Saves a checkpoint; a failed write (disk full, ...) stops the run and keeps the earlier ones.

    Orbax writes into a temporary folder renamed into place on success, so a save interrupted by
    an error or a kill is never taken for a checkpoint.
    """
    last_good = manager.latest_step()
    try:
        manager.save(step, args=ocp.args.StandardSave(state))
        manager.wait_until_finished()
    except Exception as e:  # noqa: BLE001 - any storage failure ends the run with one line
        reason = " ".join(str(e).split())[:300]
        kept = f"step {last_good}" if last_good is not None else "none yet"
        raise RunError(f"could not write the checkpoint of step {step} ({type(e).__name__}: {reason}); "
                       f"the last complete checkpoint ({kept}) is kept in {workdir / 'checkpoints'}") from None


class MetricsLog:
    """metrics.jsonl + TensorBoard, written by process 0 only."""

    def __init__(self, workdir: Path, resume_step: int):
        self.active = jax.process_index() == 0
        self.path = workdir / "metrics.jsonl"
        if not self.active:
            return
        if self.path.exists():  # drop records past the checkpoint we resume from
            kept = [l for l in self.path.read_text().splitlines() if l and json.loads(l)["step"] <= resume_step]
            atomic_write(self.path, lambda p: p.write_text("".join(l + "\n" for l in kept)))
        self.tb = SummaryWriter(str(workdir / "tensorboard"))

    def write(self, step: int, split: str, scalars: dict[str, float]) -> None:
        if not self.active:
            return
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, "split": split, **scalars}) + "\n")
        for k, v in scalars.items():
            self.tb.add_scalar(f"{split}/{k}", v, step)
        self.tb.flush()

    def close(self) -> None:
        if self.active:
            self.tb.close()


def write_results(workdir: Path, final: dict[str, Any], predictions: dict[str, np.ndarray],
                  images: np.ndarray) -> None:
    """final_metrics.json, and eval_predictions.npz with the first `PREDICTION_IMAGES` images."""
    keep = min(PREDICTION_IMAGES, len(predictions["confidence"]))

    def write_predictions(path: Path) -> None:
        with path.open("wb") as f:
            np.savez_compressed(f, images=images[:keep], **predictions)
    atomic_write(workdir / "eval_predictions.npz", write_predictions)
    atomic_write(workdir / "final_metrics.json", lambda p: p.write_text(json.dumps(final, indent=2) + "\n"))


def params_sha256(params: Any) -> str:
    """SHA-256 over every parameter leaf (path, dtype, shape, bytes) in sorted path order."""
    h = hashlib.sha256()
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    for path, leaf in sorted(leaves, key=lambda kv: jax.tree_util.keystr(kv[0])):
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{jax.tree_util.keystr(path)}|{a.dtype}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def load_for_inference(workdir: str | Path) -> tuple[ml_collections.ConfigDict, nn.Module, dict[str, Any]]:
    """(config, model, variables) of the latest checkpoint in `workdir`, for prediction on one host."""
    workdir = Path(workdir)
    config_path = workdir / "config.json"
    if not config_path.exists():
        raise RunError(f"{workdir} holds no run (no config.json)")
    config = saved_config(config_path)
    manager = ocp.CheckpointManager((workdir / "checkpoints").absolute(),
                                    options=ocp.CheckpointManagerOptions(read_only=True))
    if manager.latest_step() is None:
        raise RunError(f"{workdir} holds no checkpoint")
    model = create_model(config)
    tx, _ = make_optimizer(config)
    size, grey = get_recipe(config.recipe)
    shape = input_shape(config, (size, size, 1 if grey else 3))
    like = jax.eval_shape(lambda r: create_train_state(r, model, tx, shape), jax.random.key(0))
    state: TrainState = restore_latest(manager, like, jax.sharding.SingleDeviceSharding(jax.local_devices()[0]))
    return config, model, state.variables()
