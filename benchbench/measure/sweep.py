"""The sweep: build each model's artifacts once, then measure every comparison group in lockstep.

A *comparison group* is a set of cells whose ratios users read (``comparison_groups``): a model's
train and deploy forms on one backend, the rows of one guideline table at one width on one backend,
or, when asked, one cell on several backends. Each cell of a group gets its own worker process, all
are prepared and warmed up first, and then the lockstep scheduler (``benchbench.measure.scheduler``) drives
them block by block in alternating order. A cell with nothing to compare is a group of one.

Failures never stop a sweep. A backend that is not installed gives ``unavailable`` cells, an export or
runtime that rejects a model gives ``unsupported``, a worker that dies gives ``crashed``, one that
overruns gives ``timeout``; the group's other cells go on. Each finished group is appended to the run's
journal (``benchbench.results.journal``) and fsynced, so finished cells are on disk whatever happens next; a
journal that cannot be written stops the sweep (``WriteError``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchbench.processes.manager import ForkServer, Worker, WorkerLost
from benchbench.build.builds import artifact_for, build_group, ensure_build
from .executor import Executor, LocalExecutor
from benchbench.build.export import FORMATS
from benchbench.results.journal import Journal
from .scheduler import Arm, run_lockstep
from benchbench.processes.protocol import Block, BlockDone, Failed, Finish, Finished, Prepare, Ready
from benchbench.results.record import CellResult, RunResult
from benchbench.core.spec import CellSpec, MeasureConfig

__all__ = ["LOCKSTEP_MODES", "comparison_groups", "measure_group", "run_sweep"]

# auto: train/deploy pairs and guideline tables; backend: also one model's cells across backends;
# off: every cell alone (one after the other, as benchbench measured before lockstep).
LOCKSTEP_MODES = ("auto", "backend", "off")


def _guideline_table(model: str) -> str | None:
    """``g3_2series_x2`` → ``g3_x2``: the rows of one guideline table at one width share this key."""
    from benchbench.models import model_info

    if not model_info(model).family.startswith("guideline"):
        return None
    prefix, _, width = model.rpartition("_")
    return f"{prefix.split('_')[0]}_{width}"


def comparison_groups(cells: Sequence[CellSpec], mode: str = "auto") -> list[list[int]]:
    """Indices of ``cells`` grouped for lockstep measurement, in order of first appearance.

    ``auto``: cells that differ only in variant (train vs deploy), and the rows of one guideline table
    at one width, on one backend. ``backend``: as auto, and one model's cells on every backend together.
    ``off``: every cell alone. A group's first cell is its baseline.
    """
    if mode not in LOCKSTEP_MODES:
        raise ValueError(f"unknown lockstep mode '{mode}' ({', '.join(LOCKSTEP_MODES)})")
    groups: dict[tuple, list[int]] = {}
    for i, spec in enumerate(cells):
        if mode == "off":
            key = (i,)
        else:
            # a user's file (spec.source) is in no guideline table
            subject = (spec.source is None and _guideline_table(spec.model)) or spec.model
            rest = (spec.batch, spec.input_size, spec.threads, spec.seed, spec.options, spec.device)
            key = (subject, *rest) if mode == "backend" else (subject, spec.backend, *rest)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


class _Prepared:
    """A cell whose worker is ready to time blocks."""

    def __init__(self, index: int, spec: CellSpec, worker: Worker, ready: Ready, model: dict, artifact: dict):
        self.index, self.spec, self.worker, self.ready = index, spec, worker, ready
        self.model, self.artifact = model, artifact
        self.lost: tuple[str, str] | None = None  # (status, reason) if the worker died mid-group


def _preflight(spec: CellSpec, formats: set[str], builds: dict, config: MeasureConfig):
    """A CellResult when the cell cannot be measured, else (artifact, build, model record, artifact record)."""
    from benchbench.models import model_info
    from benchbench.runners import get_runner

    runner_cls = get_runner(spec.backend)
    available, why = runner_cls.is_available()
    if not available:
        return CellResult(spec, "unavailable", why)
    if spec.source is not None:  # a user's model file
        from benchbench.build.file_builds import preflight

        return preflight(spec, runner_cls, builds, config)
    min_input = model_info(spec.model).min_input
    if spec.input_size and min(spec.input_size) < min_input:
        return CellResult(spec, "unsupported", f"input {spec.input_size[0]}x{spec.input_size[1]} is below "
                          f"this architecture's minimum of {min_input}")
    group = build_group(spec)
    if group not in builds:
        builds[group] = ensure_build(spec, formats, config)
    build = builds[group]
    if build["status"] != "ok":  # error (the model's own, fault "user"), env-error, crashed or timeout
        return CellResult(spec, build["status"], build["reason"], fault=build.get("fault"))
    model_record = dict(build["manifest"]["model"])
    artifact, artifact_record, unusable = artifact_for(runner_cls, spec, build)
    if unusable:
        return CellResult(spec, "unsupported", unusable, model=model_record, artifact=artifact_record)
    return artifact, build, model_record, artifact_record


def _prepare(index: int, spec: CellSpec, pre: tuple, config: MeasureConfig,
             servers: dict | None) -> _Prepared | CellResult:
    artifact, build, model_record, artifact_record = pre
    build_dir = Path(build["dir"])
    try:
        worker = Worker(spec.threads, f"measure worker of {spec.label()}", server=_server(servers, spec))
    except WorkerLost as lost:
        return CellResult(spec, lost.outcome, lost.reason, model=model_record, artifact=artifact_record)
    try:
        reply = worker.request(Prepare(spec.to_dict(), config.__dict__, artifact,
                                       build.get("input_path", str(build_dir / "input.npy")),
                                       build.get("reference_path", str(build_dir / "reference.npz"))),
                               config.cell_timeout_s)
    except WorkerLost as lost:
        worker.close()
        return CellResult(spec, lost.outcome, lost.reason, model=model_record, artifact=artifact_record)
    if isinstance(reply, Failed):
        worker.close()
        return CellResult(spec, reply.status, reply.reason, model=model_record, artifact=artifact_record)
    return _Prepared(index, spec, worker, reply, model_record, artifact_record)


def _server(servers: dict | None, spec: CellSpec) -> ForkServer | None:
    """The fork server of the cell's backend and threads (started on first use), or None: a fresh process.
    A server that died is replaced."""
    if servers is None:
        return None
    key = (spec.backend, spec.threads)
    server = servers.get(key)
    if server is None or server.proc.poll() is not None:
        if server is not None:
            server.close()
        server = servers[key] = ForkServer(spec.backend, spec.threads)
    return server


def _block_runner(cell: _Prepared, timeout_s: float) -> Callable[[int, bool], dict | None]:
    def run_block(count: int, settle: bool) -> dict | None:
        try:
            reply = cell.worker.request(Block(count, settle), timeout_s)
        except WorkerLost as lost:
            cell.lost = (lost.outcome, lost.reason)
            return None
        if not isinstance(reply, BlockDone):
            cell.lost = ("error", f"the worker answered a block with {type(reply).__name__}")
            return None
        return {"samples_ns": reply.samples_ns, **reply.interference, "idle_cpu_ns": reply.idle_cpu_ns,
                "settle_ns": reply.settle_ns}
    return run_block


def _finish(cell: _Prepared, arm: Arm, schedule, config: MeasureConfig) -> CellResult:
    spec = cell.spec
    if cell.lost:
        return CellResult(spec, cell.lost[0], cell.lost[1], model=cell.model, artifact=cell.artifact)
    try:
        reply = cell.worker.request(Finish(), config.cell_timeout_s)
    except WorkerLost as lost:
        return CellResult(spec, lost.outcome, lost.reason, model=cell.model, artifact=cell.artifact)
    if isinstance(reply, Failed):
        return CellResult(spec, reply.status, reply.reason, model=cell.model, artifact=cell.artifact)
    assert isinstance(reply, Finished)
    samples, blocks = [], []
    for b in arm.blocks:
        block_samples = b.pop("samples_ns")
        samples += block_samples
        blocks.append({"n": len(block_samples), "session": 1, **b})
    ready = cell.ready
    cell_result = CellResult(
        spec, "ok", None,
        samples_ns=samples,
        blocks=blocks,
        timing={"init_ms": ready.init_ms, "first_ms": ready.first_ms, "warmup_count": ready.warmup_count,
                "warmup_s": round(ready.warmup_s, 4), "sampling_s": round(schedule.sampling_s, 4),
                "stop_reason": schedule.stop_reason, "block_count": arm.count},
        model=cell.model, memory=reply.memory, parity=reply.parity, backend=reply.backend, artifact=cell.artifact,
    )
    cell_result.recompute(config.noisy_ci, config.noisy_cv)
    return cell_result


def measure_group(specs: Sequence[CellSpec], config: MeasureConfig, formats: dict[tuple, set[str]],
                  builds: dict, servers: dict | None = None) -> tuple[list[CellResult], dict]:
    """Measure one comparison group in lockstep; returns its cells (in ``specs`` order) and the
    scheduler's record (rounds, stop reason, sampling time, idle CPU of the waiting workers).

    ``servers`` (a dict the caller owns and closes) holds fork servers per backend and threads, so
    workers start with their runtime imported; None starts every worker as a fresh interpreter."""
    results: list[CellResult | None] = [None] * len(specs)
    prepared: list[_Prepared] = []
    try:
        for i, spec in enumerate(specs):
            pre = _preflight(spec, formats.get(build_group(spec), set()), builds, config)
            outcome = pre if isinstance(pre, CellResult) else _prepare(i, spec, pre, config, servers)
            if isinstance(outcome, CellResult):
                results[i] = outcome
            else:
                prepared.append(outcome)
        record: dict = {"rounds": 0}
        if prepared:
            arms = [Arm(_block_runner(p, config.cell_timeout_s), p.ready.estimate_ns) for p in prepared]
            schedule = run_lockstep(arms, block_s=config.block_s, min_blocks=config.min_blocks,
                                    min_s=config.min_s, max_s=config.max_s, target_ci=config.target_ci,
                                    max_count=config.max_count, max_rounds=config.max_blocks)
            idle = sum(b.get("idle_cpu_ns") or 0 for a in arms for b in a.blocks)
            settle = sum(b.get("settle_ns") or 0 for a in arms for b in a.blocks)
            record = {"rounds": schedule.rounds, "stop_reason": schedule.stop_reason,
                      "sampling_s": round(schedule.sampling_s, 3), "order": "alternating (ABBA)",
                      # CPU the waiting workers used while another one was timed (spinning thread pools)
                      "idle_cpu_share": idle / (schedule.sampling_s * 1e9) if schedule.sampling_s > 0 else None,
                      # wall time spent waiting for a finished block's thread pools to stop spinning
                      "settle_share": settle / (schedule.sampling_s * 1e9) if schedule.sampling_s > 0 else None}
            for p, arm in zip(prepared, arms):
                results[p.index] = _finish(p, arm, schedule, config)
    finally:
        for p in prepared:
            p.worker.close()
    return results, record


def _place(cell: CellResult, builds: dict, calibration: dict) -> None:
    """The cell's metrics: deploy-graph fragmentation from the build's ONNX, and its roofline point
    (which moves with the median, so this runs again after every round)."""
    from benchbench.metrics import cell_metrics

    if not cell.ok:
        return
    graph = builds.get(build_group(cell.spec), {}).get("manifest", {}).get("graph")
    profile = cell.metrics.get("profile")
    cell.metrics = cell_metrics(cell.model, graph, cell.backend, cell.artifact, cell.median_ms,
                                calibration.get(f"{cell.spec.backend}/{cell.spec.threads}"))
    if profile:
        cell.metrics["profile"] = profile


def run_sweep(
    cells: list[CellSpec],
    config: MeasureConfig,
    run: RunResult,
    progress: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True),
    rounds: int | Callable[[CellSpec], int] = 1,
    lockstep: str = "auto",
    fork_servers: bool = True,
    journal: Journal | None = None,
    done: dict[int, tuple[list[dict], list[CellResult]]] | None = None,
    executor: Executor | None = None,
) -> RunResult:
    """Measure ``cells`` into ``run`` group by group (``comparison_groups``).

    ``journal``: every finished group is appended to it, durably, and the views (results.json and the
    rest) are the caller's to write at the end. Without one, ``run`` is saved to ``run.path`` (if set)
    once, when the sweep ends or is interrupted. ``done`` (``--resume``): group index -> (scheduler
    records, cells) of groups finished earlier; they take their place in ``run`` unmeasured.

    A roofline calibration in ``run.meta["roofline"]`` (``benchbench.measure.calibration.calibrate_run``, run
    first by the caller) places every cell on it.

    ``rounds`` (a number, or one per cell spec; a group takes its largest) measures a group that many
    times, each time in fresh workers, in sweeps over the groups that alternate direction, so a group's
    rounds are minutes apart. Every round's blocks are kept, tagged with their round; intervals are
    built over all of them, so they include the variation between processes and rounds.

    ``fork_servers``: measuring workers are forked from one server per backend and threads that has
    imported the runtime already (``benchbench.processes.manager.ForkServer``); False starts each as a fresh
    interpreter. Every fork server is stopped before this returns.

    ``executor`` (``benchbench.measure.executor``) measures the groups; the default measures them here, in order
    (``LocalExecutor``). One given by the caller is the caller's to close.
    """
    from benchbench.runners import get_runner

    # Build once per model/variant/shape with every format its backends need. Every measured build
    # also exports ONNX: the deploy-graph metrics (ops, DAG width, MAC) are read from it.
    formats_needed: dict[tuple, set[str]] = {}
    for spec in cells:
        if spec.source is not None:
            continue  # a user's file is measured as it is: nothing to export
        fmt = get_runner(spec.backend).artifact_for(dict(spec.options))
        fmts = {fmt, "onnx"} if fmt != "none" else {fmt}
        formats_needed.setdefault(build_group(spec), set()).update(fmts & set(FORMATS))
    builds: dict[tuple, dict] = {}
    calibration = run.meta.get("roofline", {})

    groups = comparison_groups(cells, lockstep)
    rounds_of = rounds if callable(rounds) else (lambda spec: rounds)
    wanted = [max(max(1, rounds_of(cells[i])) for i in g) for g in groups]
    slots: dict[int, list[int]] = {}  # group -> indices in run.cells
    own = executor is None
    executor = executor or LocalExecutor(measure_group, fork_servers)
    try:
        _sweep(cells, config, run, progress, groups, wanted, slots, formats_needed, builds, calibration, executor,
               journal, done or {})
    finally:
        if own:
            executor.close()
        if journal is None and run.path is not None:
            run.save()
    return run


def _adopt(run: RunResult, finished: tuple[list[dict], list[CellResult]]) -> list[int]:
    """Put a group finished by an earlier session into ``run`` as the next group; returns its slots."""
    rounds, measured = finished
    group_id = len(run.groups)
    slots = list(range(len(run.cells), len(run.cells) + len(measured)))
    run.groups.append({"id": group_id, "cells": slots, "rounds": rounds})
    for cell in measured:
        cell.group = group_id if len(measured) > 1 else None
        run.cells.append(cell)
    return slots


def _sweep(cells, config, run, progress, groups, wanted, slots, formats_needed, builds, calibration, executor,
           journal, finished):
    sweep_start = time.perf_counter()
    done = 0
    total_rounds = max(wanted, default=1)
    for r in range(1, total_rounds + 1):
        order = range(len(groups)) if r % 2 else reversed(range(len(groups)))
        todo = [g for g in order if g not in finished and wanted[g] >= r
                and (r == 1 or any(run.cells[s].ok for s in slots[g]))]
        k = 0
        # The executor hands groups back as they finish: in order here, in any order from a cluster.
        pending = executor.measure([(g, [cells[i] for i in groups[g]]) for g in todo], config, formats_needed,
                                   builds)
        # Round 1 runs forward over every group: one finished earlier takes its place unmeasured, so the
        # cells stand in the order of a run that was never interrupted.
        for g in (order if r == 1 else todo):
            if g in finished:
                slots[g] = _adopt(run, finished[g])
                continue
            k += 1
            unit = next(pending)
            g, measured, record = unit.index, unit.cells, unit.record
            specs = [cells[i] for i in groups[g]]
            for cell, host in zip(measured, unit.hosts):
                cell.host = host
            if r == 1:
                group_id = len(run.groups)
                slots[g] = list(range(len(run.cells), len(run.cells) + len(measured)))
                run.groups.append({"id": group_id, "cells": slots[g], "rounds": [record]})
                for cell in measured:
                    cell.group = group_id if len(specs) > 1 else None
                    run.cells.append(cell)
            else:
                run.groups[_group_id(run, slots[g])]["rounds"].append(record)
                for slot, cell in zip(slots[g], measured):
                    run.cells[slot].add_round(cell, r)
            for slot in slots[g]:
                run.cells[slot].recompute(config.noisy_ci, config.noisy_cv)
                _place(run.cells[slot], builds, calibration)
            done += len(specs)
            run.meta["sweep"] = {"cells": len(run.cells), "groups": len(run.groups), "measurements": done,
                                 "wall_s": round(time.perf_counter() - sweep_start, 1),
                                 "build_s": round(sum(b.get("build_s", 0.0) for b in builds.values()), 1),
                                 "builds_run": sum("build_s" in b for b in builds.values())}
            if journal is not None:
                journal.append_group(run.meta, g, run.groups[_group_id(run, slots[g])]["rounds"],
                                     [run.cells[s] for s in slots[g]])
            where = f"{k}/{len(todo)}" + (f", round {r}" if total_rounds > 1 else "")
            _report_progress(progress, [run.cells[s] for s in slots[g]], where, unit.took_s)


def _group_id(run: RunResult, slots: list[int]) -> int:
    return next(g["id"] for g in run.groups if g["cells"] == slots)


def _report_progress(progress, cells: list[CellResult], where: str, took: float) -> None:
    """One line per cell of the group: its median so far, or why it failed."""
    for cell in cells:
        if cell.ok:
            s = cell.stats
            msg = f"{s['median_ms']:.3f} ms ({s.get('blocks', 0)} blocks, n={s['count']}"
            if s.get("wait_share") is not None:
                msg += f", waited {100 * s['wait_share']:.0f}%"
            msg += ")"
            if cell.parity.get("checked") and not cell.parity.get("passed"):
                msg += " PARITY FAIL"
        else:
            msg = f"{cell.status}: {cell.reason}"
        progress(f"[{where}] {cell.spec.label()}: {msg}")
    progress(f"[{where}] group took {took:.1f} s")
