"""A reader model's answer for a batch of crops: uint8 images -> (lengths, digits, confidence).

One definition for evaluation during training (`tasks.reader.eval_step`) and for `infer.reader`, so both read
exactly the same way: the evaluation-mode input (`model_input.prepare_images`), the model in
evaluation mode, then `heads.decode`.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import ml_collections

from svhn_jax.data.model_input import prepare_images
from svhn_jax.models import heads

Reading = tuple[jax.Array, jax.Array, jax.Array]  # length int32 [B], digits int32 [B, 5], confidence [B]


def infer_sequences(model: nn.Module, config: ml_collections.ConfigDict, variables: dict[str, Any],
         images: jax.Array) -> tuple[Reading, heads.Logits]:
    """uint8 [B, H, W, C] -> ((lengths, digits, confidence), the logits they were decoded from).

    The logits are there for a loss; under jit, a caller that drops them costs nothing.
    """
    logits = model.apply(variables, prepare_images(images, config), train=False)
    return heads.decode(logits), logits
