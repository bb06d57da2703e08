"""The one training loop, for every task: ``python -m svhn_jax.main --config=... --workdir=DIR``.

`train_and_evaluate` holds the workdir's lock, makes the data (`data.sources`, every dataset incl.
scenes), lets the task (`svhn_jax.tasks`, by ``config.task``) read it, resumes from the newest good
checkpoint, runs the steps with periodic logging, evaluation and checkpoints, stops cleanly on
SIGTERM / SIGINT (`core.signals.StopRequests`: a checkpoint saved, exit 128 + signal), writes
final_metrics.json (with ``params_sha256``) and prints its result last (`result_line`: the final accuracy
and where final_metrics.json is).

A training step is the task's per-device `compute_gradients` and the optimiser update from the
gradients' mean over every device (`apply_gradients`), joined by `parallel.DataParallel` in the mode
``config.parallel`` names. Randomness comes from one ``config.seed``: keys for init / data / the
step (dropout, augmentation); a step's key folds in the step, so neither history nor the device
count changes the numbers, and the batch at step t is a function of (data seed, t): a resumed run
ends at the same ``params_sha256`` as one never interrupted.
"""
from __future__ import annotations

import functools
import json
import math
import signal
import time
from pathlib import Path
from typing import Any, Callable

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import optax
from jax.experimental import multihost_utils
from tqdm import tqdm

from svhn_jax import tasks
from svhn_jax.core import parallel
from svhn_jax.core import workdir as workdir_lib
from svhn_jax.core.errors import Stopped, UserError
from svhn_jax.core.signals import StopRequests
from svhn_jax.core.state import TrainState, create_train_state, make_optimizer
from svhn_jax.core.workdir import RunError
from svhn_jax.data import pipeline, sources
from svhn_jax.infer import weights
from svhn_jax.models import create_model
from svhn_jax.pretrained import PretrainedError
from svhn_jax.tasks.base import Task

# Config values that must be positive integers (0 would divide by zero deep in the run).
POSITIVE_KEYS = ("batch_size", "eval_batch_size", "num_train_steps", "log_every_steps", "eval_every_steps",
                 "checkpoint_every_steps", "keep_checkpoints")


def apply_gradients(state: TrainState, grads: Any, stats: dict[str, jax.Array], batch_stats: Any, *,
                    tx: optax.GradientTransformation) -> tuple[TrainState, dict[str, jax.Array]]:
    """The optimiser update from the gradients averaged over every device (pure)."""
    opt_updates, opt_state = tx.update(grads, state.opt_state, state.params)
    new_state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, opt_updates),
                              opt_state=opt_state, batch_stats=batch_stats)
    return new_state, {**stats, "grad_norm": optax.tree.norm(grads)}


def make_train_step(config: ml_collections.ConfigDict, model: nn.Module, tx: optax.GradientTransformation,
                    par: parallel.DataParallel, task: Task | None = None) -> Callable:
    """``run_train(state, batch, rng) -> (state, metrics)`` over every device, in `par`'s mode."""
    task = task or tasks.get(config.task)
    return par.wrap_train(functools.partial(task.compute_gradients, model=model, config=config),
                          functools.partial(apply_gradients, tx=tx))


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


def initialize(state: TrainState, spec: str, task: str) -> TrainState:
    """`state` (on the host) with its params and BatchNorm statistics taken from ``config.init_from``:
    'pretrained' (the shipped weights of this task), 'pretrained:NAME', or a workdir (its latest
    checkpoint). The model of `spec` must have exactly this run's shapes: fine-tuning changes the data
    and the optimiser, never the network. An empty `spec` returns `state` as it is."""
    if not spec:
        return state
    if spec == "pretrained" or spec.startswith("pretrained:"):
        source = weights.load(spec.partition(":")[2] or task)[2]
    else:
        source = jax.device_get(weights.load(task, spec)[2])
    target = {"params": state.params, "batch_stats": state.batch_stats}
    source = {"params": source["params"], "batch_stats": source.get("batch_stats", {})}
    shapes = lambda tree: jax.tree.map(lambda a: (tuple(a.shape), str(a.dtype)), tree)
    if shapes(source) != shapes(target):
        raise PretrainedError(f"--config.init_from={spec}: its model has other layers or shapes than this "
                       "run's (model, head and recipe must match)")
    cast = lambda tree, like: jax.tree.map(lambda a, b: np.asarray(a, b.dtype), tree, like)
    return state.replace(params=cast(source["params"], state.params),
                         batch_stats=cast(source["batch_stats"], state.batch_stats))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path, *,
                       overwrite: bool = False) -> dict[str, Any]:
    """Trains `config` in `workdir` (resuming from its latest good checkpoint), evaluates, returns the
    final metrics. Holds the workdir's lock throughout; `overwrite` starts afresh, the earlier run
    moved aside once the config is known to work."""
    check_config(config)
    tasks.get(config.task).check_config(config)
    workdir = Path(workdir)
    with workdir_lib.run_lock(workdir):
        return run(config, workdir, overwrite)


def run(config: ml_collections.ConfigDict, workdir: Path, overwrite: bool) -> dict[str, Any]:
    """`train_and_evaluate` in a workdir this process has locked."""
    t_start = time.perf_counter()
    task = tasks.get(config.task)
    workdir_lib.check_resumable(config, workdir, overwrite)
    par = parallel.DataParallel(config.parallel)
    parallel.check_divisible(config.batch_size)
    parallel.check_divisible(config.eval_batch_size, "eval_batch_size")

    train_files, eval_file = sources.ensure_splits(config)  # deterministic, atomic: any process may make them
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("svhn_jax:data-ready")
    data = task.read_data(config, train_files, eval_file)
    model = create_model(config)
    tx, schedule = make_optimizer(config)
    init_rng, data_rng, step_rng = jax.random.split(jax.random.key(config.seed), 3)
    data_seed = int(jax.random.randint(data_rng, (), 0, 2**31 - 1))
    batches = pipeline.TrainBatches(data.train, config.batch_size, data_seed, process_index=jax.process_index(),
                                    process_count=jax.process_count(), sort=task.sort_batches)
    host_state = initialize(jax.device_get(create_train_state(init_rng, model, tx, data.input_shape)),
                            config.init_from, task.name)
    workdir_lib.start(config, workdir, overwrite)  # data found, model built: the run may start

    manager = workdir_lib.checkpoint_manager(workdir, config)
    host_state = workdir_lib.resume(manager, host_state, par, workdir)
    state = par.put_state(host_state)
    start_step, num_steps = int(host_state.step), config.num_train_steps
    log = workdir_lib.MetricsLog(workdir, start_step, num_steps)

    run_train = make_train_step(config, model, tx, par, task)
    evaluate = task.make_evaluate(config, model, par)
    step_iter = pipeline.prefetch(((s, batches.local_batch(s)) for s in range(start_step, num_steps)),
                                  lambda sb: (sb[0], par.put_batch(sb[1])))

    pending: list[tuple[int, Any]] = []  # (step, its metrics on device), fetched at the next action
    train_seconds, train_examples = 0.0, 0
    progress = tqdm(total=num_steps, initial=start_step, desc=f"train {task.name}", unit="step",
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
            progress.set_postfix(loss=f"{means['loss']:.3f}")

    with StopRequests() as stop:  # the first SIGTERM/SIGINT: save after this step, then stop
        try:
            t_mark = time.perf_counter()
            for step, device_batch in step_iter:
                state, step_metrics = run_train(state, device_batch, step_rng)
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
                    train_examples += len(pending) * config.batch_size
                log_train_metrics(done)
                if eval_now:
                    eval_metrics, _ = evaluate(state, data)
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

    final, predictions = evaluate(state, data)
    host = par.to_host(state)
    final.update(step=int(host.step), train_images_per_second=train_examples / train_seconds if train_seconds else None,
                 wall_seconds=time.perf_counter() - t_start, params_sha256=workdir_lib.tree_sha256(host.params),
                 num_train_examples=batches.size, task=task.name, model=config.model, dataset=config.dataset,
                 device_kind=jax.devices()[0].device_kind, device_count=jax.device_count(),
                 process_count=jax.process_count(), parallel=par.mode)
    if jax.process_index() == 0:
        log.write(final["step"], "eval", {k: v for k, v in final.items()
                                          if isinstance(v, float) and k.startswith("eval_")})
        if predictions is not None:
            task.write_predictions(workdir, predictions, data)
        workdir_lib.write_file(workdir / "final_metrics.json",
                               lambda p: p.write_text(json.dumps(final, indent=2) + "\n"))
        print(result_line(final, config, workdir), flush=True)
    log.close()
    return final


# The final metrics a run's result line shows, in this order, when its task has them: (key, name).
HEADLINE = (("eval_sequence_accuracy", "sequence accuracy"), ("eval_digit_accuracy", "digit accuracy"),
            ("eval_line_accuracy", "line accuracy"), ("eval_box_found", "box found"),
            ("eval_none_accuracy", "no-number accuracy"))


def result_line(final: dict[str, Any], config: ml_collections.ConfigDict, workdir: Path) -> str:
    """What a finished run says last: its final accuracy on the evaluation split and where
    final_metrics.json is (e.g. "done: reader seed_cnn, step 8, 100 test examples: sequence accuracy 1.0 %, ...;
    final metrics in W/final_metrics.json")."""
    shown = [f"{name} {100 * final[key]:.1f} %" for key, name in HEADLINE if isinstance(final.get(key), float)]
    if isinstance(final.get("eval_loss"), float):
        shown.append(f"loss {final['eval_loss']:.4g}")
    count = final.get("num_eval_examples", final.get("eval_examples"))
    on = f"{count} {config.eval_split} examples" if isinstance(count, int) else f"split {config.eval_split}"
    return (f"done: {final['task']} {final['model']}, step {final['step']}, {on}: {', '.join(shown) or 'evaluated'}; "
            f"final metrics in {workdir / 'final_metrics.json'}")
