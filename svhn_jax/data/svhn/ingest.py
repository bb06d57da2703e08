"""dataset=svhn: the extracted release (PNGs + ``digitStruct.mat``) -> contract splits; `prepare` does it all.

    python -m svhn_jax.prepare --dataset=svhn --splits=train,test --recipe=seed32_grey   # runs `prepare`

`prepare` fetches what is missing with `svhn.release` (download or ``source_dir``, into
``<data_dir>/svhn/raw/``) and writes ``<data_dir>/svhn/<recipe>/<split>.h5`` (`svhn_jax.data.paths`).
Training never downloads: `ensure_split` names the command that does.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from pathlib import Path, PurePosixPath
from typing import Callable, Mapping, Sequence

import ml_collections
import numpy as np
from PIL import Image
from tqdm import tqdm

from svhn_jax.core.signals import ordered
from svhn_jax.data import paths, preprocess, store
from svhn_jax.data.labels import MAX_DIGITS
from svhn_jax.data.sources import DataMissingError, describe, preparing
from svhn_jax.data.svhn import digitstruct
from svhn_jax.data.svhn.release import BASE_URL, KNOWN_ARCHIVES, Archive, DataError, split_folder

_TASK = 256        # images per worker task
_MAX_LISTED = 50   # skipped files named in the split's attributes


class BadInputError(DataError):
    """A bad image or label, under ``strict``."""


@dataclasses.dataclass(frozen=True)
class SplitStats:
    path: Path
    num_examples: int
    num_dropped: int    # images with more than 5 digits
    num_skipped: int    # bad images (see `skipped`)
    skipped: tuple[str, ...]
    seconds: float


def _process(folder: str, recipe: str, names: Sequence[str], boxes: Sequence[Sequence[tuple]]):
    """Worker: PNGs -> (images [m, S, S, C], kept positions, [(position, message)])."""
    images, kept, bad = [], [], []
    for i, (name, b) in enumerate(zip(names, boxes)):
        path = os.path.join(folder, name)
        try:
            with Image.open(path) as im:
                im.load()
                images.append(preprocess.apply_recipe_pil(im, b, recipe))
            kept.append(i)
        except FileNotFoundError:
            bad.append((i, f"{path}: missing file"))
        except ValueError as e:  # a box outside the image
            bad.append((i, f"{path}: {e}"))
        except (OSError, SyntaxError, Image.DecompressionBombError) as e:  # corrupt / truncated PNG
            bad.append((i, f"{path}: unreadable image ({e})"))
    shape = (0, *preprocess.image_shape(recipe))
    return (np.stack(images) if images else np.zeros(shape, np.uint8)), kept, bad


def _label_error(entry: digitstruct.Entry) -> str | None:
    if not entry.boxes:
        return "no digit boxes"
    for b in entry.boxes:
        if not 1 <= b.label <= 10:
            return f"label {b.label} outside 1-10"
    return None


def _check_names(mat: Path, entries: Sequence[digitstruct.Entry]) -> None:
    """Refuses an image name that would read outside the release folder (absolute, or with ``..``)
    and a name given twice (one picture under two labels): DataError naming the entry."""
    seen = set()
    for e in entries:
        name = PurePosixPath(e.name)
        if name.is_absolute() or ".." in name.parts:
            raise DataError(f"{mat}: image name {e.name!r} leaves the release folder; refused")
        if os.path.normpath(e.name) in seen:
            raise DataError(f"{mat}: image name {e.name!r} appears twice; refused")
        seen.add(os.path.normpath(e.name))


def prepare_split_from_folder(folder: str | os.PathLike, out_path: str | os.PathLike, recipe: str, *,
                              strict: bool = False, workers: int = 2, source: str | None = None) -> SplitStats:
    """An extracted format-1 folder (PNGs + digitStruct.mat) -> one contract split at `out_path`.

    Images with more than 5 digits are dropped (``num_dropped``); bad ones (unreadable or missing PNG,
    box outside the image, label outside 1-10) are skipped with a warning naming the file and counted
    (``num_skipped``, first ones listed in ``skipped``), or raise BadInputError when `strict`. Image
    names that leave the folder or repeat are refused (DataError). The file appears only when
    complete; an existing one is replaced only by a successful run.
    """
    start = time.perf_counter()
    folder, out_path = Path(folder), Path(out_path)
    preprocess.get_recipe(recipe)
    mat = folder / "digitStruct.mat"
    if not mat.is_file():
        raise DataError(f"{mat}: missing")
    try:
        entries = digitstruct.read_digitstruct(mat)
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"{mat}: unreadable digitStruct ({e})") from None
    _check_names(mat, entries)
    skipped: list[str] = []

    def skip(message: str) -> None:
        if strict:
            raise BadInputError(message + " (--strict)")
        logging.warning("skipped %s", message)
        skipped.append(message)

    usable, dropped = [], 0
    for e in entries:
        if len(e.boxes) > MAX_DIGITS:
            dropped += 1
        elif (error := _label_error(e)) is not None:
            skip(f"{folder / e.name}: {error}")
        else:
            usable.append(e)
    chunks = [usable[i:i + _TASK] for i in range(0, len(usable), _TASK)]
    tasks = [(str(folder), recipe, [e.name for e in chunk],
              [[(b.left, b.top, b.width, b.height) for b in e.boxes] for e in chunk])
             for chunk in chunks]
    # The workers' results closed first on an error or a signal: the workers end before anything else.
    with store.SplitWriter(out_path, preprocess.image_shape(recipe), recipe=recipe,
                           source=source or f"svhn format 1: {folder.name}") as writer, \
            contextlib.closing(ordered(_process, tasks, workers)) as results, \
            tqdm(zip(chunks, results), total=len(chunks),  # cleared before an error
                 desc=f"preprocess {Path(folder).name}", unit="chunk", leave=False) as progress:
        for chunk, (images, kept, bad) in progress:
            for _, message in bad:
                skip(message)
            lengths, digits = store.encode_labels([[b.label % 10 for b in chunk[i].boxes] for i in kept])
            writer.append(images, lengths, digits, [chunk[i].name for i in kept])
        writer.set_attr("num_dropped", dropped)
        writer.set_attr("num_skipped", len(skipped))
        writer.set_attr("skipped", "\n".join(skipped[:_MAX_LISTED]))
        count = writer.count
    return SplitStats(out_path, count, dropped, len(skipped), tuple(skipped), time.perf_counter() - start)


def prepare(splits: Sequence[str], recipe: str, data_dir: str | os.PathLike, *,
            source_dir: str | os.PathLike | None = None, base_url: str = BASE_URL, strict: bool = False,
            workers: int = 2, known: Mapping[str, Archive] = KNOWN_ARCHIVES, progress: bool = True,
            log: Callable[[str], None] = print) -> list[SplitStats]:
    """Makes ``<data_dir>/svhn/<recipe>/<split>.h5`` for each split that is not there yet (or not
    whole: a file `store.check_split` refuses is made again), under the lock of ``<data_dir>/svhn``."""
    if recipe not in preprocess.RECIPES:
        raise DataError(f"unknown recipe {recipe!r}; choose one of {', '.join(preprocess.RECIPES)}")
    root = Path(data_dir).expanduser()
    done = []
    with preparing(root / "svhn"):
        for split in splits:
            path = paths.split_path(root, "svhn", recipe, split)
            if path.exists():
                try:
                    store.check_split(path)
                    log(f"{path}: already prepared")
                    continue
                except OSError as e:
                    log(f"{path}: not a complete split ({describe(e)}); preparing it again")
            folder = split_folder(split, root / "svhn" / "raw", source_dir=source_dir, base_url=base_url,
                                  known=known, progress=progress)
            stats = prepare_split_from_folder(folder, path, recipe, strict=strict, workers=workers)
            log(f"{path}: {stats.num_examples:,} images ({stats.num_dropped} with more than 5 digits "
                f"dropped, {stats.num_skipped} bad ones skipped) in {stats.seconds:.1f} s")
            done.append(stats)
    return done


def ensure_split(config: ml_collections.ConfigDict, split: str, path: Path) -> None:
    """dataset=svhn: a missing split is an error naming the `prepare` command (a download of GBs)."""
    if path.exists():
        return
    raise DataMissingError(
        f"{path} is missing; make it with: python -m svhn_jax.prepare --dataset={config.dataset} "
        f"--splits={','.join([*config.train_splits, config.eval_split])} --recipe={config.recipe} "
        f"--data_dir={paths.data_dir(config)}")
