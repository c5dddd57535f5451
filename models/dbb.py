"""Diverse Branch Block (Ding et al., CVPR 2021, arXiv 2103.13425).

Train form: every k x k conv + BN (k > 1) of the base network becomes a DBB, four parallel
branches with the conv's stride, summed:

* ``origin``: the k x k conv + BN;
* ``pointwise``: a 1x1 conv + BN (multi-scale; absent for depthwise convs);
* ``avg``: 1x1 conv → BN-and-pad → k x k average pooling → BN (depthwise: average pooling → BN);
* ``seq``: 1x1 conv (identity-initialized where it keeps the width) → BN-and-pad → k x k conv → BN.

Deploy form: one k x k conv with bias, the base network's own layout. The six transforms of the
paper (ZOO_NOTES 2.2) get there: I folds each BN into its conv, VI zero-pads the 1x1 kernel to
k x k, V writes average pooling as a conv, III merges a 1x1 → k x k sequence (exact only because
the padding carries the first BN's bias, not zeros), IV concatenates per-group results of III,
and II adds the branches.

``dbb_resnet18`` puts a DBB at every k x k conv of ResNet-18, the 7x7 stem included; the 1x1
shortcut convs stay ConvBN.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from benchbench.models._layers import ConvBN, conv_bn, conv_from, fuse_bn, pad_kernel
from benchbench.models._registry import Paper, Published, register_model
from benchbench.models._resnet import ResNet, ResNetHooks

__all__ = ["DiverseBranchBlock", "BNAndPad", "IdentityConv1x1", "dbb_conv"]

PAPER = Paper(
    "Diverse Branch Block: Building a Convolution as an Inception-like Unit", 2021, "https://arxiv.org/abs/2103.13425"
)


def _identity_kernel(channels: int, groups: int, size: int, value: float, like: torch.Tensor) -> torch.Tensor:
    """A kernel that is ``value`` everywhere on channel i's own input slot [i, i mod (C/g)], zero elsewhere."""
    per_group = channels // groups
    kernel = torch.zeros(channels, per_group, size, size, dtype=like.dtype, device=like.device)
    idx = torch.arange(channels, device=like.device)
    kernel[idx, idx % per_group] = value
    return kernel


class BNAndPad(nn.Module):
    """BN, then a border of ``pad`` filled per channel with the BN's output for a zero input.

    That value, beta - mean * gamma / sqrt(var + eps), is what the merged k x k conv sees at the
    border once the 1x1 and BN before it are folded (transform III). Zero padding here would break
    the equivalence. Like the paper's code, the border uses the running statistics even in training.
    """

    def __init__(self, channels: int, pad: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.pad = pad

    def pad_values(self) -> torch.Tensor:
        bn = self.bn
        return (bn.bias - bn.running_mean * bn.weight / (bn.running_var + bn.eps).sqrt()).detach()

    def forward(self, x):
        y = self.bn(x)
        if self.pad == 0:
            return y
        v = self.pad_values().reshape(1, -1, 1, 1)
        # Shift, zero-pad, shift back: a static Pad between two elementwise ops, export-friendly
        # (the reference's in-place slice assignment is not).
        return F.pad(y - v, [self.pad] * 4) + v


class IdentityConv1x1(nn.Module):
    """A 1x1 conv whose kernel is ``weight + I``: it starts as the identity (``weight`` is zero-initialized)."""

    def __init__(self, channels: int, groups: int = 1):
        super().__init__()
        self.groups = groups
        self.weight = nn.Parameter(torch.zeros(channels, channels // groups, 1, 1))
        self.register_buffer("eye", _identity_kernel(channels, groups, 1, 1.0, self.weight), persistent=False)

    def kernel(self) -> torch.Tensor:
        return self.weight + self.eye

    def forward(self, x):
        return F.conv2d(x, self.kernel(), None, groups=self.groups)


def _compose_1x1_kxk(k1: torch.Tensor, b1: torch.Tensor, k2: torch.Tensor, b2: torch.Tensor, groups: int):
    """Transform III (+ IV): ``conv_{k2,b2}(pad_b1(conv_{k1,b1}(x)))`` as one k x k conv.

    K[d, c] = sum_e K2[d, e] K1[e, c] and b[d] = b2[d] + sum_{e,h,w} K2[d, e, h, w] b1[e], per group;
    the groups' results are concatenated along the output channels (transform IV).
    """
    kernels, biases = [], []
    for k1_g, b1_g, k2_g, b2_g in zip(*(t.chunk(groups) for t in (k1, b1, k2, b2))):
        kernels.append(torch.einsum("dehw,ec->dchw", k2_g, k1_g[:, :, 0, 0]))
        biases.append(b2_g + torch.einsum("dehw,e->d", k2_g, b1_g))
    return torch.cat(kernels), torch.cat(biases)


class DiverseBranchBlock(nn.Module):
    """A k x k conv + BN trained as four branches (k x k, 1x1, 1x1→avg, 1x1→k x k); deploys as one conv.

    Depthwise convs (groups == cout) drop the 1x1 branch, average-pool directly, and widen the
    sequential branch's 1x1 to 2·cin (as in the paper's MobileNet); otherwise the sequential 1x1
    keeps the width and is identity-initialized.
    """

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1):
        super().__init__()
        assert k % 2 == 1, "DBB needs an odd kernel (padding k // 2)"
        p = k // 2
        depthwise = groups == cout
        self.groups = groups
        self.origin = conv_bn(cin, cout, k, stride, p, groups)
        self.pointwise = None if depthwise else conv_bn(cin, cout, 1, stride, 0, groups)
        if depthwise:
            self.avg = nn.Sequential(nn.AvgPool2d(k, stride, p), nn.BatchNorm2d(cout))
        else:
            self.avg = nn.Sequential(
                nn.Conv2d(cin, cout, 1, groups=groups, bias=False),
                BNAndPad(cout, p),
                nn.AvgPool2d(k, stride, 0),  # count_include_pad: the padding is already explicit
                nn.BatchNorm2d(cout),
            )
        internal = 2 * cin if depthwise else cin
        if internal == cin:
            first = IdentityConv1x1(cin, groups)
        else:
            first = nn.Conv2d(cin, internal, 1, groups=groups, bias=False)
        self.seq = nn.Sequential(
            first,
            BNAndPad(internal, p),
            nn.Conv2d(internal, cout, k, stride, 0, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x):
        if hasattr(self, "conv"):
            return self.conv(x)
        y = self.origin(x) + self.avg(x) + self.seq(x)
        if self.pointwise is not None:
            y = y + self.pointwise(x)
        return y

    def equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The single k x k kernel and bias that the four branches sum to."""
        conv = self.origin[0]
        k = conv.kernel_size[0]
        kernel, bias = fuse_bn(conv.weight, None, self.origin[1])  # I
        if self.pointwise is not None:
            k1, b1 = fuse_bn(self.pointwise[0].weight, None, self.pointwise[1])  # I
            kernel, bias = kernel + pad_kernel(k1, k), bias + b1  # VI, II
        k_avg, b_avg = self._avg_kernel_bias(k)
        k_seq, b_seq = self._seq_kernel_bias()
        return kernel + k_avg + k_seq, bias + b_avg + b_seq  # II

    def _avg_kernel_bias(self, k: int):
        cout = self.origin[0].out_channels
        like = self.origin[0].weight
        k_avg = _identity_kernel(cout, self.groups, k, 1.0 / (k * k), like)  # V
        if self.pointwise is None:  # depthwise: pooling, then BN
            return fuse_bn(k_avg, None, self.avg[1])  # I
        conv1, bnpad, _, bn = self.avg
        k1, b1 = fuse_bn(conv1.weight, None, bnpad.bn)  # I
        k2, b2 = fuse_bn(k_avg, None, bn)  # I
        return _compose_1x1_kxk(k1, b1, k2, b2, self.groups)  # III, IV

    def _seq_kernel_bias(self):
        first, bnpad, conv2, bn = self.seq
        w1 = first.kernel() if isinstance(first, IdentityConv1x1) else first.weight
        k1, b1 = fuse_bn(w1, None, bnpad.bn)  # I
        k2, b2 = fuse_bn(conv2.weight, None, bn)  # I
        return _compose_1x1_kxk(k1, b1, k2, b2, self.groups)  # III, IV

    def reparameterize(self):
        if hasattr(self, "conv"):
            return
        kernel, bias = self.equivalent_kernel_bias()
        self.conv = conv_from(self.origin[0], kernel, bias)
        del self.origin, self.pointwise, self.avg, self.seq


def dbb_conv(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Module:
    """The ResNet conv hook: a DBB for k > 1, a plain ConvBN for 1x1 convs."""
    if k > 1:
        return DiverseBranchBlock(cin, cout, k, stride, groups)
    return ConvBN(cin, cout, k, stride, groups=groups)


@register_model(
    family="dbb",
    paper=PAPER,
    seed_design="reparameterization: 4 diverse branches (k x k, 1x1, 1x1→avg, 1x1→k x k) → one k x k conv",
    default=True,
    # The deploy form is the base network (plus conv biases), so ResNet-18's own size is the figure.
    published=(Published(11.7e6, 1.8e9, "deploy", "ResNet-18, REFERENCE.md (DBB deploys to the base net)"),),
)
def dbb_resnet18() -> ResNet:
    """ResNet-18 with a Diverse Branch Block at every k x k conv (7x7 stem and 3x3s)."""
    return ResNet(18, ResNetHooks(conv=dbb_conv, shortcut_conv=ConvBN))
