"""Roofline calibration: this machine's peak GFLOP/s per backend and its memory bandwidth.

A measuring campaign, so it lives beside the harness; ``benchbench.metrics.roofline`` only places a cell.

Calibration, once per run and per (backend, threads) used:

* **peak GFLOP/s**: two kernels, a 0.81 GFLOP matmul and a 2.72 GFLOP 3x3 convolution
  (``_calibration_kernels.py``), are built and measured *on that backend* through the ordinary harness: a build
  worker exports them, a fresh measure worker runs them with the run's thread count. The peak is the
  faster kernel's FLOPs / its fastest sample: a ceiling, as a roofline needs.
* **bandwidth GB/s**: a 256 MiB copy in a worker with the same thread count (``_bandwidth.py``), on the
  backend's device (host memory for CPU backends), best of 10; bytes = read + write.

A calibration takes about a minute on a loaded 2-core machine (two exports, the first time, and three
workers), so it is cached under ``<cache>/roofline/`` per machine (hostname + CPU model), backend,
thread count and runtime versions, and reused for ``CACHE_TTL_S`` (24 h) unless a fresh one is asked for.

Per cell (see :func:`roofline_point`): achieved GFLOP/s = FLOPs / median latency; its share of the
backend's peak; the arithmetic intensity (FLOPs / MAC bytes) against the ridge point
(peak / bandwidth, FLOP/byte) says whether the roofline calls it compute- or memory-bound; and the
roofline's attainable GFLOP/s = min(peak, intensity x bandwidth).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["CACHE_TTL_S", "CALIBRATION_VERSION", "KERNELS", "calibrate", "calibrate_run", "calibration_key"]

CALIBRATION_VERSION = 1
CACHE_TTL_S = 24 * 3600
KERNELS = ("matmul", "conv")
CALIBRATION_INPUT = (512, 512)  # H, W of the (1, 3, H, W) input both kernels reshape
_KERNEL_FILE = Path(__file__).with_name("_calibration_kernels.py")


def _device(backend: str) -> str:
    """Where a backend computes, hence which memory its bandwidth is measured on."""
    from benchbench.runners import get_runner

    cls = get_runner(backend)
    device = getattr(cls, "device", None)
    if device is None:
        device = "cuda" if any("CUDA" in p for p in getattr(cls, "providers", ())) else "cpu"
    return device


def calibration_key(backend: str, threads: int) -> str:
    """Cache identity: machine, backend, threads and the versions that could change the figures."""
    from benchbench.env import environment
    from benchbench.runners import get_runner

    env = environment()
    ident = {
        "host": env["hostname"],
        "cpu": env["cpu"]["model"],
        "backend": backend,
        "threads": threads,
        "packages": env["packages"],
        "kernels": hashlib.sha256(_KERNEL_FILE.read_bytes()).hexdigest()[:12],
        "version": CALIBRATION_VERSION,
        "runner": get_runner(backend).__qualname__,
    }
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    return f"{backend}-t{threads}-{digest}"


def _calibration_config():
    from benchbench.spec import MeasureConfig

    # Enough samples for a stable minimum; the kernels take milliseconds each.
    return MeasureConfig(warmup_min_count=3, warmup_min_s=0.3, min_count=15, min_s=0.5, max_s=3.0,
                         target_ci=0.02, cell_timeout_s=600)


def _measure_bandwidth(device: str, threads: int, timeout_s: float = 300) -> dict:
    from benchbench._manager import module_command, worker_env

    env = worker_env(threads)
    with tempfile.TemporaryDirectory(prefix="bb-bandwidth-") as tmp:
        out = Path(tmp) / "bandwidth.json"
        cmd = module_command("benchbench._bandwidth", device, str(threads), str(out))
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {"bandwidth_gbs": None, "reason": f"bandwidth worker exceeded {timeout_s:.0f} s"}
        if not out.exists():
            tail = (proc.stderr or "").strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
            return {"bandwidth_gbs": None, "reason": "bandwidth worker failed: " + tail[0][-300:]}
        return json.loads(out.read_text())


def _measure_peak(backend: str, threads: int) -> dict:
    from benchbench.harness import run_sweep
    from benchbench.result import RunResult
    from benchbench.spec import CellSpec

    config = _calibration_config()
    cells = [CellSpec(f"{_KERNEL_FILE}:{k}", "deploy", backend, 1, CALIBRATION_INPUT, threads) for k in KERNELS]
    with tempfile.TemporaryDirectory(prefix="bb-roofline-") as tmp:
        run = RunResult(meta={"settings": config.__dict__}, path=Path(tmp) / "calibration.json")
        run_sweep(cells, config, run, progress=lambda msg: None)
    kernels = {}
    for kernel, cell in zip(KERNELS, run.cells):
        if not cell.ok:
            kernels[kernel] = {"status": cell.status, "reason": cell.reason}
            continue
        flops = cell.model["flops"]
        kernels[kernel] = {
            "status": "ok",
            "flops": flops,
            "best_ms": cell.stats["min_ms"],
            "median_ms": cell.stats["median_ms"],
            "best_gflops": flops / cell.stats["min_ms"] / 1e6,
            "median_gflops": flops / cell.stats["median_ms"] / 1e6,
        }
    rates = [k["best_gflops"] for k in kernels.values() if k["status"] == "ok"]
    return {"peak_gflops": max(rates) if rates else None, "kernels": kernels}


def _calibrate_one(backend: str, threads: int) -> dict:
    peak = _measure_peak(backend, threads)
    device = _device(backend)
    bw = _measure_bandwidth(device, threads)
    entry = {
        "backend": backend,
        "threads": threads,
        "device": device,
        "peak_gflops": peak["peak_gflops"],
        "bandwidth_gbs": bw.get("bandwidth_gbs"),
        "kernels": peak["kernels"],
        "bandwidth_method": bw.get("method") or bw.get("reason"),
        "peak_method": "max over kernels (matmul, conv) of FLOPs / fastest sample, measured on the backend",
        "measured_at": time.time(),
        # Other processes lower both figures, and a cached calibration outlives them: keep the evidence.
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if entry["peak_gflops"] and entry["bandwidth_gbs"]:
        entry["ridge_flop_per_byte"] = entry["peak_gflops"] / entry["bandwidth_gbs"]
    return entry


def calibrate(
    pairs: Iterable[tuple[str, int]],
    mode: str = "cached",
    progress: Callable[[str], None] = lambda msg: None,
) -> dict:
    """Calibrate each (backend, threads): ``mode`` ``cached`` reuses a recent calibration, ``fresh`` never does.

    Returns ``{"<backend>/<threads>": entry}``; an entry has ``peak_gflops``, ``bandwidth_gbs``,
    ``ridge_flop_per_byte``, the per-kernel figures, ``cached`` and ``key``.
    """
    from benchbench.export import cache_root

    if mode not in ("cached", "fresh"):
        raise ValueError(f"unknown calibration mode '{mode}' (cached or fresh)")
    out = {}
    for backend, threads in dict.fromkeys(pairs):
        key = calibration_key(backend, threads)
        path = cache_root() / "roofline" / f"{key}.json"
        entry = None
        if mode == "cached" and path.exists():
            entry = json.loads(path.read_text())
            if time.time() - entry.get("measured_at", 0) > CACHE_TTL_S or not entry.get("peak_gflops"):
                entry = None
        cached = entry is not None
        if entry is None:
            progress(f"roofline: calibrating {backend} with {threads} threads (peak GFLOP/s and bandwidth)...")
            entry = _calibrate_one(backend, threads)
            if entry["peak_gflops"]:  # a failed calibration is reported, never cached
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(entry, indent=1))
        entry = {**entry, "cached": cached, "key": key}
        progress(f"roofline: {backend}/{threads}t peak {_g(entry['peak_gflops'])} GFLOP/s, bandwidth "
                 f"{_g(entry['bandwidth_gbs'])} GB/s{' (cached)' if cached else ''}")
        out[f"{backend}/{threads}"] = entry
    return out


def _g(x) -> str:
    return f"{x:.1f}" if x else "?"


def calibrate_run(cells, run, mode: str, progress: Callable[[str], None] = lambda msg: None) -> None:
    """Calibrate every (backend, threads) the cells measure on, into ``run.meta["roofline"]`` (``mode``
    ``cached``, ``fresh`` or ``off``); the sweep then places each cell on its backend's roofline, and its
    journal records the meta with the first group."""
    from benchbench.runners import get_runner

    if mode == "off":
        return
    measurable = {b for b in {s.backend for s in cells}
                  if get_runner(b).artifact != "none" and get_runner(b).is_available()[0]}
    pairs = [(s.backend, s.threads) for s in cells if s.backend in measurable]
    run.meta.setdefault("roofline", {}).update(calibrate(pairs, mode, progress))
