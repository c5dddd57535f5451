"""Kernel nets: one kernel (or one fusion experiment) per network, for the latency predictor's sweep.

A kernel net is built from a :class:`KernelPoint` (``benchbench.core.kernelpoints``, which documents the
operators and the name format): one operator on a tensor of the point's size, followed by the point's ``post``
chain when it is a fusion experiment. ``benchbench predict --fit`` measures them as ordinary cells, in lockstep
blocks bracketed by the lab's anchor net, and fits one regressor per kernel class on their latencies.

Kernel nets are not a table: any valid name resolves (``register_kernel_name``, hooked into the registry's
name lookup under the ``kern_`` prefix), so the sweep can draw new points where the regressors err and a worker
rebuilds each from its name. Registered with ``kind="kernel"``: no glob reaches them unless it begins with
``kern``. Train and deploy forms are the same network.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from benchbench.models._registry import Paper, register_model, register_resolver
from torch import nn

from benchbench.core.kernelpoints import KERNEL_PREFIX, KernelPoint, parse_kernel_name

__all__ = ["KernelNet", "register_kernel_name"]

PAPER = Paper("benchbench latency predictor: one-kernel nets of a designed kernel sweep", 2026)


def _conv(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=True)
    nn.init.normal_(conv.weight, 0.0, 1.0 / math.sqrt(cin // groups * k * k))
    return conv


# The element-wise activations a kernel net runs, alone (``KernelNet``) or at the end of a post chain (``_Post``).
_ACTIVATIONS = {"relu": F.relu, "sigmoid": torch.sigmoid, "hswish": F.hardswish, "gelu": F.gelu, "silu": F.silu,
                "clip": F.relu6}


class _Post(nn.Module):
    """A fusion experiment's chain behind its head: bn, relu, bnrelu, sigmoid, hswish, gelu, add, addrelu, clip
    (ReLU6, which exports as ONNX's Clip).
    ``add`` adds the head's input (a residual: the head keeps the tensor's shape)."""

    def __init__(self, chain: str, channels: int, four_d: bool):
        super().__init__()
        self.chain = chain
        self.bn = nn.BatchNorm2d(channels) if "bn" in chain and four_d else None

    def forward(self, y, x):
        c = self.chain
        if self.bn is not None:
            y = self.bn(y)
        if c.startswith("add"):
            y = y + x
        activation = _ACTIVATIONS.get(c.removeprefix("bn").removeprefix("add"))  # none for bn and add alone
        return activation(y) if activation is not None else y


class KernelNet(nn.Module):
    """One kernel on the point's tensor (see ``benchbench.core.kernelpoints``)."""

    def __init__(self, point: KernelPoint):
        super().__init__()
        self.point = p = point
        self.head: nn.Module | None = None
        if p.kind in ("conv", "dwconv", "gconv") and p.repeat > 1:
            self.head = nn.Sequential(*[_conv(p.cin, p.cout, p.k, p.stride, p.groups) for _ in range(p.repeat)])
        elif p.kind in ("conv", "dwconv", "gconv"):
            self.head = _conv(p.cin, p.cout, p.k, p.stride, p.groups)
        elif p.op == "gemm":
            self.head = nn.Linear(p.cin, p.cout)
        elif p.op == "bn":
            self.head = nn.BatchNorm2d(p.cin)
        elif p.op == "layernorm":  # over the last dimension, as a token-mixing net normalizes each token
            self.head = nn.LayerNorm(p.size)
        gen = torch.Generator().manual_seed(p.cin * 131 + p.size)
        self.scale = nn.Parameter(torch.rand(1, p.cin, 1, 1, generator=gen) + 0.5) if p.op == "mulbc" else None
        self.other = nn.Parameter(torch.rand(1, p.cin, p.size, p.size, generator=gen) + 0.5) \
            if p.op in ("add", "mul", "concat") else None
        self.post = _Post(p.post, p.cout, p.op != "gemm") if p.post else None

    def _op(self, x):
        p = self.point
        op = p.op
        if self.head is not None and op != "gemm":
            return self.head(x)
        if op == "gemm":  # rows 1: a classifier's Gemm on (1, cin); else a MatMul over (1, 1, rows, cin)
            return self.head(x.flatten(1) if p.rows == 1 else x)
        if op in _ACTIVATIONS:
            for _ in range(p.repeat):  # a chain of the op (the I/O probes)
                x = _ACTIVATIONS[op](x)
            return x
        if op == "add":  # two full tensors, one Add (the second a weight of the input's shape)
            return x + self.other
        if op == "mul":
            return x * self.other
        if op == "mulbc":
            return x * self.scale
        if op == "softmax":
            return torch.softmax(x, dim=1)
        if op == "maxpool":
            return F.max_pool2d(x, p.k, p.stride, padding=p.k // 2 if p.k > 2 else 0)
        if op == "avgpool":
            return F.avg_pool2d(x, p.k, p.stride, padding=p.k // 2 if p.k > 2 else 0)
        if op == "gap":
            return x.mean(dim=(2, 3), keepdim=True)
        half = p.cin // 2
        if op == "concat":  # one Concat of the input and a weight of its shape
            return torch.cat([x, self.other], dim=1)
        if op == "split":
            a, b = torch.split(x, [half, p.cin - half], dim=1)
            return a, b
        if op == "slice":
            return x[:, :half]
        if op == "transpose":
            n, c, h, w = x.shape
            return x.reshape(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        return x.reshape(x.shape[0], -1)  # reshape: a view

    def forward(self, x):
        y = self._op(x)
        return self.post(y, x) if self.post is not None else y


def _input_size(p: KernelPoint) -> tuple[int, int, int]:
    if p.op == "gemm":
        return (p.cin, 1, 1) if p.rows == 1 else (1, p.rows, p.cin)
    return (p.cin, p.size, p.size)


def register_kernel_name(name: str) -> bool:
    """Register the kernel net ``name`` names; False when it is not a kernel net name."""
    try:
        point = parse_kernel_name(name)
    except ValueError:
        return False

    def factory() -> KernelNet:
        return KernelNet(point)

    factory.__name__ = name
    factory.__doc__ = f"kernel net {name}: one {point.op} kernel" + (f" then {point.post}" if point.post else "")
    register_model(factory, family="kernel", kind="kernel", paper=PAPER, input_size=_input_size(point),
                   seed_design=f"kernel point: {point}", min_input=1, identical_forms=True)
    return True


register_resolver(KERNEL_PREFIX, register_kernel_name)
