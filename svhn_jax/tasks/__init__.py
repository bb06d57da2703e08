"""Tasks: what a training run learns, chosen by ``config.task`` (`get`).

Each task (`base.Task`) supplies what the one training loop (`svhn_jax.trainer`) needs: its data
read into memory, the per-device gradients of its loss, its evaluation and what it writes besides
final_metrics.json. The loop, checkpoints, resume, parallelism and signals are the trainer's.
"""
from __future__ import annotations

import importlib

from svhn_jax.tasks.base import Task

# config.task -> module under svhn_jax.tasks exposing TASK (imported on first use)
REGISTRY = {"reader": "reader", "localiser": "localiser", "line_reader": "line_reader"}


def get(name: str) -> Task:
    """The task called `name`."""
    if name not in REGISTRY:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(REGISTRY)}")
    return importlib.import_module(f"svhn_jax.tasks.{REGISTRY[name]}").TASK
