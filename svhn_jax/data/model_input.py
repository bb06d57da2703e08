"""The model's input, made on device: uint8 image batches -> float images, and per-example keys.

Images are stored uint8 and uncropped (the data contract); the jitted step crops, scales and
subtracts the mean here, so training, evaluation and `predict` feed the model the same way.
Randomness is keyed by each example's index in the GLOBAL batch (`example_keys`), so crops and
dropout masks do not depend on how a batch is split over devices and hosts.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from svhn_jax.core.parallel import AXIS
from svhn_jax.data import augment


def example_keys(rng: jax.Array, local_batch: int, axis_name: str | None) -> jax.Array:
    """One key per example, folded from the example's index in the GLOBAL batch.

    Inside a data-parallel step (`axis_name` bound by shard_map or pmap) device d holds examples
    d * local_batch ... (d + 1) * local_batch - 1 of the global batch. Keying randomness by that
    index makes dropout masks and random crops independent of how the batch is split over
    devices and hosts: 1, 2 or 256 devices draw the same numbers for the same example.
    """
    offset = jax.lax.axis_index(axis_name) * local_batch if axis_name else 0
    return jax.vmap(jax.random.fold_in, (None, 0))(rng, offset + jnp.arange(local_batch))


def input_shape(config: ml_collections.ConfigDict, stored_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The model's input shape: the stored image shape, or the crop when ``crop_size`` > 0."""
    h, w, c = stored_shape
    return (config.crop_size, config.crop_size, c) if config.crop_size else (h, w, c)


def prepare_images(images: jax.Array, config: ml_collections.ConfigDict, rng: jax.Array | None = None,
                   train: bool = False, axis_name: str | None = AXIS) -> jax.Array:
    """uint8 [B, H, W, C] -> float32 model input, on device.

    Crops to ``config.crop_size`` (a random crop per example in training, from the example's key;
    the centre crop otherwise), scales to [0, 1], augments in training when ``config.augment``
    (`augment.augment`), and subtracts each image's mean (or standardises it: ``config.standardize``).
    """
    x = images.astype(jnp.float32) / 255.0
    size = config.crop_size
    if size:
        b, h, w, c = x.shape
        if train:
            keys = example_keys(rng, b, axis_name)
            offsets = jax.vmap(lambda k: jax.random.randint(k, (2,), 0, jnp.array([h - size + 1, w - size + 1])))(keys)
            x = jax.vmap(lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (size, size, c)))(x, offsets)
        else:
            top, left = (h - size) // 2, (w - size) // 2
            x = x[:, top:top + size, left:left + size, :]
    if train and config.augment:
        x = augment.augment(x, example_keys(jax.random.fold_in(rng, 1), x.shape[0], axis_name))
    if config.standardize:
        return augment.standardize(x)
    return x - jnp.mean(x, axis=(1, 2, 3), keepdims=True)
