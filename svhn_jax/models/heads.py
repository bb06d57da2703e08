"""Sequence heads, their loss and the one decoder from logits to a digit sequence.

Two head types, picked by ``config.head``:

- ``blank``  (the seed report): 5 softmaxes over 11 classes; class 10 means "no digit here".
  Logits: ``{"digits": [B, 5, 11]}``. Loss: mean over the 5 positions of the cross-entropy against
  the padded label (PAD = 10 after the last digit).
- ``length`` (Goodfellow et al. 2013): a softmax over the length {0, 1, 2, 3, 4, 5, >5} and 5
  softmaxes over the 10 digits. Logits: ``{"length": [B, 7], "digits": [B, 5, 10]}``. Loss:
  length cross-entropy plus the digit cross-entropies at the positions inside the true length.

`decode` turns either kind into the same prediction: a length [B], padded digits [B, 5] (PAD after
the last digit) and the confidence, the probability the model gives to the decoded sequence.
"""
from __future__ import annotations

from typing import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from svhn_jax.data.labels import MAX_DIGITS, PAD
from svhn_jax.models import decoding

NUM_LENGTH_CLASSES = MAX_DIGITS + 2  # 0..5 and ">5"
HEAD_TYPES = ("blank", "length")

Logits = Mapping[str, jax.Array]


class SequenceHeads(nn.Module):
    """Dense heads on a feature vector [B, F]."""

    head: str = "blank"
    kernel_init: nn.initializers.Initializer = nn.initializers.xavier_uniform()

    @nn.compact
    def __call__(self, features: jax.Array) -> dict[str, jax.Array]:
        dense = lambda n, name: nn.Dense(n, kernel_init=self.kernel_init,
                                         bias_init=nn.initializers.zeros, name=name)
        if self.head == "blank":
            digits = dense(MAX_DIGITS * (PAD + 1), "digits")(features)
            return {"digits": digits.reshape(-1, MAX_DIGITS, PAD + 1)}
        if self.head == "length":
            length = dense(NUM_LENGTH_CLASSES, "length")(features)
            digits = dense(MAX_DIGITS * 10, "digits")(features)
            return {"length": length, "digits": digits.reshape(-1, MAX_DIGITS, 10)}
        raise ValueError(f"unknown head {self.head!r}; choose one of {HEAD_TYPES}")


def head_type(logits: Logits) -> str:
    return "length" if "length" in logits else "blank"


def per_example_loss(logits: Logits, lengths: jax.Array, digits: jax.Array) -> jax.Array:
    """Cross-entropy of each example's label sequence, [B] float32."""
    digit_logits = logits["digits"].astype(jnp.float32)
    if head_type(logits) == "blank":
        ce = -jnp.take_along_axis(jax.nn.log_softmax(digit_logits), digits[..., None], -1)[..., 0]
        return ce.mean(-1)
    length_logp = jax.nn.log_softmax(logits["length"].astype(jnp.float32))
    length_ce = -jnp.take_along_axis(length_logp, lengths[:, None], -1)[:, 0]
    inside = jnp.arange(MAX_DIGITS)[None, :] < lengths[:, None]
    safe_digits = jnp.where(inside, digits, 0)
    digit_ce = -jnp.take_along_axis(jax.nn.log_softmax(digit_logits), safe_digits[..., None], -1)[..., 0]
    return length_ce + jnp.sum(jnp.where(inside, digit_ce, 0.0), -1)


def decode(logits: Logits) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Logits -> (length int32 [B], digits int32 [B, 5] padded with PAD, confidence float32 [B]):
    `decoding.decode_sequences` in jax.numpy (its docstring says how each head decodes)."""
    return decoding.decode_sequences(logits, jnp, jax.nn.log_softmax)
