"""Facts about the machine and software a run was measured on."""

from __future__ import annotations

import datetime as _dt
import platform
import subprocess
from importlib import metadata
from pathlib import Path

__all__ = ["environment", "host_identity", "package_versions", "CORE_PACKAGES"]

# The core's own; each backend adds the distributions it declares (``benchbench.runners.tracked_packages``).
CORE_PACKAGES = ("benchbench", "torch", "numpy", "scipy", "psutil", "tabulate", "matplotlib")


def package_versions(names) -> dict[str, str]:
    """Installed versions of the distributions ``names``; absent ones are left out."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "sse4", "neon", "sve")))
    except OSError:
        pass
    return []


def _git_commit() -> str | None:
    """The checkout's commit (``-dirty`` if tracked files changed): of the source tree, else of the cwd."""
    for where in (Path(__file__).resolve().parent, Path.cwd()):
        try:
            head = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True,
                                  encoding="utf-8", errors="replace", timeout=5)
            if head.returncode != 0:
                continue
            dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, encoding="utf-8", errors="replace",
                                   timeout=5).stdout.strip()
            return head.stdout.strip() + ("-dirty" if dirty else "")
        except (OSError, subprocess.SubprocessError):
            return None
    return None


def host_identity() -> dict:
    """The host name and CPU model: what a figure cached for this machine (a roofline, a between-process term,
    a latency predictor) is keyed on. Cheap: no subprocess, unlike :func:`environment`."""
    return {"host": platform.node(), "cpu": _cpu_model()}


def environment(packages=CORE_PACKAGES) -> dict:
    """The machine, the OS, Python, the CPU, memory, the versions of ``packages`` and the git commit, now."""
    import psutil

    freq = psutil.cpu_freq()
    return {
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": {
            "model": _cpu_model(),
            "arch": platform.machine(),
            "physical_cores": psutil.cpu_count(logical=False),
            "logical_cores": psutil.cpu_count(),
            "max_mhz": round(freq.max) if freq and freq.max else None,
            "flags": _cpu_flags(),
        },
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "packages": package_versions(packages),
        "git_commit": _git_commit(),
    }
