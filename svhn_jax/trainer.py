"""Training and evaluation: the pure per-device steps and the loop that runs them.

  python -m svhn_jax.main --config=configs/quickstart.py --workdir=DIR   (calls `train_and_evaluate`)

The per-device steps (`compute_gradients` + `apply_gradients`, `eval_step`) are written once for one
device (the data-parallel axis is `parallel.AXIS`) and wrapped by `parallel.DataParallel`, which
averages the gradients over every device between the two halves of a training step. Randomness comes
from one ``config.seed``: keys for init / data / dropout; a step's key is ``fold_in(dropout_key, step)``
and each example's key folds in its index in the global batch, so neither history nor the device
count changes the numbers. Everything the run writes goes through `svhn_jax.core.workdir`; running it
again on the same workdir resumes from the latest checkpoint. SIGTERM or SIGINT (preemption, Ctrl-C)
stops the loop after its step with a checkpoint saved (`errors.Stopped`: exit 128 + signal).
"""
from __future__ import annotations

import functools
import math
import signal
import time
from pathlib import Path
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.experimental import multihost_utils
from tqdm import tqdm

from svhn_jax import pretrained
from svhn_jax.core import parallel
from svhn_jax.core import workdir as workdir_lib
from svhn_jax.core.errors import Stopped, StopRequests, UserError
from svhn_jax.core.state import TrainState, create_train_state, make_optimizer
from svhn_jax.core.workdir import RunError
from svhn_jax.data import pipeline, sources, store
from svhn_jax.data.model_input import input_shape, prepare_images
from svhn_jax.models import create_model, heads
from svhn_jax.models import sequences as inference
from svhn_jax.tasks import metrics

# --- the per-device steps (pure) -----------------------------------------------------------------

def compute_gradients(state: TrainState, batch: dict[str, jax.Array], rng: jax.Array, *, model: nn.Module,
                      config: ml_collections.ConfigDict) -> tuple[Any, dict[str, jax.Array], Any]:
    """This device's shard: (gradients of its mean loss, its batch statistics, new BatchNorm statistics).

    No gradient communication here: `parallel.DataParallel.wrap_train` averages the gradients and
    statistics over every device (BatchNorm averages its own statistics over the data axis)."""
    step_rng = jax.random.fold_in(rng, state.step)
    crop_rng, dropout_rng = jax.random.split(step_rng)
    images = prepare_images(batch["images"], config, crop_rng, train=True)

    def loss_fn(params):
        logits, updates = model.apply({**state.variables(), "params": params}, images, train=True,
                                      rngs={"dropout": dropout_rng}, mutable=["batch_stats"])
        loss = heads.per_example_loss(logits, batch["lengths"], batch["digits"]).mean()
        return loss, (logits, updates)

    (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    _, pred_digits, _ = heads.decode(logits)
    stats = {"loss": loss, **metrics.batch_accuracies(pred_digits, batch["lengths"], batch["digits"])}
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
    (lengths, digits, confidence), logits = inference.read(model, config, state.variables(), batch["images"])
    loss = heads.per_example_loss(logits, batch["lengths"], batch["digits"])
    return {"loss": jnp.where(batch["mask"], loss, 0.0), "pred_lengths": lengths, "pred_digits": digits,
            "confidence": confidence}


def make_train_step(config: ml_collections.ConfigDict, model: nn.Module, tx: optax.GradientTransformation,
                    par: parallel.DataParallel) -> Callable:
    """``run_train(state, batch, rng) -> (state, metrics)`` over every device, in `par`'s mode."""
    return par.wrap_train(functools.partial(compute_gradients, model=model, config=config),
                          functools.partial(apply_gradients, tx=tx))


def make_eval_step(config: ml_collections.ConfigDict, model: nn.Module, par: parallel.DataParallel) -> Callable:
    """``run_eval(state, batch) -> per-example outputs`` over every device, in `par`'s mode."""
    return par.wrap(functools.partial(eval_step, model=model, config=config), num_sharded=1, out_sharded=True)


# --- the loop ------------------------------------------------------------------------------------

# Config values that must be positive integers (0 would divide by zero deep in the run).
POSITIVE_KEYS = ("batch_size", "eval_batch_size", "num_train_steps", "log_every_steps", "eval_every_steps",
                 "checkpoint_every_steps", "keep_checkpoints")


def check_config(config: ml_collections.ConfigDict) -> None:
    """Refuses sizes and intervals that are not positive, in one line naming the key, before anything starts."""
    for key in POSITIVE_KEYS:
        if not (isinstance(config[key], int) and config[key] > 0):
            raise UserError(f"config key {key} must be a positive integer, got {config[key]!r}")


def every(step: int, n: int) -> bool:
    """Whether a periodic action of period `n` steps falls on `step`."""
    return step % n == 0


def stop_signal(stop: StopRequests, done: int, config: ml_collections.ConfigDict) -> int:
    """The signal on which the loop stops after step `done` (0: go on).

    One process stops on its own signal at any step; several agree at logging steps (a collective
    each, where the loop waits for the devices anyway), so that every process saves the same step.
    """
    if jax.process_count() == 1:
        return stop.signum
    if not every(done, config.log_every_steps):
        return 0
    return int(np.max(multihost_utils.process_allgather(np.int32(stop.signum))))


def evaluate(run_eval: Callable, state: Any, split: store.Split, config: ml_collections.ConfigDict,
             par: parallel.DataParallel) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Every example of `split` (padded last batch, masked); returns (metrics, predictions)."""
    outputs, loss_sum = [], 0.0
    batches = pipeline.eval_batches(split, config.eval_batch_size, process_index=jax.process_index(),
                                    process_count=jax.process_count(), limit=config.max_eval_examples)
    for device_batch, real in pipeline.prefetch(batches, lambda b: (par.put_batch(b[0]), b[1])):
        per_example = par.get_per_example(run_eval(state, device_batch))
        loss_sum += float(np.sum(per_example.pop("loss"), dtype=np.float64))
        outputs.append(jax.tree.map(lambda x, real=real: x[:real], per_example))
    preds = {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}
    n = len(preds["confidence"])
    truth = {"true_lengths": split.lengths[:n], "true_digits": split.digits[:n]}
    result = metrics.evaluation_metrics(preds["pred_lengths"], preds["pred_digits"], preds["confidence"],
                                        truth["true_lengths"], truth["true_digits"])
    result["eval_loss"] = loss_sum / n
    return result, {**preds, **truth}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path, *,
                       overwrite: bool = False) -> dict[str, Any]:
    """Trains `config` in `workdir` (resuming from its latest good checkpoint), evaluates, returns the
    final metrics. Holds the workdir's lock throughout; `overwrite` starts afresh, the earlier run
    moved aside once the config is known to work."""
    check_config(config)
    workdir = Path(workdir)
    with workdir_lib.locked(workdir):
        return run(config, workdir, overwrite)


def run(config: ml_collections.ConfigDict, workdir: Path, overwrite: bool) -> dict[str, Any]:
    """`train_and_evaluate` in a workdir this process has locked."""
    t_start = time.perf_counter()
    workdir_lib.check_resumable(config, workdir, overwrite)
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
    host_state = pretrained.initialize(jax.device_get(create_train_state(init_rng, model, tx, shape)),
                                       config.init_from)
    workdir_lib.start(config, workdir, overwrite)  # data found, model built: the run may start

    manager = workdir_lib.checkpoint_manager(workdir, config)
    host_state = workdir_lib.resume(manager, host_state, par, workdir)
    state = par.put_state(host_state)
    start_step, num_steps = int(host_state.step), config.num_train_steps
    log = workdir_lib.MetricsLog(workdir, start_step, num_steps)

    run_train = make_train_step(config, model, tx, par)
    run_eval = make_eval_step(config, model, par)
    batches = pipeline.TrainBatches(train_split, config.batch_size, data_seed,
                                    process_index=jax.process_index(), process_count=jax.process_count())
    step_iter = pipeline.prefetch(((s, batches.local_batch(s)) for s in range(start_step, num_steps)),
                                  lambda sb: (sb[0], par.put_batch(sb[1])))

    pending: list[tuple[int, Any]] = []  # (step, its metrics on device), fetched at the next action
    train_seconds, train_images = 0.0, 0
    progress = tqdm(total=num_steps, initial=start_step, desc="train", unit="step",
                    disable=jax.process_index() != 0, dynamic_ncols=True)

    def log_train_metrics(step: int) -> None:
        """Fetches the pending step metrics, stops on a non-finite loss, logs their mean."""
        fetched = [(s, par.to_host(m)) for s, m in pending]
        pending.clear()
        for s, m in fetched:  # step s computed the loss of the state after s updates
            if not (math.isfinite(float(m["loss"])) and math.isfinite(float(m["grad_norm"]))):
                raise RunError(f"non-finite loss at step {s + 1}; stopped, the last good checkpoint "
                               f"(step {manager.latest_step() or 'none yet'}) is kept in {workdir / 'checkpoints'}")
        if fetched:
            means = {k: float(np.mean([m[k] for _, m in fetched])) for k in fetched[0][1]}
            means["learning_rate"] = float(schedule(step))
            log.write(step, "train", means)
            progress.set_postfix(loss=f"{means['loss']:.3f}", seq_acc=f"{means['sequence_accuracy']:.3f}")

    with StopRequests() as stop:  # the first SIGTERM/SIGINT: save after this step, then stop
        try:
            t_mark = time.perf_counter()
            for step, device_batch in step_iter:
                state, step_metrics = run_train(state, device_batch, dropout_rng)
                pending.append((step, step_metrics))
                progress.update(1)
                done = step + 1
                is_last = done == num_steps
                eval_now = every(done, config.eval_every_steps) and not is_last  # the final evaluation follows
                signum = stop_signal(stop, done, config)
                save_now = every(done, config.checkpoint_every_steps) or is_last or bool(signum)
                if not (every(done, config.log_every_steps) or eval_now or save_now):
                    continue
                # Every action logs the train metrics since the last one (and checks them), after the work is done.
                jax.block_until_ready(state)
                if pending[0][0] > start_step:  # the first interval holds compilation: not in the speed
                    train_seconds += time.perf_counter() - t_mark
                    train_images += len(pending) * config.batch_size
                log_train_metrics(done)
                if eval_now:
                    eval_metrics, _ = evaluate(run_eval, state, eval_split, config, par)
                    log.write(done, "eval", {k: v for k, v in eval_metrics.items() if np.isscalar(v)})
                if save_now:
                    workdir_lib.save_checkpoint(manager, done, par.to_global(state), workdir)
                if signum:
                    raise Stopped(f"stopped by {signal.Signals(signum).name} after step {done} of {num_steps}, its "
                                  f"checkpoint saved in {workdir / 'checkpoints'}: run the same command to resume",
                                  signum)
                t_mark = time.perf_counter()
        finally:
            progress.close()
            manager.wait_until_finished()

    final, predictions = evaluate(run_eval, state, eval_split, config, par)
    host = par.to_host(state)
    final.update(step=int(host.step), train_images_per_second=train_images / train_seconds if train_seconds else None,
                 wall_seconds=time.perf_counter() - t_start, params_sha256=workdir_lib.tree_sha256(host.params),
                 num_train_examples=len(train_split), model=config.model, dataset=config.dataset,
                 device_kind=jax.devices()[0].device_kind, device_count=jax.device_count(),
                 process_count=jax.process_count(), parallel=par.mode)
    if jax.process_index() == 0:
        log.write(final["step"], "eval", {k: v for k, v in final.items()
                                          if isinstance(v, float) and k.startswith("eval_")})
        workdir_lib.write_results(workdir, final, predictions, eval_split.images)
    log.close()
    return final
