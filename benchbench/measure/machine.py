"""How busy is this machine right now? Load, steal, other busy processes, cores, governor and turbo.

``machine_state(window_s)`` samples ``/proc/stat`` and every process's CPU time over a short window;
``busy_warning`` turns it into the one line ``run`` prints when the machine is too busy for the
comparison asked. Figures that this system does not expose are None and say so.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["machine_state", "busy_warning", "BUSY_SHARE_LIMIT"]

# Other processes using more than this share of all CPUs make lockstep intervals wide (each block of
# a 2-thread cell on 2 cores then waits for a CPU): warn before measuring.
BUSY_SHARE_LIMIT = 0.25


def _cpu_times() -> list[int] | None:
    try:
        with open("/proc/stat", encoding="utf-8") as fh:
            fields = fh.readline().split()
        return [int(v) for v in fields[1:]] if fields and fields[0] == "cpu" else None
    except (OSError, ValueError):
        return None


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _governor_and_turbo() -> dict:
    governors = sorted({g for p in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_governor")
                        if (g := _read(str(p)))})
    no_turbo = _read("/sys/devices/system/cpu/intel_pstate/no_turbo")
    boost = _read("/sys/devices/system/cpu/cpufreq/boost")
    turbo = ("on" if no_turbo == "0" else "off") if no_turbo is not None else \
        ("on" if boost == "1" else "off") if boost is not None else None
    return {"governor": ", ".join(governors) or None, "turbo": turbo}


def machine_state(window_s: float = 1.0, threads: int | None = None) -> dict:
    """Load, CPU use by other processes and VM steal over ``window_s``, the busiest processes, cores
    against ``threads``, and the frequency governor and turbo where readable."""
    import psutil

    me = {os.getpid(), *(p.pid for p in psutil.Process().children(recursive=True))}
    procs = {}
    for p in psutil.process_iter(["name", "cmdline"]):
        try:
            procs[p.pid] = (p, p.cpu_times())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    before = _cpu_times()
    time.sleep(window_s)
    after = _cpu_times()
    busy, mine = [], 0.0
    for pid, (p, t0) in procs.items():
        try:
            t1 = p.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        used = t1.user + t1.system - t0.user - t0.system
        if pid in me:
            mine += used
        elif used / window_s > 0.05:
            cmd = " ".join(p.info.get("cmdline") or []) or p.info.get("name") or "?"
            busy.append({"pid": pid, "cpu": round(used / window_s, 2), "command": cmd[:80]})
    busy.sort(key=lambda b: -b["cpu"])
    logical = os.cpu_count() or 1
    state = {
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "cores_physical": psutil.cpu_count(logical=False),
        "cores_logical": logical,
        "threads": threads,
        "others_cpu_share": None,
        "steal_share": None,
        "busy_processes": busy[:5],
        **_governor_and_turbo(),
    }
    if before and after and len(before) > 7:
        ticks = sum(after) - sum(before)
        if ticks > 0:
            idle = (after[3] + after[4]) - (before[3] + before[4])  # idle + iowait
            steal = after[7] - before[7]
            busy_share = (ticks - idle - steal) / ticks
            own_share = mine / (window_s * logical)  # this benchbench and its workers
            state["steal_share"] = steal / ticks
            state["others_cpu_share"] = max(0.0, busy_share - own_share)
    return state


def busy_warning(state: dict) -> str | None:
    """One line when the machine is too busy for a fine comparison, else None."""
    threads = state.get("threads") or 1
    cores = state.get("cores_logical") or 1
    problems = []
    if (state.get("others_cpu_share") or 0) > BUSY_SHARE_LIMIT:
        top = state["busy_processes"][0]["command"].split()[0] if state.get("busy_processes") else "?"
        problems.append(f"other processes use {100 * state['others_cpu_share']:.0f}% of the CPUs (busiest: {top})")
    if (state.get("steal_share") or 0) > 0.05:
        problems.append(f"the hypervisor steals {100 * state['steal_share']:.0f}%")
    if threads > cores:
        problems.append(f"{threads} threads on {cores} CPUs")
    if not problems:
        return None
    return ("warning: this machine is busy (" + "; ".join(problems) + "): intervals will be wide and more "
            "blocks filtered; `benchbench doctor` shows what it can resolve now")
