"""File helpers shared by every writer: atomic replacement, exclusive locks (`hold_lock` fails at once,
`wait_for_lock` takes turns) and the user cache folder. Both locks are ``flock`` locks, which the
kernel drops however their holder ends (even ``kill -9``): a crash never leaves a stale lock."""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import tempfile
from pathlib import Path
from typing import Callable, Iterator

_UNFINISHED: set[str] = set()  # the temporary files `atomic_write` is writing now


def mark_unfinished(tmp: str | os.PathLike) -> None:
    """`tmp` is a temporary file being written (removed by `remove_unfinished` on a hard exit)."""
    _UNFINISHED.add(str(tmp))


def mark_finished(tmp: str | os.PathLike) -> None:
    """`tmp` was renamed into place or removed."""
    _UNFINISHED.discard(str(tmp))


def remove_unfinished() -> None:
    """Removes the temporary files `atomic_write` has not finished: for an exit that runs no `finally`
    (`signals.exit_at_once`), so that a signal leaves no half-written file behind either."""
    for name in list(_UNFINISHED):
        with contextlib.suppress(OSError):
            os.unlink(name)
    _UNFINISHED.clear()


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Calls ``write(tmp)`` on a temporary name beside `path`, then renames it into place.

    A reader never sees half a file: if `write` raises (disk full, Ctrl-C; `write` closes what it
    opens, so an error on close raises too), the temporary file is removed and `path` keeps its
    earlier content. The file is flushed to disk (fsync) before the rename and the rename after it,
    so a power cut cannot leave an empty or partial file under the final name either.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    mark_unfinished(tmp)
    try:
        write(tmp)
        fsync(tmp)
        os.replace(tmp, path)
        fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
        mark_finished(tmp)


def fsync(path: Path) -> None:
    """Flushes a file's (or a folder's: its entries') content to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LockHeld(Exception):
    """Another process holds the lock; ``str(e)`` names it as it wrote itself there ("process PID on HOST")."""


@contextlib.contextmanager
def hold_lock(path: Path) -> Iterator[None]:
    """Holds an exclusive lock on `path` (made if missing) while the block runs, else raises `LockHeld` at once.

    `fcntl.flock` locks belong to the open file, so the kernel releases them however the process
    ends, kill -9 included: a crashed run never leaves a stale lock. The file is left in place
    (removing it would race with the next run opening it); it names its last holder.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 256).decode(errors="replace").strip()
            raise LockHeld(holder or "another process") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def wait_for_lock(path: str | os.PathLike, on_wait: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Holds an exclusive lock on `path` (created if missing) for the block, waiting for another holder
    (calls `on_wait` once before it blocks; Ctrl-C interrupts the wait). Processes that make the same
    files (two runs on a fresh data folder) take turns instead of racing on the same names."""
    with open(path, "a") as f:  # "a": create without truncating a file another process has open
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait()
            fcntl.flock(f, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def writable_folder(folder: str | os.PathLike) -> None:
    """Makes `folder` (and its parents) and checks a file can be made in it; raises OSError otherwise."""
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise OSError(errno.ENOTDIR, "not a folder", str(path))
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=path):
        pass


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/svhn_jax`` (default ``~/.cache/svhn_jax``): data and compiled programs live below."""
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "svhn_jax"
