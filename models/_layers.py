"""Fusion arithmetic shared by two or more families. No registry here.

All helpers work in the tensors' own dtype, so a float64 model fuses in float64.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "fuse_bn",
    "fuse_conv_bn",
    "pad_kernel",
    "conv_from",
    "ConvBN",
    "conv_bn",
    "replace_module",
]


def fuse_bn(kernel: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d | nn.BatchNorm1d):
    """Fold BN into the preceding conv/linear: W' = W t, b' = beta + (b - mu) t, t = gamma / sqrt(var + eps)."""
    std = (bn.running_var + bn.eps).sqrt()
    gamma = bn.weight if bn.weight is not None else torch.ones_like(std)
    beta = bn.bias if bn.bias is not None else torch.zeros_like(std)
    t = gamma / std
    b = bias if bias is not None else torch.zeros_like(bn.running_mean)
    shape = (-1,) + (1,) * (kernel.dim() - 1)
    return kernel * t.reshape(shape), beta + (b - bn.running_mean) * t


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of ``bn(conv(x))`` as one conv."""
    return fuse_bn(conv.weight, conv.bias, bn)


def pad_kernel(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad a square k x k kernel to size x size, centred (a 1x1 becomes a centre tap)."""
    k = kernel.shape[-1]
    if k == size:
        return kernel
    p = (size - k) // 2
    return F.pad(kernel, [p, p, p, p])


def conv_from(conv: nn.Conv2d, kernel: torch.Tensor, bias: torch.Tensor | None) -> nn.Conv2d:
    """A new Conv2d with ``conv``'s geometry, holding the given (fused) kernel and bias."""
    out = nn.Conv2d(
        conv.in_channels,
        kernel.shape[0],
        kernel.shape[-1],
        stride=conv.stride,
        padding=kernel.shape[-1] // 2 if conv.padding != "same" else "same",
        dilation=conv.dilation,
        groups=conv.groups,
        bias=bias is not None,
        padding_mode=conv.padding_mode,
    ).to(dtype=kernel.dtype, device=kernel.device)
    out.weight.data = kernel.detach().contiguous()
    if bias is not None:
        out.bias.data = bias.detach().contiguous()
    return out


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, padding: int | None = None, groups: int = 1,
            bias: bool = False, eps: float = 1e-5) -> nn.Sequential:
    """A conv + BN *branch*, ``Sequential(conv, bn)``, that its block fuses itself (RepVGG, DBB, MobileOne,
    VanillaNet): it has no ``reparameterize()`` of its own, so ``reparameterize`` leaves it to the block.
    ``padding`` defaults to k // 2; ``bias`` gives the conv a bias (VanillaNet's)."""
    padding = k // 2 if padding is None else padding
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, padding, groups=groups, bias=bias),
                         nn.BatchNorm2d(cout, eps=eps))


class ConvBN(nn.Module):
    """Conv (no bias) + BN, a block of its own: ``reparameterize()`` folds the BN into a biased conv."""

    def __init__(self, cin, cout, k, stride=1, padding=None, groups=1, dilation=1, eps: float = 1e-5):
        super().__init__()
        padding = dilation * (k // 2) if padding is None else padding
        self.conv = nn.Conv2d(cin, cout, k, stride, padding, dilation=dilation, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=eps)

    def forward(self, x):
        return self.bn(self.conv(x)) if hasattr(self, "bn") else self.conv(x)

    def reparameterize(self):
        if not hasattr(self, "bn"):
            return
        k, b = fuse_conv_bn(self.conv, self.bn)
        fused = nn.Conv2d(
            self.conv.in_channels, self.conv.out_channels, self.conv.kernel_size, self.conv.stride,
            self.conv.padding, dilation=self.conv.dilation, groups=self.conv.groups, bias=True,
        ).to(k.dtype)
        fused.weight.data, fused.bias.data = k.detach().contiguous(), b.detach().contiguous()
        self.conv = fused
        del self.bn


def replace_module(root: nn.Module, dotted: str, new: nn.Module) -> None:
    """Replace the sub-module at ``dotted`` path."""
    parent_name, _, child = dotted.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)
