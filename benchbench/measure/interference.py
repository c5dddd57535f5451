"""Interference, measured: how much of a block of inferences was spent waiting for a CPU.

On a shared machine the dominant noise is time-sharing, not frequency (``shared/MEASUREMENT.md``): a
thread that is ready to run waits in the run queue while another process holds the core. Linux counts
that wait per thread in ``/proc/<pid>/task/<tid>/schedstat`` (field 2, ns) and a hypervisor's theft of
the whole VM in the ``steal`` column of ``/proc/stat``. A worker reads both before and after each block,
so every block carries its own evidence:

* ``run_ns``: time the worker's threads spent on a CPU;
* ``wait_ns``: time they were runnable but waiting for one;
* ``wait_share = wait / (run + wait)``: of the time the worker wanted a CPU, the share it waited. 0 on a
  quiet machine; 0.5 means half the block was lost to other processes;
* ``steal_share``: VM steal over the block, as a share of all CPUs' time;
* ``minor_faults``: the page faults the process took over the block (``getrusage``'s ``ru_minflt``, all
  threads). Not interference but the cell's own cost: an allocator that hands freed memory back to the
  system and faults it in again on the next inference (glibc's, under PyTorch eager: 2,600-21,500 faults per
  inference for MobileNetV2, EfficientNet-B0 and VanillaNet-5 here; docs/metrics.md) is slower by that, and
  a kernel timed alone in a loop, whose buffers are reused, never shows it.

schedstat advances in scheduler ticks (about 4 ms here), so read it per block (tens of ms), not per
inference. On systems without ``/proc`` every figure is None and no block is ever filtered. Which blocks
count as disturbed is the estimates' rule (``benchbench.results.estimates.disturbed``).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

try:
    import resource
except ImportError:  # not on Windows
    resource = None

__all__ = ["Snapshot", "snapshot", "runnable_ns", "others_running", "block_interference"]

_TICK_NS = 1e9 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 1e7
_CPUS = os.cpu_count() or 1


@dataclass(frozen=True)
class Snapshot:
    wall_ns: int
    cpu_ns: int  # process CPU time, all threads
    run_ns: int | None  # summed over the process's threads (schedstat field 1)
    wait_ns: int | None  # summed over the process's threads (schedstat field 2)
    steal_ns: int | None  # machine-wide (all CPUs) VM steal
    minor_faults: int | None = None  # the process's page faults served without I/O, all threads


def _task_files(name: str, skip: str | None = None) -> list[str] | None:
    """``/proc/self/task/<tid>/<name>`` of each of this process's threads but ``skip``; None without ``/proc``."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    out = []
    for tid in tasks:
        if tid == skip:
            continue
        try:
            out.append(Path(f"/proc/self/task/{tid}/{name}").read_text(encoding="utf-8"))
        except OSError:  # a thread that ended between listdir and read
            continue
    return out


def _schedstat(skip: str | None = None) -> tuple[int | None, int | None]:
    texts = _task_files("schedstat", skip)
    if texts is None:
        return None, None
    run = wait = 0
    for text in texts:
        fields = text.split()
        run += int(fields[0])
        wait += int(fields[1])
    return run, wait


def _steal() -> int | None:
    try:
        with open("/proc/stat", encoding="utf-8") as fh:
            fields = fh.readline().split()
        return int(float(fields[8]) * _TICK_NS) if fields[0] == "cpu" and len(fields) > 8 else None
    except (OSError, ValueError, IndexError):
        return None


def runnable_ns() -> int:
    """Time this process's *other* threads (the runtime's pools, not the caller) have been on a CPU or
    waiting for one (schedstat). The caller is left out: reading /proc costs it more CPU than the quiet
    threshold a settling worker looks for. Without schedstat: the process's CPU time."""
    run, wait = _schedstat(skip=str(threading.get_native_id()))
    return run + wait if run is not None else time.process_time_ns()


def others_running() -> int | None:
    """How many of this process's *other* threads are running or waiting for a CPU right now (state ``R`` in
    ``/proc/self/task/<tid>/stat``): a thread pool that spins is ``R``, one asleep on its futex is ``S``. An
    instant reading, where schedstat's CPU time moves only at scheduler ticks. None without ``/proc``."""
    texts = _task_files("stat", skip=str(threading.get_native_id()))
    if texts is None:
        return None
    return sum(text[text.rindex(")") + 2] == "R" for text in texts)  # the state follows the parenthesised name


def _minor_faults() -> int | None:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt if resource is not None else None


def snapshot() -> Snapshot:
    run, wait = _schedstat()
    return Snapshot(time.perf_counter_ns(), time.process_time_ns(), run, wait, _steal(), _minor_faults())


def block_interference(before: Snapshot, after: Snapshot) -> dict:
    """The per-block record: wall, CPU, run-queue wait and steal over the block, their shares, and the
    page faults taken in it."""

    def diff(name):
        a, b = getattr(before, name), getattr(after, name)
        return None if a is None or b is None else b - a

    wall, run, wait, steal = diff("wall_ns"), diff("run_ns"), diff("wait_ns"), diff("steal_ns")
    return {
        "wall_ns": wall,
        "cpu_ns": diff("cpu_ns"),
        "run_ns": run,
        "wait_ns": wait,
        "steal_ns": steal,
        "wait_share": wait / (run + wait) if run is not None and wait is not None and run + wait > 0 else None,
        "steal_share": steal / (wall * _CPUS) if steal is not None and wall else None,
        "minor_faults": diff("minor_faults"),
    }

