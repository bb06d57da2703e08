"""Training-time augmentation on device, per example, from the example's own key (pure jnp).

Real photos come with boxes that annotators drew loosely, at any contrast and polarity, blurred and
noisy; the synthetic crops are exact. `augment` makes each training crop look like another plausible
crop of the same number: a random affine resampling (zoom, stretch, rotation, shift: the box drawn
differently; edges replicated), contrast, polarity (light on dark <-> dark on light) and sensor noise.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.ndimage import map_coordinates

MAX_ZOOM = 1.2          # scale factor range 1/MAX_ZOOM .. MAX_ZOOM (log-uniform)
MAX_STRETCH = 1.1       # extra horizontal/vertical scale ratio
MAX_ROTATION = 0.12     # radians (~7 degrees)
MAX_SHIFT = 0.1         # fraction of the crop size
CONTRAST = (0.5, 1.5)   # multiplies the deviation from the image mean
P_INVERT = 0.5
MAX_NOISE = 0.04        # Gaussian noise standard deviation (images in 0-1)


def _affine(image: jax.Array, key: jax.Array) -> jax.Array:
    h, w, c = image.shape
    kz, ks, kr, kt = jax.random.split(key, 4)
    zoom = jnp.exp(jax.random.uniform(kz, (), minval=-math.log(MAX_ZOOM), maxval=math.log(MAX_ZOOM)))
    stretch = jnp.exp(jax.random.uniform(ks, (), minval=-math.log(MAX_STRETCH), maxval=math.log(MAX_STRETCH)))
    angle = jax.random.uniform(kr, (), minval=-MAX_ROTATION, maxval=MAX_ROTATION)
    shift = jax.random.uniform(kt, (2,), minval=-MAX_SHIFT, maxval=MAX_SHIFT) * jnp.array([h, w])
    cy, cx = (h - 1) / 2, (w - 1) / 2
    y, x = jnp.meshgrid(jnp.arange(h) - cy, jnp.arange(w) - cx, indexing="ij")
    cos, sin = jnp.cos(angle), jnp.sin(angle)  # output pixel -> where it samples the input
    src_y = cy + shift[0] + (cos * y - sin * x) / (zoom * stretch)
    src_x = cx + shift[1] + (sin * y + cos * x) / (zoom / stretch)
    return jnp.stack([map_coordinates(image[..., k], [src_y, src_x], order=1, mode="nearest")
                      for k in range(c)], axis=-1)


def _one(image: jax.Array, key: jax.Array) -> jax.Array:
    ka, kc, ki, kn, ks = jax.random.split(key, 5)
    x = _affine(image, ka)
    mean = jnp.mean(x)
    x = mean + (x - mean) * jax.random.uniform(kc, (), minval=CONTRAST[0], maxval=CONTRAST[1])
    x = jnp.where(jax.random.bernoulli(ki, P_INVERT), 1.0 - x, x)
    sigma = jax.random.uniform(ks, (), maxval=MAX_NOISE)
    return x + sigma * jax.random.normal(kn, x.shape)


def augment(images: jax.Array, keys: jax.Array) -> jax.Array:
    """float [B, H, W, C] in 0-1 -> augmented, one key per example (pure: same keys, same result)."""
    return jax.vmap(_one)(images, keys)


def standardize(images: jax.Array) -> jax.Array:
    """Each image to zero mean and unit deviation (floored, so a flat image is not blown up)."""
    mean = jnp.mean(images, axis=(1, 2, 3), keepdims=True)
    std = jnp.std(images, axis=(1, 2, 3), keepdims=True)
    return (images - mean) / jnp.maximum(std, 0.02)
