"""DO-Conv: Depthwise Over-parameterized Convolutional Layer (Cao et al., IEEE TIP 2022, arXiv 2006.12030).

Train form: each k x k conv (k > 1) holds a conventional kernel ``W`` (C_out x C_in/g x D_mul) and a
depthwise kernel ``D`` (C_in x k² x D_mul, zero-initialized), and every forward composes them into an
ordinary kernel, ``W'[o, i, m] = sum_s (D + I)[i, m, s] W[o, i, s]`` ("kernel composition";
``D + I`` makes the layer start as a plain conv with kernel ``W``), then convolves. D_mul = k² by
default.

Deploy form: the composed kernel, BN folded, as one plain conv: the base network's layout
(``doconv_resnet18``). The same layer is also exactly a depthwise k x k conv with ``D + I`` (channel
multiplier D_mul) followed by a 1x1 conv with ``W`` ("feature composition", ZOO_NOTES 3);
``doconv_resnet18_feature`` deploys to that, which is equivalent but fragmented and costs an extra
C_in·D_mul·k²·HW MACs per layer.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
from benchbench.models._layers import ConvBN, fuse_bn
from benchbench.models._registry import Paper, Published, register_model
from benchbench.models._resnet import ResNet, ResNetHooks

__all__ = ["DOConv2d", "DOConvBN", "doconv_bn"]

PAPER = Paper(
    "DO-Conv: Depthwise Over-parameterized Convolutional Layer", 2022, "https://arxiv.org/abs/2006.12030"
)
_COMPOSITIONS = ("kernel", "feature")


def _new_conv(weight: torch.Tensor, bias: torch.Tensor | None, stride=1, padding=0, groups: int = 1) -> nn.Conv2d:
    cin, cout, k = weight.shape[1] * groups, weight.shape[0], weight.shape[-1]
    conv = nn.Conv2d(cin, cout, k, stride, padding, groups=groups, bias=bias is not None)
    conv = conv.to(dtype=weight.dtype, device=weight.device)
    conv.weight.data = weight.detach().contiguous()
    if bias is not None:
        conv.bias.data = bias.detach().contiguous()
    return conv


class DOConv2d(nn.Module):
    """A k x k conv over-parameterized by a depthwise kernel ``D``; composes ``(D + I) ∘ W`` per forward.

    Groups are handled per group: ``D``'s row i always belongs to input channel i, so the feature
    composition (a depthwise conv, then a grouped 1x1) is exact for any ``groups``.
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        bias: bool = False,
        d_mul: int | None = None,
    ):
        super().__init__()
        mn = k * k
        self.d_mul = d_mul or mn
        assert self.d_mul >= mn, "DO-Conv over-parameterizes: D_mul >= k² (paper Sec. 3)"
        self.k, self.stride, self.groups = k, stride, groups
        self.padding = k // 2 if padding is None else padding
        self.W = nn.Parameter(torch.empty(cout, cin // groups, self.d_mul))
        nn.init.kaiming_uniform_(self.W, a=math.sqrt(5))  # nn.Conv2d's init: same fan-in
        if bias:
            bound = 1 / math.sqrt(cin // groups * self.d_mul)
            self.bias = nn.Parameter(torch.empty(cout).uniform_(-bound, bound))
        else:
            self.bias = None
        if mn > 1:
            self.D = nn.Parameter(torch.zeros(cin, mn, self.d_mul))
            # I: the identity in the first k² columns of every channel (zeros beyond, as the
            # reference does for D_mul > k²); a buffer, so it is neither trained nor counted.
            eye = torch.zeros(mn, self.d_mul)
            eye[:, :mn] = torch.eye(mn)
            self.register_buffer("eye", eye.expand(cin, mn, self.d_mul).clone(), persistent=False)
        else:
            self.D = None

    def depthwise(self) -> torch.Tensor:
        """``D + I``, shape (C_in, k², D_mul)."""
        return self.D + self.eye

    def kernel(self) -> torch.Tensor:
        """The composed conv kernel ``W'`` (C_out x C_in/g x k x k)."""
        cout, cin_g, d_mul = self.W.shape
        if self.D is None:
            return self.W.reshape(cout, cin_g, self.k, self.k)
        g = self.groups
        d = self.depthwise().reshape(g, cin_g, self.k * self.k, d_mul)
        w = self.W.reshape(g, cout // g, cin_g, d_mul)
        return torch.einsum("gims,gois->goim", d, w).reshape(cout, cin_g, self.k, self.k)

    def forward(self, x):
        return F.conv2d(x, self.kernel(), self.bias, self.stride, self.padding, groups=self.groups)


class DOConvBN(nn.Module):
    """A DO-Conv + BN (the ResNet conv hook's contract); deploys by ``compose``.

    ``compose="kernel"``: one plain k x k conv with the composed kernel and the BN folded in.
    ``compose="feature"``: a depthwise k x k conv with ``D + I`` (``dw``), then a 1x1 conv with ``W``
    and the BN folded in (``pw``).
    """

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, compose: str = "kernel"):
        super().__init__()
        if compose not in _COMPOSITIONS:
            raise ValueError(f"compose must be one of {_COMPOSITIONS}, not {compose!r}")
        self.compose = compose
        self.conv = DOConv2d(cin, cout, k, stride, groups=groups)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        if hasattr(self, "bn"):
            return self.bn(self.conv(x))
        if hasattr(self, "dw"):
            return self.pw(self.dw(x))
        return self.conv(x)

    def reparameterize(self):
        if not hasattr(self, "bn"):
            return
        do = self.conv
        if self.compose == "kernel" or do.D is None:
            kernel, bias = fuse_bn(do.kernel(), do.bias, self.bn)
            self.conv = _new_conv(kernel, bias, do.stride, do.padding, do.groups)
        else:
            cin, cout, d_mul = do.D.shape[0], do.W.shape[0], do.d_mul
            # dw output channel i·D_mul + s carries sum_m (D + I)[i, m, s] x_i at tap m ...
            dw = do.depthwise().permute(0, 2, 1).reshape(cin * d_mul, 1, do.k, do.k)
            # ... and the 1x1 weighs it by W[o, i, s]; channel order i·D_mul + s keeps groups contiguous.
            pw, bias = fuse_bn(do.W.reshape(cout, -1, 1, 1), do.bias, self.bn)
            self.dw = _new_conv(dw, None, do.stride, do.padding, groups=cin)
            self.pw = _new_conv(pw, bias, groups=do.groups)
            del self.conv
        del self.bn


def doconv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, compose: str = "kernel") -> nn.Module:
    """The ResNet conv hook: DO-Conv + BN for k > 1, a plain ConvBN for 1x1 convs (no D to learn there)."""
    if k > 1:
        return DOConvBN(cin, cout, k, stride, groups, compose)
    return ConvBN(cin, cout, k, stride, groups=groups)


@register_model(
    family="doconv",
    paper=PAPER,
    seed_design="over-parameterization: a depthwise D composed into every k x k kernel → one plain conv",
    default=True,
    # Kernel composition deploys to the base network (plus conv biases): ResNet-18's own size.
    published=(Published(11.7e6, 1.8e9, "deploy", "ResNet-18, REFERENCE.md (DO-Conv deploys to the base net)"),),
)
def doconv_resnet18() -> ResNet:
    """ResNet-18 with DO-Conv at every k x k conv (7x7 stem and 3x3s); deploys as plain convs."""
    return ResNet(18, ResNetHooks(conv=doconv_bn, shortcut_conv=ConvBN))


@register_model(
    family="doconv",
    paper=PAPER,
    seed_design=(
        "fragmentation: the same DO-Conv ResNet-18, deployed as feature composition (depthwise D, then 1x1 W): "
        "equivalent to the plain conv, but two ops and more MACs per layer"
    ),
)
def doconv_resnet18_feature() -> ResNet:
    """DO-Conv ResNet-18 deployed as feature composition: depthwise k x k (D + I), then 1x1 (W) per layer."""
    return ResNet(18, ResNetHooks(conv=partial(doconv_bn, compose="feature"), shortcut_conv=ConvBN))
