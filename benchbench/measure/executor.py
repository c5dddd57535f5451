"""The executor seam: the sweep hands comparison groups to an executor, which measures them and hands each
back as it finishes.

``LocalExecutor`` measures on this machine, one group after the other, in the order given (what benchbench
has always done, and the default). ``benchbench.measure.cluster.DaskExecutor`` sends the groups to the measuring
workers of a Dask cluster and hands them back in the order they finish. Both measure a group with
``benchbench.measure.group.measure_group``, which sits below them. The sweep does not care which executor it
has: it files every finished group in the run and its journal as it arrives.

This module imports nothing of Dask: ``import benchbench`` and local runs never load it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from benchbench.build.builds import Builds
from benchbench.core.spec import CellSpec, MeasureConfig
from benchbench.results.record import CellResult

from .group import measure_group

__all__ = ["Executor", "ExecutorError", "GroupDone", "LocalExecutor"]


class ExecutorError(Exception):
    """An executor that cannot go on: one line for the user and the exit code (2: a mistake in what was
    asked, such as an unreachable scheduler or an unknown device; 3: the environment, such as a scheduler
    that went away mid-sweep). Every group finished before it was raised has been handed back."""

    def __init__(self, message: str, exit_code: int = 3):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class GroupDone:
    """One measured comparison group: its index in the sweep's groups, its cells (in the order of the
    specs handed in), the lockstep scheduler's record, and the wall time it took where it ran."""

    index: int
    cells: list[CellResult]
    record: dict
    took_s: float
    hosts: list[dict] = field(default_factory=list)  # per cell: where it was measured (remote executors)


class Executor:
    """Measures comparison groups. ``measure`` takes (group index, specs) pairs and yields a ``GroupDone``
    for each, as each finishes; ``builds`` (the sweep's one build step) holds the record of every build made,
    for the sweep's metrics; ``profile`` (``measure_group``'s) asks for per-op profiles, which only an executor
    measuring on this machine takes. ``repeats``: the indices of groups measured again, whose cells keep only
    this measurement's blocks (``measure_group``'s ``blocks_only``; an executor may measure them in full).
    ``configs``: a group's own sampling, where it differs from ``config`` (``sweep.group_config``).
    ``close`` releases what it holds."""

    remote = False  # True: cells are measured on other hosts (each cell records its host)

    def measure(self, items: Sequence[tuple[int, list[CellSpec]]], config: MeasureConfig,
                builds: Builds, profile: Callable[[CellSpec], int] | None = None,
                repeats: Collection[int] = (), configs: Mapping[int, MeasureConfig] | None = None
                ) -> Iterator[GroupDone]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LocalExecutor(Executor):
    """This machine, one group at a time, in order; lazily, so a group is measured only when the sweep
    asks for the next one. ``fork_servers``: measuring workers are forked from one pre-imported server per
    backend and threads (``benchbench.processes.manager.ForkServer``), all stopped by ``close``."""

    def __init__(self, fork_servers: bool = True):
        self.servers: dict | None = {} if fork_servers else None

    def measure(self, items, config, builds, profile=None, repeats=(), configs=None):
        for index, specs in items:
            t0 = time.perf_counter()
            cells, record = measure_group(specs, (configs or {}).get(index, config), builds, self.servers, profile,
                                          blocks_only=index in repeats)
            yield GroupDone(index, cells, record, time.perf_counter() - t0)

    def close(self) -> None:
        for server in (self.servers or {}).values():
            server.close()
        if self.servers:
            self.servers.clear()
