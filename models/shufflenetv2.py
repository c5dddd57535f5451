"""ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design (Ma et al., ECCV 2018, arXiv 1807.11164).

Layout (paper Table 5): a 3x3 stride-2 conv to 24 channels, 3x3 stride-2 max-pool, three stages of
(4, 8, 4) units, a 1x1 conv to 1024 (2048 for 2.0x) channels, global average pooling and a linear
classifier. Every conv is followed by BN; ReLU follows the stem, the 1x1 convs and the last conv,
never the depthwise 3x3 (the paper's Fig. 3).

* Basic unit (stride 1): channel split into two halves; the left half passes through, the right
  half goes through 1x1 conv-BN-ReLU → 3x3 depthwise conv-BN → 1x1 conv-BN-ReLU; concat; channel
  shuffle with 2 groups.
* Downsampling unit (stride 2, first of each stage): no split. Left branch 3x3 depthwise stride-2
  conv-BN → 1x1 conv-BN-ReLU; right branch as above with the depthwise conv strided; each branch
  gives half the output channels; concat; shuffle.

Channel shuffle is reshape (N, 2, C/2, H, W) → transpose(1, 2) → reshape (N, C, H, W): static
shapes, no gather, so it exports to ONNX (Reshape/Transpose) and TFLite (RESHAPE/TRANSPOSE).

There is no structural reparameterization in ShuffleNetV2. Train form: conv + BN everywhere. Deploy
form: each BN folded into its conv (``ConvBN.reparameterize``: W' = W t, b' = beta - mu t,
t = gamma / sqrt(var + eps)); the split, concat and shuffle are unchanged, so the pair measures only
what BN folding is worth.

Counting: the paper's "FLOPs" are multiply-adds (its Table 5 gives 146M for 1.0x; the conv/linear MAC
count of ``benchbench.metrics.count_model`` at 224x224 is 144.9M), so they are compared as MACs:
0.5x 40.5M vs 41M, 1.0x 144.9M vs 146M, 1.5x 295.8M vs 299M, 2.0x 583.3M vs 591M. Parameters match
torchvision's ``shufflenet_v2_x*`` (train form, BN included) exactly: 0.5x 1,366,792; 1.0x 2,278,604;
1.5x 3,503,624; 2.0x 7,393,996. The paper's rounded 1.4M / 2.3M / 3.5M / 7.4M are checked against
the deploy form (folding a BN of C channels removes C parameters: under 0.5% in all), though at that rounding
they cannot tell the forms apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from benchbench.models._layers import ConvBN
from benchbench.models._registry import Paper, Published, register_model

__all__ = ["ShuffleUnit", "ShuffleNetV2", "ShuffleNetV2Config", "channel_shuffle"]

PAPER = Paper(
    "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design",
    2018,
    "https://arxiv.org/abs/1807.11164",
)


def channel_shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    """Interleave ``groups`` channel groups: (N, g, C/g, H, W) → transpose → (N, C, H, W)."""
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def _pw_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(ConvBN(cin, cout, 1), nn.ReLU(inplace=True))


class ShuffleUnit(nn.Module):
    """ShuffleNetV2 unit: split (stride 1) or two branches (stride 2), concat, channel shuffle."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        half = cout // 2
        self.stride = stride
        if stride == 1:
            assert cin == cout, "a stride-1 unit keeps its width"
            self.left = None
            right_in = half
        else:
            self.left = nn.Sequential(ConvBN(cin, cin, 3, stride, groups=cin), *_pw_relu(cin, half))
            right_in = cin
        self.right = nn.Sequential(
            *_pw_relu(right_in, half),
            ConvBN(half, half, 3, stride, groups=half),  # no ReLU after the depthwise conv
            *_pw_relu(half, half),
        )

    def forward(self, x):
        if self.left is None:
            a, b = x.chunk(2, dim=1)
            y = torch.cat((a, self.right(b)), 1)
        else:
            y = torch.cat((self.left(x), self.right(x)), 1)
        return channel_shuffle(y, 2)


@dataclass(frozen=True)
class ShuffleNetV2Config:
    """Output widths of the three stages and of the last 1x1 conv, and units per stage."""

    widths: tuple[int, int, int, int]
    repeats: tuple[int, int, int] = (4, 8, 4)
    stem: int = 24


class ShuffleNetV2(nn.Module):
    """Stem conv + max-pool, three stages of shuffle units, a 1x1 conv, GAP and a linear head."""

    def __init__(self, cfg: ShuffleNetV2Config, num_classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential(ConvBN(3, cfg.stem, 3, 2), nn.ReLU(inplace=True))
        self.pool = nn.MaxPool2d(3, 2, 1)
        stages, cin = [], cfg.stem
        for repeats, width in zip(cfg.repeats, cfg.widths[:3]):
            units = [ShuffleUnit(cin, width, 2)] + [ShuffleUnit(width, width, 1) for _ in range(repeats - 1)]
            stages.append(nn.Sequential(*units))
            cin = width
        self.stages = nn.Sequential(*stages)
        self.head = _pw_relu(cin, cfg.widths[3])
        self.fc = nn.Linear(cfg.widths[3], num_classes)

    def forward(self, x):
        x = self.stages(self.pool(self.stem(x)))
        return self.fc(self.head(x).mean((2, 3)))


def _create_shufflenetv2(widths) -> ShuffleNetV2:
    return ShuffleNetV2(ShuffleNetV2Config(tuple(widths)))


_SEED = "baseline: channel split + shuffle, depthwise 3x3; no structural reparameterization, BN folded at deploy"
_TABLE5 = "ShuffleNetV2 paper Table 5 (its FLOPs are multiply-adds; params rounded to 0.1M)"
_TV = "torchvision shufflenet_v2 (exact params, train form: BN weights included)"


@register_model(
    family="shufflenetv2",
    paper=PAPER,
    seed_design=_SEED + " (0.5x)",
    min_input=32,
    published=(Published(1.4e6, 41e6, "deploy", _TABLE5), Published(1.366792e6, 41e6, "train", _TV)),
)
def shufflenetv2_x0_5() -> ShuffleNetV2:
    """ShuffleNetV2 0.5x: stage widths 48-96-192, last conv 1024."""
    return _create_shufflenetv2((48, 96, 192, 1024))


@register_model(
    family="shufflenetv2",
    paper=PAPER,
    seed_design=_SEED + " (1.0x)",
    default=True,
    min_input=32,
    published=(Published(2.3e6, 146e6, "deploy", _TABLE5), Published(2.278604e6, 146e6, "train", _TV)),
)
def shufflenetv2_x1_0() -> ShuffleNetV2:
    """ShuffleNetV2 1.0x: stage widths 116-232-464, last conv 1024."""
    return _create_shufflenetv2((116, 232, 464, 1024))


@register_model(
    family="shufflenetv2",
    paper=PAPER,
    seed_design=_SEED + " (1.5x)",
    min_input=32,
    published=(Published(3.5e6, 299e6, "deploy", _TABLE5), Published(3.503624e6, 299e6, "train", _TV)),
)
def shufflenetv2_x1_5() -> ShuffleNetV2:
    """ShuffleNetV2 1.5x: stage widths 176-352-704, last conv 1024."""
    return _create_shufflenetv2((176, 352, 704, 1024))


@register_model(
    family="shufflenetv2",
    paper=PAPER,
    seed_design=_SEED + " (2.0x)",
    min_input=32,
    published=(Published(7.4e6, 591e6, "deploy", _TABLE5), Published(7.393996e6, 591e6, "train", _TV)),
)
def shufflenetv2_x2_0() -> ShuffleNetV2:
    """ShuffleNetV2 2.0x: stage widths 244-488-976, last conv 2048."""
    return _create_shufflenetv2((244, 488, 976, 2048))
