"""GhostNet: More Features from Cheap Operations (Han et al., CVPR 2020, arXiv 1911.11907).

GhostNet 1.0x, the paper's Table 7 (the layout of the reference code, huawei-noah's ``ghostnet.py``):

* Ghost module (C_in → C, ratio s = 2): a primary 1x1 conv + BN (+ ReLU) makes m = ceil(C / 2)
  intrinsic maps; a cheap 3x3 depthwise conv + BN (+ ReLU) on them makes m more "ghost" maps;
  the two are concatenated and sliced to C channels (a no-op when C is even, as everywhere here).
* Ghost bottleneck (C_in → mid → C_out): Ghost module with ReLU (expand to mid) → [k x k depthwise
  conv, stride 2, + BN, no activation, on stride-2 rows only] → [SE] → Ghost module without ReLU
  (project to C_out), plus a shortcut: the identity when stride is 1 and C_in == C_out, otherwise
  k x k depthwise (stride) + BN → 1x1 conv + BN.
* SE (MobileNetV3's): mean over H, W → 1x1 to make_divisible(mid / 4, 4) (bias) → ReLU → 1x1 back
  (bias) → hard-sigmoid gate ReLU6(x + 3) / 6.
* stem 3x3 conv, stride 2, to 16 + BN + ReLU; after the bottlenecks a 1x1 conv to 960 + BN + ReLU
  → global pool → 1x1 conv to 1280 (bias, no BN) + ReLU → dropout → FC.

Train form: every conv but the SE's and the head's is followed by BN (no conv bias). There is no
structural reparameterization: the deploy form only folds each BN into its conv
(``ConvBN.reparameterize``: W' = W t, b' = beta - mu t, t = gamma / sqrt(var + eps)); the Ghost
modules' concat, the SE, the activations and the shortcut adds are unchanged.

Counting: the paper's Table 7 "FLOPs" (141M for 1.0x) are multiply-adds, i.e. MACs in benchbench's
convention (FLOPs = 2 x MACs); the paper's 5.2M params include the BN weights (train form).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from benchbench.models._layers import ConvBN
from benchbench.models._mobilenetv2 import make_divisible
from benchbench.models._registry import Paper, Published, register_model
from benchbench.models.mobilenetv3 import SqueezeExcite

__all__ = ["GhostNet", "GhostModule", "GhostBottleneck", "GhostCfg"]

PAPER = Paper("GhostNet: More Features from Cheap Operations", 2020, "https://arxiv.org/abs/1911.11907")


class GhostModule(nn.Module):
    """Primary 1x1 conv to ceil(C / ratio) maps, cheap depthwise conv for the rest, concat → C."""

    def __init__(self, cin: int, cout: int, relu: bool, ratio: int = 2, dw_size: int = 3):
        super().__init__()
        init = math.ceil(cout / ratio)
        self.cout = cout
        self.trim = init * ratio != cout  # decided at build time: the forward has no shape test
        self.primary = ConvBN(cin, init, 1)
        self.cheap = ConvBN(init, init * (ratio - 1), dw_size, groups=init)  # depthwise, multiplier ratio - 1
        self.act = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x):
        x1 = self.act(self.primary(x))
        out = torch.cat([x1, self.act(self.cheap(x1))], 1)
        return out[:, : self.cout] if self.trim else out


@dataclass(frozen=True)
class GhostCfg:
    """One row of the paper's Table 7: kernel, #exp (mid), #out, SE ratio (0 = none), stride."""

    kernel: int
    expanded: int
    cout: int
    se_ratio: float
    stride: int


class GhostBottleneck(nn.Module):
    """Ghost module (ReLU) → [depthwise stride 2] → [SE] → Ghost module (linear), + shortcut."""

    def __init__(self, cin: int, cfg: GhostCfg):
        super().__init__()
        mid, cout, k, stride = cfg.expanded, cfg.cout, cfg.kernel, cfg.stride
        layers: list[nn.Module] = [GhostModule(cin, mid, relu=True)]
        if stride > 1:
            layers.append(ConvBN(mid, mid, k, stride, groups=mid))
        if cfg.se_ratio > 0:
            layers.append(SqueezeExcite(mid, make_divisible(mid * cfg.se_ratio, 4)))
        layers.append(GhostModule(mid, cout, relu=False))
        self.block = nn.Sequential(*layers)
        if stride == 1 and cin == cout:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Sequential(ConvBN(cin, cin, k, stride, groups=cin), ConvBN(cin, cout, 1))

    def forward(self, x):
        return self.block(x) + self.shortcut(x)


class GhostNet(nn.Module):
    """Stem → Ghost bottlenecks → 1x1 conv to 960 → pool → 1x1 conv to 1280 + ReLU → FC."""

    def __init__(self, cfgs: tuple[GhostCfg, ...], head: int = 1280, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        cin = 16
        self.stem = nn.Sequential(ConvBN(3, cin, 3, 2), nn.ReLU(inplace=True))
        blocks: list[nn.Module] = []
        for cfg in cfgs:
            blocks.append(GhostBottleneck(cin, cfg))
            cin = cfg.cout
        self.blocks = nn.Sequential(*blocks)
        last = cfgs[-1].expanded  # 960
        self.last = nn.Sequential(ConvBN(cin, last, 1), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv_head = nn.Conv2d(last, head, 1)  # on the pooled 1x1 map; biased, no BN
        self.act = nn.ReLU(inplace=True)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(head, num_classes))

    def forward(self, x):
        x = self.pool(self.last(self.blocks(self.stem(x))))
        return self.classifier(self.act(self.conv_head(x)).flatten(1))


# Paper Table 7 (GhostNet 1.0x): kernel, #exp, #out, SE ratio, stride. The stem's 16 comes first.
_GHOSTNET_100 = tuple(
    GhostCfg(*row)
    for row in [
        (3, 16, 16, 0, 1),
        (3, 48, 24, 0, 2),
        (3, 72, 24, 0, 1),
        (5, 72, 40, 0.25, 2),
        (5, 120, 40, 0.25, 1),
        (3, 240, 80, 0, 2),
        (3, 200, 80, 0, 1),
        (3, 184, 80, 0, 1),
        (3, 184, 80, 0, 1),
        (3, 480, 112, 0.25, 1),
        (3, 672, 112, 0.25, 1),
        (5, 672, 160, 0.25, 2),
        (5, 960, 160, 0, 1),
        (5, 960, 160, 0.25, 1),
        (5, 960, 160, 0, 1),
        (5, 960, 160, 0.25, 1),
    ]
)


def _create() -> GhostNet:
    return GhostNet(_GHOSTNET_100)


@register_model(
    family="ghostnet",
    paper=PAPER,
    input_size=(3, 224, 224),
    seed_design="cheap features: half the maps from 1x1 convs, half from depthwise convs on them; BN folded at deploy",
    default=True,
    min_input=32,
    published=(Published(5.2e6, 141e6, "train", "paper Table 7 (5.2M params, 141M FLOPs = multiply-adds)"),),
)
def ghostnet_100() -> GhostNet:
    """GhostNet 1.0x: Table 7, 16 Ghost bottlenecks, head 960 → 1280."""
    return _create()
