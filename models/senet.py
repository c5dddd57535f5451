"""SENet: Squeeze-and-Excitation Networks (Hu et al., CVPR 2018, arXiv 1709.01507).

An SE block rescales the channels of a residual branch before the shortcut add:
``y = x · σ(W2 δ(W1 mean_HW(x) + b1) + b2)``, with W1: C → C/16 and W2: C/16 → C (r = 16).
Both FCs are 1x1 convs on the pooled (N, C, 1, 1) tensor, so the block stays 4-D end to end.

Train form: the shared ResNet (``_resnet.ResNet``) with ``ResNetHooks(attn=SqueezeExcite)``.
Deploy form: every conv's BN folded. The SE block itself has nothing to fold (its FCs carry plain
biases, and the sigmoid gate depends on the input), so it is identical in both forms: what the pair
measures is the cost of the extra GAP → FC → ReLU → FC → sigmoid → Mul chain per block.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from benchbench.models._registry import Paper, Published, register_model
from benchbench.models._resnet import ResNet, ResNetHooks

__all__ = ["SqueezeExcite"]

PAPER = Paper("Squeeze-and-Excitation Networks", 2018, "https://arxiv.org/abs/1709.01507")


class SqueezeExcite(nn.Module):
    """Channel gate: GAP → FC (C → C/r) → ReLU → FC (C/r → C) → sigmoid → scale the input."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)  # a mean, not avg_pool2d(kernel=W): no baked kernel size in exports
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


def _create_se_resnet(depth: int) -> ResNet:
    return ResNet(depth, ResNetHooks(attn=SqueezeExcite))


_SEED = "attention: an SE gate (GAP, 2 FCs, sigmoid, Mul) on every residual branch; only BN folds at deploy"


@register_model(family="senet", paper=PAPER, seed_design=_SEED, default=True)
def se_resnet18() -> ResNet:
    """SE-ResNet-18: ResNet-18 with an SE block (r = 16) after each BasicBlock's second conv."""
    return _create_se_resnet(18)


@register_model(
    family="senet",
    paper=PAPER,
    seed_design=_SEED,
    # SE paper Table 2 (params); the paper's 3.87 GFLOPs is another counting convention, the
    # timm-style count (conv/linear MACs, what FlopCounterMode counts) is 4.11 G (ZOO_NOTES 7.3).
    published=(Published(28.1e6, 4.11e9, "train", "SE paper (params) / timm count (MACs), ZOO_NOTES 7.3"),),
)
def se_resnet50() -> ResNet:
    """SE-ResNet-50: ResNet-50 with an SE block (r = 16) after each Bottleneck's third conv."""
    return _create_se_resnet(50)
