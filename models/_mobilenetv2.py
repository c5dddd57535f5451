"""A MobileNetV2 backbone (Sandler et al., CVPR 2018) with hooks, shared by the families built on it.

torchvision's layout (3,504,872 parameters at width 1.0). Families swap parts through
:class:`MobileNetV2Hooks`: ``conv`` (a conv with its BN, with ``reparameterize()``), ``act`` (ReLU6
by default), ``attn`` (applied to the block's projected output before the residual add), and ``block``
to replace whole inverted residuals per stage (CondConv in the last stages, say).
``truncate`` drops the last two blocks (the 320-channel block and the 1280 conv), as YOLO-ReT does;
``forward_features`` returns the feature maps at strides 8, 16 and 32 for necks such as RFCR.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn as nn
from benchbench.models._layers import ConvBN

__all__ = ["MobileNetV2", "MobileNetV2Hooks", "InvertedResidual", "MBV2_SETTINGS", "make_divisible"]

# t (expansion), c (channels), n (repeats), s (first stride)
MBV2_SETTINGS = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def make_divisible(v: float, divisor: int = 8) -> int:
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _default_conv(cin, cout, k, stride=1, groups=1) -> nn.Module:
    return ConvBN(cin, cout, k, stride, groups=groups)


def _default_act(channels: int) -> nn.Module:
    return nn.ReLU6(inplace=True)


@dataclass(frozen=True)
class MobileNetV2Hooks:
    conv: Callable[..., nn.Module] = _default_conv
    act: Callable[[int], nn.Module] = _default_act
    attn: Callable[[int], nn.Module] | None = None
    # block(cin, cout, stride, expand, stage_index, hooks) -> module; default InvertedResidual.
    block: Callable[..., nn.Module] | None = None


class InvertedResidual(nn.Module):
    """1x1 expand → act → 3x3 depthwise → act → 1x1 linear projection (+ residual)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, hooks: MobileNetV2Hooks = MobileNetV2Hooks()):
        super().__init__()
        hidden = int(round(cin * expand))
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [hooks.conv(cin, hidden, 1, 1), hooks.act(hidden)]
        layers += [hooks.conv(hidden, hidden, 3, stride, groups=hidden), hooks.act(hidden)]
        layers += [hooks.conv(hidden, cout, 1, 1)]
        self.conv = nn.Sequential(*layers)
        self.attn = hooks.attn(cout) if hooks.attn else nn.Identity()

    def forward(self, x):
        y = self.attn(self.conv(x))
        return x + y if self.use_res else y


class MobileNetV2(nn.Module):
    def __init__(
        self,
        width_mult: float = 1.0,
        num_classes: int = 1000,
        hooks: MobileNetV2Hooks = MobileNetV2Hooks(),
        truncate: bool = False,
        dropout: float = 0.2,
    ):
        super().__init__()
        cin = make_divisible(32 * width_mult)
        self.stem = nn.Sequential(hooks.conv(3, cin, 3, 2), hooks.act(cin))
        settings = MBV2_SETTINGS[:-1] if truncate else MBV2_SETTINGS
        blocks: list[nn.Module] = []
        make = hooks.block or (lambda a, b, st, e, _stage, h: InvertedResidual(a, b, st, e, h))
        stride_after: list[int] = []  # total stride after each block
        for stage, (t, c, n, s) in enumerate(settings):
            cout = make_divisible(c * width_mult)
            for i in range(n):
                stride = s if i == 0 else 1
                blocks.append(make(cin, cout, stride, t, stage, hooks))
                stride_after.append((stride_after[-1] if stride_after else 2) * stride)
                cin = cout
        # The last block at each of strides 8, 16, 32: the multi-scale taps.
        self.tap_indices = [
            max(i for i, s in enumerate(stride_after) if s == target) for target in (8, 16, 32) if target in stride_after
        ]
        self.blocks = nn.Sequential(*blocks)
        if truncate:
            self.last = nn.Identity()
        else:
            last = make_divisible(1280 * max(1.0, width_mult))
            self.last = nn.Sequential(hooks.conv(cin, last, 1, 1), hooks.act(last))
            cin = last
        self.out_channels = cin
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(cin, num_classes))

    def forward_features(self, x) -> list:
        """Feature maps at strides 8, 16 and 32 (the last block of each)."""
        x = self.stem(x)
        feats = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.tap_indices:
                feats.append(x)
        return feats

    def forward(self, x):
        x = self.last(self.blocks(self.stem(x)))
        return self.classifier(self.pool(x).flatten(1))
