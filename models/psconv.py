"""PSConv: Squeezing Feature Pyramid into One Compact Poly-Scale Convolutional Layer (Li et al., ECCV 2020).

arXiv 2007.06191. A PS-ResNet-50: the torchvision ResNet-50 layout (``_resnet.ResNet``) whose
bottleneck 3x3 convs are poly-scale convs with P = 4 channel parts and base dilation d = 2, so the
kernel mixes dilations 1, 2 and 4 across (output part, input part) pairs:

* out part j ← in part j: dilation d;
* out part j ← in part j + P/2 (mod P): dilation 2d;
* every other pair (j ± 1 for P = 4): dilation 1.

Train form: the reference "efficient" implementation, three convs and a BN. A groups = P conv at
dilation d; a groups = P conv at dilation 2d on the input with its channel halves swapped; a dense
3x3 at dilation 1 whose weight blocks covered by the other two are masked to zero (the mask is a
buffer applied in ``forward``, so no re-initialization can revive them). It computes 1.5x the MACs
of a dense 3x3, a third of them on zeros.

Deploy: the BN is folded, and the same function takes one of three layouts, fixed by the member
(``PSConvBN.deploy_form``), which is a ladder of equal outputs with different cost and fragmentation:

* ``"grouped"`` (``psconv_resnet50``): P grouped convs (groups = P), each on a channel-rotated input
  (rotations 0, P/2, and the dilation-1 ones): P kernels, exactly the MACs of a dense 3x3 (the
  paper's "no additional parameters and computation"), plus P − 1 channel rotations;
* ``"dense9"`` (``psconv_resnet50_dense9``): one dense (4d+1)² = 9x9 conv holding all three
  dilations: 1 kernel, 9x the MACs;
* ``"3conv"`` (``psconv_resnet50_3conv``): the reference three-conv layout, with the mask baked into
  the dense weight: 3 kernels, 1.5x the MACs.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from benchbench.models._layers import ConvBN, fuse_bn
from benchbench.models._registry import Paper, Published, register_model
from benchbench.models._resnet import ResNet, ResNetHooks

__all__ = ["PSConvBN", "DEPLOY_FORMS"]

PAPER = Paper(
    "PSConv: Squeezing Feature Pyramid into One Compact Poly-Scale Convolutional Layer",
    2020,
    "https://arxiv.org/abs/2007.06191",
)
DEPLOY_FORMS = ("grouped", "dense9", "3conv")


def _rotate(x: torch.Tensor, parts: int, r: int) -> torch.Tensor:
    """Rotate channel parts so that part j of the result is part (j + r) mod P of ``x``."""
    if r % parts == 0:
        return x
    k = x.shape[1] // parts * r
    return torch.cat((x[:, k:], x[:, :k]), 1)


def _part(i: int, size: int) -> slice:
    return slice(i * size, (i + 1) * size)


class PSConvBN(nn.Module):
    """Poly-scale 3x3 conv + BN: the reference three-conv masked form; ``reparameterize()`` builds
    the layout named by ``deploy_form`` (one of :data:`DEPLOY_FORMS`)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 2, parts: int = 4,
                 deploy_form: str = "grouped"):
        super().__init__()
        if deploy_form not in DEPLOY_FORMS:
            raise ValueError(f"unknown PSConv deploy form '{deploy_form}'; choose from {', '.join(DEPLOY_FORMS)}")
        if cin % parts or cout % parts or parts % 2:
            raise ValueError(f"PSConv needs channels ({cin}, {cout}) divisible by an even number of parts ({parts})")
        self.cin, self.cout, self.stride, self.d, self.parts = cin, cout, stride, dilation, parts
        self.deploy_form = deploy_form
        self.form = "train"
        d = dilation
        self.gwconv = nn.Conv2d(cin, cout, 3, stride, padding=d, dilation=d, groups=parts, bias=False)
        self.gwconv_shift = nn.Conv2d(cin, cout, 3, stride, padding=2 * d, dilation=2 * d, groups=parts, bias=False)
        self.conv = nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False)
        self.register_buffer("mask", self._dense_mask())
        self.bn = nn.BatchNorm2d(cout)

    def _dense_mask(self) -> torch.Tensor:
        """1 where the dense conv's weight is live: (out j, in i) with i ≠ j and i ≠ j + P/2 (mod P)."""
        P, o, i = self.parts, self.cout // self.parts, self.cin // self.parts
        mask = torch.ones(self.cout, self.cin, 1, 1)
        for j in range(P):
            mask[_part(j, o), _part(j, i)] = 0
            mask[_part(j, o), _part((j + P // 2) % P, i)] = 0
        return mask

    def forward(self, x):
        if self.form == "grouped":
            return sum(conv(_rotate(x, self.parts, r)) for conv, r in zip(self.convs, self.rotations))
        if self.form == "dense9":
            return self.conv(x)
        if self.form == "3conv":
            return self.gwconv(x) + self.gwconv_shift(_rotate(x, 2, 1)) + self.conv(x)
        # Swapping the channel halves puts in part j + P/2 under out part j's group.
        shifted = self.gwconv_shift(_rotate(x, 2, 1))
        dense = F.conv2d(x, self.conv.weight * self.mask, None, self.stride, 1)
        return self.bn(self.gwconv(x) + shifted + dense)

    def reparameterize(self):
        if self.form != "train":
            return
        w_diag, bias = fuse_bn(self.gwconv.weight, None, self.bn)
        w_shift, _ = fuse_bn(self.gwconv_shift.weight, None, self.bn)
        w_dense, _ = fuse_bn(self.conv.weight * self.mask, None, self.bn)
        del self.gwconv, self.gwconv_shift, self.conv, self.bn, self.mask
        build = {"grouped": self._build_grouped, "dense9": self._build_dense9, "3conv": self._build_3conv}
        build[self.deploy_form](w_diag, w_shift, w_dense, bias)
        self.form = self.deploy_form

    def _new_conv(self, weight, bias, k, dilation, groups) -> nn.Conv2d:
        pad = dilation * (k // 2)
        conv = nn.Conv2d(self.cin, self.cout, k, self.stride, pad, dilation, groups, bias=bias is not None).to(weight)
        conv.weight.data = weight.detach().contiguous()
        if bias is not None:
            conv.bias.data = bias.detach().contiguous()
        return conv

    def _build_grouped(self, w_diag, w_shift, w_dense, bias):
        P, o, i = self.parts, self.cout // self.parts, self.cin // self.parts
        convs = [self._new_conv(w_diag, bias, 3, self.d, P), self._new_conv(w_shift, None, 3, 2 * self.d, P)]
        rotations = [0, P // 2]
        for r in range(1, P):
            if r == P // 2:
                continue
            # Group j of a groups = P conv on the input rotated by r reads in part (j + r) mod P.
            w = torch.cat([w_dense[_part(j, o), _part((j + r) % P, i)] for j in range(P)])
            convs.append(self._new_conv(w, None, 3, 1, P))
            rotations.append(r)
        self.convs = nn.ModuleList(convs)
        self.rotations = tuple(rotations)

    def _build_dense9(self, w_diag, w_shift, w_dense, bias):
        P, o, i, d = self.parts, self.cout // self.parts, self.cin // self.parts, self.d
        k, c = 4 * d + 1, 2 * d  # the dilation-2d taps reach ±2d from the centre c
        w = w_dense.new_zeros(self.cout, self.cin, k, k)
        w[:, :, c - 1 : c + 2, c - 1 : c + 2] = w_dense
        for j in range(P):
            w[_part(j, o), _part(j, i), c - d : c + d + 1 : d, c - d : c + d + 1 : d] += w_diag[_part(j, o)]
            taps = slice(c - 2 * d, c + 2 * d + 1, 2 * d)
            w[_part(j, o), _part((j + P // 2) % P, i), taps, taps] += w_shift[_part(j, o)]
        self.conv = self._new_conv(w, bias, k, 1, 1)

    def _build_3conv(self, w_diag, w_shift, w_dense, bias):
        self.gwconv = self._new_conv(w_diag, bias, 3, self.d, self.parts)
        self.gwconv_shift = self._new_conv(w_shift, None, 3, 2 * self.d, self.parts)
        self.conv = self._new_conv(w_dense, None, 3, 1, 1)


def _create_ps_resnet(depth: int, deploy_form: str) -> ResNet:
    def conv(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Module:
        if k == 3:  # the bottleneck 3x3; the 7x7 stem and the 1x1s stay plain
            return PSConvBN(cin, cout, stride, dilation=2, parts=4, deploy_form=deploy_form)
        return ConvBN(cin, cout, k, stride, groups=groups)

    return ResNet(depth, ResNetHooks(conv=conv))


_SEED = "equal outputs, different layouts: PSConv's train form (3 convs, 1.5x MACs) deployed as "


@register_model(
    family="psconv",
    paper=PAPER,
    default=True,
    seed_design=_SEED + "4 grouped convs on channel-rotated inputs (1.0x dense MACs, most fragmented)",
    published=(Published(25.6e6, 4.1e9, "deploy", "REFERENCE.md: ResNet-50; PSConv adds no params or FLOPs"),),
)
def psconv_resnet50() -> ResNet:
    """PS-ResNet-50 (P = 4, d = 2); deploys each PSConv as 4 grouped convs on rotated inputs."""
    return _create_ps_resnet(50, "grouped")


@register_model(
    family="psconv",
    paper=PAPER,
    seed_design=_SEED + "one dense 9x9 conv (9x the 3x3 MACs, 1 kernel)",
)
def psconv_resnet50_dense9() -> ResNet:
    """PS-ResNet-50 (P = 4, d = 2); deploys each PSConv as one dense 9x9 conv."""
    return _create_ps_resnet(50, "dense9")


@register_model(
    family="psconv",
    paper=PAPER,
    seed_design=_SEED + "the reference 3 convs, mask baked in (1.5x MACs, 3 kernels)",
)
def psconv_resnet50_3conv() -> ResNet:
    """PS-ResNet-50 (P = 4, d = 2); deploys each PSConv as the reference three convs, BN folded."""
    return _create_ps_resnet(50, "3conv")
