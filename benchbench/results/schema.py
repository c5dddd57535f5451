"""The shape of a ``results.json`` document (schema version 3), checked on load with pydantic.

These models validate; they are not the in-memory objects (those are ``benchbench.results.record``'s
dataclasses, built from the same document once it has passed). The models of the records that have a
dataclass (a cell's ``spec`` and ``source``, the run's ``settings``) are derived from it: their keys and
defaults come from the dataclass's fields, and a field without a JSON type here fails at import, so the two
cannot drift apart. The statuses are ``benchbench.core.status.Status``. They check what the readers rely on:
compare and claim index ``spec`` fields and do arithmetic on samples and model metadata, and the
reports format ``meta``. Keys they do not name are allowed, so a file with more metadata than this
version knows still loads; a change that breaks old readers bumps ``SCHEMA_VERSION`` instead.

Samples are the raw data every statistic is recomputed from, so they are held to what a timed
inference can be: a finite number of nanoseconds above zero and below ``MAX_SAMPLE_NS``.
"""

from __future__ import annotations

import re
from dataclasses import MISSING, fields
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from benchbench.core.spec import ArtifactSource, CellSpec, MeasureConfig
from benchbench.core.status import Status as _Status

__all__ = ["MAX_SAMPLE_NS", "describe", "validate_document"]

# 10^15 ns is 11.6 days: no single inference survives a cell timeout that long, so a larger "sample"
# is corruption, and it keeps every derived statistic far from float overflow.
MAX_SAMPLE_NS = 10**15
_INT64 = 2**63 - 1

Sample = Annotated[float, Field(gt=0, le=MAX_SAMPLE_NS, allow_inf_nan=False)]  # strict: int or float, no bool
Count = Annotated[int, Field(ge=0, le=_INT64)]
Positive = Annotated[int, Field(ge=1, le=_INT64)]
Name = Annotated[str, Field(min_length=1)]
Status = Literal[tuple(s.value for s in _Status)]


class _Open(BaseModel):
    """Strict types (no "5" for 5, no true for 1); unknown keys allowed."""

    model_config = ConfigDict(strict=True, extra="allow", protected_namespaces=())


def _derived(name: str, cls, types: dict[str, Any], base: type[BaseModel], doc: str) -> type[BaseModel]:
    """A pydantic model of dataclass ``cls``'s JSON form: one key per field, with its default; ``types``
    gives each field's JSON type and must name exactly the dataclass's fields."""
    names = [f.name for f in fields(cls)]
    if set(types) != set(names):
        raise TypeError(f"the schema of {cls.__name__} is out of step with its fields: "
                        f"{sorted(set(names) ^ set(types))}")
    spec = {}
    for f in fields(cls):
        default = ... if f.default is MISSING else f.default
        if isinstance(default, tuple):  # a tuple field's JSON form is an object or a list: its empty default
            default = {} if not default else list(default)
        spec[f.name] = (types[f.name], default)
    return create_model(name, __base__=base, __doc__=doc, **spec)


class _Closed(BaseModel):
    """Strict types; no key beyond the ones named."""

    model_config = ConfigDict(strict=True, extra="forbid", protected_namespaces=())


Source = _derived("Source", ArtifactSource, {
    "path": Name, "format": Name, "sha256": Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")], "bytes": Count,
    "input_shapes": dict[str, list[Count]], "reference": str | None, "input_data": str | None,
    "input_data_sha256": str | None, "pair": str | None, "calibration_data": str | None,
    "calibration_data_sha256": str | None,
}, _Open, "A user's own model file (``spec.source``): its identity is ``sha256``.")

Spec = _derived("Spec", CellSpec, {
    "model": Name, "variant": Literal["train", "deploy", "int8", "artifact", "before", "after"], "backend": Name,
    "batch": Positive, "input_size": Annotated[list[Positive], Field(min_length=2, max_length=2)] | None,
    "threads": Positive, "seed": Count, "options": dict[str, str], "source": Source | None,
    "device": Name | None,  # the cluster target (run --device); absent: this machine, or any measuring worker
    "block": Count | None,  # a lab run's designed block (one lockstep group with its own anchor); absent elsewhere
}, _Closed, "A cell's identity. Closed: ``CellSpec`` takes exactly these keys.")


class ModelMeta(_Open):
    name: str | None = None
    family: str | None = None
    kind: Literal["zoo", "guideline", "lab", "kernel", "user", "file"] | None = None
    paper: str | None = None
    params: Annotated[float, Field(ge=0)] | None = None
    flops: Annotated[float, Field(ge=0)] | None = None
    macs: Annotated[float, Field(ge=0)] | None = None
    input_shape: list[Count] | None = None


class Metrics(_Open):
    """The numbers claim correlates and plots (``docs/metrics.md``); numbers or null."""

    element_ops: float | None = None
    graph_ops: float | None = None
    executed_ops: float | None = None
    dag_width: float | None = None
    joins: float | None = None
    mac_bytes: float | None = None
    arithmetic_intensity: float | None = None
    artifact_bytes: float | None = None
    achieved_gflops: float | None = None
    peak_share: float | None = None
    attainable_gflops: float | None = None
    bound: str | None = None


class Round(_Open):
    round: Count
    status: Status
    reason: str | None = None
    samples_ns: list[Sample] = []


class BlockRecord(_Open):
    """A timed block: ``n`` consecutive samples of ``samples_ns``, its place in the lockstep order, and its
    measured interference (``benchbench.measure.interference``)."""

    n: Positive
    round: Count
    session: Positive = 1
    wait_share: Annotated[float, Field(ge=0, le=1)] | None = None
    steal_share: Annotated[float, Field(ge=0)] | None = None
    minor_faults: Count | None = None


class Host(_Open):
    """Where a cell was measured on a cluster (``benchbench.measure.cluster``): the worker's host and address, its
    device resource, the group's start and end (Unix seconds, that host's clock), its machine and packages."""

    name: Name
    worker: Name
    device: Name | None = None
    started_at: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    ended_at: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    machine: dict[str, Any] = {}
    packages: dict[str, str | None] = {}

    @model_validator(mode="after")
    def _ends_after_start(self):
        if self.ended_at < self.started_at:
            raise ValueError(f"ended_at {self.ended_at} is before started_at {self.started_at}")
        return self


class Cell(_Open):
    spec: Spec
    status: Status
    reason: str | None = None
    samples_ns: list[Sample] = []
    stats: dict[str, Any] = {}  # recomputed from samples_ns on load: whatever is stored is replaced
    timing: dict[str, Any] = {}
    model: ModelMeta = ModelMeta()
    memory: dict[str, Any] = {}
    parity: dict[str, Any] = {}
    backend: dict[str, Any] = {}
    artifact: dict[str, Any] = {}
    metrics: Metrics = Metrics()
    rounds: list[Round] = []
    blocks: list[BlockRecord] = []
    group: Count | None = None
    fault: Literal["user"] | None = None
    host: Host | None = None
    process_sd: float | None = Field(None, ge=0, le=1)  # the between-process term its paired intervals add

    @model_validator(mode="after")
    def _ok_has_samples(self):
        if self.status == "ok" and not self.samples_ns:
            raise ValueError("an ok cell has no samples_ns")
        if self.blocks and sum(b.n for b in self.blocks) != len(self.samples_ns):
            raise ValueError(f"its blocks hold {sum(b.n for b in self.blocks)} samples, samples_ns has "
                             f"{len(self.samples_ns)}")
        return self


# ``MeasureConfig`` as recorded: every field a number (the report formats them), or null.
Settings = create_model("Settings", __base__=_Open, __doc__="``MeasureConfig`` as recorded.",
                        **{f.name: (float | None, None) for f in fields(MeasureConfig)})


class Cpu(_Open):
    model: str | None = None
    physical_cores: int | None = None
    logical_cores: int | None = None


class Environment(_Open):
    cpu: Cpu = Cpu()
    packages: dict[str, str | None] = {}


class Sweep(_Open):
    cells: Count
    wall_s: float
    build_s: float
    builds_run: Count


class Meta(_Open):
    argv: list[str] = []
    environment: Environment = Environment()
    settings: Settings = Settings()
    sweep: Sweep | None = None


class Group(_Open):
    id: Count
    cells: list[Count]
    rounds: list[dict[str, Any]] = []


class Document(_Open):
    meta: Meta
    cells: list[Cell]
    groups: list[Group] = []

    @model_validator(mode="after")
    def _groups_point_at_cells(self):
        for g in self.groups:
            bad = [i for i in g.cells if i >= len(self.cells)]
            if bad:
                raise ValueError(f"group {g.id} names cell {bad[0]}, but there are {len(self.cells)} cells")
        for i, c in enumerate(self.cells):
            if c.group is not None and c.group >= len(self.groups):
                raise ValueError(f"cells[{i}] is in group {c.group}, but there are {len(self.groups)} groups")
        return self


def describe(exc: ValidationError) -> str:
    """The first problem as ``cells[3].samples_ns[7]: Input should be greater than 0 (got -5)``."""
    err = exc.errors()[0]
    where = ""
    for part in err["loc"]:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    # pydantic's wording names its own classes ("a valid dictionary or instance of Meta"): not the reader's.
    msg = re.sub(r" or instance of \w+", "", err["msg"].removeprefix("Value error, "))
    value = err.get("input")
    got = f" (got {value!r:.60})" if isinstance(value, (int, float, str)) and err["type"] != "missing" else ""
    more = len(exc.errors()) - 1
    return f"{where or 'document'}: {msg}{got}" + (f" (and {more} more problems)" if more else "")


def _without_surrogates(obj):
    """``obj`` with every string's lone surrogates replaced: a name decoded from undecodable bytes (a file
    name under a C locale) is a valid Python string that pydantic cannot read as text."""
    if isinstance(obj, str):
        return obj.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if isinstance(obj, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_without_surrogates(v) for v in obj]
    return obj


def validate_document(doc: dict) -> None:
    """Raise ``ValueError`` with a one-line description of the first shape problem in ``doc``."""
    try:
        Document.model_validate(doc)
    except ValidationError as exc:
        if "unable to parse raw data as a unicode string" not in str(exc):
            raise ValueError(describe(exc)) from None
        try:  # the shape is checked on a copy whose strings pydantic can read; the records keep the original
            Document.model_validate(_without_surrogates(doc))
        except ValidationError as again:
            raise ValueError(describe(again)) from None
