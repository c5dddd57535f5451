"""MobileOne: An Improved One millisecond Mobile Backbone (Vasu et al., CVPR 2023, arXiv 2206.04040).

Train form: a 3x3 stride-2 stem block, then four stages of (2, 8, 10, 1) units on base widths
(64, 128, 256, 512) scaled by the member's multipliers; the first unit of each stage has stride 2. A
unit is a depthwise 3x3 MobileOne block followed by a pointwise 1x1 MobileOne block. A block sums
``k`` over-parameterized conv-BN branches of its own kernel size, a 1x1 conv-BN "scale" branch (3x3
blocks only: the stem and the depthwise stage) and an identity-BN branch (where ``cin == cout`` and
stride 1), then applies SE (S4 only) and ReLU. Global average pooling and a linear classifier end it.

Deploy form: every block is one biased conv (then SE where present, then ReLU). Each branch's BN
folds into its kernel (W' = W t, b' = beta - mu t, t = gamma / sqrt(var + eps)); the 1x1 scale kernel
is zero-padded to a 3x3 centre tap; the identity is the kernel with a centre 1 at [i, i mod (C/g)]
(for a depthwise block: a centre 1 in every channel; for a 1x1 block: the identity matrix), folded
with its BN like a conv; all ``k + 2`` kernels and biases add up, since conv is linear in its kernel
and the branches share input, stride and padding. The SE gate depends on the input, so it stays.

Counting (``benchbench.metrics.count_model``: conv/linear MACs, bias adds not counted, 224x224) was
compared with the paper's ImageNet table, whose "FLOPs" are multiply-adds and whose figures are of
the deploy form (S0's train form, 5.29M / 1.05G, is far off). Deploy counts vs paper:
S0 2.08M / 275M vs 2.1M / 275M; S1 4.77M / 825M vs 4.8M / 825M; S2 7.81M / 1.298G vs 7.8M / 1.30G;
S3 10.08M / 1.896G vs 10.1M / 1.90G; S4 14.84M / 2.979G vs 14.8M / 2.98G. All agree within about
1%, with the paper's 1000-way linear classifier and S4's SE parameters included. The train forms of
S1-S4 add only BN parameters and the scale branches' 1x1 MACs (under 1% more).
S4's SE placement follows the reference code (``apple/ml-mobileone``): the last 5 units of stage 3 and
the unit of stage 4, in both the depthwise and the pointwise block; reduction 1/16, ReLU, sigmoid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from benchbench.models._layers import conv_bn, conv_from, fuse_bn, pad_kernel
from benchbench.models._registry import Paper, Published, register_model
from benchbench.models.repvgg import identity_kernel  # the identity map as a kernel: RepVGG's fold, shared

__all__ = ["MobileOneBlock", "MobileOne", "MobileOneConfig"]

PAPER = Paper("MobileOne: An Improved One millisecond Mobile Backbone", 2023, "https://arxiv.org/abs/2206.04040")


class SqueezeExcite(nn.Module):
    """GAP → 1x1 (C → C/16, bias) → ReLU → 1x1 (→ C, bias) → sigmoid → scale: the reference SEBlock."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.expand = nn.Conv2d(hidden, channels, 1)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)  # a mean, not avg_pool2d(kernel=[h, w]): no baked kernel size
        return x * torch.sigmoid(self.expand(F.relu(self.reduce(s))))


class MobileOneBlock(nn.Module):
    """``k`` conv-BN branches, a 1x1 scale branch (kernel > 1) and an identity BN, summed; SE; ReLU.

    ``reparameterize()`` replaces the branches with one biased conv (``self.reparam``).
    """

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, branches: int = 1, se: bool = False
    ):
        super().__init__()
        self.convs = nn.ModuleList(conv_bn(cin, cout, kernel, stride, groups=groups) for _ in range(branches))
        self.scale = conv_bn(cin, cout, 1, stride, groups=groups) if kernel > 1 else None  # pad 0: the centre tap
        self.identity = nn.BatchNorm2d(cin) if cin == cout and stride == 1 else None
        self.se = SqueezeExcite(cout) if se else None
        self.act = nn.ReLU(inplace=True)

    def _trunk(self, x):
        if hasattr(self, "reparam"):
            return self.reparam(x)
        y = self.convs[0](x)
        for conv in self.convs[1:]:
            y = y + conv(x)
        if self.scale is not None:
            y = y + self.scale(x)
        if self.identity is not None:
            y = y + self.identity(x)
        return y

    def forward(self, x):
        y = self._trunk(x)
        if self.se is not None:
            y = self.se(y)
        return self.act(y)

    def equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The kernel and bias that all branches sum to (differentiable)."""
        conv = self.convs[0][0]
        size = conv.kernel_size[0]
        kernel, bias = 0, 0
        for branch in self.convs:
            k, b = fuse_bn(branch[0].weight, None, branch[1])
            kernel, bias = kernel + k, bias + b
        if self.scale is not None:
            k, b = fuse_bn(self.scale[0].weight, None, self.scale[1])
            kernel, bias = kernel + pad_kernel(k, size), bias + b
        if self.identity is not None:
            kid = identity_kernel(conv.in_channels, conv.groups, size, like=kernel)
            k, b = fuse_bn(kid, None, self.identity)
            kernel, bias = kernel + k, bias + b
        return kernel, bias

    def reparameterize(self):
        if hasattr(self, "reparam"):
            return
        kernel, bias = self.equivalent_kernel_bias()
        self.reparam = conv_from(self.convs[0][0], kernel, bias)
        del self.convs, self.scale, self.identity


@dataclass(frozen=True)
class MobileOneConfig:
    """Width multipliers of the four stages, conv branches per block, and whether S4's SE blocks are on."""

    multipliers: tuple[float, float, float, float]
    branches: int = 1
    se: bool = False
    depths: tuple[int, ...] = (2, 8, 10, 1)
    base_widths: tuple[int, ...] = (64, 128, 256, 512)

    def widths(self) -> tuple[int, ...]:
        return tuple(int(b * m) for b, m in zip(self.base_widths, self.multipliers))

    def se_units(self) -> tuple[int, ...]:
        # Reference code: the last half of stage 3 and all of stage 4 (units counted from the stage's end).
        return (0, 0, self.depths[2] // 2, self.depths[3]) if self.se else (0,) * len(self.depths)


class MobileOne(nn.Module):
    """Stem block, four stages of (depthwise 3x3 block, pointwise 1x1 block) units, GAP and a linear head."""

    def __init__(self, cfg: MobileOneConfig, num_classes: int = 1000):
        super().__init__()
        widths = cfg.widths()
        cin = min(64, widths[0])
        self.stem = MobileOneBlock(3, cin, 3, stride=2)  # one branch, as in the reference (no k for the stem)
        stages = []
        for depth, width, n_se in zip(cfg.depths, widths, cfg.se_units()):
            blocks = []
            for j in range(depth):
                se = j >= depth - n_se
                stride = 2 if j == 0 else 1
                blocks.append(MobileOneBlock(cin, cin, 3, stride, groups=cin, branches=cfg.branches, se=se))
                blocks.append(MobileOneBlock(cin, width, 1, 1, branches=cfg.branches, se=se))
                cin = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(self.stages(self.stem(x)).mean((2, 3)))


def _create_mobileone(multipliers, branches: int = 1, se: bool = False) -> MobileOne:
    return MobileOne(MobileOneConfig(tuple(multipliers), branches, se))


_SEED = "reparameterization: k over-parameterized conv-BN branches + 1x1 scale + identity BN → one conv per block"
_PAPER_TABLE = "MobileOne paper, ImageNet comparison table (deploy; its FLOPs are multiply-adds)"


@register_model(
    family="mobileone",
    paper=PAPER,
    seed_design=_SEED + " (k = 4)",
    default=True,
    min_input=32,
    published=(Published(2.1e6, 275e6, "deploy", _PAPER_TABLE),),
)
def mobileone_s0() -> MobileOne:
    """MobileOne-S0: multipliers (0.75, 1, 1, 2), k = 4 conv branches per block."""
    return _create_mobileone((0.75, 1.0, 1.0, 2.0), branches=4)


@register_model(
    family="mobileone",
    paper=PAPER,
    seed_design=_SEED + " (k = 1)",
    min_input=32,
    published=(Published(4.8e6, 825e6, "deploy", _PAPER_TABLE),),
)
def mobileone_s1() -> MobileOne:
    """MobileOne-S1: multipliers (1.5, 1.5, 2, 2.5), k = 1."""
    return _create_mobileone((1.5, 1.5, 2.0, 2.5))


@register_model(
    family="mobileone",
    paper=PAPER,
    seed_design=_SEED + " (k = 1)",
    min_input=32,
    published=(Published(7.8e6, 1.30e9, "deploy", _PAPER_TABLE),),
)
def mobileone_s2() -> MobileOne:
    """MobileOne-S2: multipliers (1.5, 2, 2.5, 4), k = 1."""
    return _create_mobileone((1.5, 2.0, 2.5, 4.0))


@register_model(
    family="mobileone",
    paper=PAPER,
    seed_design=_SEED + " (k = 1)",
    min_input=32,
    published=(Published(10.1e6, 1.90e9, "deploy", _PAPER_TABLE),),
)
def mobileone_s3() -> MobileOne:
    """MobileOne-S3: multipliers (2, 2.5, 3, 4), k = 1."""
    return _create_mobileone((2.0, 2.5, 3.0, 4.0))


@register_model(
    family="mobileone",
    paper=PAPER,
    seed_design=_SEED + " (k = 1, SE in stages 3-4: the SE gate stays at deploy)",
    min_input=32,
    published=(Published(14.8e6, 2.98e9, "deploy", _PAPER_TABLE),),
)
def mobileone_s4() -> MobileOne:
    """MobileOne-S4: multipliers (3, 3.5, 3.5, 4), k = 1, SE in the last 5 units of stage 3 and in stage 4."""
    return _create_mobileone((3.0, 3.5, 3.5, 4.0), se=True)
