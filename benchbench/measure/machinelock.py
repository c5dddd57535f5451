"""One benchbench measuring at a time per user: a lock file that a second one finds and waits on (or warns
about).

Two sweeps at once share the CPUs, and each one's timings then include the other's load. The lock is an
``flock`` on a file in a folder only its user can create and write: ``$XDG_RUNTIME_DIR/benchbench/`` where
that is set (a per-user 0700 folder the login session owns), else ``/tmp/benchbench-<uid>/``, created 0700
and refused unless it is a real folder of this user that nobody else can write (``BENCHBENCH_LOCK`` names
another file). The file is opened without following a link and is never chmod'ed, so no other user can
plant a link that makes benchbench truncate or open up a file of theirs. The kernel drops the lock when its
holder exits, however it exits, so a killed benchbench never leaves a stale lock. The file records the
holder's pid and command line, for the message the next one prints (escaped: it is only data).

Another user's benchbench is not seen by the lock; ``run`` still warns when other processes use the CPUs
(``benchbench.measure.machine.busy_warning``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from benchbench.core.text import printable

__all__ = ["LockError", "lock_path", "measuring"]


class LockError(OSError):
    """A lock folder that is not safe to use (another user's, writable by others, a link)."""


def _private_folder(folder: Path) -> Path:
    """``folder``, created 0700 if missing; ``LockError`` unless it is a real folder of this user that no
    one else can write."""
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    st = folder.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise LockError(f"{folder} is not a folder (a link or a file)")
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise LockError(f"{folder} is not this user's own private folder (owner uid {st.st_uid}, mode "
                        f"{stat.S_IMODE(st.st_mode):o})")
    return folder


def lock_path() -> Path:
    """This user's lock file: ``$BENCHBENCH_LOCK``, else in ``$XDG_RUNTIME_DIR/benchbench/``, else in
    ``/tmp/benchbench-<uid>/`` (each checked to be this user's own private folder)."""
    if env := os.environ.get("BENCHBENCH_LOCK"):
        return Path(env)
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(runtime) and os.path.isdir(runtime):
        return _private_folder(Path(runtime) / "benchbench") / "measure.lock"
    return _private_folder(Path("/tmp") / f"benchbench-{os.getuid()}") / "measure.lock"


def _holder(fd: int) -> dict:
    """The pid and argv the current holder recorded (empty if it has not written them yet)."""
    try:
        holder = json.loads(os.pread(fd, 65536, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _describe(holder: dict) -> str:
    argv = holder.get("argv")
    argv = " ".join(map(str, argv)) if isinstance(argv, list) else str(argv or "")
    return printable(f"pid {holder.get('pid', '?')}: {argv[:80] or '?'}")


@contextlib.contextmanager
def measuring(wait: bool = True, argv: list[str] | None = None,
              say: Callable[[str], None] | None = None) -> Iterator[dict | None]:
    """Hold this user's measuring lock for the block. If another benchbench holds it, say so in one line and
    wait for it (``wait``), or go on without the lock (``argv`` is recorded for the next one's message);
    yields that other run's ``{"pid", "argv"}`` when it went on alongside it, else None. A lock that cannot
    be opened (an unsafe folder, a read-only /tmp, a link where the file should be) is noted and measuring
    goes on: the lock protects timings, not data."""
    say = say or (lambda msg: print(f"benchbench: {msg}", file=sys.stderr, flush=True))
    try:
        path = lock_path()
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
    except OSError as exc:
        say(printable(f"cannot use the lock file ({exc.strerror or exc}); not checking for another benchbench"))
        yield None
        return
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO, a device (BENCHBENCH_LOCK=/dev/null): no lock at all
        os.close(fd)
        say(printable(f"cannot use the lock file {path}: not a regular file; not checking for another benchbench"))
        yield None
        return
    try:
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
