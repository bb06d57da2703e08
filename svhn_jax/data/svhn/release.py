"""The real SVHN format-1 release: download (resumable), verify, extract, safely.

Downloads go to ``<raw_dir>/<split>.tar.gz`` (resumed with HTTP Range from a ``.part`` file, size and
MD5 checked before use) and are extracted to ``<raw_dir>/<split>/`` through a temporary folder renamed
into place, so a folder that exists is complete. A ``source_dir`` points at an already downloaded
release instead: the ``.tar.gz`` files or the extracted folders. `svhn.prepare` ingests the folders.
"""
from __future__ import annotations

import dataclasses
import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Mapping

from tqdm import tqdm

from svhn_jax.core.errors import UserError

BASE_URL = "http://ufldl.stanford.edu/housenumbers"


@dataclasses.dataclass(frozen=True)
class Archive:
    """What a release archive must be: its size and MD5."""

    size: int  # bytes
    md5: str


# From a public mirror's content keys; report it if the official release ever disagrees.
KNOWN_ARCHIVES: Mapping[str, Archive] = {
    "train": Archive(404_141_560, "a649f4cb15c35520e8a8c342d4c0005a"),
    "test": Archive(276_555_967, "790d9c8d42f1fcbd219b59956c853a81"),
    "extra": Archive(1_955_489_752, "606f41243d71ca4d5fe66dbaf1f02bee"),
}
_CHUNK = 1 << 20


class DataError(UserError):
    """Anything that stops a split from being prepared; the message is one line naming the file."""


class ChecksumError(DataError):
    """An archive's size or MD5 is not the release's."""


class UnsafeArchiveError(DataError):
    """An archive member is a link or escapes the target folder."""



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
    size = lambda: part.stat().st_size if part.exists() else 0
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

