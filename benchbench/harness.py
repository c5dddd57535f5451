"""The sweep: build each model's artifacts once, then measure every cell in its own worker process.

Failures never stop a sweep. A backend that is not installed gives ``unavailable`` cells, an export or
runtime that rejects a model gives ``unsupported``, a worker that dies gives ``crashed``, one that
overruns gives ``timeout``. The run file is rewritten after every cell, so finished cells are on disk
whatever happens next.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .export import FORMATS, build_key, cache_root
from .result import CellResult, RunResult
from .spec import CellSpec, MeasureConfig

__all__ = ["input_shape", "run_sweep", "keep_fastest_round", "module_command"]


def module_command(module: str, *args: str) -> list[str]:
    """Command line running ``python -m module args`` in a fresh interpreter of this environment.

    ``-P`` keeps the working directory off ``sys.path``: run from a checkout, ``-m`` would otherwise
    import the source tree's ``benchbench/`` (which lacks ``models/`` and ``runners/``, mapped in only
    at install time) instead of the installed package.
    """
    return [sys.executable, "-P", "-m", module, *args]


def input_shape(spec: CellSpec) -> list[int]:
    from benchbench.models import model_info

    info = model_info(spec.model)
    h, w = spec.input_size or info.input_size[1:]
    return [spec.batch, info.input_size[0], h, w]


def _build_group(spec: CellSpec) -> tuple:
    """Cells sharing a model, variant and input share one build (each backend's artifact in it)."""
    return (spec.model, spec.variant, spec.input_size, spec.batch, spec.seed)


def _worker_env(threads: int) -> dict:
    env = dict(os.environ)
    # Threads are explicit: every runtime and BLAS in the worker sees the same count.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " / ".join(ln.strip() for ln in text[-lines:])[-400:]


def _run_worker(mode: str, job: dict, timeout_s: float, threads: int) -> tuple[str, dict]:
    """Run one worker; returns (outcome, result) with outcome ok|crashed|timeout."""
    with tempfile.TemporaryDirectory(prefix="bb-worker-") as tmp:
        tmp = Path(tmp)
        job_path, result_path, log_path = tmp / "job.json", tmp / "result.json", tmp / "worker.log"
        job_path.write_text(json.dumps(job))
        cmd = module_command("benchbench.worker", mode, str(job_path), str(result_path))
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_worker_env(threads),
                                    start_new_session=True)
            try:
                code = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)  # the whole group: runtimes may have spawned helpers
                proc.wait()
                return "timeout", {"reason": f"{mode} exceeded {timeout_s:.0f} s and was killed"}
        if result_path.exists():
            return "ok", json.loads(result_path.read_text())
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        tail = _tail(log_path)
        return "crashed", {"reason": f"{mode} worker died ({how})" + (f": {tail}" if tail else "")}


def _build(spec: CellSpec, formats: set[str], config: MeasureConfig) -> dict:
    """The cached build for a cell's model/variant/shape, with the given formats (runs a worker if needed)."""
    shape = input_shape(spec)
    key = build_key(spec.model, spec.variant, shape, spec.seed)
    build_dir = cache_root() / key
    manifest_path = build_dir / "build.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if "model" in manifest and formats <= set(manifest.get("artifacts", {})):
            return {"status": "ok", "manifest": manifest, "cached": True, "dir": str(build_dir)}
    job = {"model": spec.model, "variant": spec.variant, "input_shape": shape, "seed": spec.seed,
           "formats": sorted(formats), "dir": str(build_dir)}
    t0 = time.perf_counter()
    outcome, result = _run_worker("build", job, config.cell_timeout_s, threads=os.cpu_count() or 1)
    build_s = time.perf_counter() - t0
    if outcome != "ok":
        return {"status": outcome, "reason": "export: " + result["reason"], "build_s": build_s}
    result.update(cached=False, dir=str(build_dir), build_s=build_s)
    return result


def _artifact_for(runner_cls, spec: CellSpec, build: dict) -> tuple[object, dict, str | None]:
    """(what the runner's prepare() takes, artifact record, reason it is unusable or None)."""
    manifest = build["manifest"]
    fmt = runner_cls.artifact_for(dict(spec.options))
    if fmt == "torch":
        ref = {"model": spec.model, "variant": spec.variant, "seed": spec.seed,
               "input_size": manifest["model"]["input_shape"][2:]}
        return ref, {"format": "torch", "note": "rebuilt in the worker from the registry and seed"}, None
    if fmt not in FORMATS:
        return None, {"format": fmt}, None
    entry = manifest["artifacts"][fmt]
    record = {"format": fmt, "cached": build.get("cached", False),
              **{k: v for k, v in entry.items() if k not in ("status", "traceback")}}
    if entry["status"] != "ok":
        return None, record, entry.get("reason", "export failed")
    return entry["path"], record, None


def _round_record(cell: CellResult, r: int) -> dict:
    if cell.ok:
        return {"round": r, "status": "ok", "samples_ns": cell.samples_ns, "timing": cell.timing}
    return {"round": r, "status": cell.status, "reason": cell.reason}


def keep_fastest_round(kept: CellResult, new: CellResult, r: int, config: MeasureConfig) -> CellResult:
    """Fold round ``r`` of a cell into what earlier rounds kept: every round is recorded in ``rounds``, and
    the cell's samples, timing, memory and parity are those of the round with the lowest median.

    Why the fastest: on a shared machine, interference (neighbours, frequency, memory traffic) only ever
    slows an inference down, so the fastest round is the least disturbed one; the spread between rounds is
    recorded in ``stats.round_spread``.
    """
    rounds = kept.rounds or [_round_record(kept, 1)]
    rounds.append(_round_record(new, r))
    winner = new if new.ok and (not kept.ok or new.median_ms < kept.median_ms) else kept
    winner.rounds = rounds
    winner.recompute(config.noisy_ci, config.noisy_cv)
    return winner


def run_sweep(
    cells: list[CellSpec],
    config: MeasureConfig,
    run: RunResult,
    progress: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True),
    roofline: str = "off",
    rounds: int | Callable[[CellSpec], int] = 1,
) -> RunResult:
    """Measure ``cells`` into ``run``, saving it after every cell.

    ``roofline`` is ``cached``, ``fresh`` or ``off``: calibrate each backend/threads pair first
    (benchbench.metrics.roofline), record it in ``run.meta["roofline"]`` and place every cell on it.

    ``rounds`` (a number, or one per cell spec) measures a cell that many times, each in a fresh worker,
    in sweeps over the whole list that alternate direction, so a cell's rounds are minutes apart and a
    transient slowdown of the machine hits one of them, not all (``keep_fastest_round``). Cells that did
    not measure in round 1 (unsupported, unavailable) are not retried.
    """
    from benchbench.runners import get_runner

    # Build once per model/variant/shape with every format its backends need. Every measured build
    # also exports ONNX: the deploy-graph metrics (ops, DAG width, MAC) are read from it.
    formats_needed: dict[tuple, set[str]] = {}
    for spec in cells:
        fmt = get_runner(spec.backend).artifact_for(dict(spec.options))
        group = _build_group(spec)
        fmts = {fmt, "onnx"} if fmt != "none" else {fmt}
        formats_needed.setdefault(group, set()).update(fmts & set(FORMATS))
    builds: dict[tuple, dict] = {}
    if roofline != "off":
        from benchbench.metrics import calibrate

        measurable = {b for b in {s.backend for s in cells}
                      if get_runner(b).artifact != "none" and get_runner(b).is_available()[0]}
        pairs = [(s.backend, s.threads) for s in cells if s.backend in measurable]
        run.meta.setdefault("roofline", {}).update(calibrate(pairs, roofline, progress))
        run.save()

    rounds_of = rounds if callable(rounds) else (lambda spec: rounds)
    wanted = [max(1, rounds_of(spec)) for spec in cells]
    slot: dict[int, int] = {}  # index in cells -> index in run.cells
    sweep_start = time.perf_counter()
    done = 0
    for r in range(1, max(wanted, default=1) + 1):
        order = range(len(cells)) if r % 2 else reversed(range(len(cells)))
        todo = [i for i in order if wanted[i] >= r and (r == 1 or run.cells[slot[i]].ok)]
        for k, i in enumerate(todo, 1):
            spec = cells[i]
            t0 = time.perf_counter()
            cell = _measure_cell(spec, config, formats_needed, builds, run.meta.get("roofline", {}))
            if r == 1:
                slot[i] = len(run.cells)
                run.cells.append(cell)
            else:
                run.cells[slot[i]] = keep_fastest_round(run.cells[slot[i]], cell, r, config)
            done += 1
            # What the sweep cost so far, and how much of it was exporting (0 on a warm cache).
            run.meta["sweep"] = {"cells": len(run.cells), "measurements": done,
                                 "wall_s": round(time.perf_counter() - sweep_start, 1),
                                 "build_s": round(sum(b.get("build_s", 0.0) for b in builds.values()), 1),
                                 "builds_run": sum("build_s" in b for b in builds.values())}
            run.save()
            where = f"{k}/{len(todo)}" + (f", round {r}" if max(wanted, default=1) > 1 else "")
            _report_progress(progress, cell, spec, where, time.perf_counter() - t0)
    return run


def _report_progress(progress, cell: CellResult, spec: CellSpec, where: str, took: float) -> None:
    """One line per measurement: the round's median (not the kept one), or why it failed."""
    if cell.ok:
        s = cell.stats
        msg = f"{s['median_ms']:.3f} ms (n={s['count']}{', noisy' if s['noisy'] else ''})"
        if cell.parity.get("checked") and not cell.parity.get("passed"):
            msg += " PARITY FAIL"
    else:
        msg = f"{cell.status}: {cell.reason}"
    progress(f"[{where}] {spec.label()}: {msg} [{took:.1f} s]")


def _measure_cell(spec: CellSpec, config: MeasureConfig, formats_needed: dict, builds: dict,
                  roofline: dict) -> CellResult:
    from benchbench.runners import get_runner

    runner_cls = get_runner(spec.backend)
    available, why = runner_cls.is_available()
    if not available:
        return CellResult(spec, "unavailable", why)

    from benchbench.models import model_info

    min_input = model_info(spec.model).min_input
    if spec.input_size and min(spec.input_size) < min_input:
        return CellResult(spec, "unsupported", f"input {spec.input_size[0]}x{spec.input_size[1]} is below "
                          f"this architecture's minimum of {min_input}")
    group = _build_group(spec)
    if group not in builds:
        builds[group] = _build(spec, formats_needed[group], config)
    build = builds[group]
    if build["status"] != "ok":  # unsupported, crashed or timeout, as the build worker ended
        return CellResult(spec, build["status"], build["reason"])
    manifest = build["manifest"]
    model_record = dict(manifest["model"])
    artifact, artifact_record, unusable = _artifact_for(runner_cls, spec, build)
    if unusable:
        return CellResult(spec, "unsupported", unusable, model=model_record, artifact=artifact_record)

    build_dir = Path(build["dir"])
    job = {
        "spec": spec.to_dict(),
        "config": config.__dict__,
        "artifact": artifact,
        "input_path": str(build_dir / "input.npy"),
        "reference_path": str(build_dir / "reference.npz"),
    }
    outcome, result = _run_worker("measure", job, config.cell_timeout_s, spec.threads)
    if outcome != "ok":
        return CellResult(spec, outcome, result["reason"], model=model_record, artifact=artifact_record)
    cell = CellResult(
        spec,
        result["status"],
        result.get("reason"),
        samples_ns=result.get("samples_ns", []),
        timing=result.get("timing", {}),
        model=model_record,
        memory=result.get("memory", {}),
        parity=result.get("parity", {}),
        backend=result.get("backend", {}),
        artifact=artifact_record,
    )
    cell.recompute(config.noisy_ci, config.noisy_cv)
    if cell.ok:
        from benchbench.metrics import cell_metrics

        cell.metrics = cell_metrics(model_record, manifest.get("graph"), cell.backend, artifact_record,
                                    cell.median_ms, roofline.get(f"{spec.backend}/{spec.threads}"))
    return cell
