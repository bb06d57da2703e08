"""The model families: sizes, shapes, the CPU-fast layers against their plain forms, BatchNorm
under data parallelism (pmap and shard_map on 2 fake CPU devices), evaluation on running
statistics, and that each architecture learns.

The behavioural tests use narrow copies of the networks (same code, fewer channels) so they
compile and run in seconds; the parameter counts and shapes are of the real sizes (abstract
evaluation, nothing is computed). Keys are 'rbg' keys: XLA:CPU compiles threefry random-number
code (the default keys) far more slowly, and initialising a narrow net would dominate the tests.
"""
from __future__ import annotations

import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import REPO

from configs import default
from svhn_jax import trainer as train
from svhn_jax.core import parallel
from svhn_jax.core.state import create_train_state
from svhn_jax.data.model_input import prepare_images
from svhn_jax.models import conv, create_model, heads
from svhn_jax.models.goodfellow import Goodfellow, maxout
from svhn_jax.models.layers import max_pool_2x2_stride1_pad1, max_pool_2x2_stride2_pad1
from svhn_jax.models.resnet import ResNet18


def KEY(seed: int) -> jax.Array:
    return jax.random.key(seed, impl="rbg")


def _normal(seed: int, shape: tuple[int, ...]) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _config(**overrides):
    c = default.get_config()
    for k, v in overrides.items():
        setattr(c, k, v)
    return c


def _count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _abstract_init(model, shape):
    return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((2, *shape)), train=False))


# Goodfellow, 54x54x3, bn_relu: 5x5 convs without bias (BatchNorm's shift replaces it)
#   conv 25*(3*48 + 48*64 + 64*128 + 128*160 + 160*192 + 3*192*192) = 3,658,800
#   BN scale+shift 2*(48+64+128+160+4*192) = 2,336;  fc1 (7*7*192 + 1)*3072 = 28,904,448
#   fc2 3073*3072 = 9,440,256;  length head 3073*7 = 21,511;  digit heads 3073*50 = 153,650
# maxout: conv1 25*3*144 + 144 = 10,944 instead of 3,600, and no bn1 (-96).
PARAMS = {
    ("seed_cnn", "blank", (32, 32, 1), "bn_relu"): (570_135, 0),
    ("goodfellow", "length", (54, 54, 3), "bn_relu"): (42_852_201, 2_336),
    ("goodfellow", "length", (54, 54, 3), "maxout"): (42_859_449, 2_240),
    ("goodfellow", "length", (32, 32, 3), "bn_relu"): (28_696_425, 2_336),
    ("resnet18", "length", (54, 54, 3), "bn_relu"): (12_598_905, 9_600),
    ("resnet18", "length", (32, 32, 3), "bn_relu"): (11_635_833, 9_600),
}


@pytest.mark.parametrize("key", list(PARAMS), ids=lambda k: f"{k[0]}-{k[2][0]}-{k[3]}")
def test_parameter_counts(key):
    name, head, shape, first = key
    variables = _abstract_init(create_model(_config(model=name, head=head, goodfellow_first_layer=first)), shape)
    assert (_count(variables["params"]), _count(variables.get("batch_stats", {}))) == PARAMS[key]


def test_goodfellow_parameter_arithmetic():
    conv_params = 25 * (3 * 48 + 48 * 64 + 64 * 128 + 128 * 160 + 160 * 192 + 3 * 192 * 192)
    bn = 2 * (48 + 64 + 128 + 160 + 4 * 192)
    dense = (7 * 7 * 192 + 1) * 3072 + 3073 * 3072 + 3073 * 7 + 3073 * 50
    assert conv_params + bn + dense == PARAMS[("goodfellow", "length", (54, 54, 3), "bn_relu")][0]


@pytest.mark.parametrize("name", ["goodfellow", "resnet18"])
@pytest.mark.parametrize("size", [54, 32])
@pytest.mark.parametrize("head", ["length", "blank"])
def test_output_shapes(name, size, head):
    model = create_model(_config(model=name, head=head))
    x = jnp.zeros((3, size, size, 3))
    variables = _abstract_init(model, (size, size, 3))
    out = jax.eval_shape(lambda v: model.apply(v, x, train=False), variables)
    expected = {"digits": (3, 5, 10), "length": (3, 7)} if head == "length" else {"digits": (3, 5, 11)}
    assert {k: v.shape for k, v in out.items()} == expected


def test_goodfellow_feature_map_sizes_match_the_pytorch_layout():
    """54 -> 28 -> 29 -> 15 -> 16 -> 9 -> 10 -> 6 -> 7 (torch MaxPool2d(2, s, padding=1))."""
    sizes, h = [], 54
    for i in range(8):
        h = h // 2 + 1 if i % 2 == 0 else h + 1
        sizes.append(h)
    assert sizes == [28, 29, 15, 16, 9, 10, 6, 7]
    variables = _abstract_init(create_model(_config(model="goodfellow", head="length")), (54, 54, 3))
    assert variables["params"]["fc1"]["kernel"].shape == (7 * 7 * 192, 3072)


def test_unknown_first_layer_is_refused():
    with pytest.raises(ValueError, match="first_layer"):
        _abstract_init(Goodfellow(first_layer="relu"), (32, 32, 3))


# --- CPU-fast formulations against the plain ones -------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 54, 54, 3), (2, 29, 28, 5), (1, 7, 9, 2), (1, 1, 1, 1)])
@pytest.mark.parametrize("stride", [2, 1])
def test_pools_match_nn_max_pool(shape, stride):
    x = _normal(0, shape)  # continuous: no ties, one argmax per window
    fast = max_pool_2x2_stride2_pad1 if stride == 2 else max_pool_2x2_stride1_pad1
    plain = lambda x: nn.max_pool(x, (2, 2), (stride, stride), ((1, 1), (1, 1)))
    np.testing.assert_array_equal(jax.jit(fast)(x), jax.jit(plain)(x))
    cotangent = _normal(1, plain(x).shape)
    grad = lambda f: jax.jit(jax.grad(lambda x: jnp.sum(f(x) * cotangent)))(x)
    np.testing.assert_allclose(grad(fast), grad(plain), rtol=1e-6, atol=1e-6)


def test_maxout_takes_the_max_of_consecutive_channels():
    x = jnp.array([[1.0, 5.0, 2.0, -1.0, -3.0, -2.0]])
    np.testing.assert_array_equal(maxout(x, 3), [[5.0, -1.0]])


def _plain_conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("x_shape,w_shape", [
    ((2, 29, 31, 5), (5, 5, 5, 7)),     # 4x4 tiles of uneven sizes
    ((3, 9, 6, 4), (3, 3, 4, 6)),       # 2x1 tiles, 3x3 kernel
    ((2, 6, 5, 128), (5, 5, 128, 128)),  # >= 128 channels: the shifted matmul
    ((1, 1, 1, 2), (5, 5, 2, 3)),       # kernel larger than the map
])
def test_conv_same_matches_lax_outputs_and_gradients(x_shape, w_shape):
    x = _normal(0, x_shape)
    w = _normal(1, w_shape) / np.sqrt(np.prod(w_shape[:3]))
    dy = _normal(2, (*x_shape[:3], w_shape[3]))
    np.testing.assert_allclose(jax.jit(conv.conv_same)(x, w), _plain_conv(x, w), rtol=1e-5, atol=1e-5)
    vjp = lambda f: jax.jit(lambda x, w, dy: jax.vjp(f, x, w)[1](dy))(x, w, dy)
    (dx, dw), (dx0, dw0) = vjp(conv.conv_same), vjp(_plain_conv)
    np.testing.assert_allclose(dx, dx0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw, dw0, rtol=1e-4, atol=1e-4)
    for formulation in (conv.kernel_grad_tiled, conv.kernel_grad_shifted):
        np.testing.assert_allclose(jax.jit(formulation)(x, dy, w), dw0, rtol=1e-4, atol=1e-4)


def test_conv_general_dilated_routes_only_the_simple_case():
    x = _normal(0, (2, 8, 8, 3))
    plain = nn.Conv(4, (3, 3), strides=2, padding="SAME")
    fast = nn.Conv(4, (3, 3), strides=2, padding="SAME", conv_general_dilated=conv.conv_general_dilated)
    v = plain.init(KEY(1), x)
    np.testing.assert_allclose(fast.apply(v, x), plain.apply(v, x), rtol=1e-6)
    jaxpr = str(jax.make_jaxpr(lambda v: nn.Conv(4, (3, 3), padding="SAME",
                                                 conv_general_dilated=conv.conv_general_dilated).apply(v, x))(v))
    assert "custom_vjp_call" in jaxpr
    assert "custom_vjp_call" not in str(jax.make_jaxpr(lambda v: fast.apply(v, x))(v))


# --- BatchNorm, evaluation and learning on narrow copies ---------------------------------------

def _narrow_goodfellow(**kw):
    return Goodfellow(features=(8, 8, 16, 16, 16, 16, 16, 16), hidden=64, axis_name=None, **kw)


def _narrow_resnet(**kw):
    return ResNet18(width=8, axis_name=None, **kw)


NARROW = {"goodfellow": _narrow_goodfellow, "goodfellow_maxout": lambda **kw: _narrow_goodfellow(
    first_layer="maxout", **kw), "resnet18": _narrow_resnet}


@pytest.mark.slow  # compiles or renders for several seconds
@pytest.mark.parametrize("name", ["goodfellow", "resnet18"])
def test_evaluation_uses_running_statistics(name):
    """At evaluation an example's output depends on the stored statistics, not on its batch mates
    (with batch statistics it would: the training-mode half of the test shows that it can)."""
    model = NARROW[name]()
    x = _normal(0, (6, 16, 16, 3))
    mates = x.at[2:].set(5.0 * _normal(1, (4, 16, 16, 3)))  # same first 2
    variables = jax.jit(lambda: model.init(KEY(1), x, train=False))()
    evaluate = jax.jit(lambda v, x: model.apply(v, x, train=False)["length"])
    np.testing.assert_allclose(evaluate(variables, x)[:2], evaluate(variables, mates)[:2], rtol=1e-5, atol=1e-5)
    shifted = {**variables, "batch_stats": jax.tree.map(lambda s: s + 0.5, variables["batch_stats"])}
    assert not np.allclose(evaluate(shifted, x), evaluate(variables, x), atol=1e-3)
    trained = jax.jit(lambda x: model.apply(variables, x, train=True, mutable=["batch_stats"],
                                            rngs={"dropout": KEY(2)})[0]["length"])
    assert not np.allclose(trained(x)[:2], trained(mates)[:2], atol=1e-3)


@pytest.mark.slow  # trains or compiles for several seconds
def test_training_updates_the_running_statistics():
    model = _narrow_goodfellow(dropout_rate=0.0)
    x = 3.0 + 2.0 * _normal(0, (8, 16, 16, 3))
    variables = jax.jit(lambda: model.init(KEY(1), x, train=False))()
    _, updates = jax.jit(lambda v: model.apply(v, x, train=True, mutable=["batch_stats"]))(variables)
    conv1 = _plain_conv(x, variables["params"]["conv1"]["kernel"])
    np.testing.assert_allclose(updates["batch_stats"]["bn1"]["mean"], 0.1 * conv1.mean((0, 1, 2)), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(updates["batch_stats"]["bn1"]["var"], 0.9 + 0.1 * conv1.var((0, 1, 2)), rtol=1e-4)


def check_two_device_step() -> None:
    """The body of `test_two_device_step_synchronises_batchnorm`, run in a process with 2 CPU devices."""
    assert jax.device_count() == 2
    narrow = {"goodfellow": lambda a: Goodfellow(features=(8, 8, 16, 16, 16, 16, 16, 16), hidden=64,
                                                 dropout_rate=0.0, axis_name=a),
              "resnet18": lambda a: ResNet18(width=8, dropout_rate=0.0, axis_name=a)}
    c = _config(head="length")
    rng = np.random.default_rng(0)
    batch = {"images": rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8),
             "lengths": rng.integers(1, 6, (8,)).astype(np.int32),
             "digits": rng.integers(0, 10, (8, 5)).astype(np.int32)}
    images = prepare_images(jnp.asarray(batch["images"]), c, train=False, axis_name=None)

    def one_step(name, mode):
        model, tx = narrow[name](parallel.AXIS), optax.sgd(0.1)
        host = jax.device_get(create_train_state(KEY(0), model, tx, (16, 16, 3)))
        par = parallel.DataParallel(mode)
        step = train.make_train_step(c, model, tx, par)
        state, metrics = step(par.put_state(host), par.put_batch(batch), KEY(1))
        if mode == "pmap":
            per_device = [jax.tree.map(lambda x, d=d: np.asarray(x[d]), state.batch_stats) for d in range(2)]
        else:
            per_device = [jax.tree.map(lambda x, d=d: np.asarray(x.addressable_shards[d].data), state.batch_stats)
                          for d in range(2)]
        jax.tree.map(np.testing.assert_array_equal, per_device[0], per_device[1])
        # They are the statistics of the whole global batch, as one unmapped device computes them.
        _, ref = jax.jit(lambda v: narrow[name](None).apply(v, images, train=True, mutable=["batch_stats"]))(
            {"params": host.params, "batch_stats": host.batch_stats})
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5), per_device[0],
                     jax.device_get(ref["batch_stats"]))
        first = "bn1" if name == "goodfellow" else "stem_bn"
        assert not np.allclose(per_device[0][first]["mean"], host.batch_stats[first]["mean"])
        assert np.isfinite(float(par.to_host(metrics)["loss"]))
        return par.to_host(state).params

    params = {mode: one_step("goodfellow", mode) for mode in ("pmap", "shard_map", "host_reduce")}
    for mode in ("pmap", "host_reduce"):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                     params[mode], params["shard_map"])
    one_step("resnet18", "shard_map")


@pytest.mark.slow
def test_two_device_step_synchronises_batchnorm():
    """One step on 2 devices (goodfellow: pmap, shard_map and host_reduce; resnet18: shard_map):
    both devices hold the same statistics, those of the whole global batch (so they were averaged
    across devices, not computed per shard), and the three modes give the same parameters.
    `check_two_device_step` runs in a new process: the 2 fake CPU devices must be set before JAX starts."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "models"), str(REPO / "tests"), str(REPO)])}
    program = "import test_models; test_models.check_two_device_step(); print('ok')"
    result = subprocess.run([sys.executable, "-c", program], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["goodfellow", "goodfellow_maxout", "resnet18"])
def test_narrow_models_learn(name, tiny_config):
    """32 synthetic house numbers (their central 24x24): 40 Adam steps take the loss from chance
    level (~7.5: length + digits) to below 70 % of it."""
    from svhn_jax.data import sources, store
    c = tiny_config(head="length", crop_size=24)
    split = store.read_split(sources.ensure_splits(c)[0][0])
    images = prepare_images(jnp.asarray(np.repeat(split.images[:32], 3, -1)), c, train=False, axis_name=None)
    lengths, digits = jnp.asarray(split.lengths[:32]), jnp.asarray(split.digits[:32])
    model = NARROW[name](head="length", dropout_rate=0.1)
    variables = jax.jit(lambda: model.init(KEY(0), images, train=False))()
    tx = optax.adam(5e-3)

    @jax.jit
    def step(params, stats, opt, key):
        def loss_fn(p):
            logits, upd = model.apply({"params": p, "batch_stats": stats}, images, train=True,
                                      rngs={"dropout": key}, mutable=["batch_stats"])
            return heads.per_example_loss(logits, lengths, digits).mean(), upd["batch_stats"]
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), stats, opt, loss

    params, stats, opt = variables["params"], variables["batch_stats"], tx.init(variables["params"])
    losses = []
    for i in range(40):
        params, stats, opt, loss = step(params, stats, opt, KEY(i))
        losses.append(float(loss))
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < 0.7 * losses[0], losses


def test_batch_norm_models_are_listed():
    """`BATCH_NORM_MODELS` (used before JAX starts, to choose the CPU device count) names exactly the
    models whose variables hold BatchNorm statistics."""
    from configs import default
    from svhn_jax.models import BATCH_NORM_MODELS, create_model, model_names
    with_stats = set()
    for name in model_names():
        c = default.get_config()
        c.model = name
        shapes = jax.eval_shape(lambda c=c: create_model(c).init(KEY(0), jnp.zeros((1, 32, 32, 3)), train=False))
        if shapes.get("batch_stats"):
            with_stats.add(name)
    assert with_stats == set(BATCH_NORM_MODELS) and with_stats
