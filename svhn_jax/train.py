"""Training and evaluation: the train state, the pure per-device steps and the loop.

The per-device steps (`compute_gradients` + `apply_gradients`, `eval_step`) are written once for one
device (the data-parallel axis is `parallel.AXIS`) and wrapped by `parallel.DataParallel`, which
averages the gradients over every device between the two halves of a training step. Randomness comes from
one ``config.seed``: keys for init / data / dropout; a step's key is ``fold_in(dropout_key, step)``
and each example's key folds in its index in the global batch, so neither history nor the device
count changes the numbers.

`train_and_evaluate(config, workdir)` writes into the workdir: config.json, TensorBoard events
(tensorboard/), metrics.jsonl, orbax checkpoints (checkpoints/), eval_predictions.npz and
final_metrics.json. Running it again on the same workdir resumes from the latest checkpoint.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils
from absl import logging
from tensorboardX import SummaryWriter
from tqdm import tqdm

from svhn_jax import metrics as metrics_lib
from svhn_jax import parallel
from svhn_jax.data import augment, pipeline, sources, store
from svhn_jax.models import create_model, heads
from svhn_jax.models.layers import example_keys

AXIS = parallel.AXIS
PREDICTION_IMAGES = 2000
# Keys that may change when a run is resumed: they do not change what is computed at a given step.
RESUMABLE_CHANGES = frozenset({"num_train_steps", "log_every_steps", "eval_every_steps", "checkpoint_every_steps",
                               "keep_checkpoints", "max_eval_examples", "eval_batch_size", "data_dir"})  # eval images kept in eval_predictions.npz for the report's grids


class RunError(RuntimeError):
    """A run cannot go on; the message is one line for the user."""


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training, as one pytree (checkpointed whole)."""

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any


# --- pure pieces -------------------------------------------------------------------------------

def make_optimizer(config: ml_collections.ConfigDict) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """Adam (AdamW, or SGD with momentum and L2) with exponential learning-rate decay from the config."""
    schedule = optax.exponential_decay(config.learning_rate, config.lr_decay_steps, config.lr_decay_rate,
                                       staircase=config.lr_staircase)
    if config.optimizer == "adam":
        return optax.adam(schedule), schedule
    if config.optimizer == "adamw":
        return optax.adamw(schedule, weight_decay=config.weight_decay), schedule
    if config.optimizer == "sgd":  # weight_decay as L2 added to the gradient, like torch.optim.SGD's
        sgd = optax.sgd(schedule, momentum=config.momentum or None, nesterov=False)
        return (optax.chain(optax.add_decayed_weights(config.weight_decay), sgd) if config.weight_decay else sgd,
                schedule)
    raise ValueError(f"optimizer={config.optimizer!r}: choose adam, adamw or sgd")


def input_shape(config: ml_collections.ConfigDict, stored_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The model's input shape: the stored image shape, or the crop when ``crop_size`` > 0."""
    h, w, c = stored_shape
    return (config.crop_size, config.crop_size, c) if config.crop_size else (h, w, c)


def prepare_images(images: jax.Array, config: ml_collections.ConfigDict, rng: jax.Array | None = None,
                   train: bool = False, axis_name: str | None = AXIS) -> jax.Array:
    """uint8 [B, H, W, C] -> float32 model input, on device.

    Crops to ``config.crop_size`` (a random crop per example in training, from the example's key;
    the centre crop otherwise), scales to [0, 1] and subtracts each image's mean.
    """
    x = images.astype(jnp.float32) / 255.0
    size = config.crop_size
    if size:
        b, h, w, c = x.shape
        if train:
            keys = example_keys(rng, b, axis_name)
            offsets = jax.vmap(lambda k: jax.random.randint(k, (2,), 0, jnp.array([h - size + 1, w - size + 1])))(keys)
            x = jax.vmap(lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (size, size, c)))(x, offsets)
        else:
            top, left = (h - size) // 2, (w - size) // 2
            x = x[:, top:top + size, left:left + size, :]
    if train and config.get("augment", False):  # runs saved before these keys read as off
        x = augment.augment(x, example_keys(jax.random.fold_in(rng, 1), x.shape[0], axis_name))
    if config.get("standardize", False):
        return augment.standardize(x)
    return x - jnp.mean(x, axis=(1, 2, 3), keepdims=True)


def create_train_state(rng: jax.Array, model: nn.Module, tx: optax.GradientTransformation,
                       shape: tuple[int, int, int]) -> TrainState:
    variables = jax.jit(lambda r: model.init(r, jnp.zeros((1, *shape), jnp.float32), train=False))(rng)
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params))


def _variables(state: TrainState) -> dict[str, Any]:
    return {"params": state.params, **({"batch_stats": state.batch_stats} if state.batch_stats else {})}


def _batch_metrics(logits: heads.Logits, lengths: jax.Array, digits: jax.Array) -> dict[str, jax.Array]:
    _, pred_digits, _ = heads.decode(logits)
    inside = jnp.arange(heads.MAX_DIGITS)[None, :] < lengths[:, None]
    return {"sequence_accuracy": jnp.all(pred_digits == digits, -1).mean(),
            "digit_accuracy": jnp.sum((pred_digits == digits) & inside) / jnp.sum(inside)}


def compute_gradients(state: TrainState, batch: dict[str, jax.Array], rng: jax.Array, *, model: nn.Module,
                      config: ml_collections.ConfigDict) -> tuple[Any, dict[str, jax.Array], Any]:
    """This device's shard: (gradients of its mean loss, its batch statistics, new BatchNorm statistics).

    No gradient communication here: `parallel.DataParallel.wrap_train` averages the gradients and
    statistics over every device (BatchNorm averages its own statistics over the data axis)."""
    step_rng = jax.random.fold_in(rng, state.step)
    crop_rng, dropout_rng = jax.random.split(step_rng)
    images = prepare_images(batch["images"], config, crop_rng, train=True)

    def loss_fn(params):
        logits, updates = model.apply({**_variables(state), "params": params}, images, train=True,
                                      rngs={"dropout": dropout_rng}, mutable=["batch_stats"])
        loss = heads.per_example_loss(logits, batch["lengths"], batch["digits"]).mean()
        return loss, (logits, updates)

    (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    stats = {"loss": loss, **_batch_metrics(logits, batch["lengths"], batch["digits"])}
    return grads, stats, updates.get("batch_stats", state.batch_stats)


def apply_gradients(state: TrainState, grads: Any, stats: dict[str, jax.Array], batch_stats: Any, *,
                    tx: optax.GradientTransformation) -> tuple[TrainState, dict[str, jax.Array]]:
    """The optimiser update from the gradients averaged over every device (pure)."""
    opt_updates, opt_state = tx.update(grads, state.opt_state, state.params)
    new_state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, opt_updates),
                              opt_state=opt_state, batch_stats=batch_stats)
    return new_state, {**stats, "grad_norm": optax.tree.norm(grads)}


def eval_step(state: TrainState, batch: dict[str, jax.Array], *, model: nn.Module,
              config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
    """Per-example predictions and loss (0 where ``batch["mask"]`` marks padding) for this shard.

    No cross-device communication: the host sums the losses."""
    logits = model.apply(_variables(state), prepare_images(batch["images"], config), train=False)
    lengths, digits, confidence = heads.decode(logits)
    loss = heads.per_example_loss(logits, batch["lengths"], batch["digits"])
    return {"loss": jnp.where(batch["mask"], loss, 0.0), "pred_lengths": lengths, "pred_digits": digits,
            "confidence": confidence}


def params_sha256(params: Any) -> str:
    """SHA-256 over every parameter leaf (path, dtype, shape, bytes) in sorted path order."""
    h = hashlib.sha256()
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    for path, leaf in sorted(leaves, key=lambda kv: jax.tree_util.keystr(kv[0])):
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{jax.tree_util.keystr(path)}|{a.dtype}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


# --- the loop ----------------------------------------------------------------------------------

class _Logger:
    """metrics.jsonl + TensorBoard, written by process 0 only."""

    def __init__(self, workdir: Path, resume_step: int):
        self.active = jax.process_index() == 0
        self.path = workdir / "metrics.jsonl"
        if not self.active:
            return
        if self.path.exists():  # drop records past the checkpoint we resume from
            kept = [l for l in self.path.read_text().splitlines() if l and json.loads(l)["step"] <= resume_step]
            self.path.write_text("".join(l + "\n" for l in kept))
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


def _check_workdir(config: ml_collections.ConfigDict, workdir: Path, overwrite: bool) -> None:
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        probe = workdir / f".write-test-{jax.process_index()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise RunError(f"workdir {workdir} is not writable: {e.strerror or e}") from None
    saved = workdir / "config.json"
    if saved.exists() and not overwrite:
        old, new = json.loads(saved.read_text()), json.loads(config.to_json_best_effort())
        changed = sorted(k for k in old.keys() | new.keys()
                         if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES)
        if changed:
            raise RunError(f"workdir {workdir} holds a run of another config (differs in {', '.join(changed)}); "
                           "use a new workdir or --overwrite")
    if jax.process_index() == 0:
        saved.write_text(config.to_json_best_effort(indent=2) + "\n")


def _checkpoint_manager(workdir: Path, config: ml_collections.ConfigDict) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=config.keep_checkpoints, create=True,
                                           enable_async_checkpointing=False)
    return ocp.CheckpointManager((workdir / "checkpoints").absolute(), options=options)


def _save(manager: ocp.CheckpointManager, step: int, state: Any, workdir: Path) -> None:
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


def _atomic_write(path: Path, write) -> None:
    """Writes through `write(tmp_path)` then renames: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{jax.process_index()}")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def evaluate(run_eval, state, split: store.Split, config: ml_collections.ConfigDict,
             par: parallel.DataParallel) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Every example of `split` (padded last batch, masked); returns (metrics, predictions)."""
    outputs, loss_sum = [], 0.0
    batches = pipeline.eval_batches(split, config.eval_batch_size, process_index=jax.process_index(),
                                    process_count=jax.process_count(), limit=config.max_eval_examples)
    for device_batch, real in pipeline.prefetch(batches, lambda b: (par.put_batch(b[0]), b[1])):
        per_example = par.get_per_example(run_eval(state, device_batch))
        loss_sum += float(np.sum(per_example.pop("loss"), dtype=np.float64))
        outputs.append(jax.tree.map(lambda x: x[:real], per_example))
    preds = {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}
    n = len(preds["confidence"])
    truth = {"true_lengths": split.lengths[:n], "true_digits": split.digits[:n]}
    result = metrics_lib.evaluation_metrics(preds["pred_lengths"], preds["pred_digits"], preds["confidence"],
                                            truth["true_lengths"], truth["true_digits"])
    result["eval_loss"] = loss_sum / n
    return result, {**preds, **truth}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path, *,
                       overwrite: bool = False) -> dict[str, Any]:
    """Trains `config` in `workdir` (resuming from its latest checkpoint), evaluates, returns the final metrics."""
    workdir = Path(workdir)
    t_start = time.perf_counter()
    _check_workdir(config, workdir, overwrite)
    par = parallel.DataParallel(config.parallel)
    parallel.check_divisible(config.batch_size)
    parallel.check_divisible(config.eval_batch_size, "eval_batch_size")

    train_files, eval_file = sources.ensure_splits(config)  # deterministic, atomic: any process may make them
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("svhn_jax:data-ready")
    train_split = pipeline.concatenate([store.read_split(f) for f in train_files])
    eval_split = store.read_split(eval_file)
    model = create_model(config)
    tx, schedule = make_optimizer(config)
    init_rng, data_rng, dropout_rng = jax.random.split(jax.random.key(config.seed), 3)
    data_seed = int(jax.random.randint(data_rng, (), 0, 2**31 - 1))
    shape = input_shape(config, train_split.images.shape[1:])
    host_state = jax.device_get(create_train_state(init_rng, model, tx, shape))

    manager = _checkpoint_manager(workdir, config)
    if manager.latest_step() is not None:
        target = jax.tree.map(ocp.utils.to_shape_dtype_struct, par.put_global(host_state))
        restored = manager.restore(manager.latest_step(), args=ocp.args.StandardRestore(target))
        state = par.from_global(restored)
        logging.info("Resumed from step %d", manager.latest_step())
    else:
        state = par.put_state(host_state)
    start_step = int(par.get_state(state).step)
    logger = _Logger(workdir, start_step)

    run_train = par.wrap_train(functools.partial(compute_gradients, model=model, config=config),
                               functools.partial(apply_gradients, tx=tx))
    run_eval = par.wrap(functools.partial(eval_step, model=model, config=config), num_sharded=1,
                        out_sharded=True)
    batches = pipeline.TrainBatches(train_split, config.batch_size, data_seed,
                                    process_index=jax.process_index(), process_count=jax.process_count())
    num_steps = config.num_train_steps
    step_iter = pipeline.prefetch(((s, batches.local_batch(s)) for s in range(start_step, num_steps)),
                                  lambda sb: (sb[0], par.put_batch(sb[1])))

    pending: list[tuple[int, Any]] = []
    train_seconds, train_images = 0.0, 0
    progress = tqdm(total=num_steps, initial=start_step, desc="train", unit="step",
                    disable=jax.process_index() != 0, dynamic_ncols=True)

    def flush(step: int) -> None:
        """Fetches the pending step metrics, stops on a non-finite loss, logs their mean."""
        fetched = [(s, par.get_replicated(m)) for s, m in pending]
        pending.clear()
        for s, m in fetched:  # step s computed the loss of the state after s updates
            if not (math.isfinite(float(m["loss"])) and math.isfinite(float(m["grad_norm"]))):
                raise RunError(f"non-finite loss at step {s + 1}; stopped, the last good checkpoint "
                               f"(step {manager.latest_step() or 'none yet'}) is kept in {workdir / 'checkpoints'}")
        if fetched:
            means = {k: float(np.mean([m[k] for _, m in fetched])) for k in fetched[0][1]}
            means["learning_rate"] = float(schedule(step))
            logger.write(step, "train", means)
            progress.set_postfix(loss=f"{means['loss']:.3f}", seq_acc=f"{means['sequence_accuracy']:.3f}")

    try:
        t_mark = time.perf_counter()
        for step, device_batch in step_iter:
            state, step_metrics = run_train(state, device_batch, dropout_rng)
            pending.append((step, step_metrics))
            done = step + 1
            progress.update(1)
            boundary = [done % config.log_every_steps == 0, done % config.eval_every_steps == 0,
                        done % config.checkpoint_every_steps == 0, done == num_steps]
            if not any(boundary):
                continue
            jax.block_until_ready(state)
            now = time.perf_counter()
            if pending[0][0] > start_step:  # the first interval holds compilation: not in the speed
                train_seconds += now - t_mark
                train_images += len(pending) * config.batch_size
            flush(done)
            if boundary[1] and done != num_steps:
                eval_metrics, _ = evaluate(run_eval, state, eval_split, config, par)
                logger.write(done, "eval", {k: v for k, v in eval_metrics.items() if np.isscalar(v)})
            if boundary[2] or done == num_steps:
                _save(manager, done, par.to_global(state), workdir)
            t_mark = time.perf_counter()
    finally:
        progress.close()
        manager.wait_until_finished()

    final, predictions = evaluate(run_eval, state, eval_split, config, par)
    host = par.get_state(state)
    final.update(step=int(host.step), train_images_per_second=train_images / train_seconds if train_seconds else None,
                 wall_seconds=time.perf_counter() - t_start, params_sha256=params_sha256(host.params),
                 num_train_examples=len(train_split), model=config.model, dataset=config.dataset,
                 device_kind=jax.devices()[0].device_kind, device_count=jax.device_count(),
                 process_count=jax.process_count(), parallel=par.mode)
    if jax.process_index() == 0:
        logger.write(final["step"], "eval", {k: v for k, v in final.items()
                                             if isinstance(v, float) and k.startswith("eval_")})
        keep = min(PREDICTION_IMAGES, len(predictions["confidence"]))
        def write_predictions(path: Path) -> None:
            with path.open("wb") as f:
                np.savez_compressed(f, images=eval_split.images[:keep], **predictions)
        _atomic_write(workdir / "eval_predictions.npz", write_predictions)
        _atomic_write(workdir / "final_metrics.json", lambda p: p.write_text(json.dumps(final, indent=2) + "\n"))
    logger.close()
    return final


def load_for_inference(workdir: str | Path) -> tuple[ml_collections.ConfigDict, nn.Module, dict[str, Any]]:
    """(config, model, variables) of the latest checkpoint in `workdir`, for prediction on one host."""
    workdir = Path(workdir)
    config_path = workdir / "config.json"
    if not config_path.exists():
        raise RunError(f"{workdir} holds no run (no config.json)")
    config = ml_collections.ConfigDict(json.loads(config_path.read_text()))
    manager = ocp.CheckpointManager((workdir / "checkpoints").absolute(),
                                    options=ocp.CheckpointManagerOptions(read_only=True))
    step = manager.latest_step()
    if step is None:
        raise RunError(f"{workdir} holds no checkpoint")
    model = create_model(config)
    tx, _ = make_optimizer(config)
    size, grey = sources.RECIPES[config.recipe]
    shape = input_shape(config, (size, size, 1 if grey else 3))
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                          jax.eval_shape(lambda r: create_train_state(r, model, tx, shape), jax.random.key(0)))
    restored = manager.restore(step, args=ocp.args.StandardRestore(target))
    return config, model, _variables(restored)
