"""An imported graph (`models.onnx_graph`) as a Flax module, so the one trainer can fine-tune it.

``GraphNet(folder)`` runs the graph of ``folder/graph.json`` on NHWC float images already normalised
as the weights expect, and returns the tensor named `output` (the line reader's pre-softmax CTC
``logits`` [N, T, 11]). Its one parameter, ``graph``, is the graph's flat {initializer name: array}
dict; it is *initialised from* ``folder/params.msgpack`` (the imported weights, or a fine-tune written
in the same format), so a fresh train state already holds the real-trained network: the trainer's
``init_from`` is not needed for it. `folder` "" is the shipped ``svhn_jax/pretrained/line_reader``.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from svhn_jax.core.errors import UserError
from svhn_jax.models import graph_io, onnx_graph

SHIPPED = Path(__file__).resolve().parents[1] / "pretrained" / "line_reader"


class WeightsError(UserError):
    """A weights folder without a readable graph.json / params.msgpack; the message is one line."""


@functools.lru_cache(maxsize=4)
def load(folder: str) -> tuple[onnx_graph.Graph, dict[str, np.ndarray]]:
    """(graph, float32 params) of a weights folder ("" = the shipped line reader); read once per process."""
    path = folder or str(SHIPPED)
    try:
        graph = onnx_graph.Graph.load(f"{path}/graph.json")
        params = graph_io.read_params(f"{path}/params.msgpack")
        graph_io.check_params(graph.to_dict(), params)
    except (OSError, graph_io.GraphFileError, onnx_graph.GraphError) as e:
        raise WeightsError(f"line_reader_weights={path}: cannot read its graph.json / params.msgpack ({e})") from None
    return graph, {k: np.asarray(v, np.float32) for k, v in params.items()}


class GraphNet(nn.Module):
    """NHWC float images -> the graph's tensor `output` (NCHW inside, as ONNX)."""

    folder: str = ""
    output: str = "logits"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        del train  # no dropout; the graph's BatchNorm runs on its stored statistics
        graph, initial = load(self.folder)
        params: Any = self.param("graph", lambda rng: {k: jnp.asarray(v) for k, v in initial.items()})
        if self.is_initializing():  # the parameters need no forward pass (nor its compilation)
            return jnp.zeros((x.shape[0], 0), x.dtype)
        nchw = jnp.transpose(x, (0, 3, 1, 2))
        return onnx_graph.evaluate(graph, params, {graph.inputs[0]: nchw}, (self.output,))[self.output]
