"""Tiny user models for harness tests, loaded as ``tests/data/tiny.py:<factory>``.

They exercise the user-model path (a file, not the registry) and give the harness deliberately faulty
models: one no exporter can handle, one whose forward fails.
"""

import torch
import torch.nn as nn
from benchbench.models._layers import ConvBN


class TinyNet(nn.Module):
    """Two ConvBN blocks with a parallel 1x1 branch: train form has BNs, deploy form folds them."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.a = ConvBN(3, width, 3, 2)
        self.b = ConvBN(width, width, 3)
        self.c = ConvBN(width, width, 1)
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        x = torch.relu(self.a(x))
        x = torch.relu(self.b(x) + self.c(x))
        return self.head(x.mean((2, 3)))


def tiny():
    """8 channels: a millisecond-scale model."""
    return TinyNet(8)


def tiny_wide():
    """The same graph 32x wider (about 1000x the weights of tiny)."""
    return TinyNet(256)


class _Unexportable(nn.Module):
    def forward(self, x):
        # No ONNX exporter handles eigenvalues: the export must be recorded as unsupported.
        return torch.linalg.eigvals(x[0, 0, :4, :4]).real.sum() + x.mean((1, 2, 3))


def unexportable():
    return _Unexportable()


class _Broken(nn.Module):
    def forward(self, x):
        raise RuntimeError("this model is broken on purpose")


def broken():
    return _Broken()
