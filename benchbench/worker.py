"""The worker process: ``python -m benchbench.worker {build|measure|profile} JOB.json RESULT.json``.

Each cell is measured in a fresh process that imports only its runtime, as on a real device. The
result comes back through RESULT.json, never stdout (runtimes log to stdout). If the process dies,
there is no result file, and the harness records the cell as crashed.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
import time
import traceback
from pathlib import Path

__all__ = ["measure", "parity", "runner_session", "failure_record", "PARITY_RTOL", "PARITY_MIN_COSINE"]

# Parity passes when max |out - ref| <= PARITY_RTOL * max |ref| and cosine similarity >= PARITY_MIN_COSINE,
# for every output. float32 kernels that reorder sums (Winograd, blocked GEMM) stay far inside this.
PARITY_RTOL = 1e-3
PARITY_MIN_COSINE = 0.9999


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _peak_rss() -> int | None:
    """The kernel's high-water mark of resident memory (VmHWM), in bytes; Linux only."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so each phase gets its own peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def parity(outputs, reference) -> dict:
    """Worst-case agreement of a backend's outputs with the PyTorch eager float32 reference."""
    import numpy as np

    if outputs is None:
        return {"checked": False, "reason": "the backend computes no outputs"}
    if len(outputs) != len(reference):
        return {"checked": True, "passed": False, "reason": f"{len(outputs)} outputs vs {len(reference)} expected"}
    worst = {"max_abs_err": 0.0, "max_rel_err": 0.0, "cosine": 1.0}
    for out, ref in zip(outputs, reference):
        out = np.asarray(out, dtype=np.float64)
        ref = np.asarray(ref, dtype=np.float64)
        if out.size != ref.size:
            return {"checked": True, "passed": False, "reason": f"output shape {out.shape} vs {ref.shape}"}
        out, ref = out.reshape(-1), ref.reshape(-1)
        err = float(np.max(np.abs(out - ref)))
        scale = float(np.max(np.abs(ref))) or 1.0
        denom = float(np.linalg.norm(out) * np.linalg.norm(ref))
        cosine = float(out @ ref / denom) if denom > 0 else float(np.array_equal(out, ref))
        worst["max_abs_err"] = max(worst["max_abs_err"], err)
        worst["max_rel_err"] = max(worst["max_rel_err"], err / scale)
        worst["cosine"] = min(worst["cosine"], cosine)
    passed = bool(np.isfinite(worst["max_rel_err"]) and worst["max_rel_err"] <= PARITY_RTOL
                  and worst["cosine"] >= PARITY_MIN_COSINE)
    return {"checked": True, "passed": passed, **worst, "rtol": PARITY_RTOL, "min_cosine": PARITY_MIN_COSINE}


@contextmanager
def runner_session(spec):
    """The cell's runner with its runtime loaded; torn down whatever happens inside."""
    from benchbench.runners import get_runner

    runner = get_runner(spec.backend)(spec.threads, dict(spec.options))
    try:
        runner.load_runtime()
        yield runner
    finally:
        try:
            runner.teardown()
        except Exception:
            pass


def failure_record(exc: Exception) -> dict:
    """How a failure inside a worker is recorded (call it in the ``except``): never raised, the sweep goes on."""
    from benchbench.export import short_reason
    from benchbench.runners.base import BackendUnavailable, UnsupportedModel

    if isinstance(exc, UnsupportedModel):
        return {"status": "unsupported", "reason": short_reason(exc)}
    if isinstance(exc, BackendUnavailable):
        return {"status": "unavailable", "reason": str(exc)}
    return {"status": "error", "reason": short_reason(exc), "traceback": traceback.format_exc(limit=6)}


def measure(job: dict) -> dict:
    """Prepare the backend, time init and first inference, sample, check parity. Returns the cell record."""
    import numpy as np

    from benchbench.spec import CellSpec, MeasureConfig
    from benchbench.stats import median_ci
    from benchbench.timing import sample

    spec = CellSpec.from_dict(job["spec"])
    config = MeasureConfig.from_dict(job["config"])
    record: dict = {"status": "error", "reason": None}
    mib = 2**20
    try:
        with runner_session(spec) as runner:
            inputs = np.load(job["input_path"])
            # Warm the sampling loop's statistics before the baseline, so nothing they allocate on
            # first use is charged to the model's inference peak (docs/metrics.md).
            median_ci(list(range(10)))
            base_reset = _reset_peak_rss()
            base = _rss()
            t0 = time.perf_counter_ns()
            runner.prepare(job["artifact"], inputs)
            t1 = time.perf_counter_ns()
            runner.run()
            t2 = time.perf_counter_ns()
            loaded, load_peak = _rss(), _peak_rss()
            peak_reset = _reset_peak_rss()
            sampling = sample(runner.time_once, config)
            infer_peak = _peak_rss()
            reference = []
            if job.get("reference_path"):
                with np.load(job["reference_path"]) as ref:
                    reference = [ref[k] for k in ref.files]
            record.update(
                status="ok",
                samples_ns=sampling.samples_ns,
                timing={"init_ms": (t1 - t0) / 1e6, "first_ms": (t2 - t1) / 1e6, **sampling.timing()},
                memory={
                    "baseline_mib": base / mib,
                    "load_mib": (loaded - base) / mib,
                    "load_peak_mib": (load_peak - base) / mib if (load_peak and base_reset) else None,
                    "infer_peak_mib": (infer_peak - base) / mib if (infer_peak and peak_reset) else None,
                    "source": "psutil RSS over the baseline (runtime, scipy and input loaded); peaks from "
                              "/proc/self/status VmHWM, reset per phase (docs/metrics.md)",
                },
                parity=parity(runner.outputs(), reference) if reference else {"checked": False},
                backend={**runner.metadata(), "executed_ops": runner.executed_ops(),
                         # The isolation promise: a worker imports only its runtime (torch only for torch).
                         "worker_imported_torch": "torch" in sys.modules},
            )
            extra_memory = getattr(runner, "device_memory", None)
            if callable(extra_memory):
                record["memory"].update(extra_memory())
    except Exception as exc:
        record.update(failure_record(exc))
    return record


def _build(job: dict) -> dict:
    from benchbench.export import build, short_reason

    try:
        return {"status": "ok", "manifest": build(job)}
    except Exception as exc:
        return {"status": "unsupported", "reason": short_reason(exc), "traceback": traceback.format_exc(limit=6)}


def main(argv: list[str] | None = None) -> int:
    mode, job_path, result_path = (argv or sys.argv[1:])[:3]
    job = json.loads(Path(job_path).read_text())
    if mode == "build":
        result = _build(job)
    elif mode == "profile":
        from benchbench.profile import profile_in_worker

        result = profile_in_worker(job)
    else:
        result = measure(job)
    tmp = Path(result_path).with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(result_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
