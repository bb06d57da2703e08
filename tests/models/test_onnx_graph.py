"""The ONNX interpreter (`models.onnx_graph`) op by op against onnxruntime, on small hand-made graphs.

Each graph is built with onnx.helper, run by onnxruntime and by `onnx_graph.apply` (through
`graph_io.from_onnx`, the importer's path): the outputs must agree to float32 rounding. The graph
files (graph.json, params.msgpack) round-trip, and the msgpack is flax's.
"""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper

from svhn_jax.models import graph_io, onnx_graph

RNG = np.random.default_rng(0)


def rand(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def run_both(nodes, inputs, initializers=None, outputs=("y",), opset=11):
    """(onnxruntime's outputs, the interpreter's) of a graph of `nodes`."""
    initializers = initializers or {}
    graph = helper.make_graph(
        nodes, "t",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v.shape)) for k, v in inputs.items()],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(list(outputs), inputs)
    g, params = graph_io.from_onnx(model)
    got = onnx_graph.apply(onnx_graph.Graph.from_dict(g), params, inputs if len(inputs) > 1 else
                           next(iter(inputs.values())))
    return want, [np.asarray(got[o]) for o in outputs]


def check(nodes, inputs, initializers=None, opset=11, atol=2e-5, outputs=("y",)):
    want, got = run_both(nodes, inputs, initializers, outputs, opset)
    for w, g in zip(want, got):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, atol=atol, rtol=1e-5)


CONVS = [
    dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
    dict(kernel_shape=[3, 3], pads=[0, 2, 1, 0], strides=[1, 2], dilations=[2, 1]),
    dict(kernel_shape=[2, 2], auto_pad="SAME_UPPER"),
    dict(kernel_shape=[4, 3], auto_pad="SAME_LOWER", strides=[2, 2]),
    dict(kernel_shape=[3, 3], auto_pad="VALID", strides=[2, 1]),
    dict(kernel_shape=[1, 7], pads=[0, 3, 0, 3], group=4),   # depthwise, as the recogniser's
    dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=2),   # grouped
]


@pytest.mark.parametrize("attrs", CONVS, ids=str)
@pytest.mark.parametrize("bias", [True, False])
def test_conv(attrs, bias):
    group = attrs.get("group", 1)
    w = rand(8 if group != 4 else 4, 4 // group, *attrs["kernel_shape"])
    inits = {"w": w, "b": rand(w.shape[0])} if bias else {"w": w}
    node = helper.make_node("Conv", ["x", "w", "b"] if bias else ["x", "w"], ["y"], **attrs)
    check([node], {"x": rand(2, 4, 11, 13)}, inits)


def test_conv_1d():
    check([helper.make_node("Conv", ["x", "w"], ["y"], pads=[2, 1], strides=[2])],
          {"x": rand(2, 3, 17)}, {"w": rand(5, 3, 4)})


CONV_TRANSPOSES = [
    dict(kernel_shape=[2, 2], strides=[2, 2]),                                   # the detector's
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 2]),
    dict(kernel_shape=[3, 3], strides=[2, 3], output_padding=[1, 2]),
    dict(kernel_shape=[3, 2], strides=[1, 2], dilations=[2, 1], group=2),
]


@pytest.mark.parametrize("attrs", CONV_TRANSPOSES, ids=str)
def test_conv_transpose(attrs):
    group = attrs.get("group", 1)
    check([helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], **attrs)], {"x": rand(2, 4, 5, 6)},
          {"w": rand(4, 6 // group, *attrs["kernel_shape"]), "b": rand(6)})


POOLS = [
    ("MaxPool", dict(kernel_shape=[2, 2], strides=[1, 1], auto_pad="SAME_UPPER")),  # the graphs'
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 1])),
    ("MaxPool", dict(kernel_shape=[3, 2], strides=[2, 2], ceil_mode=1)),
    ("MaxPool", dict(kernel_shape=[2, 2], strides=[1, 1], dilations=[2, 2])),
    ("AveragePool", dict(kernel_shape=[3, 2], strides=[3, 2])),                      # the recogniser's
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)),
    ("AveragePool", dict(kernel_shape=[2, 3], auto_pad="SAME_UPPER")),
]


@pytest.mark.parametrize("op,attrs", POOLS, ids=str)
def test_pools(op, attrs):
    check([helper.make_node(op, ["x"], ["y"], **attrs)], {"x": rand(2, 3, 10, 9)})


def test_global_average_pool_and_reduce_mean():
    check([helper.make_node("GlobalAveragePool", ["x"], ["y"])], {"x": rand(2, 3, 10, 9)})
    check([helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=1)], {"x": rand(2, 3, 10, 9)})
    check([helper.make_node("ReduceMean", ["x"], ["y"], axes=[-1])], {"x": rand(2, 5, 7)})
    check([helper.make_node("ReduceMean", ["x"], ["y"], axes=[0, 2], keepdims=0)], {"x": rand(2, 5, 7)})
    check([helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=1)], {"x": rand(2, 5, 7)},
          {"axes": np.array([1], np.int64)}, opset=18)


RESIZE_MODES = ["asymmetric", "half_pixel", "pytorch_half_pixel", "align_corners", "tf_half_pixel_for_nn"]
NEAREST_MODES = ["floor", "ceil", "round_prefer_floor", "round_prefer_ceil"]


@pytest.mark.parametrize("coordinates", RESIZE_MODES)
@pytest.mark.parametrize("nearest", NEAREST_MODES)
@pytest.mark.parametrize("scales", [(1, 1, 2, 2), (1, 1, 8, 8), (1, 1, 0.5, 0.75), (1, 1, 1.7, 3)], ids=str)
def test_resize_nearest_scales(coordinates, nearest, scales):
    node = helper.make_node("Resize", ["x", "roi", "scales"], ["y"], mode="nearest",
                            coordinate_transformation_mode=coordinates, nearest_mode=nearest)
    check([node], {"x": rand(1, 2, 6, 7)}, {"roi": np.zeros(0, np.float32), "scales": np.array(scales, np.float32)},
          atol=0)


@pytest.mark.parametrize("coordinates", RESIZE_MODES)
@pytest.mark.parametrize("nearest", NEAREST_MODES)
def test_resize_nearest_sizes(coordinates, nearest):
    node = helper.make_node("Resize", ["x", "roi", "scales", "sizes"], ["y"], mode="nearest",
                            coordinate_transformation_mode=coordinates, nearest_mode=nearest)
    check([node], {"x": rand(1, 2, 6, 7)}, {"roi": np.zeros(0, np.float32), "scales": np.zeros(0, np.float32),
                                             "sizes": np.array([1, 2, 11, 3], np.int64)}, atol=0)


def test_batch_norm_and_activations():
    c = 5
    inits = {"s": rand(c), "b": rand(c), "m": rand(c), "v": np.abs(rand(c)) + 0.1}
    check([helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=1e-5)],
          {"x": rand(2, c, 4, 3)}, inits)
    for node in [helper.make_node("HardSigmoid", ["x"], ["y"], alpha=1 / 6, beta=0.5),
                 helper.make_node("HardSigmoid", ["x"], ["y"]),
                 helper.make_node("Sigmoid", ["x"], ["y"]), helper.make_node("Relu", ["x"], ["y"]),
                 helper.make_node("Erf", ["x"], ["y"]), helper.make_node("Identity", ["x"], ["y"])]:
        check([node], {"x": rand(3, 4, 5, scale=4)})
    check([helper.make_node("Sqrt", ["x"], ["y"])], {"x": np.abs(rand(3, 4)) + 0.01})


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Pow"])
def test_binary_ops_broadcast(op):
    a = np.abs(rand(2, 3, 4, 5)) + 0.5
    check([helper.make_node(op, ["x", "c"], ["y"])], {"x": a}, {"c": np.abs(rand(1, 3, 1, 1)) + 0.5})
    check([helper.make_node(op, ["x", "c"], ["y"])], {"x": a}, {"c": np.array(2.0, np.float32)})  # a constant


def test_pow_negative_base():
    check([helper.make_node("Pow", ["x", "c"], ["y"])], {"x": rand(4, 5)}, {"c": np.array(2.0, np.float32)})


def test_matmul_and_softmax():
    check([helper.make_node("MatMul", ["x", "w"], ["y"])], {"x": rand(2, 7, 12)}, {"w": rand(12, 9)})
    check([helper.make_node("MatMul", ["x", "z"], ["y"])], {"x": rand(2, 3, 7, 12), "z": rand(2, 3, 12, 4)})
    x = rand(2, 3, 4, 5, scale=3)
    for axis in (1, 2, 3, -1):  # opset 11 coerces to 2-D: softmax over all the axes from `axis` on
        check([helper.make_node("Softmax", ["x"], ["y"], axis=axis)], {"x": x})
    check([helper.make_node("Softmax", ["x"], ["y"], axis=1)], {"x": x}, opset=13)


def test_shape_arithmetic_resolved_before_the_graph_runs():
    """The recogniser's pattern: a Reshape to a shape computed from Shape, Slice, Concat, Squeeze,
    Unsqueeze of the input, then Transpose: jit-compiled for each input width."""
    ints = lambda *v: np.array(v, np.int64)
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Slice", ["s", "zero", "two", "zero"], ["nc"]),
             helper.make_node("Slice", ["s", "three", "four"], ["w1"]),
             helper.make_node("Squeeze", ["w1"], ["w"], axes=[0]),
             helper.make_node("Unsqueeze", ["w"], ["w2"], axes=[0]),
             helper.make_node("Concat", ["nc", "minus1", "w2"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[0, 3, 1, 2]),
             helper.make_node("Reshape", ["t", "shape2"], ["u"]),
             helper.make_node("Slice", ["u", "starts", "ends", "axes", "steps"], ["y"])]
    inits = {"zero": ints(0), "two": ints(2), "three": ints(3), "four": ints(4), "minus1": ints(-1),
             "shape2": ints(0, -1, 2), "starts": ints(-1, 1), "ends": ints(-100, 1000), "axes": ints(1, 2),
             "steps": ints(-2, 1)}
    for width in (6, 10):
        check(nodes, {"x": rand(2, 3, 4, width)}, inits)


def test_squeeze_unsqueeze_axes_as_inputs_opset13():
    check([helper.make_node("Unsqueeze", ["x", "a"], ["u"]), helper.make_node("Squeeze", ["u", "b"], ["y"])],
          {"x": rand(3, 4)}, {"a": np.array([0, -1], np.int64), "b": np.array([0], np.int64)}, opset=13)


def test_apply_is_differentiable_and_gives_intermediates():
    import jax
    import jax.numpy as jnp
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node("GlobalAveragePool", ["r"], ["y"])]
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(rand(3, 2, 3, 3), "w")])
    g, params = graph_io.from_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]))
    graph = onnx_graph.Graph.from_dict(g)
    x = rand(1, 2, 5, 5)
    loss = lambda p: jnp.sum(onnx_graph.apply(graph, p, x)["y"] ** 2)
    grads = jax.grad(loss)({k: jnp.asarray(v) for k, v in params.items()})
    assert set(grads) == {"w"} and bool(jnp.all(jnp.isfinite(grads["w"]))) and float(jnp.abs(grads["w"]).sum()) > 0
    both = onnx_graph.apply(graph, params, x, outputs=("c", "y"))
    assert both["c"].shape == (1, 3, 5, 5) and both["y"].shape == (1, 3, 1, 1)


def test_graph_files_round_trip(tmp_path):
    import flax.serialization
    import jax

    from svhn_jax.core.workdir import tree_sha256
    nodes = [helper.make_node("Resize", ["x", "roi", "scales"], ["r"], mode="nearest"),
             helper.make_node("HardSigmoid", ["r"], ["y"], alpha=0.2)]
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2, 3, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.zeros(0, np.float32), "roi"),
                               numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")])
    g, params = graph_io.from_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]))
    assert params == {} and set(g["constants"]) == {"roi", "scales"}  # settings, never trained
    (tmp_path / "graph.json").write_text(graph_io.to_json(g))
    assert graph_io.read_json(tmp_path / "graph.json") == g
    assert onnx_graph.Graph.load(tmp_path / "graph.json") == onnx_graph.Graph.from_dict(g)
    p = {"a": rand(3, 4), "b.c": rand(5)}
    data = graph_io.params_bytes(p)
    assert data == flax.serialization.msgpack_serialize(p)
    (tmp_path / "params.msgpack").write_bytes(data)
    back = graph_io.read_params(tmp_path / "params.msgpack")
    assert all(np.array_equal(back[k], p[k]) for k in p)
    assert graph_io.params_sha256(p) == tree_sha256(jax.tree_util.tree_map(np.asarray, p))


def test_unknown_op_is_refused_in_one_line():
    g = {"format": graph_io.FORMAT, "opset": 11, "inputs": {"x": [1]}, "outputs": ["y"],
         "nodes": [{"op": "LSTM", "name": "n", "inputs": ["x"], "outputs": ["y"], "attrs": {}}],
         "constants": {}, "params": {}}
    with pytest.raises(onnx_graph.GraphError, match="the interpreter has no LSTM"):
        onnx_graph.Graph.from_dict(g)
