"""One base class for the errors a user can fix, and one way for every CLI to report them.

Every module raises a subclass of `UserError` whose message is one line for the user; each CLI's
``main`` is wrapped by `cli` so that such an error, Ctrl-C or SIGTERM ends the program with
``error: <message>`` on stderr and a non-zero exit status, never a traceback.

Exit statuses: 1 for a user error; 128 + the signal's number for a program a signal ended (130 for
SIGINT, 143 for SIGTERM), whether it stopped at once (`Interrupted`) or first saved its state
(`Stopped`). That is the status a shell reports for a process the signal killed, so schedulers
that preempt with SIGTERM (SLURM, Kubernetes, Cloud TPU) see a preempted job, not a failed one, and
rules written for it hold (e.g. a Kubernetes podFailurePolicy ``onExitCodes: [143]``).
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import sys
import threading
import traceback
import warnings
from typing import Any, Callable, Iterator, TypeVar

T = TypeVar("T")

EXIT_ERROR = 1        # a user error: the message says what to change
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class UserError(Exception):
    """A problem the user can fix; ``str(e)`` is one line that names the file or value at fault."""

    exit_status = EXIT_ERROR


class Stopped(UserError):
    """A run that a signal asked to stop and that stopped cleanly, its state saved; exits 128 + signal."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_status = 128 + signum


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


def one_line(text: object) -> str:
    """Collapses whitespace (and newlines) so a message stays on one line."""
    return " ".join(str(text).split())


def cli(main: Callable[..., T]) -> Callable[..., T]:
    """Wraps a CLI's main: `UserError` -> ``error: ...`` and its exit status (1, or 128 + signal for
    `Stopped`); Ctrl-C or SIGTERM -> `Interrupted`, then one line and exit 128 + signal."""
    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        handle_stop_signals(raise_interrupted)
        sys.unraisablehook = exit_if_interrupted_was_lost
        try:
            return main(*args, **kwargs)
        except UserError as e:
            print(f"error: {one_line(e)}", file=sys.stderr)
            sys.exit(e.exit_status)
        except KeyboardInterrupt as e:
            signum = getattr(e, "signum", signal.SIGINT)
            print(f"error: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
            sys.exit(128 + signum)
    return wrapper


def _closed_loop(exc: BaseException | None) -> bool:
    return isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed"


def quiet_libraries() -> None:
    """Keeps library noise out of the console; our own errors are reported in one line.

    Orbax's per-save INFO chatter is dropped and its error records lose their tracebacks (a failed
    checkpoint write is reported by the run itself). When a write fails, orbax's other write tasks
    fail too and asyncio logs each, when garbage-collected, as "Task exception was never
    retrieved" with a traceback, and tensorstore's callbacks can still fire into orbax's closed
    event loop ("Event loop is closed" unraisable exceptions); both are dropped.
    """
    def orbax_filter(record: logging.LogRecord) -> bool:
        if "/orbax/" not in record.pathname:
            return True
        record.exc_info, record.exc_text = None, None
        return record.levelno >= logging.WARNING

    def orphan_task_filter(record: logging.LogRecord) -> bool:
        first_line = str(record.msg).split("\n", 1)[0]
        return not (record.name == "asyncio" and first_line.endswith("exception was never retrieved"))

    from absl import logging as absl_logging
    absl_logging.get_absl_handler().addFilter(orbax_filter)
    # The reads orbax abandoned also leave coroutines never awaited: Python warns about each at exit.
    warnings.filterwarnings("ignore", message=r"coroutine '.*' was never awaited", category=RuntimeWarning)
    logging.getLogger("asyncio").addFilter(orphan_task_filter)
    default_unraisable = sys.unraisablehook

    def unraisablehook(unraisable):
        # Reads orbax abandoned when a checkpoint failed to restore (the run says so itself) are
        # collected later, each an "Exception ignored" traceback: dropped with the closed-loop ones.
        frames = traceback.extract_tb(unraisable.exc_traceback) if unraisable.exc_traceback else []
        if any("/orbax/" in frame.filename for frame in frames):
            return
        if not _closed_loop(unraisable.exc_value):
            default_unraisable(unraisable)
    sys.unraisablehook = unraisablehook
    default_thread_hook = threading.excepthook

    def thread_hook(args):  # the same failures, raised in orbax's or tensorstore's threads
        frames = traceback.extract_tb(args.exc_traceback) if args.exc_traceback else []
        if not (any("/orbax/" in frame.filename for frame in frames) or _closed_loop(args.exc_value)):
            default_thread_hook(args)
    threading.excepthook = thread_hook
