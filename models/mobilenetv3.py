"""MobileNetV3: Searching for MobileNetV3 (Howard et al., ICCV 2019, arXiv 1905.02244).

Large 1.0 (paper Table 1) and Small 1.0 (Table 2), in torchvision's layout:

* stem: 3x3 conv, stride 2, to 16 + BN + h-swish;
* bneck (inverted residual): [1x1 expand + BN + act, skipped when exp size == C_in] → k x k
  depthwise (stride) + BN + act → [SE] → 1x1 project + BN (linear); the input is added back when
  stride is 1 and C_in == C_out. act is ReLU ("RE") or h-swish ("HS") per row of the table;
* SE on the expanded width E: mean over H, W → 1x1 to make_divisible(E / 4, 8) (bias) → ReLU →
  1x1 back to E (bias) → hard-sigmoid gate, multiplied into the map;
* last stage: 1x1 conv to 960 (Large) / 576 (Small) + BN + h-swish → global pool → 1x1 (here a
  Linear: the map is 1x1) to 1280 / 1024, no BN + h-swish → dropout → classifier.

h-swish(x) = x * ReLU6(x + 3) / 6 and hard-sigmoid(x) = ReLU6(x + 3) / 6 are ``nn.Hardswish`` and
``nn.Hardsigmoid``. BN eps is 1e-3 (torchvision and the TF reference). Table 2 marks SE on Small's
last 1x1 conv; torchvision (and TF's reference code) has none there, and neither does this model.

Train form: every conv but the SE's and the head's is followed by BN (no conv bias). There is no
structural reparameterization: the deploy form only folds each BN into its conv
(``ConvBN.reparameterize``: W' = W t, b' = beta - mu t, t = gamma / sqrt(var + eps)); activations,
SE and the residual adds are unchanged.

Counting: the paper's "MAdds" (Table 3: Large 219M, Small 56M) are multiply-adds, i.e. MACs in
benchbench's convention (FLOPs = 2 x MACs). torchvision's "0.22 / 0.06 GFLOPS" are also MACs; its
param counts (5,483,032 / 2,542,856) include the BN weights, so they describe the train form.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn
from benchbench.models._layers import ConvBN
from benchbench.models._mobilenetv2 import make_divisible
from benchbench.models._registry import Paper, Published, register_model

__all__ = ["MobileNetV3", "InvertedResidualV3", "SqueezeExcite", "BneckCfg"]

PAPER = Paper("Searching for MobileNetV3", 2019, "https://arxiv.org/abs/1905.02244")
_BN_EPS = 1e-3


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> ConvBN:
    return ConvBN(cin, cout, k, stride, groups=groups, eps=_BN_EPS)


def _act(kind: str) -> nn.Module:
    return nn.Hardswish() if kind == "HS" else nn.ReLU(inplace=True)


class SqueezeExcite(nn.Module):
    """x * gate(fc2(act(fc1(mean_hw(x))))), fc as biased 1x1 convs; MobileNetV3's gate is hard-sigmoid."""

    def __init__(
        self, channels: int, squeeze: int, act: type[nn.Module] = nn.ReLU, gate: type[nn.Module] = nn.Hardsigmoid
    ):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = act()
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = gate()

    def forward(self, x):
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


@dataclass(frozen=True)
class BneckCfg:
    """One row of the paper's Table 1/2: kernel, exp size, #out, SE, NL ("RE"/"HS"), stride."""

    kernel: int
    expanded: int
    cout: int
    se: bool
    act: str
    stride: int


class InvertedResidualV3(nn.Module):
    """[1x1 expand] → k x k depthwise → [SE] → 1x1 linear projection (+ residual)."""

    def __init__(self, cin: int, cfg: BneckCfg):
        super().__init__()
        self.use_res = cfg.stride == 1 and cin == cfg.cout
        e = cfg.expanded
        layers: list[nn.Module] = []
        if e != cin:
            layers += [_conv_bn(cin, e, 1), _act(cfg.act)]
        layers += [_conv_bn(e, e, cfg.kernel, cfg.stride, groups=e), _act(cfg.act)]
        if cfg.se:
            layers.append(SqueezeExcite(e, make_divisible(e // 4, 8)))
        layers.append(_conv_bn(e, cfg.cout, 1))
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        y = self.block(x)
        return x + y if self.use_res else y


class MobileNetV3(nn.Module):
    """Stem → bnecks → 1x1 conv (6 x last width) → pool → Linear + h-swish → classifier."""

    def __init__(self, cfgs: tuple[BneckCfg, ...], last_channel: int, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        cin = 16
        self.stem = nn.Sequential(_conv_bn(3, cin, 3, 2), nn.Hardswish())
        blocks: list[nn.Module] = []
        for cfg in cfgs:
            blocks.append(InvertedResidualV3(cin, cfg))
            cin = cfg.cout
        self.blocks = nn.Sequential(*blocks)
        last_conv = 6 * cin  # 960 for Large, 576 for Small
        self.head = nn.Sequential(_conv_bn(cin, last_conv, 1), nn.Hardswish())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(last_conv, last_channel),
            nn.Hardswish(),
            nn.Dropout(dropout),
            nn.Linear(last_channel, num_classes),
        )

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(self.pool(x).flatten(1))


# Paper Table 1 (Large) and Table 2 (Small): kernel, exp size, #out, SE, NL, stride.
_LARGE = tuple(
    BneckCfg(*row)
    for row in [
        (3, 16, 16, False, "RE", 1),
        (3, 64, 24, False, "RE", 2),
        (3, 72, 24, False, "RE", 1),
        (5, 72, 40, True, "RE", 2),
        (5, 120, 40, True, "RE", 1),
        (5, 120, 40, True, "RE", 1),
        (3, 240, 80, False, "HS", 2),
        (3, 200, 80, False, "HS", 1),
        (3, 184, 80, False, "HS", 1),
        (3, 184, 80, False, "HS", 1),
        (3, 480, 112, True, "HS", 1),
        (3, 672, 112, True, "HS", 1),
        (5, 672, 160, True, "HS", 2),
        (5, 960, 160, True, "HS", 1),
        (5, 960, 160, True, "HS", 1),
    ]
)
_SMALL = tuple(
    BneckCfg(*row)
    for row in [
        (3, 16, 16, True, "RE", 2),
        (3, 72, 24, False, "RE", 2),
        (3, 88, 24, False, "RE", 1),
        (5, 96, 40, True, "HS", 2),
        (5, 240, 40, True, "HS", 1),
        (5, 240, 40, True, "HS", 1),
        (5, 120, 48, True, "HS", 1),
        (5, 144, 48, True, "HS", 1),
        (5, 288, 96, True, "HS", 2),
        (5, 576, 96, True, "HS", 1),
        (5, 576, 96, True, "HS", 1),
    ]
)


def _create(size: str) -> MobileNetV3:
    return MobileNetV3(_LARGE, 1280) if size == "large" else MobileNetV3(_SMALL, 1024)


_COMMON = dict(family="mobilenetv3", paper=PAPER, input_size=(3, 224, 224), min_input=32)
_SEED = "baseline: NAS-found inverted residuals with SE and h-swish, BN folded at deploy"


@register_model(
    seed_design=_SEED + " (Large)",
    default=True,
    published=(Published(5_483_032, 219e6, "train", "paper Table 3 (219M MAdds); torchvision params"),),
    **_COMMON,
)
def mobilenetv3_large_100() -> MobileNetV3:
    """MobileNetV3-Large 1.0: Table 1, 15 bnecks, head 960 → 1280."""
    return _create("large")


@register_model(
    seed_design=_SEED + " (Small)",
    published=(Published(2_542_856, 56e6, "train", "paper Table 3 (56M MAdds); torchvision params"),),
    **_COMMON,
)
def mobilenetv3_small_100() -> MobileNetV3:
    """MobileNetV3-Small 1.0: Table 2, 11 bnecks, head 576 → 1024."""
    return _create("small")
