"""ULSAM: Ultra-Lightweight Subspace Attention Module (Saini et al., WACV 2020, arXiv 2006.15102).

ULSAM splits the C channels into g subspaces and gives each its own spatial attention map
(ZOO_NOTES 7.5; Nandan91/ULSAM ``ulsam.py``): per subspace, ``depthwise 1x1 conv + BN + ReLU →
MaxPool 3x3 s1 → 1x1 conv (C/g → 1) + BN + ReLU → softmax over H·W → x·att + x``, and the
subspaces are concatenated. The paper uses it to *replace* layers of compact CNNs, trading a few
inverted residuals for attention (fewer FLOPs and parameters).

Train form (``ulsam_mobilenetv2``): MobileNetV2 1.0 (the shared ``_mobilenetv2`` backbone) whose two
stride-1 160-channel inverted residuals (7x7 at 224) are replaced, through the block hook, by ULSAM
with g = 4 (the reference's example setting), written as the paper does: a Python loop over the
subspaces (``chunk``, g small branches of ~8 ops, ``cat``).

Deploy form, exact and "defragmented": the g depthwise 1x1 + BN fold into one depthwise 1x1 conv over
all C channels, ReLU and max-pool run once on all of them, the g pointwise convs + BN become one
grouped 1x1 conv ``C → g`` (groups = g), the softmax runs on an (N, g, 1, H·W) view, and the
attention is applied as ``x·(1 + att)`` on an (N, g, C/g, H·W) view: ~8 ops whatever g is.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from benchbench.models._layers import fuse_bn
from benchbench.models._mobilenetv2 import InvertedResidual, MobileNetV2, MobileNetV2Hooks
from benchbench.models._registry import Paper, register_model

__all__ = ["SubSpace", "ULSAM"]

PAPER = Paper(
    "ULSAM: Ultra-Lightweight Subspace Attention Module for Compact Convolutional Neural Networks",
    2020,
    "https://arxiv.org/abs/2006.15102",
)


class SubSpace(nn.Module):
    """One subspace's attention: DW 1x1 + BN + ReLU → max-pool → 1x1 to one map + BN + ReLU → softmax."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv_dw = nn.Conv2d(channels, channels, 1, groups=channels)
        self.bn_dw = nn.BatchNorm2d(channels)
        self.pool = nn.MaxPool2d(3, 1, 1)
        self.conv_pw = nn.Conv2d(channels, 1, 1)
        self.bn_pw = nn.BatchNorm2d(1)

    def forward(self, x):
        a = self.pool(F.relu(self.bn_dw(self.conv_dw(x))))
        a = F.relu(self.bn_pw(self.conv_pw(a)))
        att = torch.softmax(a.flatten(2), dim=2).view_as(a)
        return x * att + x


class ULSAM(nn.Module):
    """g subspace attentions over channel chunks; ``reparameterize()`` batches them into one pass."""

    def __init__(self, channels: int, num_splits: int = 4):
        super().__init__()
        if channels % num_splits:
            raise ValueError(f"ULSAM needs num_splits | channels, got {channels} and {num_splits}")
        self.num_splits = num_splits
        self.subspaces = nn.ModuleList(SubSpace(channels // num_splits) for _ in range(num_splits))

    def forward(self, x):
        if not hasattr(self, "subspaces"):
            return self._forward_batched(x)
        chunks = torch.chunk(x, self.num_splits, dim=1)
        return torch.cat([sub(c) for sub, c in zip(self.subspaces, chunks)], dim=1)

    def _forward_batched(self, x):
        n, c, h, w = x.shape
        g = self.num_splits
        a = F.relu(self.conv_pw(self.pool(F.relu(self.conv_dw(x)))))  # (N, g, H, W)
        att = torch.softmax(a.view(n, g, 1, h * w), dim=-1)
        return (x.view(n, g, c // g, h * w) * (1 + att)).view(n, c, h, w)  # x·att + x, one Mul on the big tensor

    def reparameterize(self):
        if not hasattr(self, "subspaces"):
            return
        dw = [fuse_bn(s.conv_dw.weight, s.conv_dw.bias, s.bn_dw) for s in self.subspaces]
        pw = [fuse_bn(s.conv_pw.weight, s.conv_pw.bias, s.bn_pw) for s in self.subspaces]
        dw_kernel = torch.cat([k for k, _ in dw])  # (C, 1, 1, 1): depthwise over all C channels
        self.conv_dw = _conv(dw_kernel, torch.cat([b for _, b in dw]), groups=dw_kernel.shape[0])
        self.conv_pw = _conv(torch.cat([k for k, _ in pw]), torch.cat([b for _, b in pw]), groups=len(pw))
        self.pool = nn.MaxPool2d(3, 1, 1)
        del self.subspaces


def _conv(kernel: torch.Tensor, bias: torch.Tensor, groups: int) -> nn.Conv2d:
    """A biased 1x1 conv holding ``kernel`` (C_out, C_in/groups, 1, 1)."""
    conv = nn.Conv2d(kernel.shape[1] * groups, kernel.shape[0], 1, groups=groups)
    conv = conv.to(dtype=kernel.dtype, device=kernel.device)
    conv.weight.data, conv.bias.data = kernel.detach().contiguous(), bias.detach().contiguous()
    return conv


def _make_block(cin, cout, stride, expand, stage, hooks: MobileNetV2Hooks, num_splits: int = 4):
    # Stage 5 (160 channels, 7x7 at 224): its two stride-1 blocks become ULSAM; the first keeps
    # the stride and the 96 → 160 width change.
    if stage == 5 and cin == cout and stride == 1:
        return ULSAM(cin, num_splits)
    return InvertedResidual(cin, cout, stride, expand, hooks)


@register_model(
    family="ulsam",
    paper=PAPER,
    seed_design="fragmentation: g-way subspace attention as a Python loop (train) vs one batched grouped pass (deploy)",
    default=True,
)
def ulsam_mobilenetv2() -> MobileNetV2:
    """MobileNetV2 1.0 with its two stride-1 160-channel blocks replaced by ULSAM (g = 4)."""
    return MobileNetV2(hooks=MobileNetV2Hooks(block=_make_block))
