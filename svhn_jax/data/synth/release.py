"""Synthetic SVHN format-1 releases: geometry fitted to the real labels, street-photo appearance.

An example is a pure function of ``(seed, index)``: `example_rngs` derives two independent generators
from it, one for the geometry (`geometry.sample_layout`) and one for the appearance
(`render.render`). `write_release` writes a folder in the exact layout of the real release
(``1.png, 2.png, ..., digitStruct.mat``) with a pool of processes (`core.signals.ordered`); the files
do not depend on the number of processes.

  python -m svhn_jax.synth --out=DIR --split=train --num=10000 --seed=0
"""
from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from svhn_jax.core.signals import ordered
from svhn_jax.data.svhn.digitstruct import DigitBox, Entry, write_digitstruct
from svhn_jax.data.synth.geometry import example_rngs, sample_layout
from svhn_jax.data.synth.render import render

RENDERER_VERSION = 2  # bump when a change to the renderer changes the images: cached splits are remade
PNG_OPTIONS = {"format": "PNG", "compress_level": 1, "compress_type": zlib.Z_RLE}  # fast, still small

def render_example(seed: int, index: int, fonts: str = "matplotlib") -> tuple[np.ndarray, tuple[DigitBox, ...]]:
    """Example `index` (0-based) of the release `seed`, its digits in the font set `fonts`
    (`materials.font_set`): (uint8 [H, W, 3], its digit boxes)."""
    geometry, appearance = example_rngs(seed, index)
    layout = sample_layout(geometry)
    image, boxes = render(layout, appearance, fonts)
    return image, tuple(DigitBox(label=int(lab), left=float(l), top=float(t), width=float(w), height=float(h))
                        for lab, (l, t, w, h) in zip(layout.labels, boxes))


def _write_range(task: tuple[str, int, int, int, str]) -> list[tuple[DigitBox, ...]]:
    folder, seed, start, stop, fonts = task
    out = []
    for index in range(start, stop):
        image, boxes = render_example(seed, index, fonts)
        Image.fromarray(image).save(os.path.join(folder, f"{index + 1}.png"), **PNG_OPTIONS)
        out.append(boxes)
    return out


def write_release(folder: str | os.PathLike, num: int, seed: int, *, workers: int = 2,
                  chunk: int = 50, fonts: str = "matplotlib") -> list[Entry]:
    """Writes `num` examples as ``folder/{1..num}.png`` + ``folder/digitStruct.mat`` (SVHN format 1).

    Image ``i.png`` is `render_example(seed, i - 1, fonts)`, so the bytes depend only on (seed, num,
    fonts), not on `workers`. The folder is built under a temporary name and renamed into place when
    complete; an existing `folder` is an error. Returns the entries written to ``digitStruct.mat``.
    """
    folder = Path(folder)
    if num < 1:
        raise ValueError(f"{folder}: a release needs at least one image, got num={num}")
    if folder.exists():
        raise FileExistsError(f"{folder} already exists; remove it or choose another output folder")
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        tasks = [(str(tmp), int(seed), start, min(start + chunk, num), fonts) for start in range(0, num, chunk)]
        bar = dict(total=len(tasks), desc=f"render {folder.name}", unit="chunk", leave=False)
        with contextlib.closing(ordered(_write_range, [(task,) for task in tasks], min(workers, len(tasks)))) as done:
            results = list(tqdm(done, **bar))  # closed here: an error or a signal ends the workers now
        entries = [Entry(name=f"{i + 1}.png", boxes=boxes)
                   for i, boxes in enumerate(itertools.chain.from_iterable(results))]
        write_digitstruct(tmp / "digitStruct.mat", entries)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return entries
