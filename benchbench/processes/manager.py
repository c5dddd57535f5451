"""Worker processes, parent side: start them, talk to them in protocol records, and never lose one.

Every child is started by :func:`spawn` (one place: its interpreter, environment, log and process group).
A :class:`Worker` is one child process (``benchbench.measure.worker``) connected by a socket pair. Every
request has a deadline; a worker that overruns it is killed with its whole process group (runtimes
may spawn helpers) and reported as ``timeout``, one that dies as ``crashed`` with its exit status and
the tail of its log. :meth:`Worker.close` always reaps the process, so none outlives the harness.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchbench.core.faults import oom_killed
from benchbench.core.status import Status

from .protocol import JOBS, Failed, JobDone, ProtocolError, Reap, Reaped, Spawn, Spawned, decode, encode

__all__ = ["WorkerLost", "Worker", "ForkServer", "WORKER_MODULE", "BUILD_SERVER", "module_command", "worker_env",
           "spawn", "run_job"]

WORKER_MODULE = "benchbench.measure.worker"  # the child side: a measuring worker or a one-shot job
FORK_SERVER_MODULE = "benchbench.measure.forkserver"  # the child side of a ForkServer
BUILD_SERVER = "build"  # the fork server of build jobs (not a backend): it imports the exporters


def module_command(module: str, *args: str) -> list[str]:
    """Command line running ``python -m module args`` in a fresh interpreter of this environment.

    ``-P`` keeps the working directory off ``sys.path``: run from a checkout, ``-m`` would otherwise
    import the source tree's ``benchbench/`` (which lacks ``models/`` and ``runners/``, mapped in only
    at install time) instead of the installed package.
    """
    return [sys.executable, "-P", "-m", module, *args]


def worker_env(threads: int) -> dict:
    env = dict(os.environ)
    # Threads are explicit: every runtime and BLAS in the worker sees the same count.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    # A model that prints a character the locale cannot encode (a C locale) is no model error: its log is UTF-8.
    env["PYTHONIOENCODING"] = "utf-8:backslashreplace"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def spawn(args: list[str], threads: int, log_path: Path, pass_fds: tuple[int, ...] = (),
          what: str = "a worker process", module: str = WORKER_MODULE) -> subprocess.Popen:
    """Start ``python -P -m MODULE ARGS`` (a worker, or a fork server) in a process group of its own (so it is
    killed as one, with whatever the runtime spawns), its output to ``log_path``, ``threads`` in its
    environment, and ``pass_fds`` inherited. An interpreter that cannot be executed is the machine's fault:
    ``WorkerLost`` with status env-error."""
    try:
        with open(log_path, "wb") as log:
            return subprocess.Popen(module_command(module, *args), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=worker_env(threads), pass_fds=pass_fds,
                                    start_new_session=True)
    except OSError as exc:  # permissions, a removed venv
        raise WorkerLost(Status.ENV_ERROR, f"cannot start {what} ({sys.executable}): {exc.strerror or exc}") from None


def _await_exit(pid: int, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for process ``pid`` to exit, without reaping it (a zombie or gone counts)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                stat = fh.read()
            if stat[stat.rfind(b")") + 2:][:1] in (b"Z", b"X"):
                return True
        except OSError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


class WorkerLost(Exception):
    """The worker crashed, overran its deadline, or broke the protocol: ``outcome`` and ``reason``."""

    def __init__(self, outcome: str, reason: str):
        super().__init__(reason)
        self.outcome, self.reason = outcome, reason


_TMP_PREFIXES = ("bb-forkserver-", "bb-worker-")
_swept = False


def _private_tmp(prefix: str) -> tempfile.TemporaryDirectory:
    """A temporary folder for a worker's or server's log, named after this process (``<prefix><pid>-...``).

    A harness killed with SIGKILL cannot remove its folders; the name lets the next harness on the machine
    remove them (once per process, the folders of processes no longer alive), so a killed run litters nothing
    for long."""
    global _swept
    if not _swept:
        _swept = True
        _remove_orphans(Path(tempfile.gettempdir()))
    return tempfile.TemporaryDirectory(prefix=f"{prefix}{os.getpid()}-")


def _remove_orphans(root: Path) -> list[Path]:
    """Remove this user's benchbench temporary folders whose creating process is gone; returns them. Only real
    folders (``lstat``: a link of that name, whatever it points at, is left alone)."""
    removed = []
    for prefix in _TMP_PREFIXES:
        for folder in root.glob(prefix + "*"):
            pid = folder.name[len(prefix):].split("-", 1)[0]
            try:
                info = folder.lstat()
                if not pid.isdigit() or not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
                    continue
                os.kill(int(pid), 0)  # raises if no such process: then the folder is an orphan
            except ProcessLookupError:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
            except OSError:  # gone meanwhile, or a process we may not signal (alive)
                continue
    return removed


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " / ".join(ln.strip() for ln in text[-lines:])[-400:]


class ForkServer:
    """A process that has imported one backend's runtime and forks measuring workers on request
    (``benchbench.measure.worker``, fork-server mode): a worker then starts in milliseconds, not seconds.
    One per (backend, threads): the thread count is in the environment the runtime reads at import.
    ``backend`` may also be :data:`BUILD_SERVER`: a server with the exporters imported (torch, the ONNX and
    LiteRT converters, the quantizers), whose forked workers run build jobs (``benchbench.build.builds``)."""

    def __init__(self, backend: str, threads: int):
        self.backend, self.threads = backend, threads
        self._asking = threading.Lock()
        self._tmp = _private_tmp("bb-forkserver-")
        ctrl, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)  # one record per message
        self.ctrl = ctrl
        try:
            self.proc = spawn([str(child.fileno()), str(os.getpid()), backend], threads,
                              Path(self._tmp.name) / "server.log", (child.fileno(),), "a fork server",
                              module=FORK_SERVER_MODULE)
        except WorkerLost:
            ctrl.close()
            self._tmp.cleanup()
            raise
        finally:
            child.close()

    def _ask(self, record, fds=(), timeout_s: float = 120.0):
        # one question at a time: threads building side by side share a server, and a reply has no address
        with self._asking:
            try:
                socket.send_fds(self.ctrl, [encode(record)], list(fds))
                ready, _, _ = select.select([self.ctrl], [], [], timeout_s)
                data = self.ctrl.recv(1 << 16) if ready else b""
            except OSError:
                data = b""
        if not data:
            raise WorkerLost(Status.CRASHED, f"the {self.backend} fork server is gone: " + _tail(Path(self._tmp.name) / "server.log"))
        return decode(data)

    def spawn(self, child: socket.socket, log_path: Path) -> int:
        """Fork a worker that talks over ``child``; returns its pid."""
        reply = self._ask(Spawn(str(log_path)), [child.fileno()])
        if not isinstance(reply, Spawned):
            raise WorkerLost(Status.ERROR, f"the fork server answered Spawn with {type(reply).__name__}")
        self.last_spawn = reply  # the threads alive in the server when it forked (a test holds them to one)
        return reply.pid

    def reap(self, pid: int, timeout_s: float = 0.0) -> int | None:
        """The worker's exit status (subprocess convention), or None while it runs."""
        reply = self._ask(Reap(pid, timeout_s), timeout_s=timeout_s + 30)
        return reply.code if isinstance(reply, Reaped) else None

    def close(self) -> None:
        try:
            self.ctrl.close()
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self._tmp.cleanup()


class _Forked:
    """The Popen-like handle of a worker forked by a :class:`ForkServer` (its own process group)."""

    def __init__(self, server: ForkServer, pid: int):
        self.server, self.pid, self.returncode = server, pid, None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                self.returncode = self.server.reap(self.pid)
            except WorkerLost:  # the server is gone; so, by PDEATHSIG, is its child
                self.returncode = -signal.SIGKILL
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            try:
                self.returncode = self.server.reap(self.pid, 3600.0 if timeout is None else timeout)
            except WorkerLost:
                self.returncode = -signal.SIGKILL
            if self.returncode is None:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout)
        return self.returncode

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class Worker:
    """One worker process, started fresh or forked by a :class:`ForkServer`. Use as a context manager,
    or call :meth:`close`."""

    def __init__(self, threads: int, label: str = "worker", server: ForkServer | None = None):
        self.label = label
        self._tmp = _private_tmp("bb-worker-")
        self.log_path = Path(self._tmp.name) / "worker.log"
        parent, child = socket.socketpair()
        self.sock = parent
        self._buffer = b""
        try:
            if server is not None:
                self.proc = _Forked(server, server.spawn(child, self.log_path))
            else:
                self.proc = spawn([str(child.fileno()), str(os.getpid())], threads, self.log_path, (child.fileno(),))
        except BaseException:
            parent.close()
            self._tmp.cleanup()
            raise
        finally:
            child.close()

    def send(self, record) -> None:
        try:
            self.sock.sendall(encode(record))
        except OSError:
            raise self._lost("the worker closed its end") from None

    def recv(self, timeout_s: float):
        """The next record, within ``timeout_s``; raises :class:`WorkerLost` otherwise."""
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise WorkerLost(Status.TIMEOUT, f"{self.label} exceeded {timeout_s:.0f} s and was killed")
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                continue
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise self._lost()
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            return decode(line)
        except ProtocolError as exc:
            self.kill()
            raise WorkerLost(Status.ERROR, f"{self.label}: {exc}") from None

    def request(self, record, timeout_s: float):
        self.send(record)
        return self.recv(timeout_s)

    def _lost(self, why: str = "") -> WorkerLost:
        _await_exit(self.proc.pid, 5.0)
        self.kill()  # what is left of its process group, then the worker itself is reaped
        code = self.proc.returncode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        tail = _tail(self.log_path)
        if oom_killed(code, timed_out=False):  # we send SIGKILL only on a timeout, which is reported as such
            return WorkerLost(Status.ENV_ERROR, f"{self.label} was killed by SIGKILL that benchbench did not send: most "
                              "likely the out-of-memory killer (see dmesg)" + (f": {tail}" if tail else ""))
        return WorkerLost(Status.CRASHED, f"{self.label} died ({why or how})" + (f": {tail}" if tail else ""))

    def kill(self) -> None:
        """SIGKILL the worker's whole process group, whatever of it is left, then reap the worker. The group
        is killed before the worker is reaped: until then its pid, and so the group's id, cannot be reused."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()

    def close(self) -> None:
        """End the worker (closing its socket ends a healthy one, which ends whatever it started; a stuck one
        is killed), kill what is left of its process group, and clean up."""
        try:
            self.sock.close()
            _await_exit(self.proc.pid, 2.0)
        finally:
            self.kill()
            self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_job(job, timeout_s: float, threads: int, server: ForkServer | None = None) -> tuple[str, dict]:
    """A one-shot worker for ``job`` (a ``BuildJob``, ``FileBuildJob``, ``ProfileJob`` or ``BandwidthJob``),
    started fresh or forked by ``server``. Returns (outcome, result): outcome ``ok`` with the job's result, or
    the failure's status (``unsupported``, ``error``, ``user-error``, ``env-error``, ``crashed``, ``timeout``)
    with a reason."""
    if not isinstance(job, JOBS):
        raise TypeError(f"not a job record: {type(job).__name__}")
    what = type(job).__name__
    try:
        worker = Worker(threads, f"{what} worker", server=server)
    except WorkerLost as lost:
        return lost.outcome, {"reason": lost.reason}
    with worker:
        try:
            reply = worker.request(job, timeout_s)
        except WorkerLost as lost:
            return lost.outcome, {"reason": lost.reason}
    if isinstance(reply, JobDone):
        return "ok", reply.result
    if isinstance(reply, Failed):
        return reply.status, {"reason": reply.reason, "traceback": reply.traceback}
    return "error", {"reason": f"{what} worker answered {type(reply).__name__}"}
