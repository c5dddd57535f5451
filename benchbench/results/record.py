"""The versioned result document: one JSON file per run, one record per cell.

Raw latency samples are the source of truth; ``stats`` are derived from them and recomputed on load,
so a file edited by hand or written by an older version cannot disagree with its samples. CSV,
Markdown, compare and claim are all views of these files. The schema is documented in
``docs/results.md``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchbench.core import strictjson
from .schema import validate_document
from benchbench.core.spec import CellSpec
from benchbench.core.stats import summarize

__all__ = ["SCHEMA", "SCHEMA_VERSION", "STATUSES", "CellResult", "RunResult", "load_run", "SchemaError",
           "parse_json", "run_from_document"]

SCHEMA = "benchbench/result"
SCHEMA_VERSION = 2  # 2: timed blocks per cell, lockstep groups (1 had pooled samples only)
# ok: measured. unsupported: a converter or runtime rejected the model. unavailable: the backend is
# not installed or has no device here. crashed/timeout: the worker died or was killed. error: any
# other failure inside the worker (a bug, reported with its message), or, with ``fault: "user"``, a model
# that fails in PyTorch eager itself. env-error: out of memory, a full disk, an unwritable cache.
# lost: on a cluster, the worker measuring it died, and so did the one it was retried on (or none was left).
STATUSES = ("ok", "unsupported", "unavailable", "crashed", "timeout", "error", "env-error", "lost")


class SchemaError(ValueError):
    """A file that cannot be read as a benchbench result: missing, unreadable, not JSON, of another schema or
    version, or of the wrong shape. ``str()`` is one line that names the file and the problem."""


@dataclass
class CellResult:
    spec: CellSpec
    status: str
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

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def median_ms(self) -> float | None:
        return self.stats.get("median_ms") if self.stats else None

    def recompute(self, noisy_ci: float = 0.05, noisy_cv: float = 0.10) -> None:
        """Statistics from the raw samples: over blocks when the cell has them (``lockstep.cell_stats``),
        else over the pooled samples (schema-1 cells: ``stats.interval`` says so)."""
        from benchbench.measure.scheduler import cell_stats

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

    def add_round(self, new: CellResult, session: int) -> None:
        """Fold a later round (``--rounds``: the group measured again in fresh workers) into this cell:
        its blocks and samples are appended, tagged with ``session``; nothing is discarded."""
        if not new.ok:
            self.rounds.append({"round": session, "status": new.status, "reason": new.reason})
            return
        if not self.ok:  # round 1 failed: the first good round becomes the cell
            group = self.group
            self.__dict__.update(new.__dict__)
            self.group = group
            for b in self.blocks:
                b["session"] = session
            return
        self.blocks += [{**b, "session": session} for b in new.blocks]
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
    # Their ratios are not stored: they are recomputed from the cells' blocks (benchbench.measure.scheduler.ratio).
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
            with os.fdopen(fd, "w") as fh:
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


def _from_v1(doc: dict) -> dict:
    """Schema 1 had no blocks and no groups: its cells keep their pooled samples (and old rounds)."""
    return {**doc, "schema_version": 2, "groups": []}


def _migrate(doc: dict) -> dict:
    """Bring an older document up to SCHEMA_VERSION. Add a step here with every version bump."""
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"schema_version is {version!r:.40}, not a version number")
    migrations: dict[int, callable] = {1: _from_v1}
    while version in migrations:
        doc = migrations[version](doc)
        version = doc["schema_version"]
    if version != SCHEMA_VERSION:
        raise ValueError(f"unsupported result schema version {version} (this benchbench reads {SCHEMA_VERSION})")
    return doc


class _TooLarge(ValueError):
    pass


def _parse_int(text: str) -> int:
    # Past int64 no runtime counts anything, and numpy would fall back to object arrays (or Python refuse
    # the conversion past 4300 digits): a number that large is corruption.
    if len(text) > 20 or abs(value := int(text)) > 2**63 - 1:
        raise _TooLarge(f"number too large: {text[:30]}{'...' if len(text) > 30 else ''}")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):  # a literal such as 1e400: beyond any float
        raise _TooLarge(f"number too large: {text[:30]}")
    return value


def parse_json(text: str):
    """``json.loads`` that refuses numbers beyond int64 or a double (``ValueError``)."""
    # NaN and Infinity tokens are accepted: files written before results became strict JSON may
    # hold them outside the samples; run_from_document turns them into null.
    return json.loads(text, parse_int=_parse_int, parse_float=_parse_float)


def _read_json(path: Path):
    """The parsed document, or a one-line ``SchemaError`` saying why the file cannot be parsed."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SchemaError(f"no such result file: {path}") from None
    except IsADirectoryError:
        raise SchemaError(f"{path} is a directory, not a result file") from None
    except PermissionError:
        raise SchemaError(f"cannot read {path}: permission denied") from None
    except OSError as exc:
        raise SchemaError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SchemaError(f"{path} is not JSON (binary data, not UTF-8 text)") from None
    try:
        return parse_json(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path} is not JSON ({exc.msg}: line {exc.lineno} column {exc.colno})") from None
    except _TooLarge as exc:
        raise SchemaError(f"{path}: {exc}") from None
    except RecursionError:
        raise SchemaError(f"{path} is not a benchbench result file (nested too deeply)") from None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def load_run(path: str | Path) -> RunResult:
    """Read a result file, migrating old schema versions and recomputing statistics from samples.

    Anything that is not a readable result of a known schema version and the right shape (see
    ``benchbench.results.schema``) raises :class:`SchemaError`, whose one-line message names the file.
    """
    path = Path(path)
    return run_from_document(_read_json(path), path)


def run_from_document(doc, path: Path) -> RunResult:
    """A parsed result document (``path`` names it in errors) as a RunResult: migrated, validated, with
    statistics recomputed from the samples; ``SchemaError`` when it is not one."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise SchemaError(f"{path} is not a benchbench result file")
    try:
        doc = _migrate(doc)
        validate_document(doc)
    except ValueError as exc:
        raise SchemaError(_one_line(f"{path}: {exc}")) from None
    # Past validation, the samples are finite; NaN or Infinity elsewhere (files from before strict JSON)
    # become null here, as they would on the next save.
    doc = strictjson.finite(doc)
    settings = doc["meta"].get("settings", {})
    noisy = {k: settings[k] for k in ("noisy_ci", "noisy_cv") if settings.get(k) is not None}
    cells = [CellResult.from_dict(c) for c in doc["cells"]]
    for cell in cells:
        cell.recompute(**noisy)
    return RunResult(meta=doc["meta"], cells=cells, path=path, groups=doc.get("groups", []))
