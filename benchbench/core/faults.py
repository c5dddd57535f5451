"""Whose fault a failure is: the user's model, the environment, or the converter.

A cell's status must say who can fix it. A converter or runtime that rejects a model which runs in
PyTorch eager is ``unsupported``; a model that cannot be built or run in eager (its factory raises or
returns something else than an ``nn.Module``, its forward raises) is the user's: status ``error`` with
``fault: "user"``, and ``run`` exits 2. Out of memory, a full disk or an unwritable cache are the
environment's: status ``env-error``, and ``run`` exits 3. Nothing here imports torch.
"""

from __future__ import annotations

import errno
import signal

__all__ = ["ENV_ERRNOS", "UserModelError", "EnvError", "env_fault", "oom_killed"]

# Errors that no other model or backend would avoid: the machine, not the model, must change.
ENV_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOMEM}


class UserModelError(Exception):
    """The model itself fails in PyTorch eager; ``str()`` is its own one-line message, with where."""


class EnvError(Exception):
    """The environment failed the build: out of memory, a full disk, an unwritable cache."""


def env_fault(exc: BaseException) -> str | None:
    """A one-line reason when ``exc`` (or anything it was raised from) is an environment failure, else None.

    Exporters wrap what they hit (torch.onnx raises its own error from an ``OSError``), so the whole
    ``__cause__``/``__context__`` chain is searched.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, EnvError):
            return str(exc)
        if isinstance(exc, MemoryError):
            return "out of memory (MemoryError)"
        if isinstance(exc, OSError) and exc.errno in ENV_ERRNOS:
            where = f" ({exc.filename})" if exc.filename else ""
            return f"{exc.strerror or errno.errorcode.get(exc.errno, exc.errno)}{where}"
        exc = exc.__cause__ or exc.__context__
    return None


def oom_killed(returncode: int | None, timed_out: bool) -> bool:
    """A worker that died of SIGKILL we did not send: on Linux, the out-of-memory killer's signature."""
    return returncode == -signal.SIGKILL and not timed_out
