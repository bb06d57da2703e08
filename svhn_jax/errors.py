"""One base class for the errors a user can fix, and one way for every CLI to report them.

Every module raises a subclass of `UserError` whose message is one line for the user; each CLI's
``main`` is wrapped by `cli` so that such an error (or Ctrl-C) ends the program with
``error: <message>`` on stderr and a non-zero exit status, never a traceback.
"""
from __future__ import annotations

import functools
import sys
from typing import Callable, TypeVar

T = TypeVar("T")

EXIT_ERROR = 1        # a user error: the message says what to change
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it


class UserError(Exception):
    """A problem the user can fix; ``str(e)`` is one line that names the file or value at fault."""


def one_line(text: object) -> str:
    """Collapses whitespace (and newlines) so a message stays on one line."""
    return " ".join(str(text).split())


def cli(main: Callable[..., T]) -> Callable[..., T]:
    """Wraps a CLI's main: `UserError` -> ``error: ...`` and exit 1; Ctrl-C -> one line and exit 130."""
    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as e:
            print(f"error: {one_line(e)}", file=sys.stderr)
            sys.exit(EXIT_ERROR)
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            sys.exit(EXIT_INTERRUPTED)
    return wrapper
