"""WeightNet: Revisiting the Design Space of Weight Networks (Ma et al., ECCV 2020, arXiv 2007.11823).

WeightNet generates every conv kernel per sample from the block's pooled input (ZOO_NOTES 7.2; the
megvii-model/WeightNet MegEngine code): ``x_gap = reduce(mean_HW(x))`` (a 1x1 conv
``inp → max(16, inp/16)`` with bias, shared by the block's convs), then per conv
``s = sigmoid(fc1(x_gap))`` (M·C_out gates, bias) and ``kernel = fc2(s)``, a grouped 1x1 conv
(``groups = G·C_out``, no bias) that outputs the C_out·C_in·k² kernel values. Depthwise convs use
M/G·C gates and ``groups = C``. M = G = 2 (the "WeightNet (1x)" rows).

Train form (``weightnet_shufflenetv2``): ShuffleNetV2 1.0x as the reference builds it (channel split
at the block start, stage widths 112-224-448 — slightly under ShuffleNetV2's 116-232-464 to pay for
WeightNet's FLOPs — and a 1024 last conv), with every block conv a WeightNet conv + BN: per sample,
fc2 generates the kernel (C_out·C_in·k²·M/G MACs per sample) and one grouped conv with the batch
folded into the groups applies it. Per-sample weights: runtime conv weights and B baked in exports.

Deploy form, exact: fc2's group (o, h) reads gate ``s_{2o+h}`` only, and writes the weights of output
o restricted to input half h, so ``W[o, half h] = s_{2o+h}·A[o, h]`` and
``y = Σ_h s_h ⊙ conv(x_half h, A[·, h])``: **one static grouped conv (groups = G, M·C_out outputs)**
plus SE-like gating and a sum over the halves, at the original conv's MACs. fc1's rows are permuted
to the conv's output order, so the gate is a plain channel Mul. The depthwise convs become
``s ⊙ dwconv(x, A)``. BN scales fold into A, BN shifts are added after the gating.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from benchbench.models._layers import ConvBN, fuse_bn
from benchbench.models._registry import Paper, Published, register_model

__all__ = ["WeightNetConv", "WeightNetShuffleBlock", "WeightNetShuffleNetV2"]

PAPER = Paper("WeightNet: Revisiting the Design Space of Weight Networks", 2020, "https://arxiv.org/abs/2007.11823")


class WeightNetConv(nn.Module):
    """A k x k conv (dense or depthwise) whose kernel WeightNet generates per sample, then BN.

    ``forward(x, x_gap)``: ``x_gap`` is the block's reduced pooled input, (N, gap_channels, 1, 1).
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int,
        stride: int,
        gap_channels: int,
        depthwise: bool = False,
        m: int = 2,
        g: int = 2,
    ):
        super().__init__()
        if m % g or (depthwise and (cin != cout or m != g)) or (not depthwise and cin % g):
            # Depthwise with M/G > 1 would need a sum over channel-interleaved outputs; the reference uses M = G.
            raise ValueError("WeightNet needs G | M and G | C_in (dense), or C_in = C_out and M = G (depthwise)")
        self.cin, self.cout, self.k, self.stride, self.depthwise = cin, cout, k, stride, depthwise
        self.m, self.g = m, g
        r = m // g  # gates per fc2 group
        if depthwise:
            self.fc1 = nn.Conv2d(gap_channels, r * cin, 1)
            self.fc2 = nn.Conv2d(r * cin, cin * k * k, 1, groups=cin, bias=False)
        else:
            self.fc1 = nn.Conv2d(gap_channels, m * cout, 1)
            self.fc2 = nn.Conv2d(m * cout, cout * cin * k * k, 1, groups=g * cout, bias=False)
        # At the mean gate (0.5) the generated kernel gets a default Conv2d's scale, U(±1/sqrt(fan_in)).
        # A default fc2 init (fan_in = M/G) gives kernels ~U(±0.5) and, with no trained BN statistics,
        # activations that grow ~10x per block until float32 loses the output.
        bound = 2 / (k * k * (1 if depthwise else cin)) ** 0.5
        nn.init.uniform_(self.fc2.weight, -bound, bound)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x, x_gap):
        s = torch.sigmoid(self.fc1(x_gap))
        if hasattr(self, "conv"):
            y = self.conv(x) * s
            if self.n_terms > 1:  # Σ over input groups (and over the M/G gates of each): one ReduceSum
                y = y.view(y.shape[0], self.n_terms, -1).sum(1).view(y.shape[0], self.cout, *y.shape[-2:])
            return y + self.bias.view(1, -1, 1, 1)
        n, _, h, w = x.shape
        kernel = self.fc2(s)  # (N, C_out·C_in/groups·k², 1, 1): the per-sample kernels
        if self.depthwise:
            kernel, groups = kernel.reshape(n * self.cin, 1, self.k, self.k), n * self.cin
        else:
            kernel, groups = kernel.reshape(n * self.cout, self.cin, self.k, self.k), n
        y = F.conv2d(x.reshape(1, n * self.cin, h, w), kernel, None, self.stride, self.k // 2, groups=groups)
        return self.bn(y.view(n, self.cout, *y.shape[-2:]))

    def reparameterize(self):
        if not hasattr(self, "bn"):
            return
        k, r, cin, cout = self.k, self.m // self.g, self.cin, self.cout
        w2 = self.fc2.weight.reshape(-1, r)  # row f = generated kernel value f, column = its gate in the group
        if self.depthwise:
            # kernel_c = Σ_j s[c·R + j] A_j[c]: a depthwise conv with channel multiplier R, output c·R + j.
            a = w2.reshape(cin, k, k, r).permute(0, 3, 1, 2)  # (C, R, k, k)
            a, shift = fuse_bn(a, None, self.bn)
            kernel, groups, self.n_terms = a.reshape(cin * r, 1, k, k), cin, 1
        else:
            # Value (o, i, t) sits in fc2 group o·G + h (h = i // (C_in/G)) and reads gate (o·G + h)·R + j.
            a = w2.reshape(cout, cin, k, k, r).permute(4, 0, 1, 2, 3)  # (R, C_out, C_in, k, k)
            a, shift = fuse_bn(a.transpose(0, 1), None, self.bn)  # BN scale per output channel o
            a = a.transpose(0, 1).reshape(r, cout, self.g, cin // self.g, k, k)
            # Static grouped conv: group h, output (h·R + j)·C_out + o holds A_j[o, half h].
            kernel = a.permute(2, 0, 1, 3, 4, 5).reshape(self.g * r * cout, cin // self.g, k, k)
            groups, self.n_terms = self.g, self.g * r
            gate_index = torch.arange(self.m * cout, device=w2.device).view(cout, self.g, r)  # [o, h, j] → gate
            order = gate_index.permute(1, 2, 0).reshape(-1)  # fc1 rows in the conv's output order
            fc1 = nn.Conv2d(self.fc1.in_channels, self.fc1.out_channels, 1).to(dtype=a.dtype, device=a.device)
            fc1.weight.data = self.fc1.weight.detach()[order].contiguous()
            fc1.bias.data = self.fc1.bias.detach()[order].contiguous()
            self.fc1 = fc1
        conv = nn.Conv2d(cin, kernel.shape[0], k, self.stride, k // 2, groups=groups, bias=False)
        conv = conv.to(dtype=kernel.dtype, device=kernel.device)
        conv.weight.data = kernel.detach().contiguous()
        self.conv = conv
        self.bias = nn.Parameter(shift.detach().contiguous())
        del self.fc2, self.bn


class WeightNetShuffleBlock(nn.Module):
    """ShuffleNetV2 unit with WeightNet convs: 1x1 → DW k x k → 1x1 (+ DW → 1x1 projection at stride 2).

    ``inp`` is the branch input: half the block's channels at stride 1 (the split), all of them at 2.
    """

    def __init__(self, inp: int, oup: int, mid: int, stride: int, k: int = 3):
        super().__init__()
        self.stride = stride
        gap = max(16, inp // 16)
        self.reduce = nn.Conv2d(inp, gap, 1)
        self.conv1 = WeightNetConv(inp, mid, 1, 1, gap)
        self.conv2 = WeightNetConv(mid, mid, k, stride, gap, depthwise=True)
        self.conv3 = WeightNetConv(mid, oup - inp, 1, 1, gap)
        if stride == 2:
            self.proj1 = WeightNetConv(inp, inp, k, stride, gap, depthwise=True)
            self.proj2 = WeightNetConv(inp, inp, 1, 1, gap)

    def forward(self, x):
        if self.stride == 1:
            x_proj, x = _split_even_odd(x)
        else:
            x_proj = x
        x_gap = self.reduce(x.mean((2, 3), keepdim=True))
        y = F.relu(self.conv1(x, x_gap))
        y = F.relu(self.conv3(self.conv2(y, x_gap), x_gap))
        if self.stride == 2:
            x_proj = F.relu(self.proj2(self.proj1(x_proj, x_gap), x_gap))
        return torch.cat((x_proj, y), 1)


class WeightNetShuffleNetV2(nn.Module):
    """ShuffleNetV2 (megvii layout: stem 3x3 s2 + max-pool, 3 stages of 4/8/4 units, 1x1 last conv)."""

    def __init__(self, widths=(24, 112, 224, 448, 1024), repeats=(4, 8, 4), num_classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential(ConvBN(3, widths[0], 3, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], widths[0]
        for cout, n in zip(widths[1:-1], repeats):
            blocks.append(WeightNetShuffleBlock(cin, cout, cout // 2, 2))
            blocks += [WeightNetShuffleBlock(cout // 2, cout, cout // 2, 1) for _ in range(n - 1)]
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.last = nn.Sequential(ConvBN(cin, widths[-1], 1), nn.ReLU(inplace=True))
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x):
        x = self.last(self.blocks(self.stem(x)))
        return self.fc(x.mean((2, 3)))  # the reference's AvgPool2d(7), resolution-free


def _split_even_odd(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's channel shuffle + split: even channels pass through, odd ones enter the branch."""
    n, c, h, w = x.shape
    x = x.reshape(n, c // 2, 2, h * w)  # 4-D, not 5-D: friendlier to TFLite
    return x[:, :, 0].reshape(n, c // 2, h, w), x[:, :, 1].reshape(n, c // 2, h, w)


@register_model(
    family="weightnet",
    paper=PAPER,
    seed_design=(
        "dynamic weights: per-sample generated kernels (train) vs static grouped conv + sigmoid gating (deploy), "
        "equal conv MACs"
    ),
    default=True,
    published=(Published(2.4e6, 139e6, "train", "WeightNet README, ShuffleNetV2 1.0x + WeightNet (1x)"),),
    description=(
        "ShuffleNetV2 1.0x (112-224-448, 1024) with WeightNet (M = G = 2) on every block conv. MACs at 224: "
        "train 138.5 M per image (136.8 M conv with per-sample kernels + 0.7 M kernel generation by fc2 "
        "+ 1.0 M FC); deploy 137.8 M (static grouped convs at the original conv MACs, gating is elementwise)"
    ),
)
def weightnet_shufflenetv2() -> WeightNetShuffleNetV2:
    """ShuffleNetV2 1.0x (112-224-448, 1024) with WeightNet (M = G = 2) on every block conv."""
    return WeightNetShuffleNetV2()
