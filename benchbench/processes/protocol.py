"""The parent–worker protocol: typed, versioned records, one JSON line each, over a dedicated pipe.

The harness (``_manager``) talks to a worker process (``_worker``) over a socket pair, never stdout:
runtimes log to stdout. Every line carries the protocol version and the record's type; a worker and a
parent of different versions, or an unknown record type, is a :class:`ProtocolError`, not a guess.

A measuring worker's conversation::

    parent                              worker
    Prepare(spec, config, artifact, …) ─►
                                       ◄─ Ready(init_ms, first_ms, warm-up, estimate_ns)  or Failed
    Block(count)                       ─►
                                       ◄─ BlockDone(samples_ns, interference, idle_cpu_ns)
    …                                                           (as many blocks as the scheduler wants)
    Finish()                           ─►
                                       ◄─ Finished(memory, parity, backend)

One-shot workers (build, profile) get a ``Job`` and answer ``JobDone`` or ``Failed``.

A fork server (one per backend and thread count, its runtime already imported) takes ``Spawn`` with
the new worker's socket attached (SCM_RIGHTS) and answers ``Spawned(pid)``; ``Reap(pid)`` answers
``Reaped(code)``, the worker's exit status once it has ended (None while it runs).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

__all__ = [
    "PROTOCOL_VERSION",
    "ProtocolError",
    "Prepare",
    "Ready",
    "Block",
    "BlockDone",
    "Finish",
    "Finished",
    "Job",
    "JobDone",
    "Failed",
    "Spawn",
    "Spawned",
    "Reap",
    "Reaped",
    "encode",
    "decode",
]

PROTOCOL_VERSION = 1


class ProtocolError(RuntimeError):
    """A record that is not of this protocol version, not a known type, or not well formed."""


@dataclass(frozen=True)
class Prepare:
    """Load the runtime, prepare the artifact, time init and the first inference, warm up."""

    spec: dict
    config: dict
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


@dataclass(frozen=True)
class Finish:
    """Check parity, read memory and metadata, tear down."""


@dataclass(frozen=True)
class Finished:
    memory: dict
    parity: dict
    backend: dict


@dataclass(frozen=True)
class Job:
    mode: str  # build | profile
    payload: dict


@dataclass(frozen=True)
class JobDone:
    result: dict


@dataclass(frozen=True)
class Spawn:
    log_path: str  # the new worker's stdout and stderr


@dataclass(frozen=True)
class Spawned:
    pid: int


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


_TYPES = {cls.__name__: cls for cls in (Prepare, Ready, Block, BlockDone, Finish, Finished, Job, JobDone, Failed,
                                        Spawn, Spawned, Reap, Reaped)}


def encode(record) -> bytes:
    """One line: ``{"v": PROTOCOL_VERSION, "type": <record class>, ...fields}``."""
    name = type(record).__name__
    if name not in _TYPES:
        raise ProtocolError(f"not a protocol record: {name}")
    return (json.dumps({"v": PROTOCOL_VERSION, "type": name, **asdict(record)}) + "\n").encode()


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
        return cls(**body)
    except TypeError as exc:
        raise ProtocolError(f"{cls.__name__}: {exc}") from None
