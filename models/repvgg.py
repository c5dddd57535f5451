"""RepVGG: Making VGG-style ConvNets Great Again (Ding et al., CVPR 2021, arXiv 2101.03697).

Train form: a plain stack of RepVGG blocks in five stages (the first block of each stage has stride
2), then global average pooling and a linear classifier. Each block is
``ReLU(BN(conv3x3(x)) + BN(conv1x1(x)) + BN(x))``; the identity-BN branch exists only where the block
keeps its channels and has stride 1.

Deploy form: every block is one 3x3 conv with bias, then ReLU. Each branch's BN folds into its
kernel, the 1x1 kernel is zero-padded to a 3x3 centre tap, the identity becomes a 3x3 kernel with a
1 at the centre of its own channel, and the three kernels and biases add up (ZOO_NOTES 2.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from benchbench.models._layers import conv_bn, conv_from, fuse_bn, pad_kernel
from benchbench.models._registry import Paper, Published, register_model

__all__ = ["identity_kernel", "RepVGGBlock", "RepVGG", "RepVGGConfig"]

PAPER = Paper("RepVGG: Making VGG-style ConvNets Great Again", 2021, "https://arxiv.org/abs/2101.03697")


def identity_kernel(channels: int, groups: int, size: int, like: torch.Tensor) -> torch.Tensor:
    """The size x size kernel of the identity map: a centre 1 at [i, i mod (C/g)] (handles groups)."""
    per_group = channels // groups
    kernel = torch.zeros(channels, per_group, size, size, dtype=like.dtype, device=like.device)
    idx = torch.arange(channels, device=like.device)
    kernel[idx, idx % per_group, size // 2, size // 2] = 1
    return kernel


class RepVGGBlock(nn.Module):
    """3x3+BN, 1x1+BN and (where shapes allow) identity-BN branches, summed, then ReLU.

    ``reparameterize()`` replaces the branches with one biased 3x3 conv (``self.reparam``).
    """

    def __init__(self, cin: int, cout: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.dense = conv_bn(cin, cout, 3, stride, groups=groups)
        self.pointwise = conv_bn(cin, cout, 1, stride, groups=groups)  # pad 0: lines up with the 3x3's centre tap
        self.identity = nn.BatchNorm2d(cin) if cin == cout and stride == 1 else None
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        if hasattr(self, "reparam"):
            return self.act(self.reparam(x))
        y = self.dense(x) + self.pointwise(x)
        if self.identity is not None:
            y = y + self.identity(x)
        return self.act(y)

    def equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The 3x3 kernel and bias that the three branches sum to (differentiable)."""
        k3, b3 = fuse_bn(self.dense[0].weight, None, self.dense[1])
        k1, b1 = fuse_bn(self.pointwise[0].weight, None, self.pointwise[1])
        kernel, bias = k3 + pad_kernel(k1, 3), b3 + b1
        if self.identity is not None:
            conv = self.dense[0]
            kid = identity_kernel(conv.in_channels, conv.groups, 3, like=k3)
            kid, bid = fuse_bn(kid, None, self.identity)
            kernel, bias = kernel + kid, bias + bid
        return kernel, bias

    def reparameterize(self):
        if hasattr(self, "reparam"):
            return
        kernel, bias = self.equivalent_kernel_bias()
        self.reparam = conv_from(self.dense[0], kernel, bias)
        del self.dense, self.pointwise, self.identity


class RepVGG(nn.Module):
    """Five stages of RepVGG blocks (first block of each stage strided), GAP and a linear head."""

    def __init__(self, cfg: RepVGGConfig, num_classes: int = 1000):
        super().__init__()
        widths = cfg.widths()
        stages, cin = [], 3
        for depth, width in zip(cfg.depths, widths):
            blocks = []
            for j in range(depth):
                blocks.append(RepVGGBlock(cin, width, stride=2 if j == 0 else 1))
                cin = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.stages(x)).flatten(1))


@dataclass(frozen=True)
class RepVGGConfig:
    """Width multipliers a (stages 1-3) and b (stage 4), and blocks per stage (stage 0 first)."""

    a: float
    b: float
    depths: tuple[int, ...]

    def widths(self) -> tuple[int, ...]:
        # Stage 0 is min(64, 64a) wide; the last stage is scaled by b (paper Sec. 3.4).
        return (
            min(64, int(64 * self.a)),
            int(64 * self.a),
            int(128 * self.a),
            int(256 * self.a),
            int(512 * self.b),
        )


_DEPTHS_A = (1, 2, 4, 14, 1)
_DEPTHS_B = (1, 4, 6, 16, 1)
_SEED = "reparameterization: 3x3+BN, 1x1+BN and identity-BN branches → one 3x3 conv per block"
_TABLE4 = "RepVGG paper Table 4 (deploy)"


@register_model(
    family="repvgg",
    paper=PAPER,
    seed_design=_SEED,
    default=True,
    published=(
        Published(8.30e6, 1.4e9, "deploy", _TABLE4),
        Published(9.11e6, 1.52e9, "train", "timm / mmcls (train form)"),
    ),
)
def repvgg_a0() -> RepVGG:
    """RepVGG-A0: a = 0.75, b = 2.5, depths 1-2-4-14-1."""
    return RepVGG(RepVGGConfig(0.75, 2.5, _DEPTHS_A))


@register_model(
    family="repvgg",
    paper=PAPER,
    seed_design=_SEED,
    published=(Published(12.78e6, 2.4e9, "deploy", _TABLE4),),
)
def repvgg_a1() -> RepVGG:
    """RepVGG-A1: a = 1, b = 2.5, depths 1-2-4-14-1."""
    return RepVGG(RepVGGConfig(1.0, 2.5, _DEPTHS_A))


@register_model(
    family="repvgg",
    paper=PAPER,
    seed_design=_SEED,
    published=(Published(14.33e6, 3.1e9, "deploy", _TABLE4),),
)
def repvgg_b0() -> RepVGG:
    """RepVGG-B0: a = 1, b = 2.5, depths 1-4-6-16-1."""
    return RepVGG(RepVGGConfig(1.0, 2.5, _DEPTHS_B))
