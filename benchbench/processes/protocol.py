"""The parent–worker protocol: typed, versioned records, one JSON line each, over a dedicated pipe.

The harness (``_manager``) talks to a worker process (``_worker``) over a socket pair, never stdout:
runtimes log to stdout. Every line carries the protocol version and the record's type; a worker and a
parent of different versions, or an unknown record type, is a :class:`ProtocolError`, not a guess.

Records are dataclasses; a field typed as one of the run's own records (``CellSpec``, ``MeasureConfig``,
``ArtifactSource``) travels as that record's ``to_dict()`` and arrives as the record again, so both sides
hold the same typed objects, never loose dicts.

A measuring worker's conversation::

    parent                              worker
    Prepare(spec, config, artifact, …) ─►
                                       ◄─ Ready(init_ms, first_ms, warm-up, estimate_ns)  or Failed
    Block(count)                       ─►
                                       ◄─ BlockDone(samples_ns, interference, idle_cpu_ns, settle_ns, lead_ns)
    …                                                           (as many blocks as the scheduler wants)
    Finish()                           ─►
                                       ◄─ Finished(memory, parity, backend)

One-shot workers get one job record and answer ``JobDone`` or ``Failed``: ``BuildJob`` (export a zoo model's
artifacts into its cache folder), ``FileBuildJob`` (a user's model file: inputs, counts, reference outputs),
``ProfileJob`` (a cell's per-operator profile) and ``BandwidthJob`` (the memory bandwidth, for the roofline).

A fork server (one per backend and thread count, its runtime already imported) takes ``Spawn`` with
the new worker's socket attached (SCM_RIGHTS) and answers ``Spawned(pid)``; ``Reap(pid)`` answers
``Reaped(code)``, the worker's exit status once it has ended (None while it runs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields

from benchbench.core.spec import ArtifactSource, CellSpec, MeasureConfig

__all__ = [
    "PROTOCOL_VERSION",
    "ProtocolError",
    "Prepare",
    "Ready",
    "Block",
    "BlockDone",
    "Finish",
    "Finished",
    "BuildJob",
    "FileBuildJob",
    "ProfileJob",
    "BandwidthJob",
    "JOBS",
    "JobDone",
    "Failed",
    "Spawn",
    "Spawned",
    "Reap",
    "Reaped",
    "encode",
    "decode",
]

# 2: typed records (CellSpec, MeasureConfig) and one record type per job; 3: profiles in Finish; 4: Finish.report
PROTOCOL_VERSION = 4


class ProtocolError(RuntimeError):
    """A record that is not of this protocol version, not a known type, or not well formed."""


@dataclass(frozen=True)
class Prepare:
    """Load the runtime, prepare the artifact, time init and the first inference, warm up."""

    spec: CellSpec
    config: MeasureConfig
    artifact: object
    input_path: str
    reference_path: str | None = None


@dataclass(frozen=True)
class Ready:
    init_ms: float
    first_ms: float
    warmup_count: int
    warmup_s: float
    estimate_ns: int  # median warm-up inference: sizes the blocks


@dataclass(frozen=True)
class Block:
    count: int  # inferences to time, one by one
    settle: bool = True  # wait for the thread pools to go quiet before answering: another worker is next


@dataclass(frozen=True)
class BlockDone:
    samples_ns: list
    interference: dict  # benchbench.measure.interference.block_interference
    idle_cpu_ns: int  # CPU this worker used between its previous block (settled) and this one
    settle_ns: int = 0  # how long after the block its thread pools took to go quiet
    lead_ns: int = 0  # the block's lead-in inference, timed but not a sample (benchbench.measure.worker._blocks)


@dataclass(frozen=True)
class Finish:
    """Check parity, read memory and metadata; then, if ``profile_runs``, take the backend's per-op profile
    over that many inferences (after every timed block of the group, and after memory is read, so no
    profiler touches a sample or a peak); tear down. ``report=False`` (a session whose worker's closing
    record nobody reads: not a group's last) skips parity, memory and metadata, and answers empty ones."""

    profile_runs: int = 0
    report: bool = True


@dataclass(frozen=True)
class Finished:
    memory: dict
    parity: dict
    backend: dict
    profile: dict | None = None  # the runner's raw per-op view (benchbench.measure.profile), or a failure


@dataclass(frozen=True)
class BuildJob:
    """Export a zoo model (``spec``'s model, variant and seed at ``input_shape``) in ``formats`` into the cache
    folder ``dir`` (``benchbench.build.export.build``); answered with the build's manifest."""

    spec: CellSpec
    input_shape: list
    formats: list
    dir: str


@dataclass(frozen=True)
class FileBuildJob:
    """Count a user's model file (``spec.source``) and compute its inputs and reference outputs into ``dir``
    (``benchbench.build.files.build``); answered with the build's manifest."""

    spec: CellSpec
    dir: str


@dataclass(frozen=True)
class ProfileJob:
    """Prepare ``spec``'s backend on ``artifact``, warm up, and answer its per-operator profile over ``runs``."""

    spec: CellSpec
    artifact: object
    input_path: str
    runs: int
    warmup: int


@dataclass(frozen=True)
class BandwidthJob:
    """Time a large copy on ``device`` with ``threads`` threads; answered with the bandwidth record."""

    device: str
    threads: int


JOBS = (BuildJob, FileBuildJob, ProfileJob, BandwidthJob)


@dataclass(frozen=True)
class JobDone:
    result: dict


@dataclass(frozen=True)
class Spawn:
    log_path: str  # the new worker's stdout and stderr


@dataclass(frozen=True)
class Spawned:
    pid: int
    threads: int = 1  # Python threads alive in the fork server when it forked this worker
    native_threads: int = 0  # the server process's threads then (/proc/self/task), the runtimes' pools included
    jax: bool = False  # whether JAX (which starts threads of its own) was loaded in the server


@dataclass(frozen=True)
class Reap:
    pid: int
    timeout_s: float = 0.0


@dataclass(frozen=True)
class Reaped:
    code: int | None  # as subprocess reports it: negative for a signal; None if still running


@dataclass(frozen=True)
class Failed:
    status: str  # unsupported | unavailable | error
    reason: str
    traceback: str = ""
    extra: dict = field(default_factory=dict)


_TYPES = {cls.__name__: cls for cls in (Prepare, Ready, Block, BlockDone, Finish, Finished, *JOBS, JobDone, Failed,
                                        Spawn, Spawned, Reap, Reaped)}
# The run's records a field may hold: sent as their to_dict(), read back with from_dict().
_RECORDS = {cls.__name__: cls for cls in (CellSpec, MeasureConfig, ArtifactSource)}


def _record_type(f) -> type | None:
    """The run's record class a field is annotated with (``CellSpec`` or ``CellSpec | None``), or None."""
    name = str(f.type).split("|")[0].strip()
    return _RECORDS.get(name)


def encode(record) -> bytes:
    """One line: ``{"v": PROTOCOL_VERSION, "type": <record class>, ...fields}``."""
    name = type(record).__name__
    if name not in _TYPES:
        raise ProtocolError(f"not a protocol record: {name}")
    body = {}
    for f in fields(record):
        value = getattr(record, f.name)
        body[f.name] = value.to_dict() if _record_type(f) is not None and value is not None else value
    return (json.dumps({"v": PROTOCOL_VERSION, "type": name, **body}) + "\n").encode()


def decode(line: bytes | str):
    """The record a line holds; raises ProtocolError on a version mismatch, unknown type or bad fields."""
    try:
        doc = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not a protocol line: {exc}") from None
    if not isinstance(doc, dict):
        raise ProtocolError("not a protocol record")
    if doc.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {doc.get('v')!r}, expected {PROTOCOL_VERSION}: "
                            "the worker and the harness come from different benchbench versions")
    cls = _TYPES.get(doc.get("type"))
    if cls is None:
        raise ProtocolError(f"unknown record type {doc.get('type')!r}")
    names = {f.name for f in fields(cls)}
    body = {k: v for k, v in doc.items() if k not in ("v", "type")}
    if set(body) - names:
        raise ProtocolError(f"{cls.__name__} has no field(s) {', '.join(sorted(set(body) - names))}")
    try:
        for f in fields(cls):
            kind = _record_type(f)
            if kind is not None and body.get(f.name) is not None:
                body[f.name] = kind.from_dict(body[f.name])
        return cls(**body)
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise ProtocolError(f"{cls.__name__}: {exc}") from None
