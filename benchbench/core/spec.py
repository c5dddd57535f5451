"""What to measure: a cell's specification and the sampling policy. Imports nothing heavy.

The fields a user sets carry their command-line flag, parser and help (``benchbench.core.options``):
their defaults are written here, once.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields

from .argtypes import bounded_float, bounded_int, input_size, option
from .options import flag_field

__all__ = ["ArtifactSource", "CellSpec", "MeasureConfig", "QUICK", "REFERENCE", "PROFILES", "physical_cores",
           "MAX_BATCH", "MAX_SEED", "MAX_THREADS"]

# Sizes past these are typos, not benchmarks; they stay far inside what a runtime accepts.
MAX_THREADS = 1024
MAX_BATCH = 4096
MAX_SEED = 2**32 - 1  # numpy's legacy seeding and most runtimes take 32-bit seeds
_SECONDS = bounded_float(0)  # finite and above zero


def physical_cores() -> int:
    """The default thread count: physical cores (hyper-threads share execution units)."""
    import psutil

    return psutil.cpu_count(logical=False) or psutil.cpu_count() or 1


@dataclass(frozen=True)
class MeasureConfig:
    """Sampling policy. Warm-up ends on both a count and a time bound; then the cells of a comparison
    group take turns timing blocks of about ``block_s`` (``benchbench.measure.scheduler``).

    Sampling stops once every ratio in the group (alone: the cell's median) has a 95% interval within
    ``target_ci`` (relative half-width) and at least ``min_blocks`` rounds and ``min_s`` per cell have
    passed, or at ``max_s`` per cell. ``min_count`` is kept for schema-1 settings; blocks set the pace.
    """

    warmup_min_count: int = 5
    warmup_min_s: float = 0.5
    min_count: int = 20
    min_s: float = flag_field(1.0, flag="--min-time", parse=_SECONDS,
                              help="minimum sampling time per cell and round, s")
    max_s: float = flag_field(10.0, flag="--max-time", parse=_SECONDS,
                              help="maximum sampling time per cell and round, s, at least --min-time")
    max_count: int = 100_000  # inferences per block, at most
    # The relative half-width of the 95% interval that ends sampling early (above the 1.27% that the
    # between-process term alone adds to a ratio, benchbench.results.estimates.PROCESS_SD).
    target_ci: float = flag_field(0.015, flag="--target-ci", parse=bounded_float(0, 1),
                                  help="stop once every 95%% interval's half-width is within this fraction, in (0, 1)")
    block_s: float = 0.05  # one block's length: long against a scheduler tick (~4 ms), short against drift
    min_blocks: int = 10  # rounds before the interval may stop sampling (6 is the least a 95% interval needs)
    max_blocks: int = 100_000  # rounds at most (a fixed count when equal to min_blocks)
    # Process pairs per comparison: the group's time bounds are split over this many sessions, each in
    # fresh workers (benchbench.measure.group.session_config), so the between-process term shrinks as 1/sqrt(N).
    sessions: int = flag_field(1, flag="--sessions", parse=bounded_int(1, 64),
                               help="measure each comparison in up to N sets of fresh workers, its time split "
                                    "among them (the between-process term shrinks as 1/sqrt(N)); stops early "
                                    "once pinned")
    # The between-process sd of a log-ratio that paired intervals add: `benchbench doctor`'s cached figure for
    # this machine and backend when there is one (set by the run; None: benchbench.results.estimates.PROCESS_SD).
    process_sd: float | None = None
    # Builds a sweep makes side by side before it measures anything (never during a measurement), each with its
    # share of the CPUs; 0: one per CPU, at most 4 (benchbench.build.builds.Builds.make_all).
    build_jobs: int = flag_field(0, flag="--build-jobs", parse=bounded_int(0, 64),
                                 help="exports to run side by side before measuring (0: one per CPU, at most 4)")
    noisy_ci: float = 0.05  # a wider CI than this flags the cell as noisy
    noisy_cv: float = 0.10  # robust CV (1.4826 MAD / median) above this flags it as noisy
    # A worker (prepare + warm-up + sampling) is killed after this.
    cell_timeout_s: float = flag_field(900.0, flag="--cell-timeout", parse=_SECONDS,
                                       help="kill a worker after this many seconds")

    def parallel_builds(self) -> int:
        """How many builds ``build_jobs`` asks for here (0: one per CPU, at most 4)."""
        return self.build_jobs or max(1, min(4, os.cpu_count() or 1))

    def replace(self, **changes) -> MeasureConfig:
        return MeasureConfig(**{**asdict(self), **changes})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> MeasureConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# For smoke runs and tests: fewer samples, looser early stop.
QUICK = MeasureConfig(warmup_min_count=2, warmup_min_s=0.05, min_count=10, min_s=0.2, max_s=2.0, target_ci=0.03,
                      block_s=0.02, min_blocks=6)

# The reference report (`benchbench claim --reference`, 828 cells): a 2% target (what the claim's
# verdicts need: the effects it tests are 5% and more) and a 0.6 s cap *per round*: every group is
# measured in two or three rounds spread over the sweep (``cli.reference.reference_allocation``, which also
# caps the zoo's groups lower), each in fresh workers, so a cell's interval spans several processes and moments
# of the machine. Cells that hit the cap keep their wider interval, and the report shows it.
REFERENCE = MeasureConfig(warmup_min_s=0.1, min_s=0.3, max_s=0.6, target_ci=0.02)

# The sampling profiles of ``--sampling``, by name.
PROFILES = {"default": MeasureConfig(), "quick": QUICK, "reference": REFERENCE}


@dataclass(frozen=True)
class ArtifactSource:
    """A user's own model file (``--model model.onnx``): where it is, what it is, and the input shapes it is
    measured at. ``sha256`` (of the file and its sidecars) is its identity: compare matches cells by it, not
    by path. ``reference`` is the backend whose outputs are the parity reference (there is no PyTorch
    model); ``input_data`` an ``.npz`` of the user's inputs, else seeded random data (``benchbench.build.files``);
    ``calibration_data`` the ``.npz`` that calibrates its int8 forms (``run --quantize int8``)."""

    path: str
    format: str  # a name in benchbench.formats: onnx, tflite, openvino_ir
    sha256: str
    bytes: int
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...]  # every declared input, in the file's order
    reference: str | None = None
    input_data: str | None = None
    input_data_sha256: str | None = None
    pair: str | None = None  # a --vs pair's identity, on both its cells: "<before sha256>..<after sha256>"
    # --quantize int8: the .npz whose samples calibrate the quantizers (else seeded inputs), and its SHA-256
    calibration_data: str | None = None
    calibration_data_sha256: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_shapes"] = {name: list(dims) for name, dims in self.input_shapes}
        return {k: v for k, v in d.items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict) -> ArtifactSource:
        d = dict(d)
        d["input_shapes"] = tuple((name, tuple(dims)) for name, dims in (d.get("input_shapes") or {}).items())
        return cls(**d)


@dataclass(frozen=True)
class CellSpec:
    """One (model, variant, input shape, backend, threads) combination. ``source`` is set for a user's own
    model file (variant ``artifact``, or ``before``/``after`` for a ``--vs`` pair); ``model`` is then its
    display name."""

    model: str
    variant: str
    backend: str
    batch: int = flag_field(1, flag="--batch", parse=bounded_int(1, MAX_BATCH), help=f"batch size, 1..{MAX_BATCH}")
    input_size: tuple[int, int] | None = flag_field(  # H, W; None means the model's own
        None, flag="--input-size", parse=input_size, default_help="the model's",
        help="input resolution, N or HxW, each side 1..8192")
    threads: int = flag_field(1, flag="--threads", parse=bounded_int(1, MAX_THREADS),
                              default_help="the physical core count", help=f"intra-op threads, 1..{MAX_THREADS}")
    seed: int = flag_field(0, flag="--seed", parse=bounded_int(0, MAX_SEED),
                           help="seed of the weights and the input, 0..2**32-1")
    options: tuple[tuple[str, str], ...] = flag_field(  # backend options, sorted key/value pairs
        (), flag="--option", short="-o", parse=option, metavar="KEY=VALUE", repeat=True,
        help="backend option, e.g. precision=bf16 (repeatable; the keys are listed below)")
    source: ArtifactSource | None = None
    device: str | None = None  # a cluster target (run --device): measured on a worker with that device resource
    # A designed block (benchbench lab): the cells of one block are one lockstep group, and the block tells
    # apart the copies of the anchor net that each block measures beside its points.
    block: int | None = None

    def key(self) -> tuple:
        """Identity used to match cells across runs (compare). A file is matched by its content hash (and
        the input shapes and data it ran on), whatever its path. Cells of two devices never match."""
        if self.source is not None:
            s = self.source
            key = (f"sha256:{s.pair or s.sha256}", self.variant, self.backend, self.batch, self.input_size,
                   self.threads, self.options, s.input_shapes, s.input_data_sha256)
        else:
            key = (self.model, self.variant, self.backend, self.batch, self.input_size, self.threads, self.options)
        key = key + (self.device,) if self.device else key
        return key + (("block", self.block),) if self.block is not None else key

    def label(self) -> str:
        return f"{self.model} [{self.variant}] on {self.backend}" + (f" @ {self.device}" if self.device else "") \
            + (f" (block {self.block})" if self.block is not None else "")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size) if self.input_size else None
        d["options"] = dict(self.options)
        if self.device is None:  # local runs' files stay as they were
            del d["device"]
        if self.block is None:  # only lab runs' cells carry a block
            del d["block"]
        if self.source is None:
            del d["source"]  # zoo cells' records stay as they were
        else:
            d["source"] = self.source.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CellSpec:
        d = dict(d)
        d["input_size"] = tuple(d["input_size"]) if d.get("input_size") else None
        d["options"] = tuple(sorted((d.get("options") or {}).items()))
        if d.get("source") is not None:
            d["source"] = ArtifactSource.from_dict(d["source"])
        return cls(**d)
