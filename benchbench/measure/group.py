"""Measuring one comparison group: every cell in a worker of its own, prepared, then driven in lockstep.

A *comparison group* is a set of cells whose ratios users read (``benchbench.measure.sweep.comparison_groups``).
Each cell gets its own worker process; all are prepared and warmed up first, then the lockstep scheduler
(``benchbench.measure.scheduler``) drives them block by block in alternating order. A cell that cannot be
measured (its backend missing, its build failed, its runtime refused it, its worker died) gets a status and
a reason, and the group's other cells go on.

This sits below both executors: the local one and the Dask one (on each measuring worker) call
:func:`measure_group`; neither reaches back into the sweep.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from benchbench.build.builds import Builds
from benchbench.core.spec import CellSpec, MeasureConfig
from benchbench.core.status import Status
from benchbench.processes.manager import ForkServer, Worker, WorkerLost
from benchbench.processes.protocol import Block, BlockDone, Failed, Finish, Finished, Prepare, Ready
from benchbench.results.estimates import SESSION_SPREAD_MIN, cell_latency
from benchbench.results.record import CellResult

from .scheduler import Arm, Schedule, run_lockstep

__all__ = ["measure_group", "session_config", "turned_away"]


class _Prepared:
    """A cell whose worker is ready to time blocks."""

    def __init__(self, index: int, spec: CellSpec, worker: Worker, ready: Ready, model: dict, artifact: dict):
        self.index, self.spec, self.worker, self.ready = index, spec, worker, ready
        self.model, self.artifact = model, artifact
        self.lost: tuple[str, str] | None = None  # (status, reason) if the worker died mid-group

    def failed(self, status: str, reason: str) -> CellResult:
        return CellResult(self.spec, status, reason, model=self.model, artifact=self.artifact)


def turned_away(spec: CellSpec) -> CellResult | None:
    """The cell's result when it is refused before any build (its backend is not installed, or its input is
    below the architecture's minimum), else None. The sweep asks it too, to build only what will be measured."""
    from benchbench.models import model_info
    from benchbench.runners import get_runner

    available, why = get_runner(spec.backend).is_available()
    if not available:
        return CellResult(spec, Status.UNAVAILABLE, why)
    if spec.source is None:
        info = model_info(spec.model)
        if spec.input_size and min(spec.input_size) < info.min_input:
            return CellResult(spec, Status.UNSUPPORTED, f"input {spec.input_size[0]}x{spec.input_size[1]} is below "
                              f"this architecture's minimum of {info.min_input}")
    return None


def _preflight(spec: CellSpec, builds: Builds):
    """A CellResult when the cell cannot be measured, else (artifact, build, model record, artifact record)."""
    from benchbench.models import model_info
    from benchbench.runners import get_runner

    refused = turned_away(spec)
    if refused is not None:
        return refused
    runner_cls = get_runner(spec.backend)
    build = builds.ensure(spec)
    if build["status"] != Status.OK:  # error (the model's own, fault "user"), env-error, crashed or timeout
        return CellResult(spec, build["status"], build["reason"], fault=build.get("fault"))
    model_record = dict(build["manifest"]["model"])
    if spec.source is None:  # registry metadata, whatever an older cached build recorded
        model_record["kind"] = model_info(spec.model).kind
    artifact, artifact_record, unusable = builds.artifact_for(runner_cls, spec)
    if unusable:
        return CellResult(spec, Status.UNSUPPORTED, unusable, model=model_record, artifact=artifact_record)
    return artifact, build, model_record, artifact_record


def _start(spec: CellSpec, pre: tuple, config: MeasureConfig, servers: dict | None) -> Worker | CellResult:
    """A worker for the cell, asked to prepare it (the reply is :func:`_ready`'s to read)."""
    artifact, build, model_record, artifact_record = pre
    try:
        worker = Worker(spec.threads, f"measure worker of {spec.label()}", server=_server(servers, spec))
    except WorkerLost as lost:
        return CellResult(spec, lost.outcome, lost.reason, model=model_record, artifact=artifact_record)
    try:
        worker.send(Prepare(spec, config, artifact, build["input_path"], build["reference_path"]))
    except WorkerLost as lost:
        worker.close()
        return CellResult(spec, lost.outcome, lost.reason, model=model_record, artifact=artifact_record)
    return worker


def _ready(index: int, spec: CellSpec, pre: tuple, worker: Worker, config: MeasureConfig) -> _Prepared | CellResult:
    """The started worker's answer to its Prepare: ready to time blocks, or the cell's failure."""
    _, _, model_record, artifact_record = pre
    try:
        reply = worker.recv(config.cell_timeout_s)
    except WorkerLost as lost:
        worker.close()
        return CellResult(spec, lost.outcome, lost.reason, model=model_record, artifact=artifact_record)
    if isinstance(reply, Failed):
        worker.close()
        return CellResult(spec, reply.status, reply.reason, model=model_record, artifact=artifact_record)
    return _Prepared(index, spec, worker, reply, model_record, artifact_record)


def _side_by_side(specs: Sequence[CellSpec]) -> bool:
    """Whether the group's workers may start side by side: every backend's runner allows it."""
    from benchbench.runners import get_runner

    return all(get_runner(spec.backend).starts_side_by_side for spec in specs)


def _prepare_session(order: Sequence[tuple[int, tuple]], specs: Sequence[CellSpec], config: MeasureConfig,
                     servers: dict | None, side_by_side: bool) -> list[_Prepared | CellResult]:
    """Start and prepare a session's workers in ``order``: one after the other, or all side by side.

    The first session's are prepared one at a time, because their load and first-inference times are the
    cells' reported start-up figures (``timing.init_ms``, ``first_ms``) and must not share the CPUs. A later
    session's start-up times are not reported, so its workers load and warm up side by side: a session then
    costs about one worker's start-up, not one per cell (a warm-up needs no quiet machine; no block is timed
    before every worker is ready)."""
    if not side_by_side:
        out: list[_Prepared | CellResult] = []
        for i, pre in order:
            started = _start(specs[i], pre, config, servers)
            out.append(started if isinstance(started, CellResult) else _ready(i, specs[i], pre, started, config))
        return out
    started = [(i, pre, _start(specs[i], pre, config, servers)) for i, pre in order]
    return [w if isinstance(w, CellResult) else _ready(i, specs[i], pre, w, config) for i, pre, w in started]


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
            cell.lost = (Status.ERROR, f"the worker answered a block with {type(reply).__name__}")
            return None
        return {"samples_ns": reply.samples_ns, **reply.interference, "idle_cpu_ns": reply.idle_cpu_ns,
                "settle_ns": reply.settle_ns, "lead_ns": reply.lead_ns}
    return run_block


def _end(cell: _Prepared, config: MeasureConfig, profile_runs: int, report: bool = True
         ) -> Finished | tuple[str, str]:
    """The worker's closing record (parity, memory, metadata, a profile if asked; empty ones unless
    ``report``: a group keeps only its last session's), or (status, reason)."""
    if cell.lost:
        return cell.lost
    try:
        reply = cell.worker.request(Finish(profile_runs, report), config.cell_timeout_s)
    except WorkerLost as lost:
        return lost.outcome, lost.reason
    if isinstance(reply, Failed):
        return reply.status, reply.reason
    assert isinstance(reply, Finished)
    return reply


def _result(cell: _Prepared, first: Ready, arm: Arm, end: Finished, schedules: Sequence[Schedule],
            config: MeasureConfig) -> CellResult:
    """The cell over all its sessions: every block (tagged with its session), the first worker's start-up
    times, the last worker's parity, memory, metadata and profile."""
    samples, blocks = [], []
    for b in arm.blocks:
        block_samples = b.pop("samples_ns")
        samples += block_samples
        blocks.append({"n": len(block_samples), **b})
    result = CellResult(
        cell.spec, Status.OK, None,
        samples_ns=samples,
        blocks=blocks,
        timing={"init_ms": first.init_ms, "first_ms": first.first_ms, "warmup_count": first.warmup_count,
                "warmup_s": round(first.warmup_s, 4), "sampling_s": round(sum(s.sampling_s for s in schedules), 4),
                "stop_reason": schedules[-1].stop_reason, "block_count": arm.count,
                **({"sessions": len(schedules)} if len(schedules) > 1 else {})},
        model=cell.model, memory=end.memory, parity=end.parity, backend=end.backend, artifact=cell.artifact,
        process_sd=config.process_sd,
    )
    result.recompute(config.noisy_ci, config.noisy_cv)
    if end.profile is not None:
        from .profile import summarize

        result.metrics["profile"] = summarize(end.profile, result.median_ms)
    return result


def _schedule_record(schedules: Sequence[Schedule], arms: Sequence[Arm]) -> dict:
    """What the scheduler did, for the run's group record."""
    idle = sum(b.get("idle_cpu_ns") or 0 for a in arms for b in a.blocks)
    settle = sum(b.get("settle_ns") or 0 for a in arms for b in a.blocks)
    sampling_s = sum(s.sampling_s for s in schedules)
    span = sampling_s * 1e9
    return {"rounds": sum(s.rounds for s in schedules), "stop_reason": schedules[-1].stop_reason,
            "sampling_s": round(sampling_s, 3), "order": "alternating (ABBA)",
            **({"sessions": len(schedules)} if len(schedules) > 1 else {}),
            # CPU the waiting workers used while another one was timed (spinning thread pools)
            "idle_cpu_share": idle / span if span > 0 else None,
            # wall time spent waiting for a finished block's thread pools to stop spinning
            "settle_share": settle / span if span > 0 else None}


def _size_from_blocks(arm: Arm) -> None:
    """Size the arm's next blocks from the latency its quiet blocks read so far, not from its first worker's
    warm-up: a warm-up that a load slowed (one burst is enough) would size every later block of the group too small,
    down to one inference where five fit (seen in A/A runs under load here)."""
    est = cell_latency(arm.blocks)
    if est is not None and est.value > 0:
        arm.estimate_ns = est.value * 1e6


def _least_sessions(config: MeasureConfig) -> int:
    """The sessions a group measures before a pinned interval may end it. Asked for ``SESSION_SPREAD_MIN`` sessions or
    more, it measures that many first: from there on the interval is at least the sessions' own t interval
    (``estimates.ratio``), and before it only the between-process term guards against sessions that differ (in 20
    quiet A/A trials of 8 sessions here, the one interval that missed 1.00 was a group pinned after 3 sessions).
    Asked for fewer, that guard never comes, and the first session that pins the interval ends the group."""
    return SESSION_SPREAD_MIN if config.sessions >= SESSION_SPREAD_MIN else 1


def session_config(config: MeasureConfig) -> MeasureConfig:
    """One session's share of the sampling policy: the time bounds, the least rounds (at least 3 each, so a
    session's blocks alternate both ways) and the warm-up time (at least 0.1 s, the reference profile's)
    split over ``config.sessions``."""
    n = max(1, config.sessions)
    if n == 1:
        return config
    return config.replace(min_s=config.min_s / n, max_s=config.max_s / n,
                          min_blocks=max(3, math.ceil(config.min_blocks / n)),
                          warmup_min_s=max(min(0.1, config.warmup_min_s), config.warmup_min_s / n))


def measure_group(specs: Sequence[CellSpec], config: MeasureConfig, builds: Builds,
                  servers: dict | None = None,
                  profile: Callable[[CellSpec], int] | None = None,
                  blocks_only: bool = False) -> tuple[list[CellResult], dict]:
    """Measure one comparison group in lockstep; returns its cells (in ``specs`` order) and the
    scheduler's record (rounds, sessions, stop reason, sampling time, idle CPU of the waiting workers).

    The group is measured in up to ``config.sessions`` *sessions*, each in fresh workers with its share of
    the time (:func:`session_config`): two processes running the same artifact differ persistently
    (``benchbench.results.estimates.PROCESS_SD``), and only more process pairs shrink that term. Sampling
    stops after any session once every ratio is pinned down, that term included.

    ``builds`` makes (or finds) each cell's build. ``servers`` (a dict the caller owns and closes) holds
    fork servers per backend and threads, so workers start with their runtime imported; None starts every
    worker as a fresh interpreter. ``profile(spec)``: how many inferences to profile per op in the cell's
    own worker in the last session, once the group's timed blocks are done (0: none;
    ``benchbench.measure.profile``), so a profile costs no second process and no second load of the runtime.

    ``blocks_only``: the caller keeps only the cells' blocks and samples (a sweep's later round of a group
    already measured, ``CellResult.add_round``), so every session's workers start side by side and none
    checks parity or reads memory; the cells' start-up times, memory, parity and metadata are then empty."""
    results: list[CellResult | None] = [None] * len(specs)
    builds_ok = {}
    for i, spec in enumerate(specs):
        pre = _preflight(spec, builds)
        if isinstance(pre, CellResult):
            results[i] = pre
        else:
            builds_ok[i] = pre
    part = session_config(config)
    arms: dict[int, Arm] = {}
    first: dict[int, Ready] = {}
    ends: dict[int, Finished] = {}
    cells: dict[int, _Prepared] = {}
    schedules: list[Schedule] = []
    together = _side_by_side(specs)
    for session in range(1, max(1, config.sessions) + 1):
        prepared: list[_Prepared] = []
        # Every other session starts its workers, and its lockstep rounds, in the opposite order: whatever a
        # worker gains from being started first or timed first (doctor's A/A sessions read the second worker
        # 0.3% faster, 1.9 standard errors) is then spread over the sessions and their between-process term,
        # not carried by one arm into every ratio. A sweep's even rounds reverse the group too (``sweep``).
        order = list(builds_ok.items())
        if session % 2 == 0:
            order.reverse()
        try:
            live_order = [(i, pre) for i, pre in order if results[i] is None]  # not failed in an earlier session
            outcomes = _prepare_session(live_order, specs, part, servers,
                                        side_by_side=(session > 1 or blocks_only) and together)
            for (i, _), outcome in zip(live_order, outcomes):
                if isinstance(outcome, CellResult):
                    results[i] = outcome
                else:
                    prepared.append(outcome)
            if not prepared:
                break
            for p in prepared:
                cells[p.index] = p
                first.setdefault(p.index, p.ready)
                if p.index in arms:
                    arms[p.index].run_block = _block_runner(p, config.cell_timeout_s)
                else:
                    arms[p.index] = Arm(_block_runner(p, config.cell_timeout_s), p.ready.estimate_ns)
            live = [arms[p.index] for p in prepared]
            schedule = run_lockstep(live, part, session=session, min_total_rounds=config.min_blocks)
            schedules.append(schedule)
            for arm in live:
                _size_from_blocks(arm)
            last = (session >= config.sessions or schedule.stop_reason == "lost"
                    or (schedule.stop_reason == "converged" and session >= _least_sessions(config)))
            for p in prepared:
                end = _end(p, config, profile(p.spec) if profile and last else 0, report=last and not blocks_only)
                if isinstance(end, tuple):
                    results[p.index] = p.failed(*end)
                else:
                    ends[p.index] = end
        finally:
            for p in prepared:
                p.worker.close()
        if last:
            break
    for i, arm in arms.items():
        if results[i] is None:
            results[i] = _result(cells[i], first[i], arm, ends[i], schedules, config)
    record = _schedule_record(schedules, list(arms.values())) if schedules else {"rounds": 0}
    return results, record
