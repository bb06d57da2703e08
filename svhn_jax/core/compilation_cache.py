"""A persistent JAX compilation cache in the user's cache folder, shared by every CLI.

A second run of the same program (training, evaluation or `predict`) loads its compiled XLA
executables from disk instead of compiling again. ``SVHN_JAX_COMPILATION_CACHE`` overrides the
folder; setting it to an empty string turns the cache off.
"""
from __future__ import annotations

import os
from pathlib import Path

import jax

from svhn_jax.core.fileio import user_cache_dir


def enable(cache_dir: str | os.PathLike | None = None) -> Path | None:
    """Turns the persistent cache on (every executable, however quick to compile). Returns its folder."""
    env = os.environ.get("SVHN_JAX_COMPILATION_CACHE")
    if cache_dir is None and env is not None:
        if not env:
            return None
        cache_dir = env
    path = Path(cache_dir) if cache_dir else user_cache_dir() / "jax_compilation_cache"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # an unwritable cache folder only costs compile time
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
