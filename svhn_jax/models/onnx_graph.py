"""A small ONNX interpreter in JAX: an imported graph run as a jit-compiled, differentiable function.

`Graph` is a frozen ONNX graph (nodes: op, inputs, outputs, attributes; input and output names; the
constants that are settings, not weights), read from a graph dict (`svhn_jax.models.graph_io`:
``graph.json``). `apply(graph, params, x)` runs it: jit-compiled with the graph static (one program
per input shape), `params` a flat dict {initializer name: array} that `jax.grad` and optax work on.

Each op follows the ONNX operator spec (opsets 11-13 where they differ: Softmax's axis, Squeeze /
Unsqueeze / ReduceMean axes as attribute or input). Shape arithmetic (Shape, Slice, Squeeze,
Unsqueeze, Concat, Reshape, Transpose, Add/Sub/Mul/Div on numbers known at trace time) is done in numpy
on the concrete shapes of the traced arrays, so a graph whose widths are dynamic in ONNX compiles for
each width it meets. Convolutions keep ONNX's NCHW layout (`lax.conv_general_dilated`), with its pads,
strides, dilations, groups and auto_pad; Resize is nearest-neighbour with every ONNX coordinate
transformation and nearest mode; matrix products and convolutions run at full float32 precision
(no TF32 on GPUs). `OPS` lists the op types; a graph with others is refused when it is built.
This module imports neither onnx nor onnxruntime.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from svhn_jax.models import graph_io

HIGHEST = lax.Precision.HIGHEST


class GraphError(ValueError):
    """A graph this interpreter cannot run (an op or attribute it does not know, a dynamic shape)."""


@dataclasses.dataclass(frozen=True)
class Node:
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any]  # name -> value (lists as tuples, strings as str)
    name: str = ""


@dataclasses.dataclass(frozen=True, eq=False)
class Graph:
    """An imported graph; equal (and hashed) by the digest of its graph dict, so jit can key on it."""

    nodes: tuple[Node, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    constants: Mapping[str, np.ndarray]
    opset: int
    source: graph_io.GraphDict  # the graph dict it was read from (`to_dict`)
    digest: str

    @classmethod
    def from_dict(cls, graph: graph_io.GraphDict) -> "Graph":
        nodes = tuple(Node(n["op"], tuple(n["inputs"]), tuple(n["outputs"]),
                           {k: _value(kv) for k, kv in n["attrs"].items()}, n.get("name", ""))
                      for n in graph["nodes"])
        unknown = sorted({n.op for n in nodes} - OPS.keys())
        if unknown:
            raise GraphError(f"the interpreter has no {', '.join(unknown)}")
        constants = {k: graph_io.constant_array(v) for k, v in graph["constants"].items()}
        for a in constants.values():
            a.setflags(write=False)
        digest = hashlib.sha256(json.dumps(graph, sort_keys=True).encode()).hexdigest()
        return cls(nodes, tuple(graph["inputs"]), tuple(graph["outputs"]), constants, int(graph["opset"]),
                   graph, digest)

    @classmethod
    def load(cls, path) -> "Graph":
        """A ``graph.json`` file."""
        return cls.from_dict(graph_io.read_json(path))

    def to_dict(self) -> graph_io.GraphDict:
        return self.source

    def save(self, path) -> None:
        """Writes ``graph.json`` (`graph_io.to_json`)."""
        from pathlib import Path
        Path(path).write_text(graph_io.to_json(self.source))

    def __hash__(self) -> int:
        return hash(self.digest)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Graph) and other.digest == self.digest


def _value(kv: dict[str, Any]) -> Any:
    (kind, v), = kv.items()
    return tuple(v) if kind in ("ints", "floats", "strings") else v


def apply(graph: Graph, params: Mapping[str, Any], x: Any,
          outputs: tuple[str, ...] | None = None) -> dict[str, jax.Array]:
    """Runs `graph` on `x` (an array for a graph with one input, else {input name: array}) -> {output
    name: array} for the graph's outputs, or for the tensors named by `outputs` (intermediates too).
    Jit-compiled (graph and outputs static); differentiable in `params` and `x`."""
    if not isinstance(x, Mapping):
        if len(graph.inputs) != 1:
            raise GraphError(f"the graph has {len(graph.inputs)} inputs: give them as a dict")
        x = {graph.inputs[0]: x}
    return _apply(graph, dict(params), dict(x), tuple(outputs) if outputs else graph.outputs)


@functools.partial(jax.jit, static_argnames=("graph", "outputs"))
def _apply(graph: Graph, params: dict[str, Any], x: dict[str, Any], outputs: tuple[str, ...]) -> dict[str, jax.Array]:
    return evaluate(graph, params, x, outputs)


def evaluate(graph: Graph, params: Mapping[str, Any], x: Mapping[str, Any],
             outputs: tuple[str, ...] | None = None) -> dict[str, Any]:
    """`apply` without jit: the interpreter itself (numpy values stay numpy where all inputs are known)."""
    outputs = tuple(outputs) if outputs else graph.outputs
    env: dict[str, Any] = {"": None, **graph.constants, **params, **x}
    missing = [i for i in graph.inputs if i not in x]
    if missing:
        raise GraphError(f"missing graph inputs {missing}")
    for node in _needed(graph, outputs):
        try:
            args = [env[i] for i in node.inputs]
        except KeyError as e:
            raise GraphError(f"node {node.name} ({node.op}): no tensor {e}") from None
        result = OPS[node.op](_Ctx(node, graph.opset), *args)
        results = result if isinstance(result, tuple) else (result,)
        env.update(zip(node.outputs, results))
    missing = [o for o in outputs if o not in env]
    if missing:
        raise GraphError(f"the graph computes no {missing}")
    return {o: jnp.asarray(env[o]) for o in outputs}


def statistics(graph: Graph) -> frozenset[str]:
    """The initializers that are running statistics, not weights: each BatchNormalization's mean and
    variance. Training leaves them as imported (a variance an optimiser step pushes below zero is a NaN)."""
    return frozenset(name for node in graph.nodes if node.op == "BatchNormalization" for name in node.inputs[3:5])


def trainable(graph: Graph, params: Mapping[str, Any]) -> dict[str, bool]:
    """{name: whether training updates it} for `params`: every initializer but `statistics`, as a mask
    for optax (`optax.masked`, `optax.multi_transform`)."""
    frozen = statistics(graph)
    return {name: name not in frozen for name in params}


@functools.lru_cache(maxsize=64)
def _needed(graph: Graph, outputs: tuple[str, ...]) -> tuple[Node, ...]:
    """The nodes that `outputs` depend on, in graph order."""
    want, keep = set(outputs), []
    for node in reversed(graph.nodes):
        if want.intersection(node.outputs):
            keep.append(node)
            want.update(node.inputs)
    return tuple(reversed(keep))


@dataclasses.dataclass(frozen=True)
class _Ctx:
    node: Node
    opset: int

    def get(self, name: str, default: Any = None) -> Any:
        return self.node.attrs.get(name, default)

    def fail(self, what: str) -> GraphError:
        return GraphError(f"node {self.node.name} ({self.node.op}): {what}")


def _known(*values: Any) -> bool:
    """Whether every value is known at trace time (numpy, not traced)."""
    return all(v is None or isinstance(v, (np.ndarray, np.generic)) for v in values)


def _xp(*values: Any):
    return np if _known(*values) else jnp


def _static(ctx: _Ctx, value: Any, what: str) -> np.ndarray:
    if not _known(value):
        raise ctx.fail(f"its {what} must be known before the graph runs (a constant or a shape)")
    return np.asarray(value)


def _axes(ctx: _Ctx, axes_input: Any = None) -> tuple[int, ...] | None:
    """Axes from the attribute (older opsets) or from the input (newer); None when neither is given."""
    if axes_input is not None:
        return tuple(int(a) for a in _static(ctx, axes_input, "axes").ravel())
    axes = ctx.get("axes")
    return None if axes is None else tuple(int(a) for a in axes)


# --- element-wise -----------------------------------------------------------------------------

def _binary(f_np: Callable, f_jnp: Callable) -> Callable:
    def op(ctx, a, b):
        return f_np(a, b) if _known(a, b) else f_jnp(a, b)
    return op


def _div_np(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "iu":  # ONNX integer division truncates toward zero
        return (np.trunc(a / b)).astype(a.dtype)
    return a / b


def _pow(ctx, a, b):
    if _known(b) and np.asarray(b).size == 1:
        e = float(np.asarray(b).ravel()[0])
        if e == int(e) and abs(e) <= 4 and not _known(a):
            return lax.integer_pow(a, int(e))
    xp = _xp(a, b)
    return xp.power(a, b)


def _hard_sigmoid(ctx, x):
    alpha, beta = ctx.get("alpha", 0.2), ctx.get("beta", 0.5)
    return jnp.clip(x * np.float32(alpha) + np.float32(beta), 0.0, 1.0)


def _softmax(ctx, x):
    axis = ctx.get("axis", 1 if ctx.opset < 13 else -1)
    ndim = x.ndim
    axis = axis % ndim
    axes = tuple(range(axis, ndim)) if ctx.opset < 13 else (axis,)  # opset < 13: softmax over the flattened tail
    return jax.nn.softmax(x, axis=axes)


# --- convolutions and pools -------------------------------------------------------------------

def _spatial_pads(ctx: _Ctx, in_sizes, kernel, strides, dilations) -> list[tuple[int, int]]:
    """(begin, end) padding per spatial axis from ``pads`` or ``auto_pad``."""
    auto = ctx.get("auto_pad", "NOTSET")
    n = len(in_sizes)
    if auto in ("NOTSET", ""):
        pads = ctx.get("pads", (0,) * (2 * n))
        return [(int(pads[i]), int(pads[i + n])) for i in range(n)]
    if auto == "VALID":
        return [(0, 0)] * n
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise ctx.fail(f"auto_pad {auto}")
    out = []
    for size, k, s, d in zip(in_sizes, kernel, strides, dilations):
        total = max(0, (math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size)
        small = total // 2
        out.append((small, total - small) if auto == "SAME_UPPER" else (total - small, small))
    return out


def _conv(ctx, x, w, b=None):
    n = x.ndim - 2
    strides = tuple(ctx.get("strides", (1,) * n))
    dilations = tuple(ctx.get("dilations", (1,) * n))
    kernel = tuple(ctx.get("kernel_shape", w.shape[2:]))
    pads = _spatial_pads(ctx, x.shape[2:], kernel, strides, dilations)
    spec = tuple(range(n + 2))
    y = lax.conv_general_dilated(x, w, strides, pads, rhs_dilation=dilations,
                                 dimension_numbers=lax.ConvDimensionNumbers(spec, spec, spec),
                                 feature_group_count=int(ctx.get("group", 1)), precision=HIGHEST)
    return y if b is None else y + jnp.reshape(b, (1, -1) + (1,) * n)


def _conv_transpose(ctx, x, w, b=None):
    n = x.ndim - 2
    if ctx.get("auto_pad", "NOTSET") not in ("NOTSET", "") or ctx.get("output_shape") is not None:
        raise ctx.fail("auto_pad and output_shape are not supported (give pads)")
    strides = tuple(ctx.get("strides", (1,) * n))
    dilations = tuple(ctx.get("dilations", (1,) * n))
    pads = ctx.get("pads", (0,) * (2 * n))
    out_pad = ctx.get("output_padding", (0,) * n)
    group = int(ctx.get("group", 1))
    k = w.shape[2:]
    # W [C, M/g, k...] -> [M, C/g, k...], flipped: the transposed convolution as a dilated-input convolution
    c, m_g = w.shape[:2]
    w = jnp.reshape(w, (group, c // group, m_g, *k))
    w = jnp.swapaxes(w, 1, 2).reshape((group * m_g, c // group, *k))
    w = jnp.flip(w, axis=tuple(range(2, n + 2)))
    padding = [((k[i] - 1) * dilations[i] - pads[i], (k[i] - 1) * dilations[i] - pads[i + n] + out_pad[i])
               for i in range(n)]
    spec = tuple(range(n + 2))
    y = lax.conv_general_dilated(x, w, (1,) * n, padding, lhs_dilation=strides, rhs_dilation=dilations,
                                 dimension_numbers=lax.ConvDimensionNumbers(spec, spec, spec),
                                 feature_group_count=group, precision=HIGHEST)
    return y if b is None else y + jnp.reshape(b, (1, -1) + (1,) * n)


def _pool_geometry(ctx, x):
    n = x.ndim - 2
    kernel = tuple(ctx.get("kernel_shape"))
    strides = tuple(ctx.get("strides", (1,) * n))
    dilations = tuple(ctx.get("dilations", (1,) * n))
    pads = _spatial_pads(ctx, x.shape[2:], kernel, strides, dilations)
    extra = []  # ceil_mode: more padding at the end, so the last partial window is kept
    for size, k, s, d, (p0, p1) in zip(x.shape[2:], kernel, strides, dilations, pads):
        span = size + p0 + p1 - ((k - 1) * d + 1)
        out = (math.ceil(span / s) if ctx.get("ceil_mode", 0) else span // s) + 1
        if ctx.get("ceil_mode", 0) and (out - 1) * s >= size + p0:
            out -= 1  # a window may not start in the end padding
        extra.append(max(0, (out - 1) * s + (k - 1) * d + 1 - (size + p0 + p1)))
    return kernel, strides, dilations, pads, extra


def _max_pool(ctx, x):
    if len(ctx.node.outputs) > 1 and ctx.node.outputs[1]:
        raise ctx.fail("the Indices output is not supported")
    kernel, strides, dilations, pads, extra = _pool_geometry(ctx, x)
    padding = [(0, 0), (0, 0)] + [(p0, p1 + e) for (p0, p1), e in zip(pads, extra)]
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, *kernel), (1, 1, *strides), padding,
                             window_dilation=(1, 1, *dilations))


def _average_pool(ctx, x):
    kernel, strides, dilations, pads, extra = _pool_geometry(ctx, x)
    padding = [(0, 0), (0, 0)] + [(p0, p1 + e) for (p0, p1), e in zip(pads, extra)]
    window = dict(window_dimensions=(1, 1, *kernel), window_strides=(1, 1, *strides), padding=padding,
                  window_dilation=(1, 1, *dilations))
    total = lax.reduce_window(x, 0.0, lax.add, **window)
    ones = np.ones((1, 1, *x.shape[2:]), np.float32)
    if ctx.get("count_include_pad", 0):  # explicit pads count, the ceil_mode tail does not
        ones = np.pad(ones, [(0, 0), (0, 0)] + list(pads), constant_values=1.0)
        window["padding"] = [(0, 0), (0, 0)] + [(0, e) for e in extra]
    count = lax.reduce_window(jnp.asarray(ones), 0.0, lax.add, **window)
    return total / count


def _global_average_pool(ctx, x):
    return jnp.mean(x, axis=tuple(range(2, x.ndim)), keepdims=True)


def _batch_norm(ctx, x, scale, bias, mean, var):
    if len(ctx.node.outputs) > 1 and any(ctx.node.outputs[1:]):
        raise ctx.fail("training-mode outputs are not supported")
    shape = (1, -1) + (1,) * (x.ndim - 2)
    eps = np.float32(ctx.get("epsilon", 1e-5))
    r = lambda a: jnp.reshape(a, shape)
    return (x - r(mean)) / jnp.sqrt(r(var) + eps) * r(scale) + r(bias)


def _reduce_mean(ctx, x, axes=None):
    axes = _axes(ctx, axes)
    if axes is None or len(axes) == 0:
        if ctx.get("noop_with_empty_axes", 0):
            return x
        axes = tuple(range(x.ndim))
    xp = _xp(x)
    return xp.mean(x, axis=tuple(a % x.ndim for a in axes), keepdims=bool(ctx.get("keepdims", 1)))


def _matmul(ctx, a, b):
    if _known(a, b):
        return np.matmul(a, b)
    return jnp.matmul(a, b, precision=HIGHEST)


# --- Resize -----------------------------------------------------------------------------------

def _source_index(ctx, out_size: int, in_size: int, scale: np.float32) -> np.ndarray:
    """For each output position along one axis, the input position nearest-neighbour resizing reads
    (computed in float32, as onnxruntime does)."""
    mode = ctx.get("coordinate_transformation_mode", "half_pixel")
    i = np.arange(out_size, dtype=np.float32)
    f32 = np.float32
    if mode == "asymmetric":
        x = i / scale
    elif mode == "half_pixel":
        x = (i + f32(0.5)) / scale - f32(0.5)
    elif mode == "pytorch_half_pixel":
        x = (i + f32(0.5)) / scale - f32(0.5) if out_size > 1 else np.zeros_like(i)
    elif mode == "tf_half_pixel_for_nn":
        x = (i + f32(0.5)) / scale
    elif mode == "align_corners":
        x = i * f32(in_size - 1) / f32(out_size - 1) if out_size > 1 else np.zeros_like(i)
    else:
        raise ctx.fail(f"coordinate_transformation_mode {mode}")
    nearest = ctx.get("nearest_mode", "round_prefer_floor")
    if nearest == "floor":
        j = np.floor(x)
    elif nearest == "ceil":
        j = np.ceil(x)
    elif nearest == "round_prefer_floor":
        j = np.where(x == np.floor(x) + f32(0.5), np.floor(x), np.round(x))
    elif nearest == "round_prefer_ceil":
        j = np.where(x == np.floor(x) + f32(0.5), np.ceil(x), np.round(x))
    else:
        raise ctx.fail(f"nearest_mode {nearest}")
    return np.clip(j, 0, in_size - 1).astype(np.int32)


def _resize(ctx, x, roi=None, scales=None, sizes=None):
    if ctx.get("mode", "nearest") != "nearest":
        raise ctx.fail(f"mode {ctx.get('mode')} (only nearest)")
    if ctx.opset < 11:  # Resize-10: (X, scales), asymmetric coordinates
        scales, roi = roi, None
        ctx = _Ctx(dataclasses.replace(ctx.node, attrs={**ctx.node.attrs,
                                                        "coordinate_transformation_mode": "asymmetric"}), ctx.opset)
    in_shape = x.shape
    if sizes is not None and _static(ctx, sizes, "sizes").size:
        out_shape = tuple(int(s) for s in np.asarray(sizes))
        scale = [np.float32(o) / np.float32(i) for o, i in zip(out_shape, in_shape)]
    else:
        scale = [np.float32(s) for s in _static(ctx, scales, "scales").ravel()]
        out_shape = tuple(int(math.floor(i * float(s))) for i, s in zip(in_shape, scale))
    for axis, (o, i) in enumerate(zip(out_shape, in_shape)):
        if o != i or scale[axis] != 1:
            x = jnp.take(x, _source_index(ctx, o, i, scale[axis]), axis=axis)
    return x


# --- shapes -----------------------------------------------------------------------------------

def _shape(ctx, x):
    shape = np.array(np.shape(x), np.int64)
    start, end = ctx.get("start", 0), ctx.get("end")
    return shape[start:end]


def _slice(ctx, x, starts=None, ends=None, axes=None, steps=None):
    if ctx.opset < 10:
        starts, ends, axes = ctx.get("starts"), ctx.get("ends"), ctx.get("axes")
    starts = [int(v) for v in _static(ctx, starts, "starts").ravel()]
    ends = [int(v) for v in _static(ctx, ends, "ends").ravel()]
    axes = list(range(len(starts))) if axes is None else [int(a) for a in _static(ctx, axes, "axes").ravel()]
    steps = [1] * len(starts) if steps is None else [int(s) for s in _static(ctx, steps, "steps").ravel()]
    index = [slice(None)] * np.ndim(x)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        dim = np.shape(x)[axis]
        start = start + dim if start < 0 else start
        end = end + dim if end < 0 else end
        if step > 0:
            start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        else:
            start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
        index[axis % np.ndim(x)] = slice(start, None if end < 0 else end, step)
    return x[tuple(index)]


def _squeeze(ctx, x, axes=None):
    axes = _axes(ctx, axes)
    xp = _xp(x)
    if axes is None:
        axes = tuple(i for i, d in enumerate(np.shape(x)) if d == 1)
    return xp.squeeze(x, axis=tuple(a % np.ndim(x) for a in axes))


def _unsqueeze(ctx, x, axes=None):
    axes = _axes(ctx, axes)
    rank = np.ndim(x) + len(axes)
    shape = list(np.shape(x))
    for a in sorted(a % rank for a in axes):
        shape.insert(a, 1)
    return _xp(x).reshape(x, shape)


def _reshape(ctx, x, shape):
    shape = [int(s) for s in _static(ctx, shape, "shape").ravel()]
    if not ctx.get("allowzero", 0):
        shape = [np.shape(x)[i] if s == 0 else s for i, s in enumerate(shape)]
    return _xp(x).reshape(x, shape)


def _transpose(ctx, x):
    perm = ctx.get("perm", tuple(reversed(range(np.ndim(x)))))
    return _xp(x).transpose(x, perm)


def _concat(ctx, *xs):
    xs = [v for v in xs if v is not None]
    return _xp(*xs).concatenate(xs, axis=ctx.get("axis"))


def _unary(f_jnp: Callable, f_np: Callable | None = None) -> Callable:
    def op(ctx, x):
        if f_np is not None and _known(x):
            return f_np(x)
        return f_jnp(x)
    return op


OPS: dict[str, Callable[..., Any]] = {
    "Add": _binary(np.add, jnp.add),
    "Sub": _binary(np.subtract, jnp.subtract),
    "Mul": _binary(np.multiply, jnp.multiply),
    "Div": _binary(_div_np, jnp.divide),
    "Pow": _pow,
    "Sqrt": _unary(jnp.sqrt, np.sqrt),
    "Erf": _unary(lax.erf),
    "Identity": lambda ctx, x: x,
    "Relu": _unary(jax.nn.relu),
    "Sigmoid": _unary(jax.nn.sigmoid),
    "HardSigmoid": _hard_sigmoid,
    "Softmax": _softmax,
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "MaxPool": _max_pool,
    "AveragePool": _average_pool,
    "GlobalAveragePool": _global_average_pool,
    "BatchNormalization": _batch_norm,
    "ReduceMean": _reduce_mean,
    "MatMul": _matmul,
    "Resize": _resize,
    "Shape": _shape,
    "Slice": _slice,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Concat": _concat,
}
