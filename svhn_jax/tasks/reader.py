"""The readers' task: a digit sequence from a crop (seed ConvNet, reader, Goodfellow, ResNet-18).

The per-device steps are pure and written once for one device (the data-parallel axis is
`parallel.AXIS`): `compute_gradients` gives this shard's gradients (the trainer averages them over
every device), `eval_step` this shard's predictions. Evaluation reads every example of the held-out
split (the last batch padded and masked) and scores whole sequences (`tasks.metrics`).
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from svhn_jax.core import parallel
from svhn_jax.core import workdir as workdir_lib
from svhn_jax.core.errors import UserError
from svhn_jax.data import pipeline, store
from svhn_jax.data.model_input import input_shape, prepare_images
from svhn_jax.models import heads
from svhn_jax.models.sequences import infer_sequences
from svhn_jax.tasks import metrics
from svhn_jax.tasks.base import EvaluateFn, TaskData

PREDICTION_IMAGES = 2000  # eval images kept in eval_predictions.npz for the report's grids


def compute_gradients(state: Any, batch: dict[str, jax.Array], rng: jax.Array, *, model: nn.Module,
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


def eval_step(state: Any, batch: dict[str, jax.Array], *, model: nn.Module,
              config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
    """Per-example predictions and loss (0 where ``batch["mask"]`` marks padding) for this shard.

    No cross-device communication: the host sums the losses."""
    (lengths, digits, confidence), logits = infer_sequences(model, config, state.variables(), batch["images"])
    loss = heads.per_example_loss(logits, batch["lengths"], batch["digits"])
    return {"loss": jnp.where(batch["mask"], loss, 0.0), "pred_lengths": lengths, "pred_digits": digits,
            "confidence": confidence}


def make_eval_step(config: ml_collections.ConfigDict, model: nn.Module, par: parallel.DataParallel) -> Any:
    """``run_eval(state, batch) -> per-example outputs`` over every device, in `par`'s mode."""
    return par.wrap(functools.partial(eval_step, model=model, config=config), num_sharded=1, out_sharded=True)


def evaluate(run_eval: Any, state: Any, split: store.Split, config: ml_collections.ConfigDict,
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


def first_examples(split: store.Split, limit: int) -> store.Split:
    """The first `limit` examples of `split` in file order (all of them when `limit` is 0): a
    data-efficiency run on N real photos trains on the same N photos every time."""
    if not limit:
        return split
    if limit > len(split):
        raise UserError(f"train_limit={limit} is larger than the training set ({len(split)} examples)")
    return dataclasses.replace(split, images=split.images[:limit], lengths=split.lengths[:limit],
                               digits=split.digits[:limit], filenames=split.filenames[:limit],
                               attrs={**split.attrs, "train_limit": limit})


class ReaderTask:
    name = "reader"
    sort_batches = False

    def check_config(self, config: ml_collections.ConfigDict) -> None:
        """Refuses a negative ``train_limit``; the training set's size is known once it is read
        (`first_examples` and `pipeline.TrainBatches` check it)."""
        limit = config.get("train_limit", 0)
        if not (isinstance(limit, int) and limit >= 0):
            raise UserError(f"config key train_limit must be 0 (every example) or a positive integer, got {limit!r}")

    def read_data(self, config: ml_collections.ConfigDict, train_files: list[Path], eval_file: Path) -> TaskData:
        train = pipeline.concatenate([store.read_split(f) for f in train_files])
        train = first_examples(train, config.get("train_limit", 0))
        return TaskData(train=pipeline.training_arrays(train), eval=store.read_split(eval_file),
                        input_shape=input_shape(config, train.images.shape[1:]))

    compute_gradients = staticmethod(compute_gradients)

    def make_evaluate(self, config: ml_collections.ConfigDict, model: nn.Module,
                      par: parallel.DataParallel) -> EvaluateFn:
        run_eval = make_eval_step(config, model, par)
        return lambda state, data: evaluate(run_eval, state, data.eval, config, par)

    def write_predictions(self, workdir: Path, predictions: dict[str, np.ndarray] | None, data: TaskData) -> None:
        """eval_predictions.npz: every evaluated example's prediction, with the first `PREDICTION_IMAGES` images."""
        keep = min(PREDICTION_IMAGES, len(predictions["confidence"]))

        def write(path: Path) -> None:
            with path.open("wb") as f:
                np.savez_compressed(f, images=data.eval.images[:keep], **predictions)
        workdir_lib.write_file(workdir / "eval_predictions.npz", write)


TASK = ReaderTask()
