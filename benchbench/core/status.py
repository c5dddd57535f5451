"""A cell's status: one enum, used by the worker protocol, the records, the schema and the exit codes."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Status", "BROKEN"]


class Status(StrEnum):
    """What became of a cell. A ``StrEnum``: each member equals its value, so files and messages hold the
    plain string (``"env-error"``) and old code comparing with strings keeps working."""

    OK = "ok"  # measured
    UNSUPPORTED = "unsupported"  # a converter or runtime rejected the model; the reason says which and why
    UNAVAILABLE = "unavailable"  # the backend is not installed, or has no device here
    CRASHED = "crashed"  # the worker died
    TIMEOUT = "timeout"  # the worker overran its deadline and was killed
    ERROR = "error"  # any other failure in the worker (a bug, with its message); with fault "user", the model's own
    ENV_ERROR = "env-error"  # the machine: out of memory, a full disk, an unwritable cache
    LOST = "lost"  # on a cluster: its worker died, and so did the one it was retried on (or none was left)


# Statuses of a cell that should have measured and did not, for a reason other than the user's model
# (run exits 1 on them; an error with fault "user" exits 2, env-error exits 3).
BROKEN = frozenset({Status.CRASHED, Status.TIMEOUT, Status.ERROR, Status.LOST})
