"""The reader task's defaults: every key and its meaning is in `svhn_jax/core/config.py`.

Recipes start from `svhn_jax.core.config.reader()` (this) or `.localiser()` and change what they need.
"""
from svhn_jax.core import config


def get_config():
    return config.reader()
