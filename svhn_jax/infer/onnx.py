"""The reader and the localiser on onnxruntime: no JAX, no flax (numpy and onnxruntime only).

`svhn_jax.export` (`infer.onnx_export`) writes ``reader.onnx``, ``localiser.onnx`` and ``info.json`` into
a folder; the package ships those of its own weights (``svhn_jax/pretrained/onnx``, `SHIPPED`).
`load_reader(folder)` returns an `infer.reader.Reader` and `load_localiser(folder)` an
`infer.localiser.Localiser` that read exactly as the JAX ones (`Reader.load`, `Localiser.load`) to
float rounding, so `infer.whole_photo` and ``predict --backend=onnx`` use them unchanged:

  reader = load_reader()                          # the shipped graphs; or load_reader("onnx_models")
  lengths, digits, confidence = reader.read_crops(crops)   # uint8 [N, 32, 32, 1]
  localiser = load_localiser()
  boxes, confidence, p_none = localiser.locate([photo])

`OnnxModel` is one graph: called on a uint8 NHWC batch, it returns the model's outputs as a dict of
float32 arrays, the same names and values as ``model.apply(variables, prepare(images), train=False)``
in JAX; the readings are decoded from them by `models.decoding` in numpy. The graphs divide by 255 and
standardise each image themselves; the caller crops (reader) or letterboxes (localiser) as
``info.json``'s "caller_preprocessing" says. This module must not import JAX, directly or through
another module (tests/infer/test_onnx.py checks it).

Everything a folder's graphs must agree on is checked once, when they load (`load`, `load_reader`): one
uint8 NHWC input of fixed size, the role's outputs, the input ``info.json`` describes, a known crop
recipe of the reader's input size, the localiser's input of `models.decoding.SIZE`; a folder that does
not fit is an `OnnxModelError` naming the file at fault, never a failure per photo.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from svhn_jax.core.errors import UserError
from svhn_jax.infer.localiser import Localiser
from svhn_jax.infer.reader import Reader, Readings
from svhn_jax.models.decoding import SIZE, decode_sequences, softmax_np

# The graphs of the shipped weights (`svhn_jax.pretrained`'s folder; that package itself imports flax).
SHIPPED = Path(__file__).resolve().parents[1] / "pretrained" / "onnx"
INSTALL = "pip install -e '.[onnx]' (or pip install onnxruntime==1.32.0)"
OUTPUTS = {"reader": ("length", "digits"), "localiser": ("cells", "none")}  # what each role's decoder reads


class OnnxModelError(UserError):
    """An exported model that cannot be loaded, or a batch it cannot take; the message is one line."""


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise OnnxModelError(f"the ONNX backend needs onnxruntime, which is not installed: {INSTALL}") from None
    return onnxruntime


@dataclasses.dataclass
class OnnxModel:
    """One exported graph, ready to run: call it on a uint8 [N, H, W, C] batch."""

    role: str                     # "reader" or "localiser"
    session: Any                  # onnxruntime.InferenceSession
    input_name: str
    input_shape: tuple[int, ...]  # without the batch dimension
    output_names: list[str]
    info: dict[str, Any]          # its info.json entry ({} when the folder has none)
    path: str = ""                # the graph's file (named in errors)

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 [N, H, W, C] -> {output name: float32 array with N first}."""
        images = np.asarray(images)
        where = self.path or self.role
        if images.dtype != np.uint8:
            raise OnnxModelError(f"{where}: expected uint8 images, got {images.dtype}")
        if images.ndim == len(self.input_shape):
            images = images[None]
        if tuple(images.shape[1:]) != self.input_shape:
            raise OnnxModelError(f"{where}: expected images of shape [N, {', '.join(map(str, self.input_shape))}], "
                                 f"got {list(images.shape)}")
        if len(images) == 0:
            return {n: np.zeros((0, *self._output_shape(n)), np.float32) for n in self.output_names}
        try:
            outputs = self.session.run(self.output_names, {self.input_name: np.ascontiguousarray(images)})
        except Exception as e:  # onnxruntime's own errors share no base class
            raise OnnxModelError(f"{where}: onnxruntime cannot run it ({type(e).__name__}: {e})") from None
        return dict(zip(self.output_names, outputs))

    def _output_shape(self, name: str) -> tuple[int, ...]:
        shape = next(o.shape for o in self.session.get_outputs() if o.name == name)
        return tuple(int(d) for d in shape[1:])


def session_options(threads: int = 0) -> Any:
    """onnxruntime's options: all graph optimisations; `threads` > 0 caps the intra-op threads (0: one per core)."""
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    return options


def _info(folder: Path, role: str) -> dict[str, Any]:
    """`role`'s entry of ``folder/info.json`` ({} when the folder has none); `OnnxModelError` naming the file
    when it is not an export's (not JSON, not an object, a folder)."""
    path = folder / "info.json"
    if not path.exists() and not path.is_symlink():
        return {}
    try:
        info = json.loads(path.read_text())
    except OSError as e:
        raise OnnxModelError(f"{path}: cannot read it ({e.strerror or e})") from None
    except ValueError as e:  # not JSON, not UTF-8
        raise OnnxModelError(f"{path}: not JSON ({e})") from None
    entry = info.get(role, {}) if isinstance(info, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("file", ""), str) or "/" in entry.get("file", ""):
        raise OnnxModelError(f"{path}: not the info.json of python -m svhn_jax.export (expected an object whose "
                             f'"{role}" is an object naming its "file" in the folder)')
    return entry


def _fixed(shape: Any) -> tuple[int, ...] | None:
    """The dimensions after the batch's as ints, or None when one is not fixed (a name, or unknown)."""
    dims = list(shape or [])[1:]
    return tuple(dims) if dims and all(isinstance(d, int) and d > 0 for d in dims) else None


def _graph_problem(session: Any, role: str, info: dict[str, Any]) -> str | None:
    """Why the loaded graph cannot serve as `role` (what `OnnxModel` and its decoder expect), or None."""
    inputs, outputs = session.get_inputs(), [o.name for o in session.get_outputs()]
    if len(inputs) != 1 or inputs[0].type != "tensor(uint8)" or len(inputs[0].shape or []) != 4 \
            or _fixed(inputs[0].shape) is None:
        got = ", ".join(f"{i.type} {list(i.shape or [])}" for i in inputs) or "none"
        return f"expected one uint8 input [N, H, W, C] of fixed H, W, C, got {got}"
    missing = [n for n in OUTPUTS[role] if n not in outputs]
    if missing:
        return f"not a {role} graph: no output {', '.join(missing)} (its outputs: {', '.join(outputs) or 'none'})"
    shape = _fixed(inputs[0].shape)
    described = info.get("input", {}).get("shape") if isinstance(info.get("input"), dict) else None
    if described is not None and _fixed(described) != shape:
        return (f"info.json says it takes {list(described)}, the graph takes {['N', *shape]}: an info.json of "
                "another export")
    if role == "localiser" and shape != (SIZE, SIZE, 3):
        return f"a localiser takes [N, {SIZE}, {SIZE}, 3] photos, this graph {['N', *shape]}"
    return None


def load(folder: str | os.PathLike | None = None, role: str = "reader", threads: int = 0) -> OnnxModel:
    """The exported ``folder/<role>.onnx`` (`folder` None: the shipped graphs) on onnxruntime's CPU provider,
    checked against its role and its ``info.json`` entry: `OnnxModelError` (one line naming the file) when
    it cannot serve."""
    folder = Path(folder) if folder else SHIPPED
    ort = _onnxruntime()
    info = _info(folder, role)
    path = folder / info.get("file", f"{role}.onnx")
    again = f"python -m svhn_jax.export --format=onnx --out={folder} writes it"
    try:
        if not path.is_file():
            hint = "; predict --localiser=none reads without one" if role == "localiser" else ""
            raise OnnxModelError(f"{folder} holds no exported {role} ({path.name}): {again}{hint}")
        session = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
    except OnnxModelError:
        raise
    except (OSError, ValueError) as e:
        raise OnnxModelError(f"cannot load the exported {role} from {folder} ({e})") from None
    except Exception as e:  # onnxruntime's own errors share no base class with these
        raise OnnxModelError(f"cannot load the exported {role} from {folder} ({type(e).__name__}: {e})") from None
    problem = _graph_problem(session, role, info)
    if problem:
        raise OnnxModelError(f"{path}: {problem}; {again} again")
    (inp,) = session.get_inputs()
    return OnnxModel(role=role, session=session, input_name=inp.name, input_shape=_fixed(inp.shape),
                     output_names=[o.name for o in session.get_outputs()], info=info, path=str(path))


@dataclasses.dataclass(frozen=True)
class GraphConfig:
    """What `infer.reader` and `infer.whole_photo` ask of a reader's config, from info.json."""

    recipe: str
    model: str = ""
    source: str = ""
    params_sha256: str = ""


def _recipe(model: OnnxModel) -> str:
    """The crops' recipe: info.json's, else told by the input shape (32 x 32 grey: the shipped reader's);
    checked against the graph's input at load, so that no photo is cropped for a graph it does not fit."""
    from svhn_jax.data.preprocess import RECIPES

    def crops(name: str) -> tuple[int, int, int]:
        size, grey = RECIPES[name]
        return size, size, 1 if grey else 3

    recipe = model.info.get("recipe")
    info = Path(model.path).with_name("info.json")
    if recipe:
        if recipe not in RECIPES:
            raise OnnxModelError(f"{info}: the reader's recipe {recipe!r} is none of {', '.join(RECIPES)}")
        if crops(recipe) != model.input_shape:
            raise OnnxModelError(f"{info}: the reader's recipe {recipe} makes {list(crops(recipe))} crops, "
                                 f"{model.path} takes {list(model.input_shape)}: an info.json of another export")
        return recipe
    for name in RECIPES:
        if crops(name) == model.input_shape:
            return name
    raise OnnxModelError(f"{model.path}: the reader takes {list(model.input_shape)} crops, no known recipe's")


def load_reader(folder: str | os.PathLike | None = None, threads: int = 0) -> Reader:
    """An `infer.reader.Reader` running ``folder/reader.onnx`` (None: the shipped graph), decoding in numpy."""
    model = load(folder, "reader", threads)

    def run(images: np.ndarray) -> Readings:
        return decode_sequences(model(images))

    config = GraphConfig(recipe=_recipe(model), model=model.info.get("model", ""),
                         source=model.info.get("source", ""), params_sha256=model.info.get("params_sha256", ""))
    return Reader(config=config, run=run, batch_size=0)  # the batch is dynamic: every crop in one call


def load_localiser(folder: str | os.PathLike | None = None, threads: int = 0) -> Localiser:
    """An `infer.localiser.Localiser` running ``folder/localiser.onnx`` (None: the shipped graph)."""
    return Localiser(run=load(folder, "localiser", threads), softmax=softmax_np)
