"""EfficientNetV2's MBConv vs Fused-MBConv ladder (Tan & Le, ICML 2021, arXiv 2104.00298, Table 3).

The paper's Table 3 replaces MBConv by Fused-MBConv in stages 1-3, 1-5 and 1-7 of EfficientNet-B4
and finds early fused stages faster on accelerators at little cost, all-fused slower and larger.
This ladder repeats that experiment on an EfficientNetV2-S-like network: V2-S's stem (24, stride 2),
stage widths, strides, expansion ratios and head (1x1 to 1280), with each stage's depth halved
(rounded up: 1, 2, 2, 3, 5, 8 blocks instead of 2, 4, 4, 6, 9, 15) to keep tests fast. Only the
block type changes between members:

* MBConv: 1x1 expand + BN + SiLU → 3x3 depthwise (stride) + BN + SiLU → SE (squeeze to C_in/4,
  SiLU, sigmoid gate) → 1x1 project + BN; the expand is skipped when the ratio is 1.
* Fused-MBConv: 3x3 full conv expand (stride) + BN + SiLU → 1x1 project + BN, no SE; with
  ratio 1 it is a single 3x3 conv + BN + SiLU.

Both add the input back when stride is 1 and C_in == C_out (stochastic depth is the identity at
inference and is left out). BN eps is 1e-3, as in EfficientNetV2. Input 224 for every member.

Train form: conv + BN everywhere. Deploy form: every BN folded into its conv; SE and SiLU unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn
from benchbench.models._layers import ConvBN
from benchbench.models._registry import Paper, register_model

__all__ = ["EffNetV2", "MBConv", "FusedMBConv", "StageCfg"]

PAPER = Paper("EfficientNetV2: Smaller Models and Faster Training", 2021, "https://arxiv.org/abs/2104.00298")
_BN_EPS = 1e-3


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> ConvBN:
    return ConvBN(cin, cout, k, stride, groups=groups, eps=_BN_EPS)


def _conv_bn_act(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(_conv_bn(cin, cout, k, stride, groups), nn.SiLU(inplace=True))


class SqueezeExcite(nn.Module):
    """x * sigmoid(fc2(SiLU(fc1(mean_hw(x))))), fc as biased 1x1 convs."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = nn.SiLU(inplace=True)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


class MBConv(nn.Module):
    """Inverted residual with SE: [1x1 expand] → 3x3 depthwise → SE → 1x1 project (linear)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, kernel: int = 3, se_ratio: float = 0.25):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn_act(cin, hidden, 1))
        layers.append(_conv_bn_act(hidden, hidden, kernel, stride, groups=hidden))
        layers.append(SqueezeExcite(hidden, max(1, int(cin * se_ratio))))  # squeeze relative to C_in
        layers.append(_conv_bn(hidden, cout, 1))
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        y = self.block(x)
        return x + y if self.use_res else y


class FusedMBConv(nn.Module):
    """3x3 full conv expand (stride) → 1x1 project (linear); a single 3x3 conv when expand is 1."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, kernel: int = 3):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        if expand == 1:
            self.block = _conv_bn_act(cin, cout, kernel, stride)
        else:
            self.block = nn.Sequential(_conv_bn_act(cin, hidden, kernel, stride), _conv_bn(hidden, cout, 1))

    def forward(self, x):
        y = self.block(x)
        return x + y if self.use_res else y


@dataclass(frozen=True)
class StageCfg:
    expand: int
    stride: int
    cin: int
    cout: int
    depth: int
    kernel: int = 3


class EffNetV2(nn.Module):
    """Stem → stages (Fused-MBConv where ``fused[i]``, else MBConv) → 1x1 head conv → pool → classifier."""

    def __init__(
        self,
        stages: tuple[StageCfg, ...],
        fused: tuple[bool, ...],
        head: int = 1280,
        num_classes: int = 1000,
        dropout: float = 0.2,
    ):
        super().__init__()
        self.stem = _conv_bn_act(3, stages[0].cin, 3, 2)
        blocks: list[nn.Module] = []
        for cfg, is_fused in zip(stages, fused, strict=True):
            for i in range(cfg.depth):
                cin, stride = (cfg.cin, cfg.stride) if i == 0 else (cfg.cout, 1)
                if is_fused:
                    blocks.append(FusedMBConv(cin, cfg.cout, stride, cfg.expand, cfg.kernel))
                else:
                    blocks.append(MBConv(cin, cfg.cout, stride, cfg.expand, cfg.kernel))
        self.blocks = nn.Sequential(*blocks)
        self.head = _conv_bn_act(stages[-1].cout, head, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(head, num_classes))

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(self.pool(x).flatten(1))


def _halved(depth: int) -> int:
    return (depth + 1) // 2


# EfficientNetV2-S (paper Table 4): expand, stride, in, out, depth. Depths halved, rounded up.
_V2S_STAGES = tuple(
    StageCfg(e, s, cin, cout, _halved(n))
    for e, s, cin, cout, n in [
        (1, 1, 24, 24, 2),
        (4, 2, 24, 48, 4),
        (4, 2, 48, 64, 4),
        (4, 2, 64, 128, 6),
        (6, 1, 128, 160, 9),
        (6, 2, 160, 256, 15),
    ]
)


def _create(n_fused: int) -> EffNetV2:
    """The ladder member with stages 1..n_fused as Fused-MBConv, the rest MBConv."""
    return EffNetV2(_V2S_STAGES, tuple(i < n_fused for i in range(len(_V2S_STAGES))))


_COMMON = dict(family="effnetv2", paper=PAPER, input_size=(3, 224, 224), min_input=32)


@register_model(seed_design="block type: all MBConv (depthwise + SE)", default=True, **_COMMON)
def effnetv2_nofused() -> EffNetV2:
    """EfficientNetV2-S-like (halved depths), every stage MBConv."""
    return _create(0)


@register_model(seed_design="block type: Fused-MBConv in stages 1-3 (EfficientNetV2-S's choice)", **_COMMON)
def effnetv2_fused13() -> EffNetV2:
    """EfficientNetV2-S-like (halved depths), stages 1-3 Fused-MBConv, 4-6 MBConv."""
    return _create(3)


@register_model(seed_design="block type: Fused-MBConv in stages 1-5", **_COMMON)
def effnetv2_fused15() -> EffNetV2:
    """EfficientNetV2-S-like (halved depths), stages 1-5 Fused-MBConv, 6 MBConv."""
    return _create(5)


@register_model(seed_design="block type: Fused-MBConv in every stage", **_COMMON)
def effnetv2_fusedall() -> EffNetV2:
    """EfficientNetV2-S-like (halved depths), every stage Fused-MBConv."""
    return _create(6)
