"""The records of a run: ``CellResult`` per cell and ``RunResult`` per run, and how they are written.

Raw latency samples are the source of truth; ``stats`` are derived from them and recomputed on load
(``benchbench.results.load``), so a file edited by hand or written by an older version cannot disagree
with its samples. CSV, Markdown, compare and claim are all views of these records. The document's shape
is ``benchbench.results.schema``, documented in ``docs/results.md``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchbench.core import strictjson
from benchbench.core.spec import CellSpec
from benchbench.core.stats import summarize
from benchbench.core.status import Status

__all__ = ["SCHEMA", "SCHEMA_VERSION", "CellResult", "RunResult"]

SCHEMA = "benchbench/result"
# 2: timed blocks per cell, lockstep groups (1 had pooled samples only); 3: ``model.kind`` on every cell
SCHEMA_VERSION = 3


@dataclass
class CellResult:
    """One cell: its spec and status, its raw samples and blocks, and what was recorded about it."""

    spec: CellSpec
    status: Status
    reason: str | None = None
    samples_ns: list[int] = field(default_factory=list)
    stats: dict = field(default_factory=dict)  # derived from samples_ns
    timing: dict = field(default_factory=dict)  # init_ms, first_ms, warm-up and stop details
    model: dict = field(default_factory=dict)  # family, params, FLOPs, MACs
    memory: dict = field(default_factory=dict)  # MiB over the worker's baseline
    parity: dict = field(default_factory=dict)  # vs PyTorch eager float32
    backend: dict = field(default_factory=dict)  # runner metadata: versions, threads, precision, ops
    artifact: dict = field(default_factory=dict)  # format, path, bytes, exporter, export time
    metrics: dict = field(default_factory=dict)  # fragmentation, element-ops, roofline
    # Timed blocks, in order: n samples (a slice of samples_ns), the lockstep session and round, and the
    # block's measured interference (benchbench.measure.interference). Empty for schema-1 files.
    blocks: list[dict] = field(default_factory=list)
    group: int | None = None  # index into RunResult.groups when measured in lockstep with other cells
    # Schema-1 files only: per-round records of the old keep-the-fastest-round rule.
    rounds: list[dict] = field(default_factory=list)
    fault: str | None = None  # "user": an error cell whose model fails in PyTorch eager (run exits 2)
    # Where it was measured, on a cluster (benchbench.measure.cluster): host name, worker, device, start and end
    # time, machine and package versions. Empty for a local run: the run's meta.environment says it once.
    host: dict = field(default_factory=dict)
    # The between-process sd of a log-ratio on the machine that measured it (``benchbench doctor``), which its
    # paired intervals add; None: not measured there (``benchbench.results.estimates.PROCESS_SD`` is used).
    process_sd: float | None = None

    def __post_init__(self):
        self.status = Status(self.status)

    @property
    def ok(self) -> bool:
        return self.status == Status.OK

    @property
    def outputs_failed(self) -> bool:
        """The outputs were checked and failed: parity, or an int8 form's fidelity."""
        return bool(self.parity.get("checked") and not self.parity.get("passed"))

    @property
    def median_ms(self) -> float | None:
        return self.stats.get("median_ms") if self.stats else None

    def recompute(self, noisy_ci: float = 0.05, noisy_cv: float = 0.10) -> None:
        """Statistics from the raw samples: over blocks when the cell has them (``lockstep.cell_stats``),
        else over the pooled samples (schema-1 cells: ``stats.interval`` says so)."""
        from .estimates import cell_stats

        if not self.samples_ns:
            self.stats = {}
        elif self.blocks:
            self.stats = cell_stats(self.samples_ns, self.blocks, noisy_ci)
        else:
            self.stats = {**summarize(self.samples_ns, noisy_ci, noisy_cv), "interval": "over samples (one process)"}
            medians = [float(np.median(r["samples_ns"])) / 1e6 for r in self.rounds
                       if r.get("status") == "ok" and r.get("samples_ns")]
            if len(medians) > 1:
                self.stats["round_medians_ms"] = medians
                self.stats["round_spread"] = max(medians) / min(medians) - 1

    def add_round(self, new: CellResult, r: int, offset: int) -> None:
        """Fold round ``r`` (``--rounds``: the group measured again in fresh workers) into this cell: its
        blocks and samples are appended, their sessions numbered on from ``offset`` (the sessions the
        group's cells have so far: a round may hold several, ``MeasureConfig.sessions``); nothing is
        discarded."""
        if not new.ok:
            self.rounds.append({"round": r, "status": new.status, "reason": new.reason})
            return
        blocks = [{**b, "session": offset + b.get("session", 1)} for b in new.blocks]
        if not self.ok:  # round 1 failed: the first good round becomes the cell
            group = self.group
            self.__dict__.update(new.__dict__)
            self.group, self.blocks = group, blocks
            return
        self.blocks += blocks
        self.samples_ns = self.samples_ns + new.samples_ns

    def to_dict(self) -> dict:
        return {
            "spec": self.spec.to_dict(),
            "status": self.status,
            "reason": self.reason,
            "stats": self.stats,
            "timing": self.timing,
            "model": self.model,
            "memory": self.memory,
            "parity": self.parity,
            "backend": self.backend,
            "artifact": self.artifact,
            "metrics": self.metrics,
            "samples_ns": self.samples_ns,
            "blocks": self.blocks,
            "group": self.group,
            **({"rounds": self.rounds} if self.rounds else {}),
            **({"fault": self.fault} if self.fault else {}),
            **({"host": self.host} if self.host else {}),
            **({"process_sd": self.process_sd} if self.process_sd is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: dict) -> CellResult:
        d = dict(d)
        spec = CellSpec.from_dict(d.pop("spec"))
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d and k != "spec"}
        return cls(spec=spec, **known)


@dataclass
class RunResult:
    """A run: shared metadata (machine, versions, settings) once, then its cells."""

    meta: dict
    cells: list[CellResult] = field(default_factory=list)
    path: Path | None = None
    # Lockstep groups: {"id", "cells": [indices into cells], "rounds": [scheduler record per round]}.
    # Their ratios are not stored: they are recomputed from the cells' blocks (benchbench.results.estimates.ratio).
    groups: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "meta": self.meta,
            "groups": self.groups,
            "cells": [c.to_dict() for c in self.cells],
        }

    def save(self, path: str | Path | None = None) -> Path:
        """Write atomically (temp file + rename): a crash mid-write never loses finished cells.

        The file is strict JSON: non-finite floats are written as null (see ``benchbench.core.strictjson``).
        """
        path = Path(path or self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it owner-only; a report is as readable as any file
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                strictjson.dump(self.to_dict(), fh, indent=1)
            os.replace(tmp, path)
        finally:  # a full disk or an interrupt mid-write leaves no partial .tmp-* file behind
            if os.path.exists(tmp):
                os.unlink(tmp)
        self.path = path
        return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
