"""The fork server (child side): one per backend and thread count, started as
``python -P -m benchbench.measure.forkserver FD PARENT_PID BACKEND``. BACKEND ``build`` is the build
jobs' server: it imports the exporters (``benchbench.build.export.PRELOAD``), and its children build.

It imports that backend's runtime (``Runner.preload_modules``) once, then forks one measuring worker per
``Spawn`` record, with the new worker's socket passed over SCM_RIGHTS. A forked worker starts with its
runtime imported and runs exactly as a fresh one does from there (its own process group, log, memory baseline
and high-water mark), so a cell no longer pays for importing torch (about 3 s here) or ONNX Runtime.

``fork()`` copies only the calling thread: a thread an import left running (and any lock it held) would be
missing, or stuck, in every child. The server lets Python threads finish before it forks, and each
``Spawned`` record says how many threads were alive at that fork (Python's and the process's own) and whether
JAX was loaded, so a test can hold every backend to one thread. The server is a subreaper: a worker's
descendant that outlived it (the worker killed on a timeout) comes back to the server, which kills it.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
import traceback

from benchbench.processes.children import become_subreaper, die_with_parent, end_strays
from benchbench.processes.manager import BUILD_SERVER
from benchbench.processes.protocol import ProtocolError, Reap, Reaped, Spawn, Spawned, decode, encode

from .worker import Channel, no_telemetry, serve

__all__ = ["fork_server", "main"]


def _exit_code(status: int) -> int:
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _preload(backend: str) -> None:
    """Import what every worker of ``backend`` imports (the build server: the exporters that are installed),
    then let Python threads the imports left finish."""
    import importlib
    import importlib.util

    import numpy  # noqa: F401  (every worker loads its input with it)

    from benchbench.core import spec  # noqa: F401  (what a measuring worker imports)

    if backend == BUILD_SERVER:
        from benchbench.build.export import PRELOAD

        modules = [m for m in PRELOAD if importlib.util.find_spec(m.split(".")[0]) is not None]
    else:
        from benchbench.measure import interference, parity, timing  # noqa: F401
        from benchbench.runners import get_runner

        modules = get_runner(backend).preload_modules()
    for module in modules:
        importlib.import_module(module)
    for thread in threading.enumerate():
        if thread is not threading.main_thread():
            thread.join(timeout=10.0)
    if threading.active_count() > 1:
        print(f"warning: {threading.active_count() - 1} thread(s) still alive after importing {backend}'s "
              "runtime; forked workers may hang", file=sys.stderr, flush=True)


def _threads() -> tuple[int, int, bool]:
    """Python threads alive, the process's threads (/proc), and whether JAX is loaded, right now."""
    try:
        native = len(os.listdir("/proc/self/task"))
    except OSError:
        native = 0
    return threading.active_count(), native, "jax" in sys.modules


def fork_server(ctrl: socket.socket, backend: str) -> int:
    """Import the backend's runtime once; fork a measuring worker per Spawn; report exit codes on Reap."""
    become_subreaper()
    _preload(backend)
    codes: dict[int, int] = {}
    workers: set[int] = set()

    def reap(pid: int, timeout_s: float) -> int | None:
        deadline = time.monotonic() + timeout_s
        while pid not in codes:
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return codes.get(pid)
            if done:
                codes[pid] = _exit_code(status)
                workers.discard(pid)
                end_strays(keep=workers)  # what that worker left behind came back to us: it ends here
            elif time.monotonic() >= deadline:
                return None
            else:
                time.sleep(0.01)
        return codes.pop(pid)

    while True:
        try:
            data, fds, _, _ = socket.recv_fds(ctrl, 1 << 16, 1)
        except OSError:
            return 0
        if not data:  # the harness closed the control socket: done
            end_strays()
            return 0
        record = decode(data)
        if isinstance(record, Reap):
            ctrl.send(encode(Reaped(reap(record.pid, record.timeout_s))))
        elif isinstance(record, Spawn) and fds:
            threads, native, jax = _threads()
            pid = os.fork()
            if pid == 0:
                _forked_child(ctrl, fds[0], record.log_path)
            workers.add(pid)
            os.close(fds[0])
            ctrl.send(encode(Spawned(pid, threads, native, jax)))
        else:
            raise ProtocolError(f"a fork server takes Spawn (with a socket) or Reap, not {type(record).__name__}")


def _forked_child(ctrl: socket.socket, fd: int, log_path: str) -> None:
    """In the forked worker: a process group, log and parent-death signal of its own, then serve."""
    code = 1
    try:
        ctrl.close()
        os.setsid()
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        die_with_parent(os.getppid())
        code = serve(Channel(socket.socket(fileno=fd)))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


def main(argv: list[str] | None = None) -> int:
    args = (argv or sys.argv[1:])
    fd, parent_pid, backend = int(args[0]), int(args[1]), args[2]
    die_with_parent(parent_pid)
    no_telemetry()
    return fork_server(socket.socket(fileno=fd), backend)


if __name__ == "__main__":
    sys.exit(main())
