"""The sweep: cells grouped for comparison, the groups handed to an executor round by round, and every
finished group filed into the run and appended to its journal.

A *comparison group* is a set of cells whose ratios users read (``comparison_groups``): a model's train and
deploy forms on one backend, the rows of one guideline table at one width on one backend, or, when asked,
one cell on several backends. An executor (``benchbench.measure.executor``: here, or a Dask cluster)
measures each group whole (``benchbench.measure.group``) and hands it back; the sweep files it.

Failures never stop a sweep. A backend that is not installed gives ``unavailable`` cells, an export or
runtime that rejects a model gives ``unsupported``, a worker that dies gives ``crashed``, one that overruns
gives ``timeout``; the group's other cells go on. Each finished group is appended to the run's journal
(``benchbench.results.journal``) and fsynced, so finished cells are on disk whatever happens next; a journal
that cannot be written stops the sweep (``WriteError``). ``--resume`` (:func:`resume`) adopts the groups a
folder finished and measures the rest, by the same rule that decides which groups a round measures.
"""

from __future__ import annotations

import datetime as _dt
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchbench.build.builds import Builds, build_group
from benchbench.core.spec import CellSpec, MeasureConfig
from benchbench.results.journal import JOURNAL, Journal
from benchbench.results.record import CellResult, RunResult

from .executor import Executor, GroupDone, LocalExecutor
from .group import turned_away
from .progress import for_stream

__all__ = ["LOCKSTEP_MODES", "Allocation", "Finished", "ResumeError", "Sweep", "comparison_groups", "needs_round",
           "resume", "run_sweep"]

# auto: train/deploy pairs and guideline tables; backend: also one model's cells across backends;
# off: every cell alone (one after the other, as benchbench measured before lockstep).
LOCKSTEP_MODES = ("auto", "backend", "off")


class ResumeError(Exception):
    """A run folder that cannot be resumed with the cells asked for; ``str()`` is one line."""


@dataclass
class Finished:
    """A comparison group finished in an earlier session of the run (``--resume``): its scheduler records
    (one per round) and its cells."""

    rounds: list[dict]
    cells: list[CellResult]


def _guideline_table(model: str) -> str | None:
    """``g3_2series_x2`` → ``g3_x2``: the rows of one guideline table at one width share this key."""
    from benchbench.models import model_info

    if model_info(model).kind != "guideline":
        return None
    prefix, _, width = model.rpartition("_")
    return f"{prefix.split('_')[0]}_{width}"


def comparison_groups(cells: Sequence[CellSpec], mode: str = "auto") -> list[list[int]]:
    """Indices of ``cells`` grouped for lockstep measurement, in order of first appearance.

    ``auto``: cells that differ only in variant (train vs deploy), and the rows of one guideline table
    at one width, on one backend. ``backend``: as auto, and one model's cells on every backend together.
    ``off``: every cell alone. Cells with a ``block`` (``benchbench lab``) are grouped by block and backend
    in ``auto`` and ``backend`` alike. A group's first cell is its baseline.
    """
    if mode not in LOCKSTEP_MODES:
        raise ValueError(f"unknown lockstep mode '{mode}' ({', '.join(LOCKSTEP_MODES)})")
    groups: dict[tuple, list[int]] = {}
    for i, spec in enumerate(cells):
        if mode == "off":
            key = (i,)
        elif spec.block is not None:  # a lab block: its anchor and its points, on one backend, in any mode
            key = ("block", spec.block, spec.backend, spec.device)
        else:
            # a user's file (spec.source) is in no guideline table
            subject = (spec.source is None and _guideline_table(spec.model)) or spec.model
            rest = (spec.batch, spec.input_size, spec.threads, spec.seed, spec.options, spec.device)
            key = (subject, *rest) if mode == "backend" else (subject, spec.backend, *rest)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


@dataclass(frozen=True)
class Allocation:
    """How many rounds a comparison group gets (sequential allocation): at most ``most``, of which the
    first ``least`` always; past those, another only while ``settled(cells)`` says the group's intervals
    are still too wide for what the report decides with them. ``most`` and ``least`` are numbers, or one
    per cell spec (a group takes its largest). The default: every group ``most`` rounds. ``max_s`` (one per
    cell spec; a group takes its largest) caps a group's sampling time per cell and round below the sweep's
    ``MeasureConfig.max_s``, for groups whose answer needs less (``group_config``); None: every group the
    sweep's."""

    most: int | Callable[[CellSpec], int] = 1
    least: int | Callable[[CellSpec], int] | None = None  # None: ``most``
    settled: Callable[[Sequence[CellResult]], bool] | None = None
    note: str = ""  # the rule in words, for the run's meta
    max_s: Callable[[CellSpec], float] | None = None


def group_config(config: MeasureConfig, specs: Sequence[CellSpec], allocation: Allocation) -> MeasureConfig:
    """The sampling a group gets: the sweep's ``config``, its time cap lowered to what ``allocation.max_s``
    gives the group's cells (their largest), and its minimum time with it."""
    if allocation.max_s is None:
        return config
    cap = min(config.max_s, max(allocation.max_s(spec) for spec in specs))
    return config if cap >= config.max_s else config.replace(max_s=cap, min_s=min(config.min_s, cap))


def needs_round(r: int, wanted: tuple[int, int], cells: Sequence[CellResult],
                settled: Callable[[Sequence[CellResult]], bool] | None = None) -> bool:
    """Whether a group that has ``cells`` so far is measured in round ``r`` (1-based), ``wanted`` being its
    (least, most) rounds: every group in round 1; a later round only while a cell of it is ok (no round can
    rescue a model that does not build), and past ``least`` only while it is not ``settled``. A group
    needing no further round is finished, for the sweep and for ``--resume`` alike."""
    least, most = wanted
    if r == 1:
        return True
    if r > most or not any(c.ok for c in cells):
        return False
    return r <= least or settled is None or not settled(cells)


def _wanted_rounds(cells: Sequence[CellSpec], groups: list[list[int]],
                   allocation: Allocation) -> list[tuple[int, int]]:
    """(least, most) rounds per group: the largest of each over the group's cells."""
    def largest(rounds, g):
        rounds_of = rounds if callable(rounds) else (lambda spec: rounds)
        return max(max(1, rounds_of(cells[i])) for i in g)

    out = []
    for g in groups:
        most = largest(allocation.most, g)
        least = most if allocation.least is None else min(most, largest(allocation.least, g))
        out.append((least, most))
    return out


def _in_round_order(items: list, r: int) -> list:
    """A group's cells in the order round ``r`` measures them: as listed in odd rounds, reversed in even ones
    (its own inverse)."""
    return items[::-1] if r % 2 == 0 else list(items)


def _allocation(rounds: int | Callable[[CellSpec], int] | Allocation) -> Allocation:
    return rounds if isinstance(rounds, Allocation) else Allocation(rounds)


class Sweep:
    """One sweep over ``cells`` into ``run``; :meth:`run_all` measures it.

    ``rounds`` (a number, or one per cell spec; a group takes its largest; or an :class:`Allocation`, which
    stops a group's rounds once it is settled) measures a group that many times, each time in fresh workers,
    in sweeps over the groups that alternate direction, so a group's rounds are minutes apart. Every round's
    blocks are kept, tagged with their session; intervals are built over all of them, so they include the
    variation between processes and rounds. ``finished`` (``--resume``): group
    index → the group as an earlier session finished it; it takes its place in ``run`` unmeasured.

    ``executor`` measures the groups; the default measures them here, in order (``LocalExecutor``, whose
    ``fork_servers`` start workers with their runtime imported). One given by the caller is the caller's to
    close. A roofline calibration in ``run.meta["roofline"]`` places every cell on it. ``progress`` takes one
    line per cell and per group; without it a terminal gets a status line with an ETA
    (``benchbench.measure.progress``), any other stderr the lines. ``profile(spec)``: inferences per op to
    profile the cell with in its own worker in round 1, after the group's timed blocks (0: none)."""

    def __init__(self, cells: list[CellSpec], config: MeasureConfig, run: RunResult, *,
                 rounds: int | Callable[[CellSpec], int] | Allocation = 1, lockstep: str = "auto",
                 journal: Journal | None = None, executor: Executor | None = None,
                 progress: Callable[[str], None] | None = None, finished: dict[int, Finished] | None = None,
                 fork_servers: bool = True, profile: Callable[[CellSpec], int] | None = None):
        self.cells, self.config, self.run, self.journal, self.progress = cells, config, run, journal, progress
        self.groups = comparison_groups(cells, lockstep)
        self.allocation = _allocation(rounds)
        self.wanted = _wanted_rounds(cells, self.groups, self.allocation)
        self.profile = profile
        self.finished = finished or {}
        self.builds = Builds(config, cells)
        self.executor = executor or LocalExecutor(fork_servers)
        self._own_executor = executor is None
        self.slots: dict[int, list[int]] = {}  # group -> indices in run.cells
        self.measured = 0
        self.profile_s = 0.0  # seconds the measuring workers spent profiling (in the sweep's wall time)
        self.build_wall_s = 0.0  # wall seconds of the builds made before the first round (side by side)
        self.started = time.perf_counter()

    def run_all(self) -> RunResult:
        """Measure every round of every group. Without a journal, ``run`` is saved to ``run.path`` (if set)
        once, when the sweep ends or is interrupted."""
        left = [g for g in range(len(self.groups)) if g not in self.finished]
        self.reporter = None
        try:
            if not self.executor.remote:  # a cluster builds on its own build workers, or as it goes
                say = self.progress or (lambda line: print(line, file=sys.stderr, flush=True))
                self.build_wall_s = self.builds.make_all(self._to_build(left), self.config.parallel_builds(), say)
            # the progress line's totals: the rounds every group gets (least); settling can only end sooner
            self.reporter = for_stream(self.progress, sum(self.wanted[g][0] for g in left),
                                       sum(self.wanted[g][0] * len(self.groups[g]) for g in left), self._most())
            for r in range(1, self._most() + 1):
                self._round(r)
        finally:
            if self.reporter is not None:
                self.reporter.close()
            if self._own_executor:
                self.executor.close()
            self.builds.close()
            if self.journal is None and self.run.path is not None:
                self.run.save()
        return self.run

    def _to_build(self, groups: list[int]) -> list[CellSpec]:
        """The cells of ``groups`` a measurement would build for: those ``measure.group`` does not turn away
        before any build."""
        return [self.cells[i] for g in groups for i in self.groups[g] if turned_away(self.cells[i]) is None]

    def _most(self) -> int:
        return max((most for _, most in self.wanted), default=1)

    def _group_cells(self, g: int) -> list[CellResult]:
        return [self.run.cells[s] for s in self.slots.get(g, [])]

    def _round(self, r: int) -> None:
        order = range(len(self.groups)) if r % 2 else reversed(range(len(self.groups)))
        todo = [g for g in order if g not in self.finished
                and needs_round(r, self.wanted[g], self._group_cells(g), self.allocation.settled)]
        # The executor hands groups back as they finish: in order here, in any order from a cluster. An even
        # round hands each group's cells over in reverse (``_file`` puts them back), so its workers start, and
        # its lockstep rounds begin, in the opposite order to the round before: the worker started second ran
        # about 0.3% faster in doctor's A/A sessions, an edge that must not go to one form in every round.
        items = [(g, _in_round_order([self.cells[i] for i in self.groups[g]], r)) for g in todo]
        # A later round of a group whose cells are all measured keeps only its blocks (``CellResult.add_round``),
        # so its workers may start side by side and skip their closing checks (``measure_group``'s blocks_only).
        repeats = {g for g in todo if r > 1 and all(c.ok for c in self._group_cells(g))}
        # the groups the allocation gives a sampling of their own (a shorter cap)
        configs = {g: c for g, specs in items if (c := group_config(self.config, specs, self.allocation)) != self.config}
        pending = self.executor.measure(items, self.config, self.builds, profile=self.profile if r == 1 else None,
                                        repeats=repeats, configs=configs)
        done = 0
        # Round 1 runs forward over every group: one finished earlier takes its place unmeasured, so the
        # cells stand in the order of a run that was never interrupted.
        for g in (order if r == 1 else todo):
            if g in self.finished:
                self._adopt(g, self.finished[g])
                continue
            unit = next(pending)
            done += 1
            if unit.index in configs:  # its own cap: on its record
                unit.record["max_s"] = configs[unit.index].max_s
            # the round's whole time where it ran (workers' start-up, sampling, closing checks, profiles), so a
            # run shows where its time went beside the sampling_s of its lockstep rounds
            unit.record["wall_s"] = round(unit.took_s, 3)
            self._file(unit, r)
            where = f"{done}/{len(todo)}" + (f", round {r}" if self._most() > 1 else "")
            self.reporter.group_done(self._group_cells(unit.index), where, unit.took_s, r)

    def _adopt(self, g: int, finished: Finished) -> None:
        """Put a group finished by an earlier session into the run as the next group."""
        group_id = len(self.run.groups)
        self.slots[g] = list(range(len(self.run.cells), len(self.run.cells) + len(finished.cells)))
        self.run.groups.append({"id": group_id, "cells": self.slots[g], "rounds": finished.rounds})
        for cell in finished.cells:
            cell.group = group_id if len(finished.cells) > 1 else None
            self.run.cells.append(cell)

    def _file(self, unit: GroupDone, r: int) -> None:
        """File a measured group into the run (round 1: new cells; later rounds: folded into them), place its
        cells on the roofline, and append it to the journal."""
        for cell, host in zip(unit.cells, unit.hosts):
            cell.host = host
        unit.cells = _in_round_order(unit.cells, r)  # back in the group's own order
        if r == 1:
            self._adopt(unit.index, Finished([unit.record], unit.cells))
        else:
            self._group_record(unit.index)["rounds"].append(unit.record)
            offset = max((b.get("session", 1) for c in self._group_cells(unit.index) for b in c.blocks), default=0)
            for slot, cell in zip(self.slots[unit.index], unit.cells):
                self.run.cells[slot].add_round(cell, r, offset)
        cells = self._group_cells(unit.index)
        for cell in cells:
            cell.recompute(self.config.noisy_ci, self.config.noisy_cv)
            self._place(cell)
        self.measured += len(unit.cells)
        self.profile_s += sum((c.metrics.get("profile") or {}).get("took_s") or 0.0 for c in unit.cells)
        build_s, builds_run = self.builds.build_seconds()
        self.run.meta["sweep"] = {"cells": len(self.run.cells), "groups": len(self.run.groups),
                                  "measurements": self.measured,
                                  "wall_s": round(time.perf_counter() - self.started, 1),
                                  "build_s": round(build_s, 1), "builds_run": builds_run,
                                  **({"build_wall_s": round(self.build_wall_s, 1)} if self.build_wall_s else {}),
                                  **({"profile_s": round(self.profile_s, 1)} if self.profile_s else {})}
        if self.journal is not None:
            self.journal.append_group(self.run.meta, unit.index, self._group_record(unit.index)["rounds"], cells)

    def _group_record(self, g: int) -> dict:
        return next(rec for rec in self.run.groups if rec["cells"] == self.slots[g])

    def _place(self, cell: CellResult) -> None:
        """The cell's metrics: deploy-graph fragmentation from the build's ONNX, and its roofline point
        (which moves with the median, so this runs again after every round)."""
        from benchbench.metrics import cell_metrics

        if not cell.ok:
            return
        graph = self.builds.records.get(build_group(cell.spec), {}).get("manifest", {}).get("graph")
        profile = cell.metrics.get("profile")
        calibration = self.run.meta.get("roofline", {}).get(f"{cell.spec.backend}/{cell.spec.threads}")
        cell.metrics = cell_metrics(cell.model, graph, cell.backend, cell.artifact, cell.median_ms, calibration)
        if profile:
            from .profile import rebase

            cell.metrics["profile"] = rebase(profile, cell.median_ms)


def run_sweep(cells: list[CellSpec], config: MeasureConfig, run: RunResult, **options) -> RunResult:
    """Measure ``cells`` into ``run`` group by group (:class:`Sweep`, whose keyword options this takes)."""
    return Sweep(cells, config, run, **options).run_all()


def resume(folder: Path, prior: RunResult, source: str, cells: list[CellSpec], lockstep: str,
           rounds: int | Allocation, argv: list[str]) -> tuple[RunResult, Journal, dict[int, Finished]]:
    """``run --resume``: the run to fill (its meta with this resume recorded), the journal to append to, and
    the groups the folder finished (by :func:`needs_round`), by group index. ``prior`` is the folder's run as
    read from ``source`` (``benchbench.results.journal.load_results``). ``ResumeError`` for a folder holding
    cells that ``cells`` does not give."""
    known = set(cells)
    if strays := [c for c in prior.cells if c.spec not in known]:
        raise ResumeError(f"--resume: {folder} holds cells its command line does not give here "
                          f"({strays[0].spec.label()}, threads {strays[0].spec.threads}); start a new run")
    groups = comparison_groups(cells, lockstep)
    allocation = _allocation(rounds)
    wanted = _wanted_rounds(cells, groups, allocation)
    earlier = {}
    for g in prior.groups:
        members = [prior.cells[s] for s in g["cells"]]
        earlier[tuple(c.spec for c in members)] = Finished(g.get("rounds") or [], members)
    finished = {}
    for i, group in enumerate(groups):
        found = earlier.get(tuple(cells[j] for j in group))
        if found is not None and not needs_round(len(found.rounds) + 1, wanted[i], found.cells, allocation.settled):
            finished[i] = found
    meta = dict(prior.meta)
    meta["resumed"] = [*meta.get("resumed", []), {
        "time": _dt.datetime.now().astimezone().isoformat(timespec="seconds"), "argv": argv,
        "groups_finished": len(finished), "groups_left": len(groups) - len(finished)}]
    run = RunResult(meta=meta, path=Path(folder) / "results.json")
    if source == JOURNAL:
        journal = Journal.reopen(Path(folder) / JOURNAL, notice=lambda msg: None)  # load_results gave the notice
    else:  # a run from before journals: its finished groups start the journal
        journal = Journal.create(Path(folder) / JOURNAL, meta)
        for i, found in finished.items():
            journal.append_group(meta, i, found.rounds, found.cells)
    return run, journal, finished
