"""The train state and its optimiser: everything a training step changes, as one pytree.

`TrainState` is what the steps update and the checkpoints hold whole; `make_optimizer` reads the
optimiser and learning-rate schedule from the config.
"""
from __future__ import annotations

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training, as one pytree (checkpointed whole)."""

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any

    def variables(self) -> dict[str, Any]:
        """The model's variables: params, and batch_stats for models with BatchNorm."""
        return {"params": self.params, **({"batch_stats": self.batch_stats} if self.batch_stats else {})}


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


def create_train_state(rng: jax.Array, model: nn.Module, tx: optax.GradientTransformation,
                       shape: tuple[int, int, int]) -> TrainState:
    """Step 0: the model initialised from `rng` on inputs of `shape` (H, W, C), and the optimiser's state."""
    variables = jax.jit(lambda r: model.init(r, jnp.zeros((1, *shape), jnp.float32), train=False))(rng)
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params))
