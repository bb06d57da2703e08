"""The text detector and the line reader on onnxruntime, from the same shipped files as JAX's: no JAX.

`load_detector(folder)` and `load_line_reader(folder)` rebuild an ONNX graph from a weights folder's
``graph.json`` and ``params.msgpack`` (`models.graph_io.to_onnx`, onnx.helper) and return an
`infer.text_models.TextDetector` / `LineReader` whose calls run it on onnxruntime: the same call,
the same numbers as the JAX backend to float rounding (tests/infer/test_text_models.py).

  detector = load_detector()                 # the shipped weights; or load_detector(folder)
  prob = detector(detector.preprocess(photo)[0])

This module imports neither JAX nor flax, directly or through another module.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from svhn_jax.infer.text_models import (
    DETECTOR_DIR,
    LINE_READER_DIR,
    LineReader,
    TextDetector,
    TextModelError,
    read_info,
)
from svhn_jax.models import graph_io

INSTALL = "pip install -e '.[onnx]' (onnx==1.23.2 and onnxruntime==1.32.0)"


def session(folder: str | os.PathLike, extra_outputs: tuple[str, ...] = ()) -> Any:
    """An onnxruntime InferenceSession of a weights folder's graph (CPU), with `extra_outputs` (names
    of intermediate tensors) as outputs too."""
    try:
        import onnxruntime
    except ImportError:
        onnxruntime = None
    if onnxruntime is None or importlib.util.find_spec("onnx") is None:  # graph_io.to_onnx builds with onnx
        raise TextModelError(f"the ONNX backend needs onnx and onnxruntime: {INSTALL}")
    folder = Path(folder)
    try:
        graph = graph_io.read_json(folder / "graph.json")
        params = graph_io.read_params(folder / "params.msgpack")
        graph_io.check_params(graph, params)
        model = graph_io.to_onnx(graph, params, extra_outputs)
    except graph_io.GraphFileError as e:
        raise TextModelError(f"{folder}: {e}") from None
    return onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _run(folder: Path, output: str) -> Callable[[np.ndarray], np.ndarray]:
    s = session(folder)
    name = s.get_inputs()[0].name
    return lambda x: s.run([output], {name: np.ascontiguousarray(x, np.float32)})[0]


def load_detector(folder: str | os.PathLike | None = None) -> TextDetector:
    """The text detector of `folder` (default: the shipped one) on onnxruntime."""
    folder = Path(folder or DETECTOR_DIR)
    return TextDetector(run=_run(folder, "probability"), info=read_info(folder), backend="onnx")


def load_line_reader(folder: str | os.PathLike | None = None) -> LineReader:
    """The line reader of `folder` (default: the shipped one) on onnxruntime."""
    folder = Path(folder or LINE_READER_DIR)
    return LineReader(run=_run(folder, "probabilities"), info=read_info(folder), backend="onnx")
