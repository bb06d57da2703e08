"""The localiser's task: where the house number is in a whole photo (synthetic scenes, `data/synth/scene.py`).

  python -m svhn_jax.main --config=configs/localiser.py --workdir=workdirs/localiser

The network (`models.localiser.LocaliserNet`) answers a softmax over a GRID x GRID map of cells plus
one "no number" outcome: where the centre of the number's union box is. Its target spreads the
centre over nearby cells (a Gaussian as wide as a fifth of the box's smaller side), and every cell
regresses the box it would report (the centre's offset from the cell's centre, the box's log width
and height), weighted like the target. Evaluation: how often the best box overlaps the true one by
IoU >= 0.5, and how often "no number" is told right, on held-out scenes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from svhn_jax.core import parallel
from svhn_jax.data.synth.scene import read_scenes
from svhn_jax.models.decoding import CELL, GRID, OFFSET_SCALE, SIZE, cell_centres, decode_boxes, iou, logits_of
from svhn_jax.models.localiser import prepare
from svhn_jax.tasks.base import EvaluateFn, TaskData

MIN_SIGMA = 0.6 * CELL      # the target's spread over cells, in pixels: at least this ...
SIGMA_FRACTION = 0.2        # ... or this fraction of the box's smaller side
BOX_WEIGHT = 2.0            # of the box regression against the centre's cross-entropy


def targets(boxes: jax.Array) -> tuple[jax.Array, jax.Array]:
    """float32 [B, 4] (x, y, w, h; NaN: no number) -> (target probabilities [B, GRID*GRID + 1], box
    regression targets [B, GRID, GRID, 4])."""
    has = ~jnp.isnan(boxes[:, 0])
    b = jnp.where(has[:, None], boxes, jnp.array([0.0, 0.0, 1.0, 1.0]))
    b = b.at[:, 2:].set(jnp.maximum(b[:, 2:], 1.0))  # a box is at least a pixel (log sizes stay finite)
    centre = b[:, :2] + b[:, 2:] / 2
    sigma = jnp.maximum(MIN_SIGMA, SIGMA_FRACTION * b[:, 2:].min(1))
    d2 = ((cell_centres()[None] - centre[:, None, None]) ** 2).sum(-1)
    heat = jnp.exp(-d2 / (2 * sigma[:, None, None] ** 2)).reshape(len(b), -1)
    heat = heat / heat.sum(1, keepdims=True)
    probs = jnp.where(has[:, None], jnp.concatenate([heat, jnp.zeros((len(b), 1))], 1),
                      jax.nn.one_hot(GRID * GRID, GRID * GRID + 1))
    offsets = (centre[:, None, None] - cell_centres()[None]) / OFFSET_SCALE
    log_size = jnp.log(b[:, 2:] / SIZE)[:, None, None].repeat(GRID, 1).repeat(GRID, 2)
    return probs, jnp.concatenate([offsets, log_size], -1)



def loss(outputs: dict[str, jax.Array], boxes: jax.Array) -> jax.Array:
    """Per-photo loss: cross-entropy of the centre map + BOX_WEIGHT x the target-weighted L1 of the box terms."""
    probs, reg = targets(boxes)
    ce = -(probs * jax.nn.log_softmax(logits_of(outputs, jnp))).sum(1)
    weights = probs[:, :-1].reshape(-1, GRID, GRID)
    l1 = (jnp.abs(outputs["cells"][..., 1:] - reg).sum(-1) * weights).sum((1, 2))
    return ce + BOX_WEIGHT * l1


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



def compute_gradients(state: Any, batch: dict[str, jax.Array], rng: jax.Array, *, model: nn.Module,
                      config: ml_collections.ConfigDict) -> tuple[Any, dict[str, jax.Array], Any]:
    """This device's shard: gradients of its mean loss, its statistics (the trainer averages both)."""
    key = jax.random.fold_in(jax.random.fold_in(rng, state.step), jax.lax.axis_index(parallel.AXIS))
    images = (augment(batch["images"].astype(jnp.float32) / 255.0, key) * 255.0).astype(jnp.uint8)
    inputs = prepare(images)

    def loss_fn(params):
        outputs = model.apply({"params": params}, inputs)
        return loss(outputs, batch["boxes"]).mean()

    value, grads = jax.value_and_grad(loss_fn)(state.params)
    return grads, {"loss": value}, state.batch_stats


def evaluate(apply: Any, params: Any, images: np.ndarray, boxes: np.ndarray,
             batch: int = 128) -> dict[str, float]:
    """Box IoU >= 0.5 rate on scenes with a number, "no number" told right (p_none > 0.5) on all."""
    found, none_right = [], []
    for start in range(0, len(images), batch):
        pred, _, p_none = decode_boxes(apply(params, images[start:start + batch]), k=1, softmax=jax.nn.softmax)
        truth = boxes[start:start + batch]
        has = ~np.isnan(truth[:, 0])
        found += list(iou(pred[has, 0], truth[has]) >= 0.5)
        none_right += list((p_none > 0.5) == ~has)
    return {"eval_box_found": float(np.mean(found)), "eval_none_accuracy": float(np.mean(none_right))}


class LocaliserTask:
    name = "localiser"
    sort_batches = True

    def check_config(self, config: ml_collections.ConfigDict) -> None:
        if config.num_scenes_train < config.batch_size:  # an epoch would hold no batch
            raise ValueError(f"config key num_scenes_train ({config.num_scenes_train}) must be at least batch_size "
                             f"({config.batch_size}): a training batch is drawn from the scenes")

    def read_data(self, config: ml_collections.ConfigDict, train_files: list[Path], eval_file: Path) -> TaskData:
        parts = [read_scenes(f) for f in train_files]
        images, boxes = parts[0] if len(parts) == 1 else (np.concatenate(a) for a in zip(*parts))
        return TaskData(train={"images": images, "boxes": boxes}, eval=read_scenes(eval_file),
                        input_shape=(SIZE, SIZE, 3))

    compute_gradients = staticmethod(compute_gradients)

    def make_evaluate(self, config: ml_collections.ConfigDict, model: nn.Module,
                      par: parallel.DataParallel) -> EvaluateFn:
        apply = jax.jit(lambda p, x: model.apply({"params": p}, prepare(x)))  # compiled once per run
        return lambda state, data: (evaluate(apply, par.to_host(state).params, *data.eval), None)

    def write_predictions(self, workdir: Path, predictions: dict[str, np.ndarray] | None, data: TaskData) -> None:
        del workdir, predictions, data  # final_metrics.json says it all


TASK = LocaliserTask()
