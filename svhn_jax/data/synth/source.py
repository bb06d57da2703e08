"""dataset=synthetic: renders a release in SVHN format 1 and ingests it with the real release's code.

Split `s` is ``config.num_synthetic_test`` images (the evaluation split) or ``num_synthetic_train``
(the others) drawn with seed ``paths.split_seed(s)``: the release ``<data_dir>/synthetic/raw/<s>/`` is
what ``python -m svhn_jax.synth --seed=... --num=...`` writes, and the split file's ``source``
attribute records (renderer version, seed, num), so a file made by another renderer or for another
size is remade, never silently reused.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import ml_collections

from svhn_jax.data import paths, preprocess, store
from svhn_jax.data.svhn import ingest as svhn
from svhn_jax.data.synth import release as synthetic
from svhn_jax.data.synth.materials import font_set


def seed_and_num(config: ml_collections.ConfigDict, split: str) -> tuple[int, int]:
    """(seed, number of images) of a synthetic split."""
    num = config.num_synthetic_test if split == config.eval_split else config.num_synthetic_train
    return paths.split_seed(split), num


def fonts(config: ml_collections.ConfigDict) -> str:
    """The font set the digits are drawn in (`materials.font_set`)."""
    return config.get("synthetic_fonts", "matplotlib")


def source_name(config: ml_collections.ConfigDict, split: str) -> str:
    """The ``source`` attribute of the split file, e.g. ``synthetic(renderer=2, seed=1, num=20000)``
    (``, fonts=open`` added for a font set other than matplotlib's)."""
    seed, num = seed_and_num(config, split)
    other = "" if fonts(config) == "matplotlib" else f", fonts={fonts(config)}"
    return f"synthetic(renderer={synthetic.RENDERER_VERSION}, seed={seed}, num={num}{other})"



def ensure_split(config: ml_collections.ConfigDict, split: str, path: Path) -> None:
    """Renders and ingests `split` into `path` unless it already holds this very (renderer, seed, num).

    The release is reused while it holds `num` images (the images do not depend on `workers`) and no
    stale split file says it may come from another renderer or seed.
    """
    if store.stored_source(path) == source_name(config, split):
        return
    preprocess.get_recipe(config.recipe)  # a bad recipe or font set fails before minutes of rendering
    font_set(fonts(config))
    seed, num = seed_and_num(config, split)
    raw = paths.raw_dir(config, split)
    # One process per core (the bytes do not depend on it); on small splits starting them costs more.
    workers = len(os.sched_getaffinity(0)) if num >= 1000 else 1
    if raw.exists() and (sum(1 for _ in raw.glob("*.png")) != num or store.stored_source(path) is not None):
        shutil.rmtree(raw)
    if not raw.exists():
        synthetic.write_release(raw, num, seed, workers=workers, fonts=fonts(config))
    svhn.prepare_split_from_folder(raw, path, config.recipe, workers=workers, source=source_name(config, split))
