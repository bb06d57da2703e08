"""The files of an imported graph, and their conversion from and to ONNX: numpy only (no JAX, no flax).

A graph folder holds ``graph.json`` (the nodes, `to_json` / `read_json`) and ``params.msgpack`` (the
trainable tensors, flax's msgpack format, `write_params` / `read_params`: the same bytes as
``flax.serialization.msgpack_serialize`` of the flat dict, read here without flax). ``graph.json``:

  {"format": "svhn_jax.onnx_graph/1", "opset": 11,
   "inputs": {"x": [null, 3, null, null]},            # name -> shape (null: any size)
   "outputs": ["probability"],
   "nodes": [{"op": "Conv", "name": "...", "inputs": ["x", "w"], "outputs": ["y"],
              "attrs": {"strides": {"ints": [2, 2]}, "auto_pad": {"s": "SAME_UPPER"}, "alpha": {"f": 0.2}}}],
   "constants": {"shape.0": {"dtype": "int64", "shape": [1], "values": [3]}},   # never trained
   "params": {"conv.w": {"dtype": "float32", "shape": [24, 3, 3, 3]}}}         # what params.msgpack holds

An input name of "" (an ONNX optional input left out) stays "". Attribute values keep their ONNX kind
("i", "f", "s", "ints", "floats", "strings"), so the graph goes back to ONNX unchanged (`to_onnx`).

`from_onnx` reads an ONNX ModelProto into (graph dict, params): float initializers become params (what
optax trains), except those read as settings (Resize's scales, a Reshape's shape; `STATIC_INPUTS`) and
single numbers (GELU's 1/sqrt(2), epsilons), which become constants with every integer initializer.
``onnx`` is imported only by `from_onnx` and `to_onnx`.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

FORMAT = "svhn_jax.onnx_graph/1"
GraphDict = dict[str, Any]
# op -> the input positions that are settings (read at trace time as numbers), not data
STATIC_INPUTS = {"Resize": (1, 2, 3), "Upsample": (1,), "Reshape": (1,), "Slice": (1, 2, 3, 4),
                 "Squeeze": (1,), "Unsqueeze": (1,), "ReduceMean": (1,), "Expand": (1,), "Tile": (1,)}
_ATTR_KINDS = ("i", "f", "s", "ints", "floats", "strings")
_NDARRAY_EXT = 1  # flax.serialization._MsgpackExtType.ndarray


class GraphFileError(ValueError):
    """A graph file that cannot be read, or a graph that cannot be converted."""


# --- graph.json --------------------------------------------------------------------------------

def to_json(graph: GraphDict) -> str:
    """The text of ``graph.json`` (keys in a fixed order, one node a line: diffs stay readable)."""
    head = {k: graph[k] for k in ("format", "opset", "inputs", "outputs")}
    lines = [json.dumps(head)[:-1] + ', "nodes": [']
    lines += [json.dumps(n) + ("," if i < len(graph["nodes"]) - 1 else "") for i, n in enumerate(graph["nodes"])]
    lines.append(f'], "constants": {json.dumps(graph["constants"])}, "params": {json.dumps(graph["params"])}}}')
    return "\n".join(lines) + "\n"


def read_json(path: str | os.PathLike) -> GraphDict:
    """``graph.json`` -> the graph dict (checked: its format and every key)."""
    try:
        graph = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise GraphFileError(f"{path}: cannot read the graph ({e})") from None
    if not isinstance(graph, dict) or graph.get("format") != FORMAT:
        raise GraphFileError(f"{path}: not a graph file of format {FORMAT}")
    missing = [k for k in ("opset", "inputs", "outputs", "nodes", "constants", "params") if k not in graph]
    if missing:
        raise GraphFileError(f"{path}: the graph lacks {', '.join(missing)}")
    return graph


def constant_array(entry: dict[str, Any]) -> np.ndarray:
    """A ``constants`` entry -> its numpy array."""
    return np.array(entry["values"], dtype=entry["dtype"]).reshape(entry["shape"])


def constant_entry(a: np.ndarray) -> dict[str, Any]:
    a = np.asarray(a)
    return {"dtype": a.dtype.name, "shape": list(a.shape), "values": a.ravel().tolist()}


# --- params.msgpack ------------------------------------------------------------------------------

def params_bytes(params: dict[str, np.ndarray]) -> bytes:
    """The flax msgpack bytes of a flat dict of arrays (``flax.serialization.msgpack_serialize``'s)."""
    def pack(x):
        if isinstance(x, np.ndarray):
            a = np.ascontiguousarray(x)
            return msgpack.ExtType(_NDARRAY_EXT, msgpack.packb((a.shape, a.dtype.name, a.tobytes("C")),
                                                               use_bin_type=True))
        raise TypeError(f"cannot store {type(x).__name__}")
    return msgpack.packb({k: np.asarray(v) for k, v in params.items()}, default=pack, strict_types=True)


def read_params(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``params.msgpack`` -> {name: numpy array} (what ``flax.serialization.msgpack_restore`` gives)."""
    def unpack(code, data):
        if code != _NDARRAY_EXT:
            raise GraphFileError(f"{path}: unexpected msgpack extension {code}")
        shape, dtype, buffer = msgpack.unpackb(data, raw=True)
        return np.frombuffer(buffer, dtype=np.dtype(dtype.decode())).reshape(shape)
    try:
        params = msgpack.unpackb(Path(path).read_bytes(), ext_hook=unpack, raw=False)
    except (OSError, ValueError, msgpack.UnpackException) as e:
        raise GraphFileError(f"{path}: cannot read the parameters ({e})") from None
    if not isinstance(params, dict) or not all(isinstance(v, np.ndarray) for v in params.values()):
        raise GraphFileError(f"{path}: not a flat dict of arrays")
    return params


def params_sha256(params: dict[str, Any]) -> str:
    """`core.workdir.tree_sha256` of a flat dict of arrays (the project's ``params_sha256``), without JAX:
    SHA-256 over (path, dtype, shape, bytes) in sorted path order, a path written as jax's keystr."""
    h = hashlib.sha256()
    for path, name in sorted((f"[{name!r}]", name) for name in params):
        a = np.ascontiguousarray(np.asarray(params[name]))
        h.update(f"{path}|{a.dtype}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def check_params(graph: GraphDict, params: dict[str, np.ndarray]) -> None:
    """Raises `GraphFileError` unless `params` holds exactly the graph's params, in their shapes."""
    want = {k: tuple(v["shape"]) for k, v in graph["params"].items()}
    have = {k: tuple(np.shape(v)) for k, v in params.items()}
    if want.keys() != have.keys():
        raise GraphFileError(f"the parameters do not match the graph: missing {sorted(want.keys() - have.keys())[:3]}, "
                             f"extra {sorted(have.keys() - want.keys())[:3]}")
    wrong = [k for k in want if want[k] != have[k]]
    if wrong:
        raise GraphFileError(f"parameter {wrong[0]} has shape {list(have[wrong[0]])}, the graph wants "
                             f"{list(want[wrong[0]])}")


# --- ONNX ----------------------------------------------------------------------------------------

def _attr(a: Any) -> dict[str, Any]:
    import onnx
    v = onnx.helper.get_attribute_value(a)
    kind = {onnx.AttributeProto.INT: "i", onnx.AttributeProto.FLOAT: "f", onnx.AttributeProto.STRING: "s",
            onnx.AttributeProto.INTS: "ints", onnx.AttributeProto.FLOATS: "floats",
            onnx.AttributeProto.STRINGS: "strings"}.get(a.type)
    if kind is None:
        raise GraphFileError(f"attribute {a.name} of type {onnx.AttributeProto.AttributeType.Name(a.type)} "
                             "is not supported")
    if kind == "s":
        v = v.decode()
    elif kind == "strings":
        v = [s.decode() for s in v]
    elif kind in ("ints", "floats"):
        v = list(v)
    return {kind: v}


def from_onnx(model: Any) -> tuple[GraphDict, dict[str, np.ndarray]]:
    """An onnx ModelProto -> (graph dict, params {name: float array})."""
    from onnx import numpy_helper
    g = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        raise GraphFileError("the model has no default-domain opset")
    initializers = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    aliases = {n.output[0]: n.input[0] for n in g.node if n.op_type == "Identity"}
    settings = set()
    for n in g.node:
        for i in STATIC_INPUTS.get(n.op_type, ()):
            if i < len(n.input) and n.input[i]:
                name = n.input[i]
                while name in aliases:
                    name = aliases[name]
                settings.add(name)
    params, constants = {}, {}
    for name, a in initializers.items():
        trainable = a.dtype.kind == "f" and name not in settings and not (a.ndim <= 1 and a.size <= 1)
        if trainable:
            params[name] = np.asarray(a, np.float32) if a.dtype == np.float64 else np.asarray(a)
        else:
            constants[name] = constant_entry(a)
    graph_inputs = [i for i in g.input if i.name not in initializers]

    def dims(value_info):
        return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]

    nodes = [{"op": n.op_type, "name": n.name, "inputs": list(n.input), "outputs": list(n.output),
              "attrs": {a.name: _attr(a) for a in n.attribute}} for n in g.node]
    unknown = sorted({n.domain for n in g.node if n.domain not in ("", "ai.onnx")})
    if unknown:
        raise GraphFileError(f"operators of domain {unknown[0]} are not supported")
    graph = {"format": FORMAT, "opset": int(opset), "inputs": {i.name: dims(i) for i in graph_inputs},
             "outputs": [o.name for o in g.output], "nodes": nodes, "constants": constants,
             "params": {k: {"dtype": v.dtype.name, "shape": list(v.shape)} for k, v in params.items()}}
    return graph, params


def to_onnx(graph: GraphDict, params: dict[str, np.ndarray], extra_outputs: tuple[str, ...] = ()) -> Any:
    """(graph dict, params) -> an onnx ModelProto computing the same (params stored as float32);
    `extra_outputs` names intermediate tensors to output too (float32, shapes left open)."""
    from onnx import TensorProto, helper, numpy_helper
    nodes = []
    for n in graph["nodes"]:
        attrs = {}
        for name, kv in n["attrs"].items():
            (kind, value), = kv.items()
            if kind not in _ATTR_KINDS:
                raise GraphFileError(f"node {n['name']}: attribute kind {kind} is not supported")
            attrs[name] = value
        nodes.append(helper.make_node(n["op"], n["inputs"], n["outputs"], name=n["name"], **attrs))
    inits = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in params.items()]
    inits += [numpy_helper.from_array(constant_array(v), k) for k, v in graph["constants"].items()]
    inputs = [helper.make_tensor_value_info(k, TensorProto.FLOAT, [d if d is not None else f"{k}_d{j}"
                                                                   for j, d in enumerate(shape)])
              for k, shape in graph["inputs"].items()]
    outputs = [helper.make_tensor_value_info(k, TensorProto.FLOAT, None)
               for k in [*graph["outputs"], *extra_outputs]]
    model = helper.make_model(helper.make_graph(nodes, "svhn_jax", inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", graph["opset"])])
    model.ir_version = min(model.ir_version, 10)  # what onnxruntime 1.32 reads
    return model  # not onnx.checker'd: it wants the outputs' shapes, which onnxruntime infers
