"""Model registry: `create_model(config)` picks a model family by ``config.model``.

Every reader maps a float image batch [B, H, W, C] to the logits of `heads.SequenceHeads` (the
localiser, to its heat map: `models/localiser.py`), takes ``train`` as a keyword (dropout and
BatchNorm behaviour), and keeps any BatchNorm running averages in the ``batch_stats`` collection.
A family's module is imported when a model of it is made, so `models.decoding` (what the outputs
mean, numpy only) is importable without JAX (the ONNX path).
"""
from __future__ import annotations

import importlib
from typing import Any

import ml_collections

# config.model -> (module under svhn_jax.models, the function of the config that builds the module)
_REGISTRY: dict[str, tuple[str, Any]] = {
    "seed_cnn": ("seed_cnn", lambda m, c: m.SeedCNN(head=c.head)),
    "goodfellow": ("goodfellow", lambda m, c: m.Goodfellow(head=c.head, first_layer=c.goodfellow_first_layer,
                                                           dropout_rate=c.dropout_rate,
                                                           dtype=m.jnp.dtype(c.model_dtype))),
    "localiser": ("localiser", lambda m, c: m.LocaliserNet()),
    "line_reader": ("graph_net", lambda m, c: m.GraphNet(folder=c.get("line_reader_weights", ""))),
    "reader_cnn": ("reader_cnn", lambda m, c: m.ReaderCNN(head=c.head, dropout_rate=c.dropout_rate)),
    "resnet18": ("resnet", lambda m, c: m.ResNet18(head=c.head, dropout_rate=c.dropout_rate,
                                                           dtype=m.jnp.dtype(c.model_dtype))),
}


# Models whose training step averages BatchNorm statistics across devices inside the program (an
# all-reduce); kept by hand because it is needed before JAX may start (tests check it against init).
BATCH_NORM_MODELS = frozenset({"goodfellow", "resnet18"})


def model_names() -> list[str]:
    return sorted(_REGISTRY)


def create_model(config: ml_collections.ConfigDict) -> Any:
    """The flax module ``config.model`` names, built from the config's keys."""
    if config.model not in _REGISTRY:
        raise ValueError(f"unknown model {config.model!r}; choose one of {model_names()}")
    module, build = _REGISTRY[config.model]
    return build(importlib.import_module(f"svhn_jax.models.{module}"), config)
