"""SKNet: Selective Kernel Networks (Li et al., CVPR 2019, arXiv 1903.06586).

A selective-kernel (SK) convolution replaces a 3x3 conv + BN + ReLU with M = 2 branches and a soft
attention between them (paper Fig. 1; ZOO_NOTES 7.4):

* split: branch A = ReLU(BN(conv3x3(x))), branch B = ReLU(BN(conv3x3 dilation 2 (x))) (the
  paper's 5x5 branch, as a dilated 3x3);
* fuse: ``z = ReLU(BN(fc1(mean_HW(A + B))))``, fc1: C → d = max(C/16, 32), no bias;
* select: ``[a, b] = softmax over branches of fc2(z)`` (fc2: d → 2C, no bias), ``V = a·A + b·B``.

Train form: the shared ResNet-18 (``_resnet.ResNet``) with every 3x3 conv swapped for an SK conv
through ``ResNetHooks(conv=...)``; the 7x7 stem and the 1x1 shortcuts stay plain conv + BN.

Deploy form, exact: BNs folded (fc1's BN into a biased fc1), and the two-way softmax rewritten as
``softmax([z0, z1])_0 = σ(z0 − z1)``: fc2's two row blocks collapse into one difference FC
(d → C, half the size) and ``V = B + σ(W_diff z)·(A − B)``. No softmax over a branch axis, no
5-D reshape or transpose (TFLite's SOFTMAX works on the last axis only).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from benchbench.models._layers import ConvBN
from benchbench.models._registry import Paper, register_model
from benchbench.models._resnet import ResNet, ResNetHooks

__all__ = ["SKConv"]

PAPER = Paper("Selective Kernel Networks", 2019, "https://arxiv.org/abs/1903.06586")


class SKConv(nn.Module):
    """Two-branch selective-kernel conv (3x3 and 3x3 dilation 2), each branch conv + BN + ReLU.

    ``reparameterize()`` folds the BNs (through the ``ConvBN`` children) and replaces the softmax
    over the two branches by a sigmoid of one difference FC.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1, groups: int = 1, reduction: int = 16, min_dim: int = 32):
        super().__init__()
        d = max(cout // reduction, min_dim)
        self.branch0 = ConvBN(cin, cout, 3, stride, groups=groups)
        self.branch1 = ConvBN(cin, cout, 3, stride, groups=groups, dilation=2)
        self.fc1 = ConvBN(cout, d, 1)  # FC (a 1x1 conv on the pooled map) + BN, no bias
        self.fc2 = nn.Conv2d(d, 2 * cout, 1, bias=False)

    def forward(self, x):
        a = F.relu(self.branch0(x))
        b = F.relu(self.branch1(x))
        z = F.relu(self.fc1((a + b).mean((2, 3), keepdim=True)))
        if hasattr(self, "fc_diff"):
            return b + torch.sigmoid(self.fc_diff(z)) * (a - b)
        n, c = a.shape[:2]
        attn = torch.softmax(self.fc2(z).view(n, 2, c, 1, 1), dim=1)  # rows [0, C) weigh A, [C, 2C) weigh B
        return attn[:, 0] * a + attn[:, 1] * b

    def reparameterize(self):
        if not hasattr(self, "fc2"):
            return
        c = self.fc2.out_channels // 2
        w = self.fc2.weight
        fc_diff = nn.Conv2d(w.shape[1], c, 1, bias=False).to(dtype=w.dtype, device=w.device)
        fc_diff.weight.data = (w[:c] - w[c:]).detach().contiguous()  # z0 − z1 = (W2[:C] − W2[C:]) z
        self.fc_diff = fc_diff
        del self.fc2


def _sk_conv(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Module:
    """The ResNet conv hook: SK convs where the backbone has a 3x3, plain conv + BN elsewhere."""
    if k == 3:
        return SKConv(cin, cout, stride, groups)
    return ConvBN(cin, cout, k, stride, groups=groups)


@register_model(
    family="sknet",
    paper=PAPER,
    seed_design=(
        "attention/fragmentation: two-branch selective-kernel convs; deploy = BN fold + exact "
        "softmax(M=2) → sigmoid(difference FC) rewrite"
    ),
    default=True,
)
def sk_resnet18() -> ResNet:
    """SK-ResNet-18: every 3x3 of ResNet-18 is an SK conv (3x3 + dilated 3x3, d = max(C/16, 32))."""
    return ResNet(18, ResNetHooks(conv=_sk_conv))
