"""VanillaNet: The Power of Minimalism in Deep Learning (Chen et al., NeurIPS 2023, arXiv 2305.12972).

Train form ("deep training"): every stage is conv1x1+BN → LeakyReLU(λ) → conv1x1+BN → pool → a
"series informed" activation, ReLU followed by a (2n+1)² depthwise conv + BN. λ (``act_learn``)
anneals 0 → 1 during training; at λ = 1 the LeakyReLU is the identity and the two 1x1 convs compose.

Deploy form: BN folded everywhere, each stage's 1x1 pair merged into one 1x1 conv, the stem's 4x4
and 1x1 merged, the head's two 1x1 convs merged. Exact only at λ = 1; reparameterizing at any other
λ raises.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from benchbench.models._layers import conv_bn, fuse_bn
from benchbench.models._registry import Paper, Published, register_model

__all__ = ["VanillaNet"]

PAPER = Paper("VanillaNet: the Power of Minimalism in Deep Learning", 2023, "https://arxiv.org/abs/2305.12972")
_BN_EPS = 1e-6


def _conv_bn(cin: int, cout: int, k: int = 1, stride: int = 1) -> nn.Sequential:
    """VanillaNet's branch: a biased, unpadded conv and a BN with its own eps (fused by its block)."""
    return conv_bn(cin, cout, k, stride, padding=0, bias=True, eps=_BN_EPS)


def _fused(seq: nn.Sequential) -> tuple[torch.Tensor, torch.Tensor]:
    conv, bn = seq
    return fuse_bn(conv.weight, conv.bias, bn)


def _compose_1x1(w2: torch.Tensor, b2: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor):
    """conv_{w2,b2} ∘ conv_{w1,b1} where the outer conv is 1x1: W[o,c,j,k] = Σ_i W2[o,i] W1[i,c,j,k]."""
    w2m = w2.flatten(1)
    return torch.einsum("oi,icjk->ocjk", w2m, w1).contiguous(), b2 + w2m @ b1


def _new_conv(weight: torch.Tensor, bias: torch.Tensor, stride: int = 1, padding: int = 0, groups: int = 1):
    conv = nn.Conv2d(weight.shape[1] * groups, weight.shape[0], weight.shape[-1], stride, padding, groups=groups)
    conv = conv.to(weight.dtype)
    conv.weight.data, conv.bias.data = weight.detach().contiguous(), bias.detach().contiguous()
    return conv


class SeriesActivation(nn.Module):
    """ReLU, then a (2n+1)² depthwise conv; BN after it in the train form, a conv bias in deploy."""

    def __init__(self, dim: int, act_num: int = 3):
        super().__init__()
        self.act_num = act_num
        self.weight = nn.Parameter(torch.empty(dim, 1, 2 * act_num + 1, 2 * act_num + 1))
        nn.init.trunc_normal_(self.weight, std=0.02)
        self.bn = nn.BatchNorm2d(dim, eps=_BN_EPS)

    def forward(self, x):
        x = F.relu(x)
        if hasattr(self, "bn"):
            return self.bn(F.conv2d(x, self.weight, None, padding=self.act_num, groups=self.weight.shape[0]))
        return F.conv2d(x, self.weight, self.bias, padding=self.act_num, groups=self.weight.shape[0])

    def reparameterize(self):
        if not hasattr(self, "bn"):
            return
        w, b = fuse_bn(self.weight, None, self.bn)
        self.weight.data = w.detach().contiguous()
        self.bias = nn.Parameter(b.detach().contiguous())
        del self.bn


class _DeepTrained(nn.Module):
    """Shared λ handling: a LeakyReLU(λ) between two convs, mergeable only at λ = 1."""

    act_learn: float = 1.0

    def _check_mergeable(self):
        if self.act_learn != 1.0:
            raise ValueError(f"VanillaNet can only be reparameterized at act_learn = 1, not {self.act_learn}")


class VanillaBlock(_DeepTrained):
    def __init__(self, dim: int, dim_out: int, act_num: int = 3, stride: int = 1):
        super().__init__()
        self.conv1 = _conv_bn(dim, dim)
        self.conv2 = _conv_bn(dim, dim_out)
        self.pool = nn.MaxPool2d(stride) if stride != 1 else nn.Identity()
        self.act = SeriesActivation(dim_out, act_num)

    def forward(self, x):
        if hasattr(self, "conv"):
            x = self.conv(x)
        else:
            x = self.conv2(F.leaky_relu(self.conv1(x), self.act_learn))
        return self.act(self.pool(x))

    def reparameterize(self):
        if hasattr(self, "conv"):
            return
        self._check_mergeable()
        w, b = _compose_1x1(*_fused(self.conv2), *_fused(self.conv1))
        self.conv = _new_conv(w, b)
        del self.conv1, self.conv2


class VanillaStem(_DeepTrained):
    def __init__(self, dim: int, act_num: int = 3):
        super().__init__()
        self.stem1 = _conv_bn(3, dim, 4, stride=4)
        self.stem2 = _conv_bn(dim, dim)
        self.act = SeriesActivation(dim, act_num)

    def forward(self, x):
        if hasattr(self, "conv"):
            x = self.conv(x)
        else:
            x = self.stem2(F.leaky_relu(self.stem1(x), self.act_learn))
        return self.act(x)

    def reparameterize(self):
        if hasattr(self, "conv"):
            return
        self._check_mergeable()
        w, b = _compose_1x1(*_fused(self.stem2), *_fused(self.stem1))
        self.conv = _new_conv(w, b, stride=4)
        del self.stem1, self.stem2


class VanillaHead(_DeepTrained):
    def __init__(self, dim: int, num_classes: int = 1000, drop_rate: float = 0.0):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(drop_rate)
        self.cls1 = _conv_bn(dim, num_classes)
        self.cls2 = nn.Conv2d(num_classes, num_classes, 1)

    def forward(self, x):
        x = self.drop(self.pool(x))
        if hasattr(self, "cls"):
            x = self.cls(x)
        else:
            x = self.cls2(F.leaky_relu(self.cls1(x), self.act_learn))
        return x.flatten(1)

    def reparameterize(self):
        if hasattr(self, "cls"):
            return
        self._check_mergeable()
        w, b = _compose_1x1(self.cls2.weight, self.cls2.bias, *_fused(self.cls1))
        self.cls = _new_conv(w, b)
        del self.cls1, self.cls2


class VanillaNet(nn.Module):
    def __init__(self, dims, strides, act_num: int = 3, num_classes: int = 1000, drop_rate: float = 0.0):
        super().__init__()
        self.stem = VanillaStem(dims[0], act_num)
        self.stages = nn.Sequential(
            *(VanillaBlock(dims[i], dims[i + 1], act_num, strides[i]) for i in range(len(strides)))
        )
        self.head = VanillaHead(dims[-1], num_classes, drop_rate)

    def set_act_learn(self, value: float) -> None:
        """Set λ of every LeakyReLU (the deep-training schedule anneals it from 0 to 1)."""
        for m in self.modules():
            if isinstance(m, _DeepTrained):
                m.act_learn = float(value)

    def forward(self, x):
        return self.head(self.stages(self.stem(x)))


_C = [128 * 4, 256 * 4, 512 * 4, 1024 * 4]


def _deep_config(n_2048: int) -> dict:
    """VanillaNet-7+: 512, 512, 1024, then n_2048 stages of 2048, then 4096, 4096."""
    dims = [_C[0], _C[0], _C[1]] + [_C[2]] * n_2048 + [_C[3], _C[3]]
    strides = [1, 2, 2] + [1] * (n_2048 - 1) + [2, 1]
    return {"dims": dims, "strides": strides}


_CONFIGS = {
    5: {"dims": _C, "strides": [2, 2, 2]},
    6: {"dims": _C + [_C[3]], "strides": [2, 2, 2, 1]},
    **{depth: _deep_config(depth - 6) for depth in range(7, 14)},
}
# Deploy params (M) and MACs (G) from the VanillaNet README (shared/REFERENCE.md).
_PUBLISHED = {
    5: (15.5, 5.2), 6: (32.5, 6.0), 7: (32.8, 6.9), 8: (37.1, 7.7), 9: (41.4, 8.6),
    10: (45.7, 9.4), 11: (50.0, 10.3), 12: (54.3, 11.1), 13: (58.6, 11.9),
}


def _register(depth: int) -> None:
    params_m, macs_g = _PUBLISHED[depth]

    def factory() -> VanillaNet:
        return VanillaNet(**_CONFIGS[depth])

    factory.__name__ = f"vanillanet_{depth}"
    factory.__doc__ = f"VanillaNet-{depth}: {len(_CONFIGS[depth]['strides'])} stages, dims {_CONFIGS[depth]['dims']}."
    register_model(
        factory,
        family="vanillanet",
        paper=PAPER,
        seed_design="reparameterization (deep training: a merged 1x1 pair and folded BN per stage)",
        default=depth == 5,
        min_input=64,
        published=(Published(params_m * 1e6, macs_g * 1e9, "deploy", "VanillaNet README"),),
    )


for _depth in range(5, 14):
    _register(_depth)
