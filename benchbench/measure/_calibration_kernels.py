"""Roofline calibration kernels, loaded through the user-model path as ``_calibration_kernels.py:<kernel>``.

Each takes the harness's usual (1, 3, H, W) input; the calibration runs them at H = W = 512, where
the reshapes below are exact. The reshape is free next to the kernel (3 MiB moved vs GFLOPs of work).
"""

import torch
import torch.nn as nn


class MatMul(nn.Module):
    """(3H x W) @ (W x W): at 512, 2 x 1536 x 512 x 512 = 0.81 GFLOP."""

    def __init__(self, size: int = 512):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(size, size) / size**0.5)

    def forward(self, x):
        return x.reshape(-1, self.weight.shape[0]) @ self.weight


class Conv(nn.Module):
    """A dense 3x3 convolution, 192 -> 192 channels on 64 x 64: 2 x 192 x 192 x 9 x 4096 = 2.72 GFLOP."""

    def __init__(self, channels: int = 192):
        super().__init__()
        self.channels = channels
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)

    def forward(self, x):
        side = int((x.numel() // self.channels) ** 0.5)
        return self.conv(x.reshape(1, self.channels, side, side))


def matmul():
    return MatMul()


def conv():
    return Conv()
