"""MLP-Mixer: An all-MLP Architecture for Vision (Tolstikhin et al., NeurIPS 2021, arXiv 2105.01601).

Train form, as lucidrains/mlp-mixer-pytorch lays it out but with the paper's hidden sizes
(token MLP D_S = C/2, channel MLP D_C = 4C; the package's defaults differ and changed across versions):
patchify by rearranging ``b c (h p1) (w p2) -> b (h w) (p1 p2 c)`` then a Linear to C; ``depth`` Mixer
layers, each ``x + TokenMLP(LN(x))`` then ``x + ChannelMLP(LN(x))`` (GELU, exact erf); LN, mean over
tokens, Linear head. The token MLP is a Linear over the token axis, so its weights are sized by the
number of patches: the resolution is fixed at construction.

Deploy form, exact rewrites only:

* patchify: the rearrange + Linear is one Conv2d(k = s = patch); the Linear's input order (p1, p2, c)
  is permuted to the conv's (c, p1, p2). This also removes the 6-D transpose.
* channel-mix LN affine folded into the first channel Linear: W (x̂ γ + β) + b = (W diag γ) x̂ + (W β + b).
* head LN affine folded into the head Linear: the token mean is linear and the affine is per channel,
  so mean(x̂ γ + β) = mean(x̂) γ + β, then the same fold.

What does not fold: the token-mix LN affine. The token Linear W1 (D_S x N) mixes the token axis of
LN(x)[n, c] = x̂[n, c] γ[c] + β[c], giving γ[c] (W1 x̂)[s, c] + β[c] Σ_n W1[s, n] + b1[s]. γ scales
the *channel* axis, which W1 does not have, and a GELU follows, so γ cannot enter W1; the β term is a
full (D_S x C) bias, not a bias of W1. Both would fold only if γ, β were constant across channels.
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F
from benchbench.models._registry import Paper, Published, register_model

__all__ = ["MlpMixer"]

PAPER = Paper("MLP-Mixer: An all-MLP Architecture for Vision", 2021, "https://arxiv.org/abs/2105.01601")


def _fold_ln_into_linear(norm: nn.LayerNorm, fc: nn.Linear) -> tuple[nn.LayerNorm, nn.Linear]:
    """An affine-free LN and a Linear computing fc(norm(x)): W' = W diag(γ), b' = W β + b."""
    plain = nn.LayerNorm(norm.normalized_shape, eps=norm.eps, elementwise_affine=False)
    out = nn.Linear(fc.in_features, fc.out_features).to(fc.weight.dtype)
    out.weight.data = (fc.weight.detach() * norm.weight.detach()).contiguous()
    out.bias.data = (fc.weight.detach() @ norm.bias.detach() + fc.bias.detach()).contiguous()
    return plain, out


class Patchify(nn.Module):
    """``b c (h p1) (w p2) -> b (h w) (p1 p2 c)``: non-overlapping patches flattened as tokens."""

    def __init__(self, patch: int):
        super().__init__()
        self.patch = patch

    def forward(self, x):
        b, c, h, w = x.shape
        p = self.patch
        x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b, (h // p) * (w // p), p * p * c)


class PatchEmbed(nn.Module):
    """Train: patchify + Linear. Deploy: one strided conv, then flatten to tokens."""

    def __init__(self, patch: int, in_chans: int, dim: int):
        super().__init__()
        self.patch, self.in_chans = patch, in_chans
        self.patchify = Patchify(patch)
        self.proj = nn.Linear(patch * patch * in_chans, dim)

    def forward(self, x):
        if hasattr(self, "conv"):
            return self.conv(x).flatten(2).transpose(1, 2)
        return self.proj(self.patchify(x))

    def reparameterize(self):
        if hasattr(self, "conv"):
            return
        p, c = self.patch, self.in_chans
        dim = self.proj.out_features
        conv = nn.Conv2d(c, dim, p, stride=p).to(self.proj.weight.dtype)
        # Linear input index is (p1, p2, c); the conv kernel wants (c, p1, p2).
        conv.weight.data = self.proj.weight.detach().reshape(dim, p, p, c).permute(0, 3, 1, 2).contiguous()
        conv.bias.data = self.proj.bias.detach().clone()
        self.conv = conv
        del self.patchify, self.proj


class TokenMixing(nn.Module):
    """``x + MLP(LN(x)^T)^T``: an MLP across the N tokens, shared by all channels. Unchanged at deploy."""

    def __init__(self, dim: int, num_tokens: int, hidden: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.fc1 = nn.Linear(num_tokens, hidden)
        self.fc2 = nn.Linear(hidden, num_tokens)

    def forward(self, x):
        y = self.norm(x).transpose(1, 2)  # (B, C, N): the Linear acts on tokens
        return x + self.fc2(F.gelu(self.fc1(y))).transpose(1, 2)


class ChannelMixing(nn.Module):
    """``x + MLP(LN(x))`` per token; deploy folds the LN affine into fc1."""

    def __init__(self, dim: int, hidden: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return x + self.fc2(F.gelu(self.fc1(self.norm(x))))

    def reparameterize(self):
        if not self.norm.elementwise_affine:
            return
        self.norm, self.fc1 = _fold_ln_into_linear(self.norm, self.fc1)


class MixerLayer(nn.Module):
    def __init__(self, dim: int, num_tokens: int, token_hidden: int, channel_hidden: int):
        super().__init__()
        self.token_mix = TokenMixing(dim, num_tokens, token_hidden)
        self.channel_mix = ChannelMixing(dim, channel_hidden)

    def forward(self, x):
        return self.channel_mix(self.token_mix(x))


class MixerHead(nn.Module):
    """LN → mean over tokens → Linear; deploy folds the LN affine into the Linear."""

    def __init__(self, dim: int, num_classes: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x):
        return self.fc(self.norm(x).mean(1))

    def reparameterize(self):
        if not self.norm.elementwise_affine:
            return
        self.norm, self.fc = _fold_ln_into_linear(self.norm, self.fc)


class MlpMixer(nn.Module):
    """MLP-Mixer for a fixed input size (H, W), both multiples of the patch size."""

    def __init__(
        self,
        input_size: tuple[int, int] = (224, 224),
        patch: int = 16,
        dim: int = 512,
        depth: int = 8,
        token_hidden: int = 256,
        channel_hidden: int = 2048,
        in_chans: int = 3,
        num_classes: int = 1000,
    ):
        super().__init__()
        h, w = input_size
        if h % patch or w % patch:
            raise ValueError(f"input size {input_size} is not a multiple of the patch size {patch}")
        num_tokens = (h // patch) * (w // patch)
        self.input_size = (h, w)
        self.embed = PatchEmbed(patch, in_chans, dim)
        self.layers = nn.Sequential(*(MixerLayer(dim, num_tokens, token_hidden, channel_hidden) for _ in range(depth)))
        self.head = MixerHead(dim, num_classes)

    def forward(self, x):
        return self.head(self.layers(self.embed(x)))


@register_model(
    family="mixer",
    paper=PAPER,
    input_size=(3, 224, 224),
    seed_design="all-MLP: token/channel MLPs (LN affine and patchify folded where exact)",
    default=True,
    fixed_input=True,
    min_input=16,
    published=(Published(18.53e6, 3.79e9, "train", "timm mixer_s16_224 (ZOO_NOTES 10); paper: 18M"),),
)
def mixer_s16(input_size: tuple[int, int] = (224, 224)) -> MlpMixer:
    """Mixer-S/16: C = 512, 8 layers, patch 16, D_S = 256, D_C = 2048."""
    return MlpMixer(tuple(input_size), patch=16, dim=512, depth=8, token_hidden=256, channel_hidden=2048)
