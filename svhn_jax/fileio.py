"""File helpers shared by every writer: atomic replacement and the user cache folder."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Calls ``write(tmp)`` on a temporary name beside `path`, then renames it into place.

    A reader never sees half a file: if `write` raises (disk full, Ctrl-C), the temporary file is
    removed and `path` keeps its earlier content.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/svhn_jax`` (default ``~/.cache/svhn_jax``): data and compiled programs live below."""
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "svhn_jax"
