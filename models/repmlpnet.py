"""RepMLPNet: Hierarchical Vision MLP with Re-parameterized Locality (Ding et al., CVPR 2022, arXiv 2112.11081).

A hierarchical MLP: a 4x4 patch-embedding conv, four stages of units ``x + RepMLPBlock(BN(x))`` then
``+ FFN(BN(·))``, 2x2 stride-2 convs between stages, and a BN → GAP → Linear head. A RepMLPBlock is

* a global perceptron, ``σ(fc2(ReLU(fc1(GAP(x)))))`` with fc1: C → C/4, multiplied into the output
  (kept at deploy);
* a channel perceptron ``fc3``: one (h·w) × (h·w) FC over the spatial positions per shareset, channel
  c using shareset ``c mod S`` (a grouped 1x1 conv over rows of S·h·w values), then ``BN(S)``;
* in the train form only, a local perceptron: depthwise (over the S sharesets) 1x1 and 3x3 convs,
  each with BN, added to fc3's output.

Deploy ("locality injection"): the BNs and the conv branches are merged into fc3, a biased grouped
FC. A k x k conv on an h x w map is a linear map of the map, so it is found by convolving the
identity (one one-hot probe per position). We also fold every conv-BN, ``prebn2`` into the FFN's
first 1x1 and the head BN into the classifier. ``prebn1`` stays: its per-channel scale cannot enter
fc3, whose weight is shared by the C/S channels of a shareset.

The resolution is fixed: fc3 is sized by the feature map. As in the paper's configurations at
their own resolution, each stage's partition is its whole feature map (h = H/4, H/8, H/16, H/32),
so the reference's 6-D partition permute is the identity and every reshape here is 4-D. The
factory takes ``input_size`` and sizes the FCs by it; H and W must be multiples of 32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from benchbench.models._layers import ConvBN, fuse_bn, pad_kernel
from benchbench.models._registry import Paper, Published, register_model

__all__ = ["RepMLPBlock", "RepMLPNet", "RepMLPNetCfg"]

PAPER = Paper(
    "RepMLPNet: Hierarchical Vision MLP with Re-parameterized Locality", 2022, "https://arxiv.org/abs/2112.11081"
)


def _kernel_bias(m: ConvBN) -> tuple[torch.Tensor, torch.Tensor]:
    """The (BN-folded) kernel and bias of a ConvBN, whether or not it was reparameterized already."""
    m.reparameterize()
    return m.conv.weight, m.conv.bias


class GlobalPerceptron(nn.Module):
    """SE-like channel gate: GAP → fc1 (C → C/r) → ReLU → fc2 → sigmoid."""

    def __init__(self, channels: int, reduce: int = 4):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduce, 1)
        self.fc2 = nn.Conv2d(channels // reduce, channels, 1)

    def forward(self, x):
        return torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


class RepMLPBlock(nn.Module):
    """Global perceptron × (channel-perceptron FC + local conv branches) on an h x w map.

    ``reparameterize()`` merges fc3's BN and the conv branches into one biased fc3.
    """

    def __init__(self, channels: int, h: int, w: int, sharesets: int, conv_k: tuple[int, ...] = (1, 3),
                 gp_reduce: int = 4):
        super().__init__()
        if channels % sharesets:
            raise ValueError(f"{channels} channels do not split into {sharesets} sharesets")
        self.h, self.w, self.S = h, w, sharesets
        self.gp = GlobalPerceptron(channels, gp_reduce)
        hw = h * w
        self.fc3 = nn.Conv2d(sharesets * hw, sharesets * hw, 1, groups=sharesets, bias=False)
        self.fc3_bn = nn.BatchNorm2d(sharesets)
        self.local = nn.ModuleList(ConvBN(sharesets, sharesets, k, groups=sharesets) for k in conv_k)

    def forward(self, x):
        n, c, h, w = x.shape
        rows = x.reshape(-1, self.S * h * w, 1, 1)  # channel c lands in slot c mod S of row c // S
        y = self.fc3(rows).reshape(-1, self.S, h, w)
        if hasattr(self, "fc3_bn"):
            y = self.fc3_bn(y)
            z = x.reshape(-1, self.S, h, w)
            for branch in self.local:
                y = y + branch(z)
        return y.reshape(n, c, h, w) * self.gp(x)

    def reparameterize(self):
        if not hasattr(self, "fc3_bn"):
            return
        hw = self.h * self.w
        bn = self.fc3_bn
        t = bn.weight / (bn.running_var + bn.eps).sqrt()
        weight = self.fc3.weight * t.repeat_interleave(hw).reshape(-1, 1, 1, 1)
        bias = (bn.bias - bn.running_mean * t).repeat_interleave(hw)
        if len(self.local):
            size = max(b.conv.kernel_size[0] for b in self.local)
            kernel = sum(pad_kernel(_kernel_bias(b)[0], size) for b in self.local)
            conv_bias = sum(_kernel_bias(b)[1] for b in self.local)
            weight = weight + self._conv_as_fc(kernel)
            bias = bias + conv_bias.repeat_interleave(hw)
        self.fc3 = nn.Conv2d(self.S * hw, self.S * hw, 1, groups=self.S).to(weight)
        self.fc3.weight.data, self.fc3.bias.data = weight.detach().contiguous(), bias.detach().contiguous()
        del self.fc3_bn, self.local

    def _conv_as_fc(self, kernel: torch.Tensor) -> torch.Tensor:
        """The grouped-FC weight (S·hw, hw, 1, 1) of a depthwise k x k conv on the h x w map.

        Probe i is the one-hot at position i in every shareset; the conv's response at position p of
        shareset s is the FC weight from input i to output s·hw + p. Zero padding at the map border is
        exactly the FC's view (nothing exists outside the map).
        """
        hw = self.h * self.w
        eye = torch.eye(hw, dtype=kernel.dtype, device=kernel.device)
        probes = eye.reshape(hw, 1, self.h, self.w).expand(hw, self.S, self.h, self.w)
        resp = F.conv2d(probes, kernel, padding=kernel.shape[-1] // 2, groups=self.S)  # (hw_in, S, h, w)
        return resp.reshape(hw, self.S * hw).t().reshape(self.S * hw, hw, 1, 1)


class FFN(nn.Module):
    """1x1 conv-BN (C → eC) → GELU → 1x1 conv-BN (eC → C)."""

    def __init__(self, channels: int, expand: int = 4):
        super().__init__()
        self.fc1 = ConvBN(channels, channels * expand, 1)
        self.act = nn.GELU()
        self.fc2 = ConvBN(channels * expand, channels, 1)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class RepMLPNetUnit(nn.Module):
    """``y = x + RepMLPBlock(prebn1(x))``, ``z = y + FFN(prebn2(y))``; deploy folds prebn2 into the FFN."""

    def __init__(self, channels: int, h: int, w: int, sharesets: int, conv_k: tuple[int, ...]):
        super().__init__()
        self.prebn1 = nn.BatchNorm2d(channels)
        self.block = RepMLPBlock(channels, h, w, sharesets, conv_k)
        self.prebn2 = nn.BatchNorm2d(channels)
        self.ffn = FFN(channels)

    def forward(self, x):
        x = x + self.block(self.prebn1(x))
        return x + self.ffn(self.prebn2(x) if hasattr(self, "prebn2") else x)

    def reparameterize(self):
        if not hasattr(self, "prebn2"):
            return
        self.ffn.fc1.reparameterize()
        conv = self.ffn.fc1.conv
        scale, shift = fuse_bn(torch.ones_like(self.prebn2.running_mean), None, self.prebn2)
        w = conv.weight.flatten(1)  # a 1x1 conv after a per-channel affine: W(s·x + t) = (W s) x + W t
        conv.bias.data = (conv.bias + w @ shift).detach()
        conv.weight.data = (conv.weight * scale.reshape(1, -1, 1, 1)).detach().contiguous()
        del self.prebn2


@dataclass(frozen=True)
class RepMLPNetCfg:
    channels: tuple[int, ...] = (64, 128, 256, 512)
    depths: tuple[int, ...] = (2, 2, 6, 2)
    sharesets: tuple[int, ...] = (1, 4, 16, 128)
    conv_k: tuple[int, ...] = (1, 3)
    patch: int = 4


class RepMLPNet(nn.Module):
    """A RepMLPNet for a fixed input size (H, W): every stage's FCs are sized by its feature map."""

    def __init__(self, cfg: RepMLPNetCfg, input_size: tuple[int, int] = (224, 224), num_classes: int = 1000):
        super().__init__()
        h, w = _stage_maps(cfg, input_size)
        c = cfg.channels
        self.stem = nn.Sequential(ConvBN(3, c[0], cfg.patch, cfg.patch, padding=0), nn.ReLU())
        stages = []
        for i, (ch, depth, s) in enumerate(zip(c, cfg.depths, cfg.sharesets)):
            down = [nn.Sequential(ConvBN(c[i - 1], ch, 2, 2, padding=0), nn.ReLU())] if i else []
            units = [RepMLPNetUnit(ch, h >> i, w >> i, s, cfg.conv_k) for _ in range(depth)]
            stages.append(nn.Sequential(*down, *units))
        self.stages = nn.Sequential(*stages)
        self.head_norm = nn.BatchNorm2d(c[-1])
        self.head = nn.Linear(c[-1], num_classes)

    def forward(self, x):
        x = self.stages(self.stem(x))
        if hasattr(self, "head_norm"):
            x = self.head_norm(x)
        return self.head(x.mean((2, 3)))

    def reparameterize(self):
        if not hasattr(self, "head_norm"):
            return
        # BN → GAP → Linear: the mean commutes with the per-channel affine, which folds into the Linear.
        scale, shift = fuse_bn(torch.ones_like(self.head_norm.running_mean), None, self.head_norm)
        self.head.bias.data = (self.head.bias + self.head.weight @ shift).detach()
        self.head.weight.data = (self.head.weight * scale).detach().contiguous()
        del self.head_norm


def _stage_maps(cfg: RepMLPNetCfg, input_size: tuple[int, int]) -> tuple[int, int]:
    """Stage-1 map size; the input must halve cleanly through the three 2x2 downsamplings."""
    stride = cfg.patch << (len(cfg.depths) - 1)
    H, W = input_size
    if H % stride or W % stride:
        raise ValueError(f"RepMLPNet needs H and W divisible by {stride}, got {H}x{W}")
    return H // cfg.patch, W // cfg.patch


_T = RepMLPNetCfg(channels=(64, 128, 256, 512), depths=(2, 2, 6, 2), sharesets=(1, 4, 16, 128))


@register_model(
    family="repmlpnet",
    paper=PAPER,
    default=True,
    fixed_input=True,
    min_input=32,
    seed_design="reparameterization: 1x1 and 3x3 conv branches merged into a (56²)²-sized FC by identity probing",
    published=(Published(38.3e6, 2.8e9, "deploy", "RepMLPNet paper (T224)"),),
)
def repmlpnet_t224(input_size: tuple[int, int] = (224, 224)) -> RepMLPNet:
    """RepMLPNet-T224: channels 64-128-256-512, depths 2-2-6-2, sharesets 1-4-16-128."""
    return RepMLPNet(_T, input_size)
