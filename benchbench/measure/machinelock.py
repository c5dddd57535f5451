"""One benchbench measuring per machine: a lock file that a second one finds and waits on (or warns about).

Two sweeps at once share the CPUs, and each one's timings then include the other's load. The lock is an
``flock`` on a file in ``/tmp`` (machine-wide, unlike ``$XDG_RUNTIME_DIR``, which is per user; the
``BENCHBENCH_LOCK`` variable names another file). The kernel drops the lock when its holder exits, however
it exits, so a killed benchbench never leaves a stale lock. The file records the holder's pid and
command line, for the message the next one prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["lock_path", "measuring"]


def lock_path() -> Path:
    """The machine-wide lock file (``$BENCHBENCH_LOCK``, else ``/tmp/benchbench-measure.lock``)."""
    return Path(os.environ.get("BENCHBENCH_LOCK") or "/tmp/benchbench-measure.lock")


def _holder(fd: int) -> dict:
    """The pid and argv the current holder recorded (empty if it has not written them yet)."""
    try:
        return json.loads(os.pread(fd, 65536, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}


def _describe(holder: dict) -> str:
    argv = " ".join(holder.get("argv") or [])
    return f"pid {holder.get('pid', '?')}: {argv[:80] or '?'}"


@contextlib.contextmanager
def measuring(wait: bool = True, argv: list[str] | None = None,
              say: Callable[[str], None] | None = None) -> Iterator[dict | None]:
    """Hold the machine's measuring lock for the block. If another benchbench holds it, say so in one
    line and wait for it (``wait``), or go on without the lock (``argv`` is recorded for the next one's
    message); yields that other run's ``{"pid", "argv"}``
    when it went on alongside it, else None. A lock file that cannot be opened (a foreign owner, a
    read-only /tmp) is noted and measuring goes on: the lock protects timings, not data."""
    say = say or (lambda msg: print(f"benchbench: {msg}", file=sys.stderr, flush=True))
    path = lock_path()
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        say(f"cannot open the lock file {path} ({exc.strerror}); not checking for another benchbench")
        yield None
        return
    try:
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o666)  # any user's benchbench must be able to take it next
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if not wait:
                say(f"another benchbench ({_describe(holder)}) is measuring on this machine; measuring anyway "
                    "(--no-wait): both runs' timings include the other's load")
                yield {"pid": holder.get("pid"), "argv": holder.get("argv")}
                return
            say(f"another benchbench ({_describe(holder)}) is measuring on this machine; waiting "
                "(use --no-wait to measure anyway)")
            fcntl.flock(fd, fcntl.LOCK_EX)  # Ctrl-C interrupts the wait
        with contextlib.suppress(OSError):  # the record is for messages only
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "argv": argv or sys.argv}).encode(), 0)
        try:
            yield None
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
