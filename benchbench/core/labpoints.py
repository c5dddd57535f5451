"""Lab points: the design vocabulary of the fragmentation lab, without torch.

A :class:`LabPoint` says what a lab net is (``benchbench.models.lab`` builds it; ``benchbench.analysis.lab_design``
counts and selects points). It lives here, in the shared leaves, so the design and the fit import no model code
and no torch. Cache sizes (:func:`cache_sizes`) are read from the machine to place an op's working set in the
L1 / L2 / last-level cache / DRAM regime (:func:`regime_of`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ANCHOR",
    "ANCHOR_NAME",
    "BLOCK_POINTS",
    "DESIGN",
    "DESIGN_QUICK",
    "CANDIDATES",
    "CANDIDATE_TABLE",
    "FALLBACK_CACHES",
    "FAN_KINDS",
    "FLOP_KINDS",
    "LAB_KINDS",
    "REGIMES",
    "STRUCTURES",
    "LabPoint",
    "cache_sizes",
    "parse_name",
    "regime_of",
]

LAB_KINDS = ("conv3x3", "conv1x1", "dw3x3", "add", "act", "concat", "transpose")
FLOP_KINDS = ("conv3x3", "conv1x1", "dw3x3")  # kinds whose ops count FLOPs (conv/matmul only, docs/metrics.md)
STRUCTURES = ("chain", "fan")
FAN_KINDS = ("conv3x3", "conv1x1", "dw3x3", "add", "act")  # a fan of splits or shuffles is not a design
REGIMES = ("L1", "L2", "LLC", "DRAM")
ANCHOR_NAME = "lab_anchor"

_NAME = re.compile(r"^lab_(?P<kind>[a-z0-9]+)_(?P<fan>f?)k(?P<k>\d+)_(?P<c>\d+)x(?P<s>\d+)_i(?P<cin>\d+)(?P<p>p?)$")


@dataclass(frozen=True)
class LabPoint:
    """One design point. ``k`` counts body units (a concat unit is two graph ops: split and concat)."""

    kind: str
    k: int
    channels: int
    size: int  # H = W of the body tensor (and of the input)
    carrier_in: int = 16
    carrier_kernel: int = 3
    structure: str = "chain"

    def __post_init__(self):
        if self.kind not in LAB_KINDS:
            raise ValueError(f"lab kind {self.kind!r} is not one of {', '.join(LAB_KINDS)}")
        if self.structure not in STRUCTURES or (self.structure == "fan" and self.kind not in FAN_KINDS):
            raise ValueError(f"lab structure {self.structure!r} does not apply to kind {self.kind!r}")
        if self.k < 1 or self.channels < 4 or self.size < 1 or self.carrier_in < 1:
            raise ValueError(f"lab point out of range: {self}")
        if self.carrier_kernel not in (1, 3):
            raise ValueError("carrier_kernel is 1 or 3")
        if self.kind in ("concat", "transpose") and self.channels % 4:
            raise ValueError(f"{self.kind} needs channels divisible by 4")

    @property
    def name(self) -> str:
        fan = "f" if self.structure == "fan" else ""
        one = "p" if self.carrier_kernel == 1 else ""
        return f"lab_{self.kind}_{fan}k{self.k}_{self.channels}x{self.size}_i{self.carrier_in}{one}"

    @property
    def input_size(self) -> tuple[int, int, int]:
        return (self.carrier_in, self.size, self.size)

    @property
    def tensor_bytes(self) -> int:
        """float32 bytes of one body tensor (channels x size x size)."""
        return 4 * self.channels * self.size * self.size


def parse_name(name: str) -> LabPoint:
    """The point a lab net's name encodes (``lab_anchor`` included)."""
    if name == ANCHOR_NAME:
        return ANCHOR
    m = _NAME.match(name)
    if not m:
        raise ValueError(f"{name!r} is not a lab net name (lab_<kind>_[f]k<k>_<C>x<S>_i<Cin>[p])")
    return LabPoint(kind=m["kind"], k=int(m["k"]), channels=int(m["c"]), size=int(m["s"]), carrier_in=int(m["cin"]),
                    carrier_kernel=1 if m["p"] else 3, structure="fan" if m["fan"] else "chain")


# -- the machine's caches ---------------------------------------------------------------------------------

FALLBACK_CACHES = {"L1": 32 * 1024, "L2": 1024 * 1024, "LLC": 32 * 1024 * 1024}
_SYS_CACHE = Path("/sys/devices/system/cpu/cpu0/cache")


def _size_bytes(text: str) -> int | None:
    m = re.match(r"^\s*(\d+)\s*([KMG]?)", text)
    if not m:
        return None
    return int(m[1]) * {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}[m[2]]


def cache_sizes(root: Path | str = _SYS_CACHE) -> dict:
    """Data-cache sizes of this machine's CPU 0 in bytes, ``{"L1", "L2", "LLC", "source"}``.

    Read from ``/sys/devices/system/cpu/cpu0/cache/index*/{level,type,size}`` (instruction caches skipped; the
    highest level is the last-level cache). A level that cannot be read takes ``FALLBACK_CACHES``' value, and
    ``source`` says so."""
    root = Path(root)
    found: dict[int, int] = {}
    try:
        for index in sorted(root.glob("index*")):
            kind = (index / "type").read_text(encoding="utf-8").strip()
            if kind == "Instruction":
                continue
            level = int((index / "level").read_text(encoding="utf-8").strip())
            size = _size_bytes((index / "size").read_text(encoding="utf-8"))
            if size:
                found[level] = max(found.get(level, 0), size)
    except (OSError, ValueError):
        found = {}
    out = dict(FALLBACK_CACHES)
    read = []
    if 1 in found:
        out["L1"] = found[1]
        read.append("L1")
    if 2 in found:
        out["L2"] = found[2]
        read.append("L2")
    if found and max(found) >= 3:
        out["LLC"] = found[max(found)]
        read.append("LLC")
    missing = [k for k in ("L1", "L2", "LLC") if k not in read]
    out["source"] = (f"{root}" if not missing else
                     f"{root} ({', '.join(read) or 'nothing'} read; {', '.join(missing)} fallback)")
    return out


def regime_of(working_set_bytes: float, caches: dict) -> str:
    """The cache regime of an op touching ``working_set_bytes`` (inputs, weights and outputs): the smallest
    level that holds it, else DRAM."""
    for level in ("L1", "L2", "LLC"):
        if working_set_bytes <= caches[level]:
            return level
    return "DRAM"


# The anchor: a carrier and eight 1x1 convs on 32 x 28 x 28, ~20 MFLOP, ~10 ops, a fraction of a millisecond
# on every backend here. Fixed: changing it breaks every anchor-relative reading taken so far.
ANCHOR = LabPoint("conv1x1", k=8, channels=32, size=28, carrier_in=16, carrier_kernel=3)

# The designed sets `benchbench lab` measures: chosen from the candidates by benchmarks/lab_fusion.py with
# lab_design.select_joint on every backend's executed graph (reports/lab/fusion.json, design.joint and
# design.joint_quick; tests/test_lab_cli.py checks that the two agree). Kept here so that an installed
# benchbench needs no file of the repository.
DESIGN: tuple[str, ...] = (
    "lab_act_fk12_64x32_i1", "lab_act_fk3_32x128_i1", "lab_act_k2_32x128_i1", "lab_act_k2_32x64_i1",
    "lab_add_fk16_16x32_i32", "lab_add_fk2_16x256_i4", "lab_add_k4_32x16_i256", "lab_add_k4_32x64_i1",
    "lab_concat_k16_32x64_i2", "lab_concat_k32_16x8_i512", "lab_concat_k32_32x8_i512", "lab_concat_k4_16x32_i4",
    "lab_concat_k4_64x32_i2", "lab_concat_k64_16x8_i512", "lab_conv1x1_fk4_32x8_i32", "lab_conv1x1_k4_32x16_i256",
    "lab_conv1x1_k64_32x8_i1", "lab_conv1x1_k64_32x8_i64", "lab_conv1x1_k8_32x16_i128", "lab_conv3x3_fk2_128x8_i1",
    "lab_conv3x3_fk3_128x8_i1", "lab_conv3x3_k16_32x16_i1", "lab_conv3x3_k2_128x8_i512", "lab_conv3x3_k2_32x8_i1",
    "lab_conv3x3_k32_32x8_i1", "lab_conv3x3_k64_32x8_i1", "lab_conv3x3_k8_128x8_i512", "lab_dw3x3_fk2_64x32_i1",
    "lab_dw3x3_k2_64x64_i1", "lab_dw3x3_k32_32x8_i512", "lab_dw3x3_k64_64x16_i512", "lab_dw3x3_k8_32x16_i256",
)
DESIGN_QUICK: tuple[str, ...] = (
    "lab_act_fk12_64x32_i1", "lab_act_fk3_32x128_i1", "lab_act_k2_32x128_i1", "lab_add_k4_32x16_i256",
    "lab_add_k4_32x64_i1", "lab_concat_k16_32x64_i2", "lab_concat_k64_16x8_i512", "lab_conv1x1_k4_32x16_i256",
    "lab_conv1x1_k64_32x8_i1", "lab_conv1x1_k64_32x8_i64", "lab_conv3x3_k2_128x8_i512", "lab_conv3x3_k2_32x8_i1",
    "lab_conv3x3_k64_32x8_i1", "lab_dw3x3_k16_32x8_i16", "lab_dw3x3_k2_64x64_i1", "lab_dw3x3_k64_64x16_i512",
)
# Design points per lockstep block, beside the block's own copy of the anchor: small enough that a block's
# cells take turns every few seconds, so drift reaches the anchor and its points alike.
BLOCK_POINTS = 4

# Generated by benchbench.analysis.lab_design.candidate_points() (tests/test_lab.py checks it):
# (kind, structure, k, channels, size, carrier_in, carrier_kernel)
CANDIDATE_TABLE: tuple[tuple, ...] = (
    ("conv3x3", "chain", 8, 32, 8, 64, 3),
    ("conv3x3", "chain", 32, 32, 8, 512, 3),
    ("conv3x3", "chain", 4, 32, 8, 128, 3),
    ("conv3x3", "chain", 32, 32, 8, 1, 3),
    ("conv3x3", "chain", 8, 128, 8, 512, 3),
    ("conv3x3", "chain", 16, 32, 16, 1, 3),
    ("conv3x3", "chain", 64, 32, 8, 1, 3),
    ("conv3x3", "chain", 2, 32, 8, 1, 3),
    ("conv3x3", "chain", 2, 128, 8, 512, 3),
    ("conv3x3", "fan", 16, 32, 8, 256, 3),
    ("conv3x3", "fan", 8, 32, 16, 256, 3),
    ("conv3x3", "fan", 3, 128, 8, 1, 3),
    ("conv3x3", "fan", 2, 128, 8, 1, 3),
    ("conv3x3", "fan", 6, 32, 8, 1, 3),
    ("conv1x1", "chain", 4, 32, 128, 1, 3),
    ("conv1x1", "chain", 4, 32, 16, 256, 3),
    ("conv1x1", "chain", 32, 32, 8, 1, 3),
    ("conv1x1", "chain", 64, 32, 8, 1, 3),
    ("conv1x1", "chain", 64, 32, 8, 64, 3),
    ("conv1x1", "chain", 2, 32, 128, 1, 3),
    ("conv1x1", "chain", 16, 32, 8, 1, 3),
    ("conv1x1", "chain", 8, 32, 32, 1, 3),
    ("conv1x1", "chain", 8, 32, 16, 128, 3),
    ("conv1x1", "chain", 32, 32, 32, 256, 3),
    ("conv1x1", "fan", 6, 32, 16, 16, 3),
    ("conv1x1", "fan", 2, 32, 128, 1, 3),
    ("conv1x1", "fan", 12, 64, 32, 16, 3),
    ("conv1x1", "fan", 4, 32, 8, 32, 3),
    ("conv1x1", "fan", 8, 64, 8, 512, 3),
    ("dw3x3", "chain", 4, 32, 64, 1, 3),
    ("dw3x3", "chain", 16, 64, 16, 4, 3),
    ("dw3x3", "chain", 8, 32, 8, 512, 3),
    ("dw3x3", "chain", 64, 64, 16, 512, 3),
    ("dw3x3", "chain", 2, 64, 64, 1, 3),
    ("dw3x3", "chain", 32, 128, 16, 64, 3),
    ("dw3x3", "chain", 32, 32, 8, 512, 3),
    ("dw3x3", "chain", 16, 32, 8, 16, 3),
    ("dw3x3", "chain", 8, 32, 16, 256, 3),
    ("dw3x3", "fan", 16, 32, 16, 512, 3),
    ("dw3x3", "fan", 2, 64, 32, 1, 3),
    ("dw3x3", "fan", 4, 64, 64, 8, 3),
    ("dw3x3", "fan", 8, 32, 8, 128, 3),
    ("dw3x3", "fan", 4, 32, 32, 16, 3),
    ("add", "chain", 8, 128, 8, 32, 3),
    ("add", "chain", 2, 16, 64, 4, 3),
    ("add", "chain", 32, 16, 32, 256, 3),
    ("add", "chain", 64, 16, 8, 128, 3),
    ("add", "chain", 32, 16, 16, 512, 3),
    ("add", "chain", 16, 32, 64, 8, 3),
    ("add", "chain", 64, 16, 32, 128, 3),
    ("add", "chain", 4, 32, 64, 1, 3),
    ("add", "chain", 4, 32, 16, 256, 3),
    ("add", "chain", 8, 32, 32, 16, 3),
    ("add", "fan", 12, 16, 16, 512, 3),
    ("add", "fan", 6, 16, 32, 8, 3),
    ("add", "fan", 16, 16, 32, 32, 3),
    ("add", "fan", 3, 64, 16, 64, 3),
    ("add", "fan", 2, 16, 256, 4, 3),
    ("act", "chain", 32, 16, 8, 256, 3),
    ("act", "chain", 64, 128, 8, 512, 3),
    ("act", "chain", 32, 32, 16, 512, 3),
    ("act", "chain", 8, 16, 16, 256, 3),
    ("act", "chain", 16, 16, 16, 64, 3),
    ("act", "chain", 2, 32, 128, 1, 3),
    ("act", "chain", 4, 16, 64, 32, 3),
    ("act", "chain", 2, 32, 64, 1, 3),
    ("act", "chain", 64, 32, 32, 256, 3),
    ("act", "chain", 8, 16, 128, 1, 3),
    ("act", "fan", 3, 32, 128, 1, 3),
    ("act", "fan", 6, 16, 32, 32, 3),
    ("act", "fan", 4, 32, 16, 512, 3),
    ("act", "fan", 8, 16, 16, 256, 3),
    ("act", "fan", 12, 64, 32, 1, 3),
    ("concat", "chain", 32, 16, 8, 512, 3),
    ("concat", "chain", 2, 16, 128, 4, 3),
    ("concat", "chain", 4, 64, 32, 2, 3),
    ("concat", "chain", 16, 32, 64, 2, 3),
    ("concat", "chain", 4, 16, 32, 4, 3),
    ("concat", "chain", 64, 16, 8, 512, 3),
    ("concat", "chain", 16, 16, 64, 64, 3),
    ("concat", "chain", 8, 16, 16, 256, 3),
    ("concat", "chain", 8, 16, 32, 512, 3),
    ("concat", "chain", 32, 32, 8, 512, 3),
    ("transpose", "chain", 2, 64, 32, 16, 3),
    ("transpose", "chain", 8, 32, 32, 256, 3),
    ("transpose", "chain", 16, 16, 8, 512, 3),
    ("transpose", "chain", 8, 32, 16, 16, 3),
    ("transpose", "chain", 32, 32, 64, 4, 3),
    ("transpose", "chain", 64, 16, 16, 512, 3),
    ("transpose", "chain", 2, 128, 64, 16, 3),
    ("transpose", "chain", 4, 32, 16, 32, 3),
    ("transpose", "chain", 32, 16, 32, 256, 3),
    ("transpose", "chain", 32, 16, 64, 1, 3),
)

CANDIDATES: tuple[LabPoint, ...] = tuple(
    LabPoint(kind=kind, structure=structure, k=k, channels=c, size=s, carrier_in=cin, carrier_kernel=kc)
    for kind, structure, k, c, s, cin, kc in CANDIDATE_TABLE)
