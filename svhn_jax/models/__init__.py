"""Model registry: `create_model(config)` picks a model family by ``config.model``.

Every reader maps a float image batch [B, H, W, C] to the logits of `heads.SequenceHeads` (the
localiser, to its heat map: `models/localiser.py`), takes
``train`` as a keyword (dropout and BatchNorm behaviour), and keeps any BatchNorm running averages
in the ``batch_stats`` collection.
"""
from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from svhn_jax.models.goodfellow import Goodfellow
from svhn_jax.models.localiser import LocaliserNet
from svhn_jax.models.reader_cnn import ReaderCNN
from svhn_jax.models.resnet import ResNet18
from svhn_jax.models.seed_cnn import SeedCNN

_REGISTRY: dict[str, Callable[[ml_collections.ConfigDict], nn.Module]] = {
    "seed_cnn": lambda c: SeedCNN(head=c.head),
    "goodfellow": lambda c: Goodfellow(head=c.head, first_layer=c.goodfellow_first_layer,
                                       dropout_rate=c.dropout_rate, dtype=jnp.dtype(c.model_dtype)),
    "localiser": lambda c: LocaliserNet(),
    "reader_cnn": lambda c: ReaderCNN(head=c.head, dropout_rate=c.dropout_rate),
    "resnet18": lambda c: ResNet18(head=c.head, dropout_rate=c.dropout_rate,
                                   dtype=jnp.dtype(c.model_dtype)),
}


# Models whose training step averages BatchNorm statistics across devices inside the program (an
# all-reduce); kept by hand because it is needed before JAX may start (tests check it against init).
BATCH_NORM_MODELS = frozenset({"goodfellow", "resnet18"})


def model_names() -> list[str]:
    return sorted(_REGISTRY)


def create_model(config: ml_collections.ConfigDict) -> nn.Module:
    if config.model not in _REGISTRY:
        raise ValueError(f"unknown model {config.model!r}; choose one of {model_names()}")
    return _REGISTRY[config.model](config)
