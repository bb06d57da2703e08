"""One base class for the errors a user can fix: its message is one line for the user.

Every module raises a subclass of `UserError` (a file or value named, what to change); each CLI's
``main`` is wrapped by `core.cli.cli`, which prints it as ``error: <message>`` and exits with its
status, never a traceback. Exit statuses: 1 for a user error; 128 + the signal's number for a run
that a signal stopped after saving its state (`Stopped`; 143 for SIGTERM), the status schedulers
that preempt with SIGTERM (SLURM, Kubernetes, Cloud TPU) treat as a preempted job.
"""
from __future__ import annotations

EXIT_ERROR = 1        # a user error: the message says what to change


class UserError(Exception):
    """A problem the user can fix; ``str(e)`` is one line that names the file or value at fault."""

    exit_status = EXIT_ERROR



class Stopped(UserError):
    """A run that a signal asked to stop and that stopped cleanly, its state saved; exits 128 + signal."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_status = 128 + signum



def one_line(text: object) -> str:
    """Collapses whitespace (and newlines) so a message stays on one line."""
    return " ".join(str(text).split())
