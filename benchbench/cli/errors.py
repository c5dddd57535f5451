"""What the command line raises and how it prints one line: a user's mistake, a terminating signal."""

from __future__ import annotations

import signal

from benchbench.core.files import one_line  # a quoted file name or argument may hold a newline

__all__ = ["UsageError", "Terminated", "one_line"]


class UsageError(Exception):
    """A mistake in what the user asked for; printed as one line, exit code 2."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread so that a sweep ends as on Ctrl-C: workers stopped,
    finished cells saved, views written; the exit code is 128 + the signal number."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
