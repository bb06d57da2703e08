"""Training the localiser on synthetic whole scenes (`data/synth_scene.py`); `main.py` calls it for
``config.model == "localiser"``:

  python -m svhn_jax.main --config=configs/localiser.py --workdir=workdirs/localiser

The same house rules as the readers' trainer (`train.py`), and its parts: the workdir's lock, config
check, checkpoints and metrics (`workdir`), the data-parallel step (`parallel.DataParallel` with
`train.apply_gradients`), the stop-signal handling. Scenes are rendered once into the data folder
and cached; batch t is a pure function of (seed, t), so a resumed run reads the same batches and ends
at the same ``params_sha256``. Evaluation: how often the best box overlaps the true one by IoU >= 0.5,
and how often "no number" is told right, on held-out scenes.
"""
from __future__ import annotations

import functools
import json
import signal
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from tqdm import tqdm

from svhn_jax import localise, parallel, pretrained
from svhn_jax import workdir as workdir_lib
from svhn_jax.data import paths, pipeline, sources
from svhn_jax.data.synth_scene import SIZE, VERSION, read_scenes, write_scenes
from svhn_jax.errors import Stopped, StopRequests
from svhn_jax.models import create_model
from svhn_jax.state import TrainState, create_train_state, make_optimizer
from svhn_jax.train import apply_gradients, check_config, every
from svhn_jax.workdir import RunError


def ensure_scenes(config: ml_collections.ConfigDict) -> tuple[Path, Path]:
    """The cached train and test scene files of `config`, rendered (once, under a lock) if missing; a
    data folder that cannot be written or fills up is one line (`sources.preparing`), nothing half-written."""
    folder = paths.data_dir(config) / "scenes"
    files = []
    with sources.preparing(folder):
        for split, num in (("train", config.num_scenes_train), ("test", config.num_scenes_test)):
            seed = config.scene_seed + paths.split_seed(split)
            path = folder / f"{split}-{num}-seed{seed}-size{SIZE}-v{VERSION}.h5"
            if not path.exists():
                logging.info("rendering %d scenes into %s", num, path)
                write_scenes(path, num, seed)
            files.append(path)
    return files[0], files[1]


def augment(images: jax.Array, rng: jax.Array) -> jax.Array:
    """Per photo: contrast and brightness, polarity (light <-> dark), greyscale, sensor noise (floats in 0-1)."""
    b = images.shape[0]
    kc, kb, ki, kg, kn = jax.random.split(rng, 5)
    mean = images.mean((1, 2, 3), keepdims=True)
    contrast = jnp.exp(jax.random.uniform(kc, (b, 1, 1, 1), minval=-0.5, maxval=0.4))
    x = mean + (images - mean) * contrast + jax.random.uniform(kb, (b, 1, 1, 1), minval=-0.15, maxval=0.15)
    x = jnp.where(jax.random.bernoulli(ki, 0.2, (b, 1, 1, 1)), 1.0 - x, x)
    x = jnp.where(jax.random.bernoulli(kg, 0.15, (b, 1, 1, 1)), x.mean(-1, keepdims=True).repeat(3, -1), x)
    x = x + jax.random.normal(kn, x.shape) * jax.random.uniform(kn, (b, 1, 1, 1), maxval=0.04)
    return jnp.clip(x, 0.0, 1.0)


def compute_gradients(state: TrainState, batch: dict[str, jax.Array], rng: jax.Array, *, model: Any,
                      config: ml_collections.ConfigDict) -> tuple[Any, dict[str, jax.Array], Any]:
    """This device's shard: gradients of its mean loss, its statistics (as `train.compute_gradients`)."""
    key = jax.random.fold_in(jax.random.fold_in(rng, state.step), jax.lax.axis_index(parallel.AXIS))
    images = (augment(batch["images"].astype(jnp.float32) / 255.0, key) * 255.0).astype(jnp.uint8)
    inputs = localise.prepare(images)

    def loss_fn(params):
        outputs = model.apply({"params": params}, inputs)
        return localise.loss(outputs, batch["boxes"]).mean()

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return grads, {"loss": loss}, state.batch_stats


@functools.cache
def _apply(model: Any) -> Any:
    """The jitted forward pass of `model` (one compilation per run, not one per evaluation)."""
    return jax.jit(lambda p, x: model.apply({"params": p}, localise.prepare(x)))


def evaluate(model: Any, params: Any, images: np.ndarray, boxes: np.ndarray, batch: int = 128) -> dict[str, float]:
    """Box IoU >= 0.5 rate on scenes with a number, "no number" told right (p_none > 0.5) on all."""
    apply = _apply(model)
    found, none_right = [], []
    for start in range(0, len(images), batch):
        pred, _, p_none = localise.decode(apply(params, images[start:start + batch]), k=1)
        truth = boxes[start:start + batch]
        has = ~np.isnan(truth[:, 0])
        found += list(localise.iou(pred[has, 0], truth[has]) >= 0.5)
        none_right += list((p_none > 0.5) == ~has)
    return {"eval_box_found": float(np.mean(found)), "eval_none_accuracy": float(np.mean(none_right))}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path, *, overwrite: bool = False) -> dict:
    """Trains the localiser in `workdir` (resuming), evaluates on held-out scenes, returns the final metrics."""
    check_config(config)
    if config.num_scenes_train < config.batch_size:  # an epoch would hold no batch
        raise ValueError(f"config key num_scenes_train ({config.num_scenes_train}) must be at least batch_size "
                         f"({config.batch_size}): a training batch is drawn from the scenes")
    workdir = Path(workdir)
    with workdir_lib.locked(workdir):
        return _run(config, workdir, overwrite)


def _run(config: ml_collections.ConfigDict, workdir: Path, overwrite: bool) -> dict:
    t_start = time.perf_counter()
    workdir_lib.check_resumable(config, workdir, overwrite)
    if jax.process_count() > 1:
        raise RunError("the localiser trains in one process (it is small); run it without --num_processes")
    par = parallel.DataParallel(config.parallel)
    parallel.check_divisible(config.batch_size)
    train_file, test_file = ensure_scenes(config)
    train_images, train_boxes = read_scenes(train_file)
    test_images, test_boxes = read_scenes(test_file)
    model = create_model(config)
    tx, schedule = make_optimizer(config)
    init_rng, data_rng, aug_rng = jax.random.split(jax.random.key(config.seed), 3)
    data_seed = int(jax.random.randint(data_rng, (), 0, 2**31 - 1))
    host_state = pretrained.initialize(jax.device_get(create_train_state(init_rng, model, tx, (SIZE, SIZE, 3))),
                                       config.init_from)
    workdir_lib.start(config, workdir, overwrite)

    manager = workdir_lib.checkpoint_manager(workdir, config)
    host_state = workdir_lib.resume(manager, host_state, par, workdir)
    state = par.put_state(host_state)
    start_step, num_steps = int(host_state.step), config.num_train_steps
    log = workdir_lib.MetricsLog(workdir, start_step, num_steps)
    run_train = par.wrap_train(functools.partial(compute_gradients, model=model, config=config),
                               functools.partial(apply_gradients, tx=tx))

    steps_per_epoch = len(train_images) // config.batch_size

    @functools.lru_cache(maxsize=1)
    def permutation(epoch: int) -> np.ndarray:  # drawn once an epoch, from (data seed, epoch)
        return np.random.default_rng([data_seed, epoch]).permutation(len(train_images))

    def batch_at(step: int) -> dict[str, np.ndarray]:  # a pure function of (data seed, step)
        epoch, k = divmod(step, steps_per_epoch)
        idx = permutation(epoch)
        idx = np.sort(idx[k * config.batch_size:(k + 1) * config.batch_size])
        return {"images": train_images[idx], "boxes": train_boxes[idx]}

    batches = pipeline.prefetch(((s, batch_at(s)) for s in range(start_step, num_steps)),
                                lambda sb: (sb[0], par.put_batch(sb[1])))
    pending: list[Any] = []
    progress = tqdm(total=num_steps, initial=start_step, desc="train localiser", unit="step", dynamic_ncols=True)
    with StopRequests() as stop:
        try:
            for step, device_batch in batches:
                state, step_metrics = run_train(state, device_batch, aug_rng)
                pending.append(step_metrics)
                progress.update(1)
                done = step + 1
                is_last = done == num_steps
                save_now = every(done, config.checkpoint_every_steps) or is_last or bool(stop.signum)
                if not (every(done, config.log_every_steps) or save_now):
                    continue
                losses = [float(par.to_host(m)["loss"]) for m in pending]
                pending.clear()
                if not np.all(np.isfinite(losses)):
                    raise RunError(f"non-finite loss by step {done}; stopped, the last good checkpoint "
                                   f"(step {manager.latest_step() or 'none yet'}) is kept in {workdir / 'checkpoints'}")
                log.write(done, "train", {"loss": float(np.mean(losses)), "learning_rate": float(schedule(done))})
                progress.set_postfix(loss=f"{np.mean(losses):.3f}")
                if every(done, config.eval_every_steps) and not is_last:
                    log.write(done, "eval", evaluate(model, par.to_host(state).params, test_images, test_boxes))
                if save_now:
                    workdir_lib.save_checkpoint(manager, done, par.to_global(state), workdir)
                if stop.signum:
                    raise Stopped(f"stopped by {signal.Signals(stop.signum).name} after step {done} of {num_steps}, "
                                  f"its checkpoint saved in {workdir / 'checkpoints'}: run the same command to resume",
                                  stop.signum)
        finally:
            progress.close()
            manager.wait_until_finished()

    host = par.to_host(state)
    final = evaluate(model, host.params, test_images, test_boxes)
    log.write(int(host.step), "eval", final)
    log.close()
    final.update(step=int(host.step), params_sha256=workdir_lib.tree_sha256(host.params), model=config.model,
                 num_train_scenes=len(train_images), wall_seconds=time.perf_counter() - t_start)
    workdir_lib.write_file(workdir / "results.json",
                           lambda p: p.write_text(json.dumps(final, indent=2) + "\n"))
    return final
