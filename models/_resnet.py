"""A ResNet backbone (He et al., CVPR 2016) with hooks, shared by every family built on ResNet.

The torchvision layout (7x7 stem, 3x3 max-pool, four stages, BasicBlock or Bottleneck, stride on the
3x3), so ``resnet18``/``resnet50`` match the standard 11.69M / 25.56M parameters. Families swap parts
through :class:`ResNetHooks`:

* ``conv(cin, cout, k, stride, groups)``: a conv *with its BN* (train form); must have an idempotent
  ``reparameterize()``. Default :class:`ConvBN`. DBB, DO-Conv and PSConv replace it (usually only
  where ``k > 1``), SK replaces the 3x3.
* ``act(channels)``: the activation module. Default ReLU; ACON replaces it.
* ``attn(channels)``: applied to the residual branch before the add (SE), or ``None``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn as nn
from benchbench.models._layers import ConvBN

__all__ = ["ResNet", "ResNetHooks", "BasicBlock", "Bottleneck", "resnet_layers"]


def _default_conv(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Module:
    return ConvBN(cin, cout, k, stride, groups=groups)


def _default_act(channels: int) -> nn.Module:
    return nn.ReLU(inplace=True)


@dataclass(frozen=True)
class ResNetHooks:
    conv: Callable[..., nn.Module] = _default_conv
    act: Callable[[int], nn.Module] = _default_act
    attn: Callable[[int], nn.Module] | None = None
    # The 1x1 downsample shortcut; defaults to ``conv`` (families that only change k > 1 convs
    # should route k == 1 back to ConvBN themselves).
    shortcut_conv: Callable[..., nn.Module] | None = None


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, hooks: ResNetHooks):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = hooks.conv(cin, planes, 3, stride)
        self.act1 = hooks.act(planes)
        self.conv2 = hooks.conv(planes, cout, 3, 1)
        self.attn = hooks.attn(cout) if hooks.attn else nn.Identity()
        self.shortcut = _shortcut(cin, cout, stride, hooks)
        self.act2 = hooks.act(cout)

    def forward(self, x):
        y = self.attn(self.conv2(self.act1(self.conv1(x))))
        return self.act2(y + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, hooks: ResNetHooks):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = hooks.conv(cin, planes, 1, 1)
        self.act1 = hooks.act(planes)
        self.conv2 = hooks.conv(planes, planes, 3, stride)
        self.act2 = hooks.act(planes)
        self.conv3 = hooks.conv(planes, cout, 1, 1)
        self.attn = hooks.attn(cout) if hooks.attn else nn.Identity()
        self.shortcut = _shortcut(cin, cout, stride, hooks)
        self.act3 = hooks.act(cout)

    def forward(self, x):
        y = self.act2(self.conv2(self.act1(self.conv1(x))))
        y = self.attn(self.conv3(y))
        return self.act3(y + self.shortcut(x))


def _shortcut(cin: int, cout: int, stride: int, hooks: ResNetHooks) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return (hooks.shortcut_conv or hooks.conv)(cin, cout, 1, stride)


def resnet_layers(depth: int) -> tuple[type[nn.Module], list[int]]:
    """Block type and blocks per stage of the standard depths."""
    return {
        18: (BasicBlock, [2, 2, 2, 2]),
        34: (BasicBlock, [3, 4, 6, 3]),
        26: (Bottleneck, [2, 2, 2, 2]),
        50: (Bottleneck, [3, 4, 6, 3]),
        101: (Bottleneck, [3, 4, 23, 3]),
    }[depth]


class ResNet(nn.Module):
    def __init__(
        self,
        depth: int = 18,
        hooks: ResNetHooks = ResNetHooks(),
        num_classes: int = 1000,
        widths: tuple[int, ...] = (64, 128, 256, 512),
        stem_conv: Callable[..., nn.Module] | None = None,
    ):
        super().__init__()
        block, counts = resnet_layers(depth)
        self.stem = nn.Sequential(
            (stem_conv or hooks.conv)(3, widths[0], 7, 2),
            hooks.act(widths[0]),
            nn.MaxPool2d(3, 2, 1),
        )
        stages, cin = [], widths[0]
        for i, (planes, n) in enumerate(zip(widths, counts)):
            blocks = []
            for j in range(n):
                blocks.append(block(cin, planes, 2 if (j == 0 and i > 0) else 1, hooks))
                cin = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.stages(self.stem(x))).flatten(1))
