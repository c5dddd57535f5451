"""ShuffleNet V2's guideline microbenchmarks (Ma et al., ECCV 2018, arXiv 1807.11164), Tables 1–4.

Each member is one of the paper's controlled-experiment nets: a block stacked ten times on a 56x56
feature map, with no stem and no head, so its input has the block's width (``input_size`` is
``(C, 56, 56)``, not an RGB image). FLOPs are held equal across the rows of each table by adjusting
channels, exactly as the paper lists them (``shared/REFERENCE.md``):

* G1 (equal channel width minimizes memory access cost), Table 1: two 1x1 convs, c1 → c2 → c1.
* G2 (group convolution costs memory access), Table 2: ten 1x1 group convs, c → c, ``groups = g``.
* G3 (fragmentation reduces parallelism), Table 3: n 1x1 convs in series, or n in parallel summed
  element-wise. Every conv is w → w, so a block costs n·w²·HW either way, and w = c/√n keeps it
  equal to the 1-fragment block's c²·HW — the same width for series and parallel.
* G4 (element-wise ops are not free), Table 4: ResNet's bottleneck with and without its ReLUs and
  its shortcut.

Members use the ARM column's channels (the single-thread CPU analogue) times the paper's ×1/×2/×4
multipliers. The GPU column is not registered separately: its G2 and G3 widths are exactly the ARM
×2/×4 members, G4's are the same, and G1's ×1 widths are the ARM ×4 ones except 1:2 (90,180) vs
(88,176). What remains (×8 and ×16 the ARM ×1 widths) the builders below construct on request.

The train and deploy forms are the same network (``identical_forms=True``): nothing here is
reparameterized, and no BN is drawn. G4's convs carry a bias, the inference form of ResNet's conv+BN.
Weights are variance-preserving normal draws, so 20–40 linear layers neither vanish nor explode
(PyTorch's default init shrinks each linear layer's output by √3, to ~1e-10 after 40 layers, which
underflows float16 backends).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch.nn as nn
from benchbench.models._registry import Paper, register_model
from benchbench.models._resnet import Bottleneck, ResNetHooks

__all__ = [
    "ChannelRatioBlock",
    "FragmentBlock",
    "GuidelineBottleneck",
    "GuidelineNet",
    "channel_ratio_net",
    "group_conv_net",
    "fragment_net",
    "bottleneck_net",
]

PAPER = Paper(
    "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design",
    2018,
    "https://arxiv.org/abs/1807.11164",
)
DEPTH = 10  # "each block is repeatedly stacked for 10 times"
RESOLUTION = 56  # "input image size is 56 × 56" (Tables 1–3; Table 4 does not say, 56 presumably)


class ChannelRatioBlock(nn.Module):
    """G1: a 1x1 conv c1 → c2, then a 1x1 conv c2 → c1."""

    def __init__(self, c1: int, c2: int):
        super().__init__()
        self.conv1 = _pointwise(c1, c2)
        self.conv2 = _pointwise(c2, c1)

    def forward(self, x):
        return self.conv2(self.conv1(x))


class FragmentBlock(nn.Module):
    """G3: ``fragments`` 1x1 convs of width w → w, in series, or in parallel and summed."""

    def __init__(self, width: int, fragments: int, parallel: bool):
        super().__init__()
        self.parallel = parallel
        gain = 1 / math.sqrt(fragments) if parallel else 1.0  # the sum of n branches keeps unit variance
        self.convs = nn.ModuleList(_pointwise(width, width, gain=gain) for _ in range(fragments))

    def forward(self, x):
        if not self.parallel:
            for conv in self.convs:
                x = conv(x)
            return x
        out = self.convs[0](x)
        for conv in self.convs[1:]:  # element-wise adds, not a concat: the paper's joining op
            out = out + conv(x)
        return out


class GuidelineBottleneck(Bottleneck):
    """G4: ResNet's bottleneck (1x1 c → c/4, 3x3, 1x1 c/4 → c), optionally without ReLUs or shortcut.

    The shared ResNet block with BN folded (biased convs), so every variant is its own deploy form.
    Table 4's "c is the number of channels in unit" is read as the outer width, with ResNet's c/4 inside:
    c = 32 is then 34M MACs at 56.7 images/s, ~2 GMAC/s on the paper's ARM core (Tables 1–3 run at
    ~5). An inner width of c or 4c would need 20–31 GMAC/s from that single core.
    """

    def __init__(self, c: int, relu: bool = True, shortcut: bool = True):
        hooks = ResNetHooks(conv=_biased_conv, act=_relu if relu else _no_act)
        super().__init__(c, c // Bottleneck.expansion, 1, hooks)
        self.use_shortcut = shortcut
        if not shortcut:
            del self.shortcut
        gain = math.sqrt(2) if relu else 1.0
        for conv in (self.conv1, self.conv2):
            _init_conv(conv, gain)
        _init_conv(self.conv3, 1.0 if shortcut else gain)  # with a shortcut the ReLU follows the add

    def forward(self, x):
        if self.use_shortcut:
            return super().forward(x)
        y = self.act2(self.conv2(self.act1(self.conv1(x))))
        return self.act3(self.attn(self.conv3(y)))


class GuidelineNet(nn.Module):
    """A guideline benchmark net: blocks in sequence on a feature map; no stem, no head."""

    def __init__(self, blocks: list[nn.Module]):
        super().__init__()
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x):
        return self.blocks(x)


def channel_ratio_net(c1: int, c2: int, depth: int = DEPTH) -> GuidelineNet:
    """G1 net: ``depth`` blocks of 1x1 convs c1 → c2 → c1 (input width c1)."""
    return GuidelineNet([ChannelRatioBlock(c1, c2) for _ in range(depth)])


def group_conv_net(c: int, groups: int, depth: int = DEPTH) -> GuidelineNet:
    """G2 net: ``depth`` 1x1 group convs c → c."""
    return GuidelineNet([_pointwise(c, c, groups) for _ in range(depth)])


def fragment_net(width: int, fragments: int, parallel: bool, depth: int = DEPTH) -> GuidelineNet:
    """G3 net: ``depth`` fragment blocks of the given width (c/√n for the table's c)."""
    return GuidelineNet([FragmentBlock(width, fragments, parallel) for _ in range(depth)])


def bottleneck_net(c: int, relu: bool, shortcut: bool, depth: int = DEPTH) -> GuidelineNet:
    """G4 net: ``depth`` bottlenecks of outer width c."""
    return GuidelineNet([GuidelineBottleneck(c, relu, shortcut) for _ in range(depth)])


def _pointwise(cin: int, cout: int, groups: int = 1, gain: float = 1.0) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 1, groups=groups, bias=False)
    _init_conv(conv, gain)
    return conv


def _init_conv(conv: nn.Conv2d, gain: float) -> None:
    """N(0, gain²/fan_in): unit-variance activations through a linear chain (gain √2 before a ReLU)."""
    fan_in = conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]
    nn.init.normal_(conv.weight, 0.0, gain / math.sqrt(fan_in))


def _biased_conv(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=True)


def _relu(channels: int) -> nn.Module:
    return nn.ReLU(inplace=True)


def _no_act(channels: int) -> nn.Module:
    return nn.Identity()


def _round_to_groups(c: int, groups: int) -> int:
    """The nearest multiple of ``groups`` (halves up)."""
    return groups * math.floor(c / groups + 0.5)


MULTIPLIERS = (1, 2, 4)
# Table 1, ARM column at ×1: c1:c2 → (c1, c2).
G1_WIDTHS = {1: (32, 32), 2: (22, 44), 6: (13, 78), 12: (9, 108)}
# Table 2, ARM column at ×1: g → c. 180 is not divisible by 8: ARM ×1 g = 8 becomes 184 (23 per group),
# +3.3% FLOPs over the g = 1 row (176 would be -5.5%); ×2 and ×4 keep the paper's 360 and 720.
G2_WIDTHS = {1: 64, 2: 90, 4: 128, 8: 180}
# Table 3, ARM column: c = 64 at ×1 (GPU: 128). Fragment widths are rounded at ×1 and scaled,
# which gives the paper's own 90/180/360 for n = 2 at c = 128/256/512.
G3_C = 64
G3_BLOCKS = {  # member name → (fragments, parallel, the paper's row)
    "1frag": (1, False, "1-fragment"),
    "2series": (2, False, "2-fragment-series"),
    "4series": (4, False, "4-fragment-series"),
    "2parallel": (2, True, "2-fragment-parallel"),
    "4parallel": (4, True, "4-fragment-parallel"),
}
# Table 4: c = 32 at ×1 in both columns.
G4_C = 32


def _register(name: str, family: str, build: Callable[[], GuidelineNet], in_channels: int, design: str,
              default: bool) -> None:
    def factory() -> GuidelineNet:
        return build()

    factory.__name__ = name
    factory.__doc__ = f"{design}; train and deploy forms are the same network."
    register_model(
        factory,
        family=family,
        kind="guideline",
        paper=PAPER,
        input_size=(in_channels, RESOLUTION, RESOLUTION),
        seed_design=design,
        default=default,
        min_input=1,  # 1x1 convs (and padded 3x3s) run at any resolution
        identical_forms=True,
    )


def _register_all() -> None:
    for m in MULTIPLIERS:
        for ratio, (c1, c2) in G1_WIDTHS.items():
            c1m, c2m = c1 * m, c2 * m
            design = f"guideline G1 (equal channel width minimizes MAC): Table 1 row c1:c2 = 1:{ratio}, ARM ×{m}"
            _register(f"g1_ratio{ratio}_x{m}", "guideline_g1", partial(channel_ratio_net, c1m, c2m), c1m,
                      f"{design}, (c1, c2) = ({c1m}, {c2m})", default=ratio == 1 and m == 1)
        for g, c in G2_WIDTHS.items():
            cm = _round_to_groups(c * m, g)
            note = "" if cm == c * m else f" (paper: {c * m}, not divisible by {g})"
            design = f"guideline G2 (group convolution increases MAC): Table 2 row g = {g}, ARM ×{m}"
            _register(f"g2_groups{g}_x{m}", "guideline_g2", partial(group_conv_net, cm, g), cm,
                      f"{design}, c = {cm}{note}", default=g == 1 and m == 1)
        for block, (n, parallel, row) in G3_BLOCKS.items():
            width = round(G3_C / math.sqrt(n)) * m
            design = f"guideline G3 (fragmentation reduces parallelism): Table 3 row {row}, ARM c = {G3_C * m}"
            _register(f"g3_{block}_x{m}", "guideline_g3", partial(fragment_net, width, n, parallel), width,
                      f"{design}, fragment width {width}", default=n == 1 and m == 1)
        for relu in (True, False):
            for shortcut in (True, False):
                c = G4_C * m
                name = f"g4_{'relu' if relu else 'norelu'}_{'shortcut' if shortcut else 'noshortcut'}_x{m}"
                design = (f"guideline G4 (element-wise ops are non-negligible): Table 4 row ReLU "
                          f"{'yes' if relu else 'no'}, shortcut {'yes' if shortcut else 'no'}")
                _register(name, "guideline_g4", partial(bottleneck_net, c, relu, shortcut), c,
                          f"{design}, c = {c} (bottleneck {c} → {c // 4} → {c})",
                          default=relu and shortcut and m == 1)


_register_all()
