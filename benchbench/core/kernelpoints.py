"""Kernel points: the vocabulary of the predictor's kernel sweep, without torch.

A :class:`KernelPoint` is one kernel configuration: an operator (``op``), its tensor sizes and attributes, and
``post``, the operators that follow it in a fusion experiment. ``benchbench.models.kernels`` builds the one-kernel
net a point names; ``benchbench.analysis.predictor`` fits per-kernel regressors on their latencies. Names encode
the whole point (:func:`parse_kernel_name` reads them back), so a worker process rebuilds any point from its
name alone:

``kern_<op>[-<post>]_c<cin>o<cout>_s<size>_k<k>_st<stride>_g<groups>[_m<rows>]``

Operators (``KERNEL_OPS``) by the regressor class that predicts them (``OP_CLASS``):

========= ===========================================================================================
conv      dense convolution, ``cin → cout``, ``k`` x ``k``, ``stride``, on ``size`` x ``size``
dwconv    depthwise convolution (``groups = cin = cout``)
gconv     grouped convolution (1 < ``groups`` < ``cin``)
gemm      a matrix product: ``rows`` x ``cin`` times ``cin`` x ``cout`` (``Linear``; rows 1 is a classifier)
eltwise   one element-wise op on ``cin`` x ``size`` x ``size``: relu, sigmoid, hswish, gelu, silu, bn
          (an un-fused batch norm: a per-channel affine), add, mul, mulbc (times a per-channel broadcast
          tensor, as squeeze-excitation does), softmax over the channels, layernorm over the last dimension,
          clip (ONNX's Clip: ReLU6; ONNX Runtime runs it fused behind a convolution at up to 1.45x a ReLU's cost)
pool      maxpool (``k``, ``stride``), avgpool, gap (global average: the mean over H and W)
move      concat (the input and a tensor of its shape: ``cout = 2 cin``), split, transpose (a two-group
          channel shuffle), slice, reshape (a view: the net's fixed cost and its output copy, nothing else)
========= ===========================================================================================

Fusion experiments (``FUSION_PATTERNS``) put one ``post`` chain behind a head operator: ``conv-bnrelu`` is a
convolution, a batch norm and a ReLU. A runtime fuses the chain when the pattern net executes as many kernels as
its head alone (``benchbench.analysis.fusion``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

import numpy as np

__all__ = [
    "FUSION_PATTERNS",
    "KERNEL_OPS",
    "KERNEL_PREFIX",
    "OP_CLASS",
    "POSTS",
    "PROBE_SIZES",
    "CLASSES",
    "KernelPoint",
    "fusion_points",
    "base_points",
    "chain_points",
    "dispatch_points",
    "io_points",
    "parse_kernel_name",
    "point_flops",
    "probe_points",
    "sample_points",
]

KERNEL_PREFIX = "kern_"
OP_CLASS = {
    "conv": "conv", "dwconv": "dwconv", "gconv": "gconv", "gemm": "gemm",
    **dict.fromkeys(("relu", "sigmoid", "hswish", "gelu", "silu", "bn", "add", "mul", "mulbc", "softmax",
                     "layernorm"), "eltwise"),
    **dict.fromkeys(("maxpool", "avgpool", "gap"), "pool"),
    **dict.fromkeys(("concat", "split", "transpose", "slice", "reshape"), "move"),
    "clip": "eltwise",  # last, so that the other ops' codes (a regressor feature) stay what stored fits had
}
KERNEL_OPS = tuple(OP_CLASS)
CLASSES = tuple(dict.fromkeys(OP_CLASS.values()))
# The operators of the eltwise, pool and move classes (a reshape is a view, not a sampled kernel). The sweep
# draws them in turn, so that every operator has points (``sample_points``).
STRATIFIED = {kind: tuple(op for op in KERNEL_OPS if OP_CLASS[op] == kind and op != "reshape")
              for kind in ("eltwise", "pool", "move")}
# Element-wise ops a chain may repeat (``KernelPoint.repeat``; the I/O probes).
CHAIN_OPS = ("relu", "sigmoid")
# Post chains a fusion experiment puts behind a head: each a '+'-free token of the name.
POSTS = ("bn", "relu", "bnrelu", "sigmoid", "hswish", "gelu", "add", "addrelu", "clip")
# The fusion experiments: (head op, post chain). Heads at a mid-sized configuration (see fusion_points).
FUSION_PATTERNS = (
    ("conv", "bn"), ("conv", "relu"), ("conv", "bnrelu"), ("conv", "sigmoid"), ("conv", "hswish"),
    ("conv", "gelu"), ("conv", "add"), ("conv", "addrelu"),
    ("dwconv", "bnrelu"), ("dwconv", "relu"), ("conv", "clip"), ("dwconv", "clip"),
    ("gemm", "relu"), ("gemm", "gelu"),
    ("add", "relu"),
)
# Output sizes (elements) of the reshape probes: the fixed cost of a call and the cost of copying its output.
PROBE_SIZES = (8, 4096, 65536, 262144, 1048576)

_NAME = re.compile(r"^kern_(?P<op>[a-z]+)(?:-(?P<post>[a-z]+))?_c(?P<cin>\d+)o(?P<cout>\d+)_s(?P<s>\d+)_k(?P<k>\d+)"
                   r"_st(?P<st>\d+)_g(?P<g>\d+)(?:_m(?P<m>\d+))?(?:_r(?P<r>\d+))?$")


@dataclass(frozen=True)
class KernelPoint:
    """One kernel configuration (see the module doc). ``rows`` applies to gemm only."""

    op: str
    cin: int
    cout: int
    size: int
    k: int = 1
    stride: int = 1
    groups: int = 1
    rows: int = 1
    post: str = ""
    repeat: int = 1  # a chain of this many copies of the kernel (chain_points, dispatch_points, io_points)

    def __post_init__(self):
        if self.op not in OP_CLASS:
            raise ValueError(f"kernel op {self.op!r} is not one of {', '.join(KERNEL_OPS)}")
        if self.post and self.post not in POSTS:
            raise ValueError(f"kernel post chain {self.post!r} is not one of {', '.join(POSTS)}")
        if min(self.cin, self.cout, self.size, self.k, self.stride, self.groups, self.rows) < 1:
            raise ValueError(f"kernel point out of range: {self}")
        if self.cin % self.groups or self.cout % self.groups:
            raise ValueError(f"groups {self.groups} must divide cin {self.cin} and cout {self.cout}")
        if self.op == "dwconv" and not (self.groups == self.cin == self.cout):
            raise ValueError("a depthwise kernel has groups = cin = cout")
        if self.repeat > 1 and not ((self.kind in ("conv", "dwconv") and self.cin == self.cout and self.stride == 1
                                     or self.op in CHAIN_OPS) and not self.post):
            raise ValueError("a repeated kernel is a convolution keeping its tensor's shape or a unary element-wise "
                             f"op ({', '.join(CHAIN_OPS)}), without a post chain")
        if self.op in ("concat", "split", "transpose", "slice") and self.cin % 2:
            raise ValueError(f"{self.op} needs an even channel count")

    @property
    def kind(self) -> str:
        """The regressor class: conv, dwconv, gconv, gemm, eltwise, pool or move."""
        return OP_CLASS[self.op]

    @property
    def name(self) -> str:
        post = f"-{self.post}" if self.post else ""
        rows = f"_m{self.rows}" if self.op == "gemm" else ""
        repeat = f"_r{self.repeat}" if self.repeat > 1 else ""
        return (f"{KERNEL_PREFIX}{self.op}{post}_c{self.cin}o{self.cout}_s{self.size}_k{self.k}_st{self.stride}"
                f"_g{self.groups}{rows}{repeat}")

    @property
    def input_size(self) -> tuple[int, ...]:
        """The net's input (C, H, W), or (rows, cin) for gemm."""
        if self.op == "gemm":
            return (self.rows, self.cin)
        return (self.cin, self.size, self.size)

    def without_post(self) -> KernelPoint:
        return replace(self, post="")


def parse_kernel_name(name: str) -> KernelPoint:
    """The point a kernel net's name encodes."""
    m = _NAME.match(name)
    if not m:
        raise ValueError(f"{name!r} is not a kernel net name "
                         "(kern_<op>[-<post>]_c<cin>o<cout>_s<size>_k<k>_st<stride>_g<groups>[_m<rows>])")
    return KernelPoint(op=m["op"], cin=int(m["cin"]), cout=int(m["cout"]), size=int(m["s"]), k=int(m["k"]),
                       stride=int(m["st"]), groups=int(m["g"]), rows=int(m["m"] or 1), post=m["post"] or "",
                       repeat=int(m["r"] or 1))


# -- sampling ---------------------------------------------------------------------------------------------

# The ranges the zoo's kernels span (ImageNet-sized CNNs and MLP-Mixer at 224 px): channel counts, spatial sizes
# of a kernel's *output*, kernel sizes. Sampled log-uniformly and rounded to the values real nets use, so the
# regressors interpolate where models live. No measurement of any zoo model is used.
_CHANNELS = (8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 256, 320, 384, 512, 640, 768, 1024, 1280, 2048)
_SIZES = (1, 2, 4, 7, 8, 14, 16, 28, 32, 56, 64, 112, 128, 224)
# One kernel's FLOPs at most. VanillaNet's widest 1x1 convolutions are 3.3 GFLOP (and 4096 channels); a sweep
# reaching them (4 GFLOP, 4096 channels) predicted the zoo no better (docs/predictor.md, Kernel nets).
_MAX_FLOPS = 2.5e9
_MAX_TENSOR = 4 * 1024 * 1024  # elements of one activation (16 MiB)


def _pick(rng: np.random.Generator, values, low=None, high=None):
    vals = [v for v in values if (low is None or v >= low) and (high is None or v <= high)]
    return int(vals[int(rng.integers(len(vals)))])


# A depthwise convolution's kernel sizes, taken in turn (``sample_points``): their costs differ by more than their
# MACs do (LiteRT's XNNPACK ran a 7x7 one on 512 x 56 x 56 in 29 ms, a 5x5 one in 2.4 ms, here), so each needs
# points across the sizes, not the few a draw weighted to 3x3 gave (every 7x7 one at 2 x 2).
DW_KERNELS = (3, 5, 7)


def _conv_point(op: str, rng: np.random.Generator, k: int | None = None) -> KernelPoint:
    if k is None:
        k = int(rng.choice((1, 3, 5, 7), p=(0.45, 0.4, 0.1, 0.05) if op == "conv" else (0.0, 0.6, 0.3, 0.1)))
    stride = int(rng.choice((1, 2), p=(0.8, 0.2)))
    if op == "dwconv":
        # Spread evenly over the log of its output elements (256 to 4M), which its cost follows: channels and size
        # drawn apart put few points where the zoo's widest depthwise kernels are (VanillaNet: 512 x 56 x 56).
        target = 2.0 ** rng.uniform(8, 22)
        sizes = [s for s in _SIZES if 2 <= s <= 112 and _CHANNELS[0] * s * s <= target <= _CHANNELS[-1] * s * s]
        out = sizes[int(rng.integers(len(sizes)))]
        cin = min(_CHANNELS, key=lambda c: abs(math.log(c * out * out / target)))
        return KernelPoint("dwconv", cin, cin, out * stride, k, stride, groups=cin)
    out = _pick(rng, _SIZES, 2 if k > 1 else 1, 112)
    size = out * stride
    cin = _pick(rng, _CHANNELS, 8, 2048 if k == 1 else 1024)
    cout = _pick(rng, _CHANNELS, 8, 2048 if k == 1 else 1024)
    if op == "gconv":
        groups = _pick(rng, (2, 4, 8, 16, 32), 2, min(cin, cout) // 4)
        cin, cout = cin - cin % groups or groups, cout - cout % groups or groups
        return KernelPoint("gconv", cin, cout, size, k, stride, groups=groups)
    return KernelPoint("conv", cin, cout, size, k, stride)


def _one(op_class: str, rng: np.random.Generator, op: str | None = None, k: int | None = None) -> KernelPoint:
    """One point of ``op_class``; ``op``, the operator, for a ``STRATIFIED`` class; ``k``, a depthwise kernel size."""
    if op_class in ("conv", "dwconv", "gconv"):
        return _conv_point(op_class, rng, k)
    if op_class == "gemm":
        rows = int(rng.choice((1, 1, 49, 196)))
        return KernelPoint("gemm", _pick(rng, _CHANNELS, 16), _pick(rng, _CHANNELS, 8), 1, rows=rows)
    c = _pick(rng, _CHANNELS, 8, 1024)
    size = _pick(rng, _SIZES, 1, 112)
    if op_class == "eltwise":
        return KernelPoint(op, c, c, size)
    if op_class == "pool":
        if op == "gap":
            return KernelPoint("gap", c, c, max(size, 2))
        return KernelPoint(op, c, c, max(size, 4), k=int(rng.choice((2, 3))), stride=2)
    c += c % 2
    return KernelPoint(op, c, 2 * c if op == "concat" else c // 2 if op == "slice" else c, size)


def point_flops(p: KernelPoint) -> float:
    """FLOPs of a point's kernel (2 x MACs; convolutions and matrix products only, as the zoo counts them)."""
    out = -(-p.size // p.stride)
    if p.kind in ("conv", "dwconv", "gconv"):
        return 2.0 * p.cout * out * out * (p.cin // p.groups) * p.k * p.k
    if p.kind == "gemm":
        return 2.0 * p.rows * p.cin * p.cout
    return 0.0


def _fits(p: KernelPoint) -> bool:
    return point_flops(p) <= _MAX_FLOPS and p.cin * p.size * p.size <= _MAX_TENSOR \
        and p.cout * p.size * p.size <= _MAX_TENSOR


def sample_points(counts: dict[str, int], seed: int) -> list[KernelPoint]:
    """``counts[class]`` distinct points of each regressor class, drawn with ``seed`` (deterministic). The
    operators of a ``STRATIFIED`` class take turns (in an order drawn with the seed), and so do a depthwise
    convolution's kernel sizes (``DW_KERNELS``), so that each has ``n // len(turns)`` points or one more. Each class
    draws from a generator of its own, so that changing one class's design leaves the others' points alone."""
    out: list[KernelPoint] = []
    for op_class, n in counts.items():
        if op_class not in CLASSES:
            raise ValueError(f"unknown kernel class {op_class!r}")
        rng = np.random.default_rng([seed, CLASSES.index(op_class)])
        ops = [str(o) for o in rng.permutation(STRATIFIED[op_class])] if op_class in STRATIFIED else [None]
        ks = [int(k) for k in rng.permutation(DW_KERNELS)] if op_class == "dwconv" else [None]
        seen: set[KernelPoint] = set()
        tries = 0
        while len(seen) < n and tries < 200 * max(n, 1):
            tries += 1
            p = _one(op_class, rng, ops[len(seen) % len(ops)], ks[len(seen) % len(ks)])
            if p not in seen and _fits(p):
                seen.add(p)
                out.append(p)
    return out


def probe_points() -> list[KernelPoint]:
    """Reshape nets of ``PROBE_SIZES`` output elements: a call's fixed cost and its output copy per byte."""
    out = []
    for n in PROBE_SIZES:
        side = max(1, int(math.isqrt(n // 8)))
        out.append(KernelPoint("reshape", 8, 8, side))
    return out


def chain_points() -> list[KernelPoint]:
    """The boundary probes: shape-keeping convolutions alone and twice in a chain. A one-kernel net's convolution
    pays for what a model's inner kernels do not (ORT and OpenVINO reorder its input and output to and from their
    blocked layouts); the second copy costs only the kernel, so ``t(2) - t(1)`` is the kernel and the rest of
    ``t(1)`` over the base is that boundary (``analysis.predictor.chain_fit``)."""
    out = []
    for c, s, k in ((32, 56, 3), (64, 28, 3), (128, 14, 3), (256, 7, 3), (64, 56, 1), (128, 28, 1), (256, 14, 1),
                    (512, 7, 1), (32, 112, 1), (96, 56, 1)):
        out += [KernelPoint("conv", c, c, s, k), KernelPoint("conv", c, c, s, k, repeat=2)]
    for c, s in ((32, 112), (96, 56), (144, 28), (384, 14), (960, 7)):
        out += [KernelPoint("dwconv", c, c, s, 3, groups=c), KernelPoint("dwconv", c, c, s, 3, groups=c, repeat=2)]
    return out


# The dispatch probes' tiny depthwise convolutions (channels, size), and their chain's length.
DISPATCH_SIZES = ((16, 4), (32, 4), (16, 8), (32, 8))
DISPATCH_REPEAT = 16


def dispatch_points() -> list[KernelPoint]:
    """The dispatch probes: tiny depthwise convolutions (16-32 channels on 4x4 to 8x8, a few thousand MACs)
    alone and in a chain of ``DISPATCH_REPEAT``. Each copy after the first costs what a kernel with next to no
    work costs inside a model. Where that exceeds the lone net's marginal (whose base, read from the reshape
    probes, holds one dispatch already), ``analysis.predictor.chain_fit`` reads the difference as a dispatch and
    every kernel of a model is charged it."""
    out = []
    for c, s in DISPATCH_SIZES:
        out += [KernelPoint("dwconv", c, c, s, 3, groups=c),
                KernelPoint("dwconv", c, c, s, 3, groups=c, repeat=DISPATCH_REPEAT)]
    return out


# The I/O probes' tensors (channels, size): 100K to 1M elements.
IO_SIZES = ((32, 56), (64, 64), (128, 64), (64, 128))
IO_REPEAT = 4


def io_points() -> list[KernelPoint]:
    """The I/O probes: sigmoids on 100K to 1M elements, alone and in a chain of ``IO_REPEAT``. The reshape probes'
    line prices a net's input and output copies with the Reshape's own copy in them, so it over-prices them: on
    ORT a ReLU on 400K elements measured faster than that base. A chain's later copies cost the sigmoid alone,
    so ``t(1) - base - (t(r) - t(1)) / (r - 1)`` is what the base gets wrong for a memory-bound kernel's net
    (``analysis.predictor.chain_fit``; not where the backend fuses the chain into one kernel)."""
    out = []
    for c, s in IO_SIZES:
        out += [KernelPoint("sigmoid", c, c, s), KernelPoint("sigmoid", c, c, s, repeat=IO_REPEAT)]
    return out


def base_points(quick: bool = False) -> list[KernelPoint]:
    """The nets a fit reads everything but its regressors from, measured before its sampled points: the reshape
    probes (the base), the fusion experiments, the dispatch probes, and unless ``quick`` the boundary chains and
    the I/O probes (``analysis.predictor.fit_document``)."""
    return probe_points() + fusion_points() + dispatch_points() + ([] if quick else chain_points() + io_points())


def fusion_points() -> list[KernelPoint]:
    """Every fusion experiment and its head alone, at one mid-sized configuration per head."""
    heads = {"conv": KernelPoint("conv", 64, 64, 28, k=3), "dwconv": KernelPoint("dwconv", 128, 128, 28, k=3,
                                                                                  groups=128),
             "gemm": KernelPoint("gemm", 512, 512, 1, rows=49), "add": KernelPoint("add", 64, 64, 28)}
    out = list(heads.values())
    out += [replace(heads[head], post=post) for head, post in FUSION_PATTERNS]
    return out
