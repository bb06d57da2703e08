"""What every command-line program shares: one line for a user's error or a signal, and quiet libraries.

`cli` wraps a CLI's ``main``: a `UserError` prints ``error: <message>`` and exits with its status;
Ctrl-C or SIGTERM print one line and exit 128 + signal. `run_program` runs it as absl's ``app.run``
does, its ``--help`` the program's own text and flags. `quiet_libraries` keeps library noise out
of the console (our own errors are reported in one line).
"""
from __future__ import annotations

import functools
import logging
import signal
import sys
import threading
import traceback
import warnings
from typing import Callable, TypeVar

from svhn_jax.core.errors import UserError, one_line
from svhn_jax.core.signals import exit_if_interrupted_was_lost, handle_stop_signals, raise_interrupted

T = TypeVar("T")


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



def run_program(main: Callable[[list[str]], object], flags_parser: Callable[[list[str]], list[str]] | None = None) \
        -> None:
    """``app.run(main)`` for a program whose code lives in ``main``'s module (`svhn_jax.cli.X`) while users
    type ``python -m svhn_jax.X`` (a two-line shim is ``__main__``): ``--help`` (and ``--helpshort``) then
    shows that module's docstring and every flag it defines, with its default, where absl would show the
    shim's one line and no flag ("Try --helpfull"). Call it once the program's flags are defined."""
    from absl import app, flags

    module = sys.modules[main.__module__]
    main_module = sys.modules["__main__"]
    if module is not main_module and module.__doc__:
        main_module.__doc__ = module.__doc__.replace("%", "%%")  # absl formats it with sys.argv[0]
    for flag in flags.FLAGS.flags_by_module_dict().get(module.__name__, []):  # key flags of the typed program
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(main, **({"flags_parser": flags_parser} if flags_parser else {}))


MAX_REASON = 300  # characters of a library's error message shown (orbax's run to kilobytes)


def load_problem(e: Exception, workdir: str | None) -> str:
    """The one line that says why the models did not load (`load_models` raised `e`); predict's and
    score_photos'. A checkpoint of another model or shape leaves orbax's abandoned reads to be collected
    later, each printed as an "Exception ignored" traceback (hundreds of lines): they are silenced, this
    line already says it."""
    sys.unraisablehook = lambda unraisable: None
    if isinstance(e, UserError):  # the workdir's own one-line errors already name it
        return one_line(e)
    reason = one_line(e)
    reason = reason if len(reason) <= MAX_REASON else reason[:MAX_REASON] + " ..."
    return f"{workdir or 'the shipped reader'}: cannot load a trained run ({type(e).__name__}: {reason})"


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
