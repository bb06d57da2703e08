"""Stop signals (SIGTERM, SIGINT): stop at once in one line, or stop cleanly where the work allows.

A signal that ends the program at once exits 128 + its number (130 for SIGINT, 143 for SIGTERM), the
status a shell reports for a process the signal killed. `StopRequests` turns the first signal into
a request that a training loop honours after its step (a checkpoint saved; `errors.Stopped`).
`WorkerPool` (and `ordered` on it) runs work in processes that leave a signal to this one, and ends
them at once on a signal or an error, with `concurrent.futures`' public shutdown.
"""
from __future__ import annotations

import collections
import contextlib
import multiprocessing
import os
import pickle
import shutil
import signal
import sys
import tempfile
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import resource_tracker
from typing import Any, Callable, Iterable, Iterator, TypeVar

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
T = TypeVar("T")


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
def sigint_blocked() -> Iterator[None]:
    """Blocks SIGINT in this thread while the block runs: processes started in it begin with SIGINT
    blocked (the mask survives fork and exec), so a Ctrl-C to the process group waits, in them, until
    they ignore it (`_ignore_sigint`), and in this process until the block ends, when it is handled:
    it is never lost, as it would be if this process ignored it meanwhile."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _ignore_sigint() -> None:
    """A worker's initializer: SIGINT ignored (a Ctrl-C that came while it started, blocked, is dropped
    with it), then unblocked."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _to_file(folder: str, name: str, fn: Callable[..., Any], args: tuple) -> str:
    """In a worker: ``fn(*args)`` pickled into ``folder/name`` (whole: written under a temporary name and
    renamed); returns that path."""
    path = os.path.join(folder, name)
    with open(path + ".part", "wb") as f:
        pickle.dump(fn(*args), f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(path + ".part", path)
    return path


def _from_file(path: str) -> Any:
    """In the pool's process: the result `_to_file` wrote, its file removed."""
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    finally:
        os.unlink(path)


LEAK_WARNING = "ignore::UserWarning:multiprocessing.resource_tracker"


class WorkerPool:
    """``with WorkerPool(n) as pool:`` `n` spawned worker processes (safe beside JAX's threads), on
    `concurrent.futures.ProcessPoolExecutor`, that ignore SIGINT from their start.

    A terminal's Ctrl-C reaches the whole process group: only this process reports it, and ends the
    workers, instead of each printing its own traceback. The workers are started at once, SIGINT
    blocked (`sigint_blocked`) until their initializer ignores it. The block ending normally shuts the
    pool down and waits for the workers; an exception (an error, a stop signal, a consumer that stops
    early) ends it at once (`end_now`), killing the processes this process started with multiprocessing
    while the pool lived (its workers: the programs here start no others meanwhile).
    """

    def __init__(self, workers: int):
        self.workers = max(1, int(workers))
        # Results come back as files: the executor's result pipe carries only their names, short enough
        # to be written whole (a pipe's atomic write). A worker killed while it sent a large result would
        # leave half a message there, which the executor would wait for ever to read the rest of.
        self.results = tempfile.mkdtemp(prefix="svhn_jax_workers-")
        self._count = 0
        self._others = {p.pid for p in multiprocessing.active_children()}  # processes that are not ours
        # The tracker outlives a hard exit (`exit_at_once`) and would then warn of the executor's semaphores
        # on stderr, after the one line already said it: it takes this process's -W options when started.
        if LEAK_WARNING not in sys.warnoptions:
            sys.warnoptions.append(LEAK_WARNING)
        resource_tracker.ensure_running()  # now: starting it later would unblock SIGINT in this thread
        try:
            with sigint_blocked():  # the workers inherit it: started now (a task each), not on demand later
                self.executor = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                    initializer=_ignore_sigint)
                for _ in range(self.workers):
                    self.executor.submit(int)
        except BaseException:  # a Ctrl-C that came meanwhile, raised as the block ends
            if hasattr(self, "executor"):
                self.end_now()
            shutil.rmtree(self.results, ignore_errors=True)
            raise

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, exc_type: Any, *exc_info: object) -> None:
        if exc_type is None:
            self.executor.shutdown(wait=True)
            shutil.rmtree(self.results, ignore_errors=True)
        else:
            self.end_now()

    def submit(self, fn: Callable[..., T], *args: Any) -> Future:
        """``fn(*args)`` in a worker; the future's result is the name of the file that holds the result
        (`WorkerPool.result`)."""
        self._count += 1
        return self.executor.submit(_to_file, self.results, f"{self._count}.pickle", fn, args)

    @staticmethod
    def result(future: Future) -> Any:
        """The result of a task `submit` started (waits for it; its error raised)."""
        return _from_file(future.result())

    def imap(self, fn: Callable[..., T], tasks: Iterable[tuple], ahead: int = 2) -> Iterator[T]:
        """``fn(*task)`` for each task, in order, with at most `ahead` x workers tasks in flight (bounded
        memory: results wait for the consumer, not the other way round)."""
        pending: collections.deque[Future] = collections.deque()
        for task in tasks:
            pending.append(self.submit(fn, *task))
            if len(pending) >= ahead * self.workers:
                yield self.result(pending.popleft())
        while pending:
            yield self.result(pending.popleft())

    def end_now(self) -> None:
        """Ends the pool at once: tasks not started are cancelled, the workers killed (SIGKILL: a
        terminal's signal may have killed some already) and joined, then the executor shut down and the
        results not read removed. The executor never waits for a worker that is gone, nor writes to one
        (no broken-pipe tracebacks)."""
        workers = [p for p in multiprocessing.active_children() if p.pid not in self._others]
        for worker in workers:
            worker.kill()
        for worker in workers:
            worker.join()
        self.executor.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.results, ignore_errors=True)  # results not read, and a killed worker's part file


def ordered(fn: Callable[..., T], tasks: Iterable[tuple], workers: int) -> Iterator[T]:
    """``fn(*task)`` for each task, in order: in this process when `workers` <= 1, else in a `WorkerPool`
    of `workers` processes with at most 2 x workers tasks in flight, ended at once if the consumer
    stops early or raises (an error, a stop signal)."""
    if workers <= 1:
        yield from (fn(*task) for task in tasks)
        return
    with WorkerPool(workers) as pool:
        yield from pool.imap(fn, tasks)


def exit_at_once(signum: int, frame: Any = None) -> None:
    """A signal handler that ends the program now: one line, exit 128 + signal, no `finally` run.

    For when nothing can be saved or cleaned (while libraries load), and as the fallback when an
    `Interrupted` would be lost: every writer survives this as it survives kill -9 (whole files
    are renamed into place), and first the worker processes still running are killed and the
    temporary files `fileio.atomic_write` had not finished removed, so neither is left behind.
    """
    from svhn_jax.core import fileio  # here: fileio is for writers, signals for every program
    for child in multiprocessing.active_children():  # a pool's workers (they leave SIGINT to this process)
        with contextlib.suppress(Exception):
            child.kill()
    fileio.remove_unfinished()
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
