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
``run`` never calibrates uninvited: by default (``auto``) it uses a cached calibration if there is one and
otherwise places no cell on a roofline. A cached record carries a checksum (a corrupt one is ignored) and
the machine's state when it was measured, which the report shows with its date.

Per cell (see :func:`roofline_point`): achieved GFLOP/s = FLOPs / median latency; its share of the
backend's peak; the arithmetic intensity (FLOPs / MAC bytes) against the ridge point
(peak / bandwidth, FLOP/byte) says whether the roofline calls it compute- or memory-bound; and the
roofline's attainable GFLOP/s = min(peak, intensity x bandwidth).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["CACHE_TTL_S", "CALIBRATION_VERSION", "KERNELS", "MODES", "calibrate", "calibrate_run", "calibration_key",
           "read_cached"]

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


def runtime_identity(backend: str, threads: int) -> dict:
    """What a figure cached for this machine holds for: the host, its CPU, the backend, its runner, the threads
    and the tracked packages' versions (the roofline calibration's and the latency predictor's keys)."""
    from benchbench.core.env import host_identity, package_versions
    from benchbench.runners import get_runner, tracked_packages

    return {**host_identity(), "backend": backend, "threads": threads,
            "packages": package_versions(tracked_packages()), "runner": get_runner(backend).__qualname__}


def calibration_key(backend: str, threads: int) -> str:
    """Cache identity: machine, backend, threads and the versions that could change the figures."""
    ident = {**runtime_identity(backend, threads),
             "kernels": hashlib.sha256(_KERNEL_FILE.read_bytes()).hexdigest()[:12], "version": CALIBRATION_VERSION}
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    return f"{backend}-t{threads}-{digest}"


def _calibration_config():
    from benchbench.core.spec import MeasureConfig

    # Enough samples for a stable minimum; the kernels take milliseconds each.
    return MeasureConfig(warmup_min_count=3, warmup_min_s=0.3, min_count=15, min_s=0.5, max_s=3.0,
                         target_ci=0.02, cell_timeout_s=600)


def _measure_bandwidth(device: str, threads: int, timeout_s: float = 300) -> dict:
    from benchbench.processes.manager import run_job
    from benchbench.processes.protocol import BandwidthJob

    outcome, result = run_job(BandwidthJob(device, threads), timeout_s, threads)
    if outcome != "ok":
        return {"bandwidth_gbs": None, "reason": f"bandwidth worker failed ({outcome}): {result.get('reason')}"}
    return result


def _measure_peak(backend: str, threads: int) -> dict:
    from benchbench.core.spec import CellSpec
    from benchbench.results.record import RunResult

    from .sweep import run_sweep

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


def _machine_then(threads: int) -> dict:
    """The machine's state right after measuring (load, others' CPU share, steal): what the figures were
    taken under, kept with them in the cache and shown by the report."""
    from .machine import machine_state

    state = machine_state(0.5, threads)
    return {k: state.get(k) for k in ("load_avg_1m", "others_cpu_share", "steal_share", "governor", "turbo")}


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
        "machine": _machine_then(threads),
    }
    if entry["peak_gflops"] and entry["bandwidth_gbs"]:
        entry["ridge_flop_per_byte"] = entry["peak_gflops"] / entry["bandwidth_gbs"]
    return entry


MODES = ("auto", "cached", "fresh", "off")


def read_cached(path: Path) -> tuple[dict | None, str | None]:
    """(entry, None) for a cached calibration that is intact and under ``CACHE_TTL_S`` old; (None, why) for a
    corrupt one (truncated, unparsable, a checksum mismatch, a wrong shape): treated as absent; (None,
    None) when there is none or it is too old or failed."""
    from benchbench.build.cache import read_json, sealed

    if not path.exists():
        return None, None
    entry = read_json(path)
    if entry is None:
        return None, "unreadable"
    if not sealed(entry):  # a flipped digit still parses: only the checksum can tell
        return None, "checksum mismatch"
    measured_at = entry.get("measured_at")
    if not isinstance(measured_at, (int, float)) or not isinstance(entry.get("peak_gflops"), (int, float, type(None))):
        return None, "malformed"
    if time.time() - measured_at > CACHE_TTL_S or not entry.get("peak_gflops"):
        return None, None
    return entry, None


def calibrate(
    pairs: Iterable[tuple[str, int]],
    mode: str = "cached",
    progress: Callable[[str], None] = lambda msg: None,
) -> dict:
    """Calibrate each (backend, threads). ``mode``: ``auto`` uses a cached calibration under 24 h old where
    one exists and never measures (a first ``run`` must not spend a minute it was not asked to);
    ``cached`` reuses one or measures; ``fresh`` always measures.

    Returns ``{"<backend>/<threads>": entry}``; an entry has ``peak_gflops``, ``bandwidth_gbs``,
    ``ridge_flop_per_byte``, the per-kernel figures, ``measured_at`` and ``machine`` (the machine's state
    when it was measured), ``cached`` and ``key``.
    """
    from benchbench.build.cache import cache_root, ensure_root, seal, write_json

    if mode not in ("auto", "cached", "fresh"):
        raise ValueError(f"unknown calibration mode '{mode}' (auto, cached or fresh)")
    out = {}
    for backend, threads in dict.fromkeys(pairs):
        key = calibration_key(backend, threads)
        path = cache_root() / "roofline" / f"{key}.json"
        entry = None
        if mode != "fresh":
            entry, problem = read_cached(path)
            if problem:
                then = "calibrating again" if mode == "cached" else "ignored (--roofline fresh calibrates)"
                progress(f"note: cached roofline calibration of {backend}/{threads}t was corrupt ({problem}); {then}")
        cached = entry is not None
        if entry is None and mode == "auto":
            continue
        if entry is None:
            progress(f"roofline: calibrating {backend} with {threads} threads (peak GFLOP/s and bandwidth)...")
            entry = _calibrate_one(backend, threads)
            if entry["peak_gflops"]:  # a failed calibration is reported, never cached
                try:
                    ensure_root()
                    path.parent.mkdir(exist_ok=True)
                    write_json(path, seal(dict(entry)))
                except OSError as exc:  # the figures are good for this run; only the reuse is lost
                    progress(f"note: could not cache the roofline calibration: {exc.strerror or exc}")
        entry = {k: v for k, v in entry.items() if k != "checksum"}
        entry = {**entry, "cached": cached, "key": key}
        age = f", taken {_age(time.time() - entry['measured_at'])} ago" if cached else ""
        progress(f"roofline: {backend}/{threads}t peak {_g(entry['peak_gflops'])} GFLOP/s, bandwidth "
                 f"{_g(entry['bandwidth_gbs'])} GB/s{' (cached' + age + ')' if cached else ''}")
        out[f"{backend}/{threads}"] = entry
    return out


def _age(s: float) -> str:
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.0f} min"


def _g(x) -> str:
    return f"{x:.1f}" if x else "?"


def calibrate_run(cells, run, mode: str, progress: Callable[[str], None] = lambda msg: None) -> None:
    """Calibrate every (backend, threads) the cells measure on, into ``run.meta["roofline"]`` (``mode``
    ``auto``, ``cached``, ``fresh`` or ``off``: see :func:`calibrate`); the sweep then places each cell
    on its backend's roofline, and its journal records the meta with the first group."""
    from benchbench.runners import get_runner

    if mode == "off":
        return
    measurable = {b for b in {s.backend for s in cells}
                  if get_runner(b).artifact != "none" and get_runner(b).is_available()[0]}
    pairs = [(s.backend, s.threads) for s in cells if s.backend in measurable]
    run.meta.setdefault("roofline", {}).update(calibrate(pairs, mode, progress))
