"""Stop signals (SIGTERM, SIGINT): stop at once in one line, or stop cleanly where the work allows.

A signal that ends the program at once exits 128 + its number (130 for SIGINT, 143 for SIGTERM), the
status a shell reports for a process the signal killed. `StopRequests` turns the first signal into
a request that a training loop honours after its step (a checkpoint saved; `errors.Stopped`).
"""
from __future__ import annotations

import contextlib
import multiprocessing.pool
import os
import signal
import sys
import threading
from typing import Any, Callable, Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(KeyboardInterrupt):
    """A signal that stops the program at once, raised like Ctrl-C's KeyboardInterrupt (SIGTERM included)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum



def handle_stop_signals(handler: Callable[[int, Any], None]) -> dict[int, Any]:
    """Sets `handler` for SIGTERM and SIGINT; returns the handlers it replaced.

    A signal ignored (SIGINT in a shell's background job) stays ignored; off the main thread
    Python cannot handle signals, and nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, handler) for s in STOP_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN}



@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """Ignores SIGINT while the block runs: worker processes started in it inherit that. A terminal's
    Ctrl-C reaches the whole process group; only the command's own process reports it and ends its
    workers (each would otherwise print its own traceback). Off the main thread nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def end_pool_now(pool: multiprocessing.pool.Pool) -> None:
    """Ends `pool` at once, for an error or a stop signal: no replacement workers, every worker killed
    (SIGKILL) and joined, and the pool's own clean-up dropped. `Pool.terminate` (and that clean-up at
    exit) first takes the task queue's lock, which a worker killed by the same signal (a terminal
    sends it to the whole process group) may have held when it died: it would wait for ever.
    (It reaches into the pool's private state: the standard library offers no way out of this.)"""
    pool._state = multiprocessing.pool.TERMINATE
    pool._worker_handler._state = multiprocessing.pool.TERMINATE
    pool._change_notifier.put(None)
    pool._worker_handler.join()  # it may be starting a replacement for a worker that died
    for worker in pool._pool:
        worker.kill()
    for worker in pool._pool:
        worker.join()
    pool._terminate.cancel()


def exit_at_once(signum: int, frame: Any = None) -> None:
    """A signal handler that ends the program now: one line, exit 128 + signal, no cleanup.

    For when nothing can be saved or cleaned (while libraries load), and as the fallback when an
    `Interrupted` would be lost: every writer survives this as it survives kill -9 (whole files
    are renamed into place, so a temporary one left behind is never taken for a result).
    """
    os.write(2, f"error: interrupted ({signal.Signals(signum).name})\n".encode())
    os._exit(128 + signum)



def raise_interrupted(signum: int, frame: Any) -> None:
    """A signal handler that stops at once by raising `Interrupted`: `finally` blocks clean up."""
    raise Interrupted(signum)



def exit_if_interrupted_was_lost(unraisable: Any) -> None:
    """``sys.unraisablehook``: an `Interrupted` raised where Python cannot pass it on (a ``__del__``,
    a garbage-collector callback) would be printed and dropped, and the program would run on; exit."""
    if isinstance(unraisable.exc_value, Interrupted):
        exit_at_once(unraisable.exc_value.signum)
    sys.__unraisablehook__(unraisable)



class StopRequests:
    """``with StopRequests() as stop:`` turns the first SIGTERM or SIGINT into a request, ``stop.signum``.

    The code in the block looks at ``stop.signum`` where it can stop cleanly (a training loop:
    after its step, once it saved a checkpoint); a second signal stops at once (`Interrupted`).
    Where signals cannot be handled (`handle_stop_signals`), ``stop.signum`` stays 0.
    """

    def __enter__(self) -> "StopRequests":
        self.signum = 0
        self.previous = handle_stop_signals(self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum:
            raise Interrupted(signum)
        self.signum = signum
