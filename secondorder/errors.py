"""Errors a user can act on.

Each carries a one-line message that says what went wrong and what to do; the command-line entry points
print it without a traceback and exit with ``exit_code``. Anything else that escapes is a bug and keeps its
traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input or an unusable run: reported as one line, non-zero exit, no traceback."""

    exit_code = 2


class ConfigError(UserError):
    """A configuration key, type or value is wrong."""


class DataError(UserError):
    """A dataset file is missing or malformed."""


class RunDiverged(UserError):
    """The training objective became NaN or infinite; the run is marked ``diverged``."""

    exit_code = 3


class ProcessGroupFailed(UserError):
    """A data-parallel run's collective failed: another process stopped or hung. The run is marked ``failed``; its
    last checkpoint is intact."""


class RunInterrupted(UserError):
    """A signal (SIGTERM from SLURM, Ctrl-C) stopped the run after a checkpoint was written."""

    def __init__(self, message: str, signal_number: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signal_number
