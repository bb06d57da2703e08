"""The contract between a task and the trainer (scenic's model-with-its-loss, big_vision's trainer/evaluator split).

A task is stateless: every method is a function of the config, the model and the data. The trainer
owns the loop (lock, resume, steps, periodic evaluation / checkpoint / log, signals, results).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, NamedTuple, Protocol

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from svhn_jax.core import parallel


class TaskData(NamedTuple):
    """A run's data in memory."""

    train: dict[str, np.ndarray]      # arrays indexed together along their first axis by the batches
    eval: Any                         # what the task's evaluation reads
    input_shape: tuple[int, int, int]  # (H, W, C) of the model's input, for its initialisation


# (state, batch, rng) -> (this device's gradients, its statistics, new BatchNorm statistics)
GradientFn = Callable[..., tuple[Any, dict[str, jax.Array], Any]]
# (state on devices, data) -> (scalar metrics, per-example predictions or None)
EvaluateFn = Callable[[Any, TaskData], tuple[dict[str, Any], dict[str, np.ndarray] | None]]


class Task(Protocol):
    name: str
    sort_batches: bool  # each training batch's indices in increasing order (`pipeline.TrainBatches`)

    def check_config(self, config: ml_collections.ConfigDict) -> None:
        """Refuses values this task cannot train with, in one line (ValueError), before anything starts."""

    def read_data(self, config: ml_collections.ConfigDict, train_files: list[Path], eval_file: Path) -> TaskData:
        """The split files the data registry made, read into memory."""

    def compute_gradients(self, state: Any, batch: dict[str, jax.Array], rng: jax.Array, *, model: nn.Module,
                          config: ml_collections.ConfigDict) -> tuple[Any, dict[str, jax.Array], Any]:
        """This device's shard: gradients of its mean loss, its statistics (with "loss"), new batch statistics."""

    def make_evaluate(self, config: ml_collections.ConfigDict, model: nn.Module,
                      par: parallel.DataParallel) -> EvaluateFn:
        """The evaluation on the held-out data, compiled once per run."""

    def write_predictions(self, workdir: Path, predictions: dict[str, np.ndarray] | None, data: TaskData) -> None:
        """Files the task writes beside final_metrics.json (process 0 only)."""
