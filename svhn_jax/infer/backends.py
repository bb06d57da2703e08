"""The reader, localiser and text models (detector, line reader) a command reads with, for its backend:
decided here for predict,
score_photos and the photo page alike.

JAX: a user's runs (``--workdir``, ``--localiser``) or the shipped weights (`infer.weights`), their
programs kept in the persistent compilation cache. ONNX: the graphs ``python -m svhn_jax.export``
wrote (default: the shipped ones), on onnxruntime; this module imports JAX only for the JAX backend.
"""
from __future__ import annotations

from typing import Any

from svhn_jax.infer.reader import Reader

BACKENDS = ("jax", "onnx")


def load_models(backend: str, workdir: str | None, localiser: str, onnx_dir: str = "",
                cache_dir: str = "") -> tuple[Reader, Any]:
    """(reader, localiser or None for `localiser` "none") of the backend: `workdir` / `localiser` name runs
    ("" : the shipped ones), `onnx_dir` a folder of graphs ("" : the shipped ones), `cache_dir` the
    compilation cache ("" : the default, "none": off)."""
    from svhn_jax.infer import whole_photo
    if backend == "onnx":
        from svhn_jax.infer import onnx, onnx_text
        folder = onnx_dir or None
        whole_photo.set_text_models(whole_photo.TextModels(onnx_text.load_detector(), onnx_text.load_line_reader()))
        return onnx.load_reader(folder), None if localiser == "none" else onnx.load_localiser(folder)
    from svhn_jax.core import compilation_cache
    from svhn_jax.infer.localiser import Localiser
    from svhn_jax.infer.text_models import LineReader, TextDetector
    if cache_dir != "none":
        compilation_cache.enable(cache_dir or None)
    whole_photo.set_text_models(whole_photo.TextModels(TextDetector.load(cache_dir=cache_dir),
                                                       LineReader.load(cache_dir=cache_dir)))
    return Reader.load(workdir), None if localiser == "none" else Localiser.load(localiser or None)
