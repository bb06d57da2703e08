"""dataset=svhn, real SVHN format 1: download, verify, extract, parse ``digitStruct.mat``, write splits.

    python -m svhn_jax.prepare --dataset=svhn --splits=train,test --recipe=seed32_grey   # runs `prepare`

Downloads go to ``<data_dir>/svhn/raw/<split>.tar.gz`` (resumed with HTTP Range from a ``.part`` file,
size and MD5 checked before use) and are extracted to ``<data_dir>/svhn/raw/<split>/`` through a
temporary folder renamed into place, so a folder that exists is complete. `--source_dir` points at an
already downloaded release instead: the ``.tar.gz`` files or the extracted folders. The prepared
splits land at ``<data_dir>/svhn/<recipe>/<split>.h5`` (`svhn_jax.data.paths`). Training never
downloads: `ensure_split` names the command that does.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import http.client
import logging
import multiprocessing
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Callable, Mapping, Sequence

import ml_collections
import numpy as np
from PIL import Image
from tqdm import tqdm

from svhn_jax.data import digitstruct, paths, preprocess, store
from svhn_jax.data.sources import DataMissingError
from svhn_jax.errors import UserError
from svhn_jax.labels import MAX_DIGITS

BASE_URL = "http://ufldl.stanford.edu/housenumbers"
SPLITS = ("train", "test", "extra")


@dataclasses.dataclass(frozen=True)
class Archive:
    size: int  # bytes
    md5: str


# From a public mirror's content keys; report it if the official release ever disagrees.
KNOWN_ARCHIVES: Mapping[str, Archive] = {
    "train": Archive(404_141_560, "a649f4cb15c35520e8a8c342d4c0005a"),
    "test": Archive(276_555_967, "790d9c8d42f1fcbd219b59956c853a81"),
    "extra": Archive(1_955_489_752, "606f41243d71ca4d5fe66dbaf1f02bee"),
}
_CHUNK = 1 << 20
_TASK = 256        # images per worker task
_MAX_LISTED = 50   # skipped files named in the split's attributes


class DataError(UserError):
    """Anything that stops a split from being prepared; the message is one line naming the file."""


class ChecksumError(DataError):
    pass


class UnsafeArchiveError(DataError):
    pass


class BadInputError(DataError):
    pass


@dataclasses.dataclass(frozen=True)
class SplitStats:
    path: Path
    num_examples: int
    num_dropped: int    # images with more than 5 digits
    num_skipped: int    # bad images (see `skipped`)
    skipped: tuple[str, ...]
    seconds: float


# ----------------------------------------------------------------------------------- download

def verify(path: str | os.PathLike, archive: Archive) -> None:
    """Raises ChecksumError unless `path` has the expected size and MD5."""
    path = Path(path)
    size = path.stat().st_size
    if size != archive.size:
        raise ChecksumError(f"{path}: {size:,} bytes, expected {archive.size:,}")
    md5 = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            md5.update(block)
    if md5.hexdigest() != archive.md5:
        raise ChecksumError(f"{path}: MD5 {md5.hexdigest()}, expected {archive.md5}")


def _fetch_once(url: str, part: Path, total: int, progress: bool) -> None:
    """Appends the missing bytes of `url` to `part` (HTTP Range when `part` has some already)."""
    have = part.stat().st_size if part.exists() else 0
    if have > total:
        part.unlink()
        have = 0
    if have == total:
        return
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=60) as response:
        if have and response.status != 206:  # the server ignored the range: start again
            have = 0
        elif have and not response.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            raise ConnectionError(f"unexpected Content-Range {response.headers.get('Content-Range')!r}")
        with open(part, "ab" if have else "wb") as out, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                desc=part.name.removesuffix(".part"), disable=not progress, leave=False) as bar:
            while block := response.read(_CHUNK):
                out.write(block)
                bar.update(len(block))
    if part.stat().st_size != total:
        raise ConnectionError(f"connection closed after {part.stat().st_size:,} of {total:,} bytes")


def download(url: str, dest: str | os.PathLike, archive: Archive, *, retries: int = 3,
             progress: bool = True) -> Path:
    """Downloads `url` to `dest` via ``dest.part`` (resumed across cuts and calls), verified."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    size = lambda: part.stat().st_size if part.exists() else 0  # noqa: E731
    attempt = 0
    while True:
        before = size()
        try:
            _fetch_once(url, part, archive.size, progress)
            break
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            reason = getattr(e, "reason", None) or str(e) or type(e).__name__
            if size() > before and attempt < retries:  # cut mid-file: resume where it stopped
                attempt += 1
                logging.warning("%s: %s; resuming at byte %d (%d/%d)", url, reason, size(), attempt, retries)
                continue
            kept = f"; {size():,} of {archive.size:,} bytes kept in {part}, rerun to resume" if size() else ""
            raise DataError(f"cannot download {url} ({reason}{kept}); download it yourself to {dest}, "
                            f"or pass --source_dir=FOLDER holding {dest.name} or its extracted folder") from None
    try:
        verify(part, archive)
    except ChecksumError as e:
        part.unlink()
        raise ChecksumError(f"{url}: {e} (deleted; download again or check the mirror)") from None
    os.replace(part, dest)
    return dest


# ---------------------------------------------------------------------------------- extraction

def _safe_members(archive: Path, tar: tarfile.TarFile):
    for m in tar:
        parts = PurePosixPath(m.name).parts
        if not (m.isfile() or m.isdir()):
            raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a link or special file; refused")
        if PurePosixPath(m.name).is_absolute() or ".." in parts or m.name.startswith(("/", "\\")):
            raise UnsafeArchiveError(f"{archive}: member {m.name!r} escapes the target folder; refused")
        yield m


def extract(archive: str | os.PathLike, split: str, root: str | os.PathLike) -> Path:
    """Extracts the `split`/ folder of `archive` to ``root/split`` (through a temporary folder)."""
    archive, root = Path(archive), Path(root)
    final = root / split
    tmp = root / f".{split}.extract-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                tar.extractall(tmp, members=_safe_members(archive, tar), filter="data")
        except (tarfile.TarError, EOFError, OSError) as e:
            raise DataError(f"{archive}: unreadable archive ({e})") from None
        if not (tmp / split / "digitStruct.mat").is_file():
            raise DataError(f"{archive}: no {split}/digitStruct.mat inside")
        shutil.rmtree(final, ignore_errors=True)  # only ever an incomplete leftover: complete ones are used
        os.replace(tmp / split, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def split_folder(split: str, raw_dir: str | os.PathLike, *, source_dir: str | os.PathLike | None = None,
                 base_url: str = BASE_URL, known: Mapping[str, Archive] = KNOWN_ARCHIVES,
                 progress: bool = True) -> Path:
    """The extracted folder of `split` (PNGs + digitStruct.mat), making it from whatever is at hand:
    `source_dir`'s folder or archive, else the raw folder's, else a download from `base_url`."""
    raw_dir = Path(raw_dir)
    if split not in known:
        raise DataError(f"unknown SVHN split {split!r}; choose from {', '.join(known)}")
    if source_dir:
        source_dir = Path(source_dir)
        if (source_dir / split / "digitStruct.mat").is_file():
            return source_dir / split
        archive = source_dir / f"{split}.tar.gz"
        if not archive.is_file():
            raise DataError(f"{source_dir}: holds neither {split}/digitStruct.mat nor {split}.tar.gz")
        verify(archive, known[split])
        return extract(archive, split, raw_dir)
    if (raw_dir / split / "digitStruct.mat").is_file():
        return raw_dir / split
    archive = raw_dir / f"{split}.tar.gz"
    if archive.is_file():
        verify(archive, known[split])
    else:
        download(f"{base_url.rstrip('/')}/{split}.tar.gz", archive, known[split], progress=progress)
    return extract(archive, split, raw_dir)


# ------------------------------------------------------------------------------- preprocessing

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


def _ordered(fn: Callable, tasks, workers: int):
    """fn(*task) for each task, in order, with at most 2 x workers tasks in flight (bounded memory)."""
    if workers <= 1:
        yield from (fn(*t) for t in tasks)
        return
    with multiprocessing.get_context("spawn").Pool(workers) as pool:  # spawn: safe next to JAX threads
        pending = collections.deque()
        for t in tasks:
            pending.append(pool.apply_async(fn, t))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def prepare_split_from_folder(folder: str | os.PathLike, out_path: str | os.PathLike, recipe: str, *,
                              strict: bool = False, workers: int = 2, source: str | None = None) -> SplitStats:
    """An extracted format-1 folder (PNGs + digitStruct.mat) -> one contract split at `out_path`.

    Images with more than 5 digits are dropped (``num_dropped``); bad ones (unreadable or missing PNG,
    box outside the image, label outside 1-10) are skipped with a warning naming the file and counted
    (``num_skipped``, first ones listed in ``skipped``), or raise BadInputError when `strict`. The file
    appears only when complete; an existing one is replaced only by a successful run.
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
    with store.SplitWriter(out_path, preprocess.image_shape(recipe), recipe=recipe,
                           source=source or f"svhn format 1: {folder.name}") as writer:
        progress = tqdm(zip(chunks, _ordered(_process, tasks, workers)), total=len(chunks),
                        desc=f"preprocess {Path(folder).name}", unit="chunk", leave=False)
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
    """Makes ``<data_dir>/svhn/<recipe>/<split>.h5`` for each split that is not there yet."""
    if recipe not in preprocess.RECIPES:
        raise DataError(f"unknown recipe {recipe!r}; choose one of {', '.join(preprocess.RECIPES)}")
    root = Path(data_dir).expanduser()
    done = []
    for split in splits:
        path = paths.split_path(root, "svhn", recipe, split)
        if path.exists():
            log(f"{path}: already prepared")
            continue
        folder = split_folder(split, root / "svhn" / "raw", source_dir=source_dir, base_url=base_url,
                              known=known, progress=progress)
        stats = prepare_split_from_folder(folder, path, recipe, strict=strict, workers=workers)
        log(f"{path}: {stats.num_examples:,} images ({stats.num_dropped} with more than 5 digits dropped, "
            f"{stats.num_skipped} bad ones skipped) in {stats.seconds:.1f} s")
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
