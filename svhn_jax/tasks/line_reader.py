"""The line reader's fine-tune: CTC on digit lines, from PP-OCRv6 small's imported weights.

  python -m svhn_jax.main --config=configs/line_reader.py --workdir=/work/runs/line_reader_ft

The network is the imported recogniser cut to blank + 0-9 (`models.graph_net.GraphNet` over
``config.line_reader_weights``: "" = the shipped ``pretrained/line_reader``), whose initial parameters
*are* those weights; its BatchNorm statistics (`onnx_graph.statistics`) stay as imported (their
gradients are zeroed, so Adam leaves them: fine-tuning moves the weights only). Lines (`data.lines`:
real SVHN photos cut at their digits' union box, and renders) are 48 x 320 uint8 on a mid-grey
canvas; `prepare` normalises them as PaddleOCR trained the weights (BGR, ``x / 127.5 - 1``), the
canvas exactly 0 as the reader's padding, with contrast, brightness and noise on the line itself in
training. The loss is optax's CTC over every step (blank 0, digit d = class 1 + d). Evaluation reads
every line of the held-out split (the last batch padded and masked), decodes greedily
(`greedy_decode`, as `infer.line_reading.ctc_decode`: best class a step, runs merged, blanks
dropped) and scores whole lines: ``eval_line_accuracy``; eval_predictions.json lists each line's
truth and reading.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from svhn_jax.core import parallel
from svhn_jax.core import workdir as workdir_lib
from svhn_jax.core.errors import UserError
from svhn_jax.data import lines, pipeline, store
from svhn_jax.data.labels import MAX_DIGITS
from svhn_jax.models import graph_net, onnx_graph
from svhn_jax.tasks.base import EvaluateFn, TaskData


def augment(x: jax.Array, rng: jax.Array) -> jax.Array:
    """Per line (floats 0-255): contrast about its mean, brightness, sensor noise; clipped to 0-255."""
    b = x.shape[0]
    kc, kb, kn, ks = jax.random.split(rng, 4)
    mean = x.mean((1, 2, 3), keepdims=True)
    contrast = jnp.exp(jax.random.uniform(kc, (b, 1, 1, 1), minval=-0.6, maxval=0.3))
    x = mean + (x - mean) * contrast + jax.random.uniform(kb, (b, 1, 1, 1), minval=-30.0, maxval=30.0)
    x = x + jax.random.normal(kn, x.shape) * jax.random.uniform(ks, (b, 1, 1, 1), maxval=8.0)
    return jnp.clip(x, 0.0, 255.0)


def prepare(images: jax.Array, rng: jax.Array | None = None) -> jax.Array:
    """uint8 [B, 48, W, 3] lines (RGB, `lines.PAD_VALUE` canvas) -> the reader's normalised NHWC input:
    BGR, ``x / 127.5 - 1``, the canvas 0; `rng` given: augmented (`augment`) first, the canvas untouched."""
    canvas = jnp.all(images == lines.PAD_VALUE, axis=-1, keepdims=True)
    x = images.astype(jnp.float32)
    if rng is not None:
        x = augment(x, rng)
    x = x[..., ::-1] / 127.5 - 1.0
    return jnp.where(canvas, 0.0, x)


def ctc_labels(lengths: jax.Array, digits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Contract labels -> (CTC labels [B, 5]: 1 + digit inside the length, label paddings [B, 5])."""
    inside = jnp.arange(MAX_DIGITS)[None, :] < lengths[:, None]
    return jnp.where(inside, digits + 1, 0), (~inside).astype(jnp.float32)


def per_example_loss(logits: jax.Array, lengths: jax.Array, digits: jax.Array) -> jax.Array:
    """CTC loss per line over every step of `logits` [B, T, 11] (blank 0)."""
    labels, label_paddings = ctc_labels(lengths, digits)
    return optax.ctc_loss(logits, jnp.zeros(logits.shape[:2]), labels, label_paddings, blank_id=0)


def greedy_decode(probs: np.ndarray) -> tuple[str, float]:
    """[T, 11] probabilities -> (digits, mean probability of the kept steps; 0.0 when none)."""
    best, top = probs.argmax(1), probs.max(1)
    keep = best != 0
    keep[1:] &= best[1:] != best[:-1]
    return "".join(str(int(c) - 1) for c in best[keep]), float(top[keep].mean()) if keep.any() else 0.0


def compute_gradients(state: Any, batch: dict[str, jax.Array], rng: jax.Array, *, model: nn.Module,
                      config: ml_collections.ConfigDict) -> tuple[Any, dict[str, jax.Array], Any]:
    """This device's shard: gradients of its mean CTC loss (BatchNorm statistics' zeroed), its statistics."""
    key = jax.random.fold_in(jax.random.fold_in(rng, state.step), jax.lax.axis_index(parallel.AXIS))
    inputs = prepare(batch["images"], key if config.augment else None)

    def loss_fn(params):
        logits = model.apply({"params": params}, inputs)
        return per_example_loss(logits, batch["lengths"], batch["digits"]).mean()

    value, grads = jax.value_and_grad(loss_fn)(state.params)
    frozen = onnx_graph.statistics(graph_net.load(model.folder)[0])
    grads = {**grads, "graph": {k: jnp.zeros_like(g) if k in frozen else g for k, g in grads["graph"].items()}}
    return grads, {"loss": value}, state.batch_stats


def eval_step(state: Any, batch: dict[str, jax.Array], *, model: nn.Module) -> dict[str, jax.Array]:
    """Per line: its CTC loss (0 where ``batch["mask"]`` marks padding), best class and its probability a step."""
    logits = model.apply({"params": state.params}, prepare(batch["images"]))
    loss = per_example_loss(logits, batch["lengths"], batch["digits"])
    return {"loss": jnp.where(batch["mask"], loss, 0.0), "probs": jax.nn.softmax(logits, -1)}


def evaluate(run_eval: Any, state: Any, split: store.Split, config: ml_collections.ConfigDict,
             par: parallel.DataParallel) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Every line of `split`, greedy CTC decoding; (metrics, per-line truth and reading)."""
    readings, confidences, loss_sum = [], [], 0.0
    batches = pipeline.eval_batches(split, config.eval_batch_size, process_index=jax.process_index(),
                                    process_count=jax.process_count())
    for device_batch, real in pipeline.prefetch(batches, lambda b: (par.put_batch(b[0]), b[1])):
        out = par.get_per_example(run_eval(state, device_batch))
        loss_sum += float(np.sum(out["loss"], dtype=np.float64))
        for probs in out["probs"][:real]:
            text, confidence = greedy_decode(probs)
            readings.append(text)
            confidences.append(confidence)
    truth = store.decode_labels(split.lengths, split.digits)
    right = np.array([a == b for a, b in zip(readings, truth)])
    result = {"eval_line_accuracy": float(right.mean()), "eval_loss": loss_sum / len(truth),
              "eval_examples": len(truth)}
    return result, {"filenames": np.asarray(split.filenames), "truth": np.asarray(truth),
                    "reading": np.asarray(readings), "confidence": np.asarray(confidences, np.float32)}


class LineReaderTask:
    name = "line_reader"
    sort_batches = False

    def check_config(self, config: ml_collections.ConfigDict) -> None:
        """The network starts from ``line_reader_weights``; init_from (other tasks' way) is refused."""
        if config.init_from:
            raise UserError(f"init_from={config.init_from!r}: the line_reader task starts from the weights in "
                            "line_reader_weights ('' = the shipped PP-OCRv6 digits reader, or a folder written by "
                            "scripts/ship_line_reader.py); leave init_from empty")
        if config.model != "line_reader":
            raise UserError(f"model={config.model!r}: the line_reader task trains model=line_reader")
        for key in ("num_line_renders", "num_line_renders_test"):
            if not (isinstance(config[key], int) and config[key] >= 0):
                raise UserError(f"config key {key} must be 0 or a positive integer, got {config[key]!r}")
        if not 0 <= float(config.line_pad) <= 2:
            raise UserError(f"config key line_pad must lie in 0-2 (of the line's height), got {config.line_pad!r}")

    def read_data(self, config: ml_collections.ConfigDict, train_files: list[Path], eval_file: Path) -> TaskData:
        train = pipeline.concatenate([store.read_split(f) for f in train_files])
        return TaskData(train=pipeline.training_arrays(train), eval=store.read_split(eval_file),
                        input_shape=tuple(train.images.shape[1:]))

    compute_gradients = staticmethod(compute_gradients)

    def make_evaluate(self, config: ml_collections.ConfigDict, model: nn.Module,
                      par: parallel.DataParallel) -> EvaluateFn:
        run_eval = par.wrap(functools.partial(eval_step, model=model), num_sharded=1, out_sharded=True)
        return lambda state, data: evaluate(run_eval, state, data.eval, config, par)

    def write_predictions(self, workdir: Path, predictions: dict[str, np.ndarray] | None, data: TaskData) -> None:
        """eval_predictions.json: every evaluated line's file, truth, reading and confidence."""
        rows = [{"file": str(f), "truth": str(t), "reading": str(r), "confidence": round(float(c), 4)}
                for f, t, r, c in zip(predictions["filenames"], predictions["truth"], predictions["reading"],
                                      predictions["confidence"])]
        workdir_lib.write_file(workdir / "eval_predictions.json",
                               lambda p: p.write_text(json.dumps(rows, indent=1) + "\n"))


TASK = LineReaderTask()
