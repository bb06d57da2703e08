"""Users' photos: finding them, decoding them safely, and reading their labels.

`find_images` expands files and folders (regular image files only: a FIFO or device never blocks),
`load_image` decodes any common format and mode to RGB with EXIF orientation applied and memory
bounded by ``max_pixels`` (`load_photo`: big JPEGs at a reduced scale; a photo under `MIN_SIDE`
pixels on a side is refused), and `read_labels` reads a folder's labels: a CSV of
``file,number[,x,y,w,h]`` or a JSON list of ``{"file", "number", "box"}``, UTF-8 with or without a
byte order mark, from a regular file of at most `MAX_LABELS_BYTES` (a FIFO or a device never blocks
nor streams for ever). Used by `predict`, `score_photos` and the photo page; every failure to decode
is an `ImageError` whose message is one line, every failure to read labels a ValueError naming the file.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
import stat
import struct
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from svhn_jax.core.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
DEFAULT_MAX_PIXELS = 64_000_000  # ~8000 x 8000; an RGB copy is then ~200 MB
MIN_SIDE = 3                     # pixels on each side, at least (OpenCV's MSER refuses less; no number fits)
MAX_LABELS_BYTES = 64 * 2**20    # a labels file's size, at most (~2 million rows)


class ImageError(UserError, ValueError):
    """An input that cannot be answered; the message is the one line to print (without the path)."""


_FILE_KINDS = {stat.S_IFIFO: "FIFO", stat.S_IFCHR: "character device", stat.S_IFBLK: "block device",
               stat.S_IFSOCK: "socket"}


def _reason(e: OSError) -> str:
    """"permission denied", "input/output error", ...: the OS's reason, in the style of our lines."""
    return (e.strerror or type(e).__name__).lower()


def find_images(paths: Sequence[str]) -> Iterator[tuple[str, str | None]]:
    """Expands the arguments into (path, error) pairs: error is None for a file to read.

    A folder yields its image-named entries other than subfolders, so that `load_image` names the
    ones that are not regular files rather than skipping them unseen; one that cannot be listed
    (no permission) yields its own error, and the other arguments are still expanded.
    """
    for arg in paths:
        path = Path(arg)
        try:
            if not path.is_dir():
                yield arg, None if path.exists() else "no such file or folder"
                continue
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
                           and not p.name.startswith(".") and not p.is_dir())
        except OSError as e:  # a folder on the way, or this one, cannot be read
            yield arg, _reason(e)
            continue
        if not found:
            yield arg, f"no images ({', '.join(IMAGE_SUFFIXES)}) in this folder"
        for p in found:
            yield str(p), None


def _to_rgb(im: Image.Image) -> np.ndarray:
    """Any Pillow image -> uint8 [H, W, 3]: 16-bit scaled to 8-bit, transparency over white."""
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        a = np.asarray(im, np.float64)
        if im.mode == "F":
            a = a * 255.0 if a.size and a.max() <= 1.0 else a
        elif im.mode.startswith("I;16") or (a.size and a.max() > 255):
            a = a / 257.0  # 16-bit range 0-65535 -> 0-255
        grey = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    return np.asarray(im.convert("RGB"), np.uint8)


def load_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decodes one image file to uint8 RGB [H, W, 3] with EXIF orientation applied.

    The size is checked from the header before any pixel is decoded, so memory stays bounded by
    ``max_pixels``. Only a regular file is read, and it is opened non-blocking: a FIFO or a device
    (endless, or waiting for a writer) must not hang the program. An image under `MIN_SIDE` pixels
    on a side (a 1x1 dot, a 2000x1 strip) is refused too. Raises `ImageError` with a one-line reason.
    """
    return load_photo(path, max_pixels)[0]


def load_photo(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS,
               max_side: int = 0) -> tuple[np.ndarray, float]:
    """`load_image`, but a JPEG whose longer side exceeds `max_side` (> 0) is decoded at a reduced
    scale (1/2, 1/4 or 1/8: JPEG's own DCT scaling, four to sixty times less work and memory), never
    below `max_side`: (image, scale) with scale = original pixels per decoded pixel."""
    pillow_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # the check below, from the header, replaces Pillow's own
    try:
        info = os.stat(path)
        kind = stat.S_IFMT(info.st_mode)
        if kind == stat.S_IFDIR:
            raise ImageError("is a folder")
        if kind != stat.S_IFREG:
            raise ImageError(f"not a regular file ({_FILE_KINDS.get(kind, 'special file')})")
        with warnings.catch_warnings(), open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as stream:
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(stream) as im:
                width, height = im.size
                if width * height > max_pixels:
                    raise ImageError(f"image too large ({width}x{height} pixels; the limit is "
                                     f"{max_pixels:,}, see --max_pixels)")
                if min(width, height) < MIN_SIDE:
                    raise ImageError(f"too small to read ({width}x{height} pixels; at least {MIN_SIDE} on "
                                     "each side)")
                im.seek(0)
                if max_side and im.format == "JPEG" and max(width, height) > max_side:
                    factor = max_side / max(width, height)
                    im.draft("RGB", (math.ceil(width * factor), math.ceil(height * factor)))
                scale = width / im.size[0]
                im.load()
                return _to_rgb(ImageOps.exif_transpose(im)), scale
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"image too large ({e}; see --max_pixels)") from None
    except UnidentifiedImageError:
        raise ImageError("empty file" if info.st_size == 0 else "not a readable image (unknown format)") from None
    except FileNotFoundError:
        raise ImageError("no such file") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, MemoryError) as e:
        detail = str(e).strip() or type(e).__name__
        raise ImageError(f"damaged or unsupported image ({detail})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit


# A CSV's first line is a header when its first two columns are named so (any case): (file, number), ...
HEADERS = {(f, n) for f in ("file", "filename", "name", "photo", "image", "path")
           for n in ("number", "label", "house_number")}


def _label_box(where: str, box: Any) -> tuple[int, int, int, int]:
    """A row's box (four numbers x, y, w, h; strings from a CSV) -> whole pixels; ValueError naming `where`."""
    text = ",".join(map(str, box)) if isinstance(box, (list, tuple)) else str(box)
    try:
        if not isinstance(box, (list, tuple)) or len(box) != 4 or any(isinstance(v, bool) for v in box):
            raise ValueError
        values = [float(v) for v in box]
        if not all(math.isfinite(v) for v in values):
            raise ValueError
        x, y, w, h = (int(round(v)) for v in values)
        if w <= 0 or h <= 0:
            raise ValueError
    except (ValueError, TypeError):
        raise ValueError(f"{where}: box {text!r} is not four finite numbers x,y,w,h with a positive width "
                         "and height") from None
    return x, y, w, h


def read_text(path: str | os.PathLike, limit: int = MAX_LABELS_BYTES) -> str:
    """A small text file's contents (UTF-8, a byte order mark dropped). Only a regular file of at most
    `limit` bytes is read, opened non-blocking (a FIFO waiting for a writer, or /dev/zero, must not hang
    the program nor fill its memory); anything else raises a ValueError "PATH: reason"."""
    try:
        kind = stat.S_IFMT(os.stat(path).st_mode)
        if kind == stat.S_IFDIR:
            raise ValueError(f"{path}: is a folder")
        if kind != stat.S_IFREG:
            raise ValueError(f"{path}: not a regular file ({_FILE_KINDS.get(kind, 'special file')})")
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            data = stream.read(limit + 1) if size <= limit else b""
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({_reason(e)})") from None
    if size > limit or len(data) > limit:
        raise ValueError(f"{path}: too large ({max(size, len(data)):,} bytes; a labels file is read up to {limit:,})")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def read_labels(path: str | Path) -> list[dict[str, Any]]:
    """[{"file", "number", "box" (x, y, w, h) or None, "where" ("PATH line N" / "PATH entry N")}] from a
    CSV or JSON labels file; a photo without a house number has the number "none" in a CSV (null in
    JSON), read as "". A first CSV line is a header when its columns are named so (`HEADERS`: e.g.
    ``file,number,x,y,w,h``). A malformed row (a CSV row of other than 2 or 6 columns, a number that is
    not digits, a box that is not four finite numbers with a positive size, a JSON entry that is not
    {"file", "number", "box"}) or a photo labelled twice raises a ValueError naming its line; a file
    that cannot be read (`read_text`: missing, not a regular file, too large, not UTF-8) one naming it."""
    path = Path(path)
    text = read_text(path)
    rows = []
    if path.suffix.lower() == ".json":
        try:
            entries = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(entries, list):
            raise ValueError(f"{path}: expected a JSON list of {{\"file\", \"number\", \"box\"}} entries, "
                             f"got a JSON {type(entries).__name__}")
        for n, r in enumerate(entries, 1):
            where = f"{path} entry {n}"
            if not (isinstance(r, dict) and isinstance(r.get("file"), str) and "number" in r
                    and isinstance(r["number"], (str, int, type(None))) and not isinstance(r["number"], bool)):
                raise ValueError(f"{where}: expected {{\"file\": name, \"number\": digits or null, "
                                 "\"box\": [x, y, w, h] or null}")
            rows.append((where, r["file"], "" if r["number"] is None else str(r["number"]), r.get("box")))
    else:
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path} line {n}"
            cells = [c.strip() for c in next(csv.reader([line]))]
            if len(cells) not in (2, 6):
                raise ValueError(f"{where}: expected file,number[,x,y,w,h], got {len(cells)} columns")
            if not rows and (cells[0].lower(), cells[1].lower()) in HEADERS:  # a header, by its column names
                continue
            rows.append((where, cells[0], "" if cells[1].lower() == "none" else cells[1], cells[2:6] or None))
    out: list[dict[str, Any]] = []
    first: dict[str, str] = {}
    for where, file, number, box in rows:
        if not file:
            raise ValueError(f"{where}: no file name")
        if number and not re.fullmatch(r"[0-9]+", number):
            raise ValueError(f"{where}: {file}: number {number!r} is not a house number")
        key = os.path.normpath(file)
        if key in first:  # two labels for one photo: which one is right cannot be told
            raise ValueError(f"{where}: {file!r} is labelled again (first on {first[key]})")
        first[key] = where.rpartition(f"{path} ")[2]
        out.append({"file": file, "number": number, "box": None if box is None else _label_box(where, box),
                    "where": where})
    return out


def match_boxes(rows: Sequence[dict[str, Any]], labels: str | os.PathLike,
                photos: Sequence[str]) -> dict[str, tuple[int, int, int, int]]:
    """`--boxes` rows (`read_labels`) -> {a photo's real path: its box}, each row matched to the photos
    the way a user writes it: a bare name names every photo of that name, a path is taken from the
    current folder or from the labels file's folder. Raises ValueError naming the line of a row
    without a box, one that matches none of `photos` and names no file (a typo), or one naming a
    photo an earlier row named."""
    base = Path(labels).parent
    by_real = {os.path.realpath(p): p for p in photos}
    out: dict[str, tuple[int, int, int, int]] = {}
    line_of: dict[str, str] = {}
    for row in rows:
        file, where = row["file"], row["where"]
        if row["box"] is None:
            raise ValueError(f"{where}: {file!r} has no box x,y,w,h")
        if os.sep not in file and "/" not in file:
            hits = [real for real, p in by_real.items() if Path(p).name == file]
            named = [base / file]
        else:
            named = [Path(file), base / file]
            hits = [real for real in {os.path.realpath(n) for n in named} if real in by_real]
        if not hits and not any(n.is_file() for n in named):
            raise ValueError(f"{where}: {file!r} matches none of the photos given and names no file")
        for real in hits:
            if real in line_of:
                raise ValueError(f"{where}: {file!r} names {by_real[real]}, as {line_of[real]} does")
            out[real], line_of[real] = row["box"], where
    return out
