"""A child process's hygiene: it dies with its parent, and nothing it starts outlives it.

Used by every worker and fork server (``benchbench.measure.worker``, ``benchbench.measure.forkserver``). A
worker asks the kernel for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``) and makes itself a
*subreaper* (``PR_SET_CHILD_SUBREAPER``): whatever a model's forward starts, even a process that leaves the
worker's process group with ``setsid`` or double-forks away, is reparented to the worker when its own parent
ends, never to init. When the worker's job is done, :func:`end_descendants` kills every process below it.
The parent side then kills the worker's whole process group (``benchbench.processes.manager``).

What can still escape: a descendant of a worker that is itself killed with SIGKILL (a timeout) before it
cleans up. Its process group is killed by the parent; a descendant that left the group (``setsid``) is
reparented to the next subreaper above, the fork server, which kills it when it reaps the worker
(``end_strays``); under a worker started as a fresh process (no fork server) it goes to init. Only a cgroup
would hold those; benchbench does not create cgroups.
"""

from __future__ import annotations

import os
import signal
import time

__all__ = ["die_with_parent", "become_subreaper", "children_of", "end_descendants", "end_strays"]

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> bool:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(option, value) == 0
    except (OSError, AttributeError):  # not Linux
        return False


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when its parent dies (Linux); exit now if the parent is already gone."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        raise SystemExit(0)


def become_subreaper() -> bool:
    """Orphaned descendants of this process are reparented to it, not to init (Linux >= 3.4)."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def children_of(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (from /proc; empty where it cannot be read)."""
    out = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()  # after "pid (comm) ": state, ppid, ...
        if len(fields) > 1 and int(fields[1]) == pid:
            out.append(int(name))
    return out


def _reap(pids: set[int]) -> None:
    """Collect the exit status of each of ``pids`` that has ended (only those: a fork server keeps its
    workers' statuses for their own ``Reap``)."""
    for pid in list(pids):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            pids.discard(pid)


def end_strays(keep: set[int] = frozenset(), rounds: int = 100) -> int:
    """Kill this process's children other than ``keep`` (and, as a subreaper, the orphans that then come to
    it), reaping them; returns how many were killed."""
    killed, dying = 0, set()
    for _ in range(rounds):
        strays = [p for p in children_of(os.getpid()) if p not in keep and p not in dying]
        if not strays and not dying:
            break
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
                dying.add(pid)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)  # let the kernel reparent their own children to us
        _reap(dying)
    return killed


def end_descendants() -> int:
    """Kill every process below this one (a subreaper's orphans included), reaping them."""
    return end_strays()
