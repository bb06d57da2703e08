"""An exclusive advisory lock (``flock``) on a file, so that processes sharing a folder take turns.

Two runs that make the same data at once (two trainings on a fresh data folder, a training and a
``prepare``) would otherwise race on the same temporary and final names; with the lock one makes the
files and the others wait, then find them made. The kernel drops the lock when its holder ends,
however it ends (even ``kill -9``), so a crashed run never leaves the folder locked.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from typing import Callable, Iterator


@contextlib.contextmanager
def locked(path: str | os.PathLike, on_wait: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Holds an exclusive lock on `path` (created if missing) for the block; calls `on_wait` once
    before blocking when another process holds it. Ctrl-C interrupts the wait."""
    with open(path, "a") as f:  # "a": create without truncating a file another process has open
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait()
            fcntl.flock(f, fcntl.LOCK_EX)
        yield  # closing the file releases the lock
