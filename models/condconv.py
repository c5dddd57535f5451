"""CondConv: Conditionally Parameterized Convolutions (Yang et al., NeurIPS 2019, arXiv 1904.04971).

A CondConv layer holds E expert kernels and convolves each sample with its own mixture
``W(x) = Σ_e r_e(x) W_e``; the routing ``r = sigmoid(FC(GAP(x)))`` is computed once per block from
the block input and shared by the block's expand, depthwise and project convs (ZOO_NOTES 7.1).

Train form (``condconv_mobilenetv2``): MobileNetV2 1.0 (the shared ``_mobilenetv2`` backbone) whose
final 6 inverted residuals (the last two 96-channel blocks, the three 160 blocks and the 320 block,
as in the CondConv-MobileNetV2 of d-li14/condconv.pytorch) are CondConv blocks with E = 8, swapped in
through the block hook, and whose classifier is a CondConv FC. Each CondConv mixes its expert
kernels per sample (a GEMM of the routing weights with the flattened experts, B x E x |W| MACs) and
runs one grouped conv with the batch folded into the groups (``groups = g·B``): per-sample weights,
so this form only exports with B baked into the graph and runtime conv weights.

Deploy form, exact: conv is linear in its kernel, so ``conv(x, Σ_e r_e W_e) = Σ_e r_e conv(x, W_e)``.
Each CondConv becomes one static conv with E·C_out outputs (BN scale folded into every expert, BN
shift added after the mix) followed by the routing-weighted sum of the E outputs (one batched MatMul
on a 4-D view). Constant weights, so it exports anywhere, at E times the conv MACs.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
from benchbench.models._layers import fuse_bn
from benchbench.models._mobilenetv2 import InvertedResidual, MobileNetV2, MobileNetV2Hooks
from benchbench.models._registry import Paper, register_model

__all__ = ["CondConv2d", "CondConvLinear", "CondConvInvertedResidual", "CondConvMobileNetV2"]

PAPER = Paper(
    "CondConv: Conditionally Parameterized Convolutions for Efficient Inference",
    2019,
    "https://arxiv.org/abs/1904.04971",
)


def _mix_experts(y: torch.Tensor, routing: torch.Tensor, groups: int) -> torch.Tensor:
    """Σ_e r_e y_e for a static conv's output laid out per group as (expert, channel-in-group).

    ``y`` is (N, g·E·C/g, H, W); the mix is one batched MatMul (N,1,1,E) @ (N,g,E,C/g·H·W), all 4-D.
    """
    n, _, h, w = y.shape
    e = routing.shape[1]
    mixed = routing.view(n, 1, 1, e) @ y.reshape(n, groups, e, -1)
    return mixed.reshape(n, -1, h, w)


class CondConv2d(nn.Module):
    """E expert kernels mixed per sample by the routing weights, then BN.

    ``forward(x, routing)``: ``routing`` is (N, E), from the enclosing block.
    """

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, num_experts: int = 8):
        super().__init__()
        self.cin, self.cout, self.k, self.stride, self.groups = cin, cout, k, stride, groups
        self.weight = nn.Parameter(torch.empty(num_experts, cout, cin // groups, k, k))
        bound = 1 / math.sqrt(cin // groups * k * k)  # each expert initialized like a default Conv2d
        nn.init.uniform_(self.weight, -bound, bound)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x, routing):
        if hasattr(self, "conv"):
            return _mix_experts(self.conv(x), routing, self.groups) + self.bias.view(1, -1, 1, 1)
        n, _, h, w = x.shape
        # Per-sample kernels: (N, E) @ (E, |W|), then the batch folded into the conv's groups.
        kernel = (routing @ self.weight.flatten(1)).view(n * self.cout, self.cin // self.groups, self.k, self.k)
        y = F.conv2d(
            x.reshape(1, n * self.cin, h, w), kernel, None, self.stride, self.k // 2, groups=self.groups * n
        )
        return self.bn(y.view(n, self.cout, *y.shape[-2:]))

    def reparameterize(self):
        if not hasattr(self, "bn"):
            return
        e, g = self.weight.shape[0], self.groups
        # BN(Σ r_e conv(x, W_e)) = Σ r_e conv(x, t·W_e) + (β − μ t): the scale goes into every expert.
        experts, shift = fuse_bn(self.weight.transpose(0, 1), None, self.bn)  # (C_out, E, ...) rows scaled by t
        experts = experts.transpose(0, 1)
        # Static layout, per conv group: (expert, channel-in-group), so _mix_experts can view it 4-D.
        kernel = experts.reshape(e, g, self.cout // g, *experts.shape[2:]).transpose(0, 1)
        kernel = kernel.reshape(g * e * (self.cout // g), *experts.shape[2:])
        conv = nn.Conv2d(self.cin, e * self.cout, self.k, self.stride, self.k // 2, groups=g, bias=False)
        conv = conv.to(dtype=kernel.dtype, device=kernel.device)
        conv.weight.data = kernel.detach().contiguous()
        self.conv = conv
        self.bias = nn.Parameter(shift.detach().contiguous())
        del self.weight, self.bn


class CondConvLinear(nn.Module):
    """A CondConv fully connected layer (the classifier): E expert matrices and biases, own routing."""

    def __init__(self, cin: int, cout: int, num_experts: int = 8, dropout: float = 0.0):
        super().__init__()
        self.route = nn.Linear(cin, num_experts)
        self.drop = nn.Dropout(dropout)
        bound = 1 / math.sqrt(cin)
        self.weight = nn.Parameter(torch.empty(num_experts, cout, cin).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(num_experts, cout).uniform_(-bound, bound))

    def forward(self, x):
        r = torch.sigmoid(self.route(x))
        x = self.drop(x)
        if hasattr(self, "fc"):
            return (r.unsqueeze(1) @ self.fc(x).view(x.shape[0], r.shape[1], -1)).squeeze(1)
        weight = (r @ self.weight.flatten(1)).view(x.shape[0], -1, x.shape[1])  # per-sample (K, C)
        return (weight @ x.unsqueeze(2)).squeeze(2) + r @ self.bias

    def reparameterize(self):
        if hasattr(self, "fc"):
            return
        e, k, c = self.weight.shape
        fc = nn.Linear(c, e * k).to(dtype=self.weight.dtype, device=self.weight.device)
        fc.weight.data = self.weight.detach().reshape(e * k, c).contiguous()
        fc.bias.data = self.bias.detach().reshape(e * k).contiguous()
        self.fc = fc
        del self.weight, self.bias


class CondConvInvertedResidual(nn.Module):
    """MobileNetV2's inverted residual with its three convs as CondConvs sharing one routing."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, hooks: MobileNetV2Hooks, num_experts: int = 8):
        super().__init__()
        hidden = int(round(cin * expand))
        self.use_res = stride == 1 and cin == cout
        self.route = nn.Linear(cin, num_experts)
        self.expand = CondConv2d(cin, hidden, 1, num_experts=num_experts) if expand != 1 else None
        self.act1 = hooks.act(hidden) if expand != 1 else None
        self.dw = CondConv2d(hidden, hidden, 3, stride, groups=hidden, num_experts=num_experts)
        self.act2 = hooks.act(hidden)
        self.project = CondConv2d(hidden, cout, 1, num_experts=num_experts)

    def forward(self, x):
        r = torch.sigmoid(self.route(x.mean((2, 3))))
        y = x if self.expand is None else self.act1(self.expand(x, r))
        y = self.project(self.act2(self.dw(y, r)), r)
        return x + y if self.use_res else y


class CondConvMobileNetV2(MobileNetV2):
    """MobileNetV2 with CondConv in its final 6 inverted residuals and a CondConv classifier."""

    def __init__(self, num_experts: int = 8, num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2):
        hooks = MobileNetV2Hooks(block=partial(_make_block, num_experts=num_experts))
        super().__init__(width_mult, num_classes, hooks, dropout=dropout)
        self.classifier = CondConvLinear(self.out_channels, num_classes, num_experts, dropout)


def _make_block(cin, cout, stride, expand, stage, hooks, num_experts):
    # The final 6 blocks: stage 4 (96 ch) after its first block, then stages 5 (160) and 6 (320).
    # The hook sees no block index; in stage 4 only the first block changes the width.
    if stage > 4 or (stage == 4 and cin == cout):
        return CondConvInvertedResidual(cin, cout, stride, expand, hooks, num_experts)
    return InvertedResidual(cin, cout, stride, expand, hooks)


@register_model(
    family="condconv",
    paper=PAPER,
    seed_design=(
        "dynamic weights: per-sample mixed kernels (train) vs static E-expert convs + routing-weighted sum (deploy)"
    ),
    default=True,
    description=(
        "CondConv-MobileNetV2 1.0, E = 8 experts in the final 6 blocks and the classifier. MACs at 224: "
        "train 323 M per image (299.5 M conv + 22.1 M per-sample kernel mixing + 1.3 M classifier); "
        "deploy 1122 M (1104 M conv: the CondConv layers at 8x dense-conv MACs, + 10.3 M 8-expert FC "
        "+ 7.6 M routing-weighted sums)"
    ),
)
def condconv_mobilenetv2() -> CondConvMobileNetV2:
    """CondConv-MobileNetV2 1.0, E = 8 experts in the final 6 blocks and the classifier."""
    return CondConvMobileNetV2(num_experts=8)
