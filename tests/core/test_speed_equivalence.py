"""The CPU-fast formulations against the plain ones: same values, same gradients, same statistics.

- `layers.max_pool_2x2` vs ``nn.max_pool``: values and gradients equal, ties included.
- `conv.conv_same_one_channel` vs ``lax.conv_general_dilated``: outputs and gradients.
- `seed_cnn.SeedCNN` (conv -> pool -> bias -> ReLU) vs the plain ``nn.Conv`` -> ReLU -> ``nn.max_pool``
  network: identical parameters at init, outputs and gradients equal to float rounding.
- `layers.Dropout` (hash bits): keep rate, independence between elements and examples, inverted
  scaling, and masks that do not depend on how the batch is split over devices.
"""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from svhn_jax.core import compilation_cache
from svhn_jax.models import conv, heads, layers
from svhn_jax.models.seed_cnn import SeedCNN

compilation_cache.enable()


@functools.partial(jax.jit, static_argnums=0)
def _value_and_vjp(f, args, g):
    """f(*args) and its vjp at the cotangent g, compiled once per function and shapes."""
    y, vjp = jax.vjp(f, *args)
    return y, vjp(g)


def _plain_pool(x):
    return nn.max_pool(x, (2, 2), (2, 2))


@pytest.mark.slow  # compiles or renders for several seconds
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool_2x2_matches_nn_max_pool(ties):
    key_x, key_g = jax.random.split(jax.random.key(0))
    x = jax.random.normal(key_x, (3, 8, 6, 5))
    if ties:  # few distinct values: most windows hold several maxima
        x = jnp.round(x)
    g = jax.random.normal(key_g, (3, 4, 3, 5))
    (y, (dx,)), (y0, (dx0,)) = _value_and_vjp(layers.max_pool_2x2, (x,), g), _value_and_vjp(_plain_pool, (x,), g)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(dx, dx0)
    if ties:  # every window passes its gradient to exactly one element
        grad = _value_and_vjp(layers.max_pool_2x2, (x,), jnp.ones_like(g))[1][0]
        counts = np.asarray(grad).reshape(3, 4, 2, 3, 2, 5).sum((2, 4))
        np.testing.assert_array_equal(counts, np.ones_like(counts))


def test_max_pool_2x2_rejects_odd_sizes():
    with pytest.raises(ValueError, match="even height and width"):
        layers.max_pool_2x2(jnp.zeros((1, 5, 4, 1)))


def _plain_conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.slow  # compiles or renders for several seconds
def test_conv_same_one_channel_matches_lax(k=5):
    kx, kw, kg = jax.random.split(jax.random.key(1), 3)
    x = jax.random.normal(kx, (4, 12, 10, 1))
    w = jax.random.normal(kw, (k, k, 1, 7))
    g = jax.random.normal(kg, (4, 12, 10, 7))
    y, (dx, dw) = _value_and_vjp(conv.conv_same_one_channel, (x, w), g)
    y0, (dx0, dw0) = _value_and_vjp(_plain_conv, (x, w), g)
    np.testing.assert_array_equal(y, y0)  # the forward pass is XLA's own convolution
    np.testing.assert_allclose(dx, dx0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw, dw0, rtol=1e-5, atol=1e-4)


class PlainSeedCNN(nn.Module):
    """The seed network written the straightforward way (the reference for SeedCNN)."""

    @nn.compact
    def __call__(self, x, *, train):
        drop = lambda rate: layers.Dropout(rate, None)
        init = dict(kernel_init=nn.initializers.xavier_uniform(), bias_init=nn.initializers.zeros)
        x = drop(0.1)(x, deterministic=not train)
        x = _plain_pool(nn.relu(nn.Conv(64, (5, 5), padding="SAME", name="conv1", **init)(x)))
        x = drop(0.25)(x, deterministic=not train)
        x = _plain_pool(nn.relu(nn.Conv(32, (3, 3), padding="SAME", name="conv2", **init)(x)))
        x = drop(0.25)(x, deterministic=not train)
        x = nn.relu(nn.Conv(64, (3, 3), padding="SAME", name="conv3", **init)(x))
        x = drop(0.5)(x, deterministic=not train)
        x = nn.relu(nn.Dense(128, name="fc", **init)(x.reshape(x.shape[0], -1)))
        return heads.SequenceHeads("blank", name="heads")(x)


@pytest.fixture(scope="module")
def seed_pair():
    fast, plain = SeedCNN(axis_name=None), PlainSeedCNN()
    x0 = jnp.zeros((1, 32, 32, 1))
    params = jax.jit(lambda k: fast.init(k, x0, train=False))(jax.random.key(0))["params"]
    plain_params = jax.jit(lambda k: plain.init(k, x0, train=False))(jax.random.key(0))["params"]
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.normal(size=(8, 32, 32, 1)), jnp.float32)
    lengths = jnp.asarray(rng.integers(1, 6, 8), jnp.int32)
    digits = jnp.where(jnp.arange(5)[None] < lengths[:, None], jnp.asarray(rng.integers(0, 10, (8, 5))), 10)
    return fast, plain, params, plain_params, images, lengths, digits


def test_seed_cnn_has_the_plain_parameters(seed_pair):
    _, _, params, plain_params, *_ = seed_pair
    assert jax.tree.structure(params) == jax.tree.structure(plain_params)
    jax.tree.map(np.testing.assert_array_equal, params, plain_params)


@pytest.mark.slow  # compiles or renders for several seconds
def test_seed_cnn_matches_plain_outputs_and_gradients(seed_pair):
    """Training mode (same dropout masks) and evaluation mode: logits, loss and gradients."""
    fast, plain, params, _, images, lengths, digits = seed_pair

    def run(model, p):
        def loss(p):
            logits = model.apply({"params": p}, images, train=True, rngs={"dropout": jax.random.key(3)})
            return heads.per_example_loss(logits, lengths, digits).mean(), logits["digits"]
        (l, logits), g = jax.value_and_grad(loss, has_aux=True)(p)
        return l, logits, g, model.apply({"params": p}, images, train=False)["digits"]

    l, logits, g, eval_logits = jax.jit(lambda p: run(fast, p))(params)
    l0, logits0, g0, eval_logits0 = jax.jit(lambda p: run(plain, p))(params)
    np.testing.assert_allclose(eval_logits, eval_logits0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(logits, logits0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(l, l0, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), g, g0)
    assert float(jnp.abs(g["conv1"]["kernel"]).sum()) > 0  # gradients reach the first layer
    assert not np.allclose(logits, eval_logits)  # dropout was on in training mode


@functools.partial(jax.jit, static_argnames=("rate", "shards"))
def _dropout(x, rate, key, shards=1):
    """`layers.Dropout` on x, with the batch split over `shards` devices of a named 'data' axis."""
    layer = layers.Dropout(rate, "data")
    apply = lambda xs: layer.apply({}, xs, deterministic=False, rngs={"dropout": key})
    split = x.reshape(shards, -1, *x.shape[1:])
    return jax.vmap(apply, axis_name="data")(split).reshape(x.shape)


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_dropout_keep_rate_and_scaling(rate):
    keep = 1 - rate
    x = jnp.ones((64, 8, 8, 64))  # 262,144 elements
    y = np.asarray(_dropout(x, rate=rate, key=jax.random.key(7)))
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / keep], rtol=1e-6)
    kept = y > 0
    sigma = np.sqrt(keep * (1 - keep) / kept.size)
    assert abs(kept.mean() - keep) < 5 * sigma, kept.mean()
    per_example = kept.reshape(64, -1).mean(1)  # every example draws its own mask at the same rate
    assert np.all(np.abs(per_example - keep) < 6 * np.sqrt(keep * (1 - keep) / per_example.size))


def test_dropout_masks_are_pairwise_independent():
    keep = 0.5
    kept = np.asarray(_dropout(jnp.ones((64, 8, 8, 64)), rate=1 - keep, key=jax.random.key(11)) > 0).reshape(64, -1)
    n = kept.size
    tol = 5 * np.sqrt(keep**2 * (1 - keep**2) / n)
    for a, b in [(kept[:, :-1], kept[:, 1:]),           # neighbouring elements (channels)
                 (kept[:, :-64], kept[:, 64:]),         # neighbouring pixels
                 (kept[:-1], kept[1:])]:                # the same element of neighbouring examples
        assert abs((a & b).mean() - keep**2) < tol
    bits = np.asarray(jax.jit(layers.hash_bits, static_argnums=1)(jax.random.split(jax.random.key(5), 4), (4096,)))
    ones = np.unpackbits(bits.view(np.uint8)).reshape(-1, 32).mean(0)  # every bit is a fair coin
    assert np.all(np.abs(ones - 0.5) < 5 * np.sqrt(0.25 / bits.size))


@pytest.mark.slow  # trains or compiles for several seconds
def test_dropout_does_not_depend_on_the_device_count():
    x = jax.random.normal(jax.random.key(2), (8, 6, 6, 3))
    key = jax.random.key(9)
    one = np.asarray(_dropout(x, rate=0.25, key=key, shards=1))
    for shards in (2, 8):
        np.testing.assert_array_equal(_dropout(x, rate=0.25, key=key, shards=shards), one)
    other = np.asarray(_dropout(x, rate=0.25, key=jax.random.key(10)))
    assert (other != one).mean() > 0.2  # another key, another mask
    np.testing.assert_array_equal(_dropout(x, rate=0.25, key=key), one)  # and the same key, the same mask
