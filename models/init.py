"""Random initialization that makes train/deploy equivalence observable.

No pretrained weights can be downloaded, so the zoo runs on random weights. Default init hides
fusion bugs: BN with mean 0, var 1, gamma 1, beta 0 makes a wrong eps or a missing mean term
invisible, and parameters that start at zero (DBB's identity 1x1, DO-Conv's D) make a branch vanish.
``randomize_`` fixes both, deterministically from a seed.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["randomize_"]


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give BN statistics and constant-initialized parameters random values, in place.

    * BatchNorm: running_mean ~ N(0, 0.5), running_var ~ U(0.5, 2), weight ~ U(0.5, 1.5),
      bias ~ N(0, 0.5) (ZOO_NOTES 0.2).
    * Any other parameter whose elements are all equal (zeros, ones, a constant) is perturbed
      around that value: v + N(0, 0.1) * max(1, |v|). Randomly initialized tensors are left alone.

    Blocks whose training structure needs exact zeros (PSConv's masks) apply their mask in
    ``forward``, so this cannot break them.
    """
    gen = torch.Generator().manual_seed(seed + 1)

    def normal(t, std):
        return torch.randn(t.shape, generator=gen, dtype=t.dtype) * std

    def uniform(t, lo, hi):
        return torch.rand(t.shape, generator=gen, dtype=t.dtype) * (hi - lo) + lo

    done: set[int] = set()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._NormBase):
            if m.running_mean is not None:
                m.running_mean.copy_(normal(m.running_mean, 0.5))
                m.running_var.copy_(uniform(m.running_var, 0.5, 2.0))
            if m.weight is not None:
                m.weight.copy_(uniform(m.weight, 0.5, 1.5))
                m.bias.copy_(normal(m.bias, 0.5))
                done.update((id(m.weight), id(m.bias)))
    for p in model.parameters():
        if id(p) in done or p.numel() == 0 or not p.is_floating_point():
            continue
        flat = p.detach().reshape(-1)
        if torch.all(flat == flat[0]):
            v = float(flat[0])
            p.copy_(v + normal(p, 0.1) * max(1.0, abs(v)))
    return model
