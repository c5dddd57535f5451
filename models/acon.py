"""ACON: Activate or Not: Learning Customized Activation (Ma et al., CVPR 2021, arXiv 2009.04759).

Four activations on one ResNet-18 backbone (``_resnet.ResNet`` with ``ResNetHooks(act=...)``), so the
members share every conv and differ only in their elementwise work:

* ReLU and Swish (x·σ(x)): the baselines. Nothing of theirs changes at deploy.
* ACON-C: ``f(x) = (p1 − p2)·x·σ(β·(p1 − p2)·x) + p2·x``, with learned per-channel p1, p2 and β.
  The train form computes it as the reference code does (``p1·x − p2·x`` as tensor ops, twice).
  Deploy precomputes ``d = p1 − p2`` and ``βd = β·d`` and evaluates ``x·(d·σ(βd·x) + p2)``:
  5 elementwise tensor ops instead of 11 (7 once an exporter merges the repeated ``p1·x − p2·x``).
* Meta-ACON: β is generated per sample and per channel,
  ``β = σ(BN2(fc2(BN1(fc1(mean_HW(x))))))`` with fc1: C → max(16, C/16), fc2 back to C, no
  nonlinearity between them (the nmaac/acon repo version, with its BNs). Deploy folds BN1 into fc1
  and BN2 into fc2; the β path is kept factored (collapsing fc2∘fc1 would cost C² params).

Every member also folds the backbone's conv BNs at deploy. The paper's ResNets replace only the
activation after the bottleneck 3x3; here every activation of the ResNet-18 is replaced (the
paper's ShuffleNetV2 setting), which makes the elementwise difference between members as large as
the backbone allows.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
from benchbench.models._layers import conv_from, fuse_bn
from benchbench.models._registry import Paper, Published, register_model
from benchbench.models._resnet import ResNet, ResNetHooks

__all__ = ["AconC", "MetaAconC"]

PAPER = Paper("Activate or Not: Learning Customized Activation", 2021, "https://arxiv.org/abs/2009.04759")


def _acon_deploy(x: torch.Tensor, d: torch.Tensor, beta_d: torch.Tensor, p2: torch.Tensor) -> torch.Tensor:
    """d·x·σ(βd·x) + p2·x, factored as x·(d·σ(βd·x) + p2): one mul fewer."""
    return x * (d * torch.sigmoid(beta_d * x) + p2)


def _acon_train(x: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    # As the reference writes it: p1·x − p2·x is a tensor expression, evaluated twice.
    return (p1 * x - p2 * x) * torch.sigmoid(beta * (p1 * x - p2 * x)) + p2 * x


class AconC(nn.Module):
    """ACON-C with per-channel p1, p2, β; ``reparameterize()`` stores d = p1 − p2 and βd instead."""

    def __init__(self, channels: int):
        super().__init__()
        self.p1 = nn.Parameter(torch.randn(1, channels, 1, 1))
        self.p2 = nn.Parameter(torch.randn(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.ones(1, channels, 1, 1))

    def forward(self, x):
        if hasattr(self, "d"):
            return _acon_deploy(x, self.d, self.beta_d, self.p2)
        return _acon_train(x, self.p1, self.p2, self.beta)

    def reparameterize(self):
        if hasattr(self, "d"):
            return
        d = (self.p1 - self.p2).detach()
        self.d = nn.Parameter(d)
        self.beta_d = nn.Parameter((self.beta * d).detach())
        del self.p1, self.beta


class MetaAconC(nn.Module):
    """Meta-ACON: ACON-C whose β comes from a per-sample generator GAP → fc1 → BN → fc2 → BN → σ.

    ``reparameterize()`` folds both BNs into their 1x1 convs and replaces p1 by d = p1 − p2.
    """

    def __init__(self, channels: int, r: int = 16):
        super().__init__()
        hidden = max(r, channels // r)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.bn2 = nn.BatchNorm2d(channels)
        self.p1 = nn.Parameter(torch.randn(1, channels, 1, 1))
        self.p2 = nn.Parameter(torch.randn(1, channels, 1, 1))

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        if hasattr(self, "d"):
            beta_d = self.d * torch.sigmoid(self.fc2(self.fc1(s)))  # (N, C, 1, 1): negligible work
            return _acon_deploy(x, self.d, beta_d, self.p2)
        beta = torch.sigmoid(self.bn2(self.fc2(self.bn1(self.fc1(s)))))
        return _acon_train(x, self.p1, self.p2, beta)

    def reparameterize(self):
        if hasattr(self, "d"):
            return
        self.fc1 = conv_from(self.fc1, *fuse_bn(self.fc1.weight, self.fc1.bias, self.bn1))
        self.fc2 = conv_from(self.fc2, *fuse_bn(self.fc2.weight, self.fc2.bias, self.bn2))
        self.d = nn.Parameter((self.p1 - self.p2).detach())
        del self.bn1, self.bn2, self.p1


def _create_acon_resnet18(act: Callable[[int], nn.Module]) -> ResNet:
    return ResNet(18, ResNetHooks(act=act))


# Every member has ResNet-18's convs: the same FLOPs, different elementwise work.
_SAME_FLOPS = "same conv FLOPs as the other acon_resnet18 members, different elementwise ops"
_RESNET18 = Published(11.7e6, 1.8e9, "deploy", "REFERENCE.md: ResNet-18 (standard)")


@register_model(
    family="acon",
    paper=PAPER,
    seed_design=f"elementwise baseline: ReLU (1 op per activation); {_SAME_FLOPS}; only BN folds at deploy",
    published=(_RESNET18,),
)
def acon_resnet18_relu() -> ResNet:
    """ResNet-18 with ReLU: the ACON family's baseline."""
    return _create_acon_resnet18(lambda c: nn.ReLU(inplace=True))


@register_model(
    family="acon",
    paper=PAPER,
    seed_design=f"elementwise ops: Swish x·σ(x) (2 ops per activation); {_SAME_FLOPS}; only BN folds at deploy",
)
def acon_resnet18_swish() -> ResNet:
    """ResNet-18 with Swish x·σ(x) (ACON-C with p1 = 1, p2 = 0, β = 1)."""
    return _create_acon_resnet18(lambda c: nn.SiLU())


@register_model(
    family="acon",
    paper=PAPER,
    default=True,
    seed_design=(
        "elementwise ops + reparameterization: ACON-C, 11 tensor ops per activation in train (7 after CSE), "
        f"5 in deploy (p1−p2 and β(p1−p2) precomputed); {_SAME_FLOPS}"
    ),
)
def acon_resnet18_aconc() -> ResNet:
    """ResNet-18 with ACON-C in place of every ReLU."""
    return _create_acon_resnet18(AconC)


@register_model(
    family="acon",
    paper=PAPER,
    seed_design=(
        "elementwise ops + a per-sample β generator (GAP → fc → BN → fc → BN → σ, BNs folded into the fcs "
        f"at deploy): ACON-C whose β is data-dependent; {_SAME_FLOPS} (plus the tiny generator GEMVs)"
    ),
)
def acon_resnet18_metaacon() -> ResNet:
    """ResNet-18 with Meta-ACON in place of every ReLU (r = 16)."""
    return _create_acon_resnet18(MetaAconC)
