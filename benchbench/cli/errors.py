"""What the command line raises and how it prints one line: a user's mistake, a terminating signal."""

from __future__ import annotations

import signal

from benchbench.core.text import one_line, printable

__all__ = ["UsageError", "Terminated", "one_line", "Printable"]


class UsageError(Exception):
    """A mistake in what the user asked for; printed as one line, exit code 2."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread so that a sweep ends as on Ctrl-C: workers stopped,
    finished cells saved, views written; the exit code is 128 + the signal number."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Printable:
    """A text stream that escapes control characters on their way to the terminal (``core.text.printable``)
    and writes what its encoding cannot hold as backslash escapes (a C or POSIX locale), so no byte from a
    data file drives the terminal and no character ends the command in a traceback."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        text = printable(text, keep="\n\t")
        try:
            return self._stream.write(text)
        except UnicodeEncodeError:
            encoding = getattr(self._stream, "encoding", None) or "ascii"
            return self._stream.write(text.encode(encoding, "backslashreplace").decode(encoding))

    @property
    def raw(self):
        """The stream itself, for text benchbench composes and escapes on its own (a progress line's escapes)."""
        return self._stream

    def __getattr__(self, name):  # flush, fileno, isatty, encoding, ...: the stream's own
        return getattr(self._stream, name)
