"""MobileNetV2, its YOLO-ReT truncation, and the RFCR neck.

* MobileNetV2: Inverted Residuals and Linear Bottlenecks (Sandler et al., CVPR 2018, arXiv 1801.04381),
  from the shared backbone in ``_mobilenetv2.py`` (torchvision's layout).
* YOLO-ReT: Towards High Accuracy Real-time Object Detection on Edge GPUs (Ganesh et al., WACV 2022,
  arXiv 2110.13713): the backbone *truncated* by its last two blocks (the 320-channel inverted residual
  and the 1280 1x1 conv), and the Raw Feature Collection and Redistribution (RFCR) neck on it.

RFCR, as in the reference code (``prakharg24/yoloret``, ``code/yolo3/model.py::rfcr_module``):
taps at strides 4, 8, 16, 32 (the last block of each stride) are each projected to 48 channels by a
1x1 conv (no bias, no BN) and resampled to stride 16 (stride 4: max-pool 4 *before* its 1x1; stride 8:
max-pool 2 after it; stride 32: nearest x2 upsample), summed with four learnable scalars (initialised
to 1, not normalised: the reference's ``WeightedSum``), passed through a separable block (5x5 depthwise
+ BN + ReLU6 → 1x1 to 96 + BN + ReLU6), then redistributed: each stride-8/16/32 tap is concatenated with
the fused map resampled to its scale (nearest x2 up, identity, max-pool 2). The model returns those
three maps, ordered stride 8, 16, 32 (the YOLO head is not part of this zoo entry).

Train form: BN after every conv, the fusion scalars as explicit multiplies. Deploy form: BN folded
everywhere, and each fusion scalar a_i folded into its branch's 1x1 projection. a_i passes through
nearest upsampling and the identity (both linear), and a max-pool *before* a 1x1 is not in its way.
The stride-8 branch max-pools *after* its 1x1, and max is only positively homogeneous
(max(a y) = a max(y) for a >= 0): there |a| is folded, and a negative a leaves a subtraction in the
sum (never a multiply). The backbone's ``forward_features`` gives strides 8/16/32 only, so this model
walks the blocks itself to take the stride-4 tap too.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from benchbench.models._layers import ConvBN
from benchbench.models._mobilenetv2 import MBV2_SETTINGS, MobileNetV2, make_divisible
from benchbench.models._registry import Paper, Published, register_model

__all__ = ["MobileNetV2", "RFCR", "MobileNetV2RFCR"]

PAPER_MBV2 = Paper("MobileNetV2: Inverted Residuals and Linear Bottlenecks", 2018, "https://arxiv.org/abs/1801.04381")
PAPER_YOLORET = Paper(
    "YOLO-ReT: Towards High Accuracy Real-time Object Detection on Edge GPUs", 2022, "https://arxiv.org/abs/2110.13713"
)


class RFCR(nn.Module):
    """Raw Feature Collection and Redistribution over taps at strides 4, 8, 16, 32.

    ``forward`` takes the four taps (finest first) and returns three maps at strides 8, 16, 32:
    ``concat(tap, fused map resampled to the tap's scale)``.
    """

    def __init__(self, in_chs: tuple[int, int, int, int], mid: int = 48, out: int = 96, kernel: int = 5):
        super().__init__()
        self.pool4 = nn.MaxPool2d(4)  # stride-4 tap → stride 16, before its 1x1 (as the reference)
        self.pool2 = nn.MaxPool2d(2)
        self.up2 = nn.Upsample(scale_factor=2, mode="nearest")  # static factor: exports as one Resize
        self.proj = nn.ModuleList(nn.Conv2d(c, mid, 1, bias=False) for c in in_chs)
        self.fuse_weight = nn.Parameter(torch.ones(len(in_chs)))
        self.dw = ConvBN(mid, mid, kernel, groups=mid)
        self.act1 = nn.ReLU6(inplace=True)
        self.pw = ConvBN(mid, out, 1)
        self.act2 = nn.ReLU6(inplace=True)
        self.out_channels = tuple(c + out for c in in_chs[1:])

    def _branches(self, taps):
        t4, t8, t16, t32 = taps
        return [
            self.proj[0](self.pool4(t4)),
            self.pool2(self.proj[1](t8)),
            self.proj[2](t16),
            self.up2(self.proj[3](t32)),
        ]

    def forward(self, taps):
        branches = self._branches(taps)
        if hasattr(self, "fuse_weight"):
            fused = self.fuse_weight[0] * branches[0]
            for a, b in zip(self.fuse_weight[1:], branches[1:]):
                fused = fused + a * b
        else:  # deploy: the scalars live in the 1x1 weights; at most a sign is left
            fused = branches[0]
            for subtract, b in zip(self.subtract[1:], branches[1:]):
                fused = fused - b if subtract else fused + b
        fused = self.act2(self.pw(self.act1(self.dw(fused))))
        _, t8, t16, t32 = taps
        return torch.cat([t8, self.up2(fused)], 1), torch.cat([t16, fused], 1), torch.cat([t32, self.pool2(fused)], 1)

    def reparameterize(self):
        if not hasattr(self, "fuse_weight"):
            return
        a = self.fuse_weight.detach()
        # Branch 1 max-pools after its 1x1: only |a| passes through max(); a's sign stays as a subtract.
        # Branch 0 is never negated (its pool is before the 1x1), so the sum can start from it.
        sign_free = (True, False, True, True)
        subtract = []
        for conv, ai, free in zip(self.proj, a, sign_free):
            conv.weight.data = (conv.weight.detach() * (ai if free else ai.abs())).contiguous()
            # A meta tensor (shape-only counting) has no sign to read; add vs subtract costs the same.
            subtract.append(not free and ai.device.type != "meta" and bool(ai < 0))
        self.subtract = tuple(subtract)
        del self.fuse_weight


class MobileNetV2RFCR(nn.Module):
    """Truncated MobileNetV2 (YOLO-ReT) with the RFCR neck; returns maps at strides 8, 16, 32."""

    def __init__(self, width_mult: float = 1.0):
        super().__init__()
        backbone = MobileNetV2(width_mult, truncate=True)
        # Keep only the feature extractor: the classifier would be dead weight in params and exports.
        self.stem, self.blocks = backbone.stem, backbone.blocks
        settings = MBV2_SETTINGS[:-1]
        self.tap_indices = tuple(_last_block_at_stride(settings, s) for s in (4, 8, 16, 32))
        chs = tuple(make_divisible(_channels_at(settings, i) * width_mult) for i in self.tap_indices)
        self.neck = RFCR(chs)
        self.out_channels = self.neck.out_channels

    def forward(self, x):
        x = self.stem(x)
        taps = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.tap_indices:
                taps.append(x)
        return self.neck(taps)


def _block_strides(settings) -> list[int]:
    """Total stride after each block (the stem has stride 2)."""
    strides, total = [], 2
    for _t, _c, n, s in settings:
        for i in range(n):
            total *= s if i == 0 else 1
            strides.append(total)
    return strides


def _last_block_at_stride(settings, stride: int) -> int:
    return max(i for i, s in enumerate(_block_strides(settings)) if s == stride)


def _channels_at(settings, index: int) -> int:
    flat = [c for _t, c, n, _s in settings for _ in range(n)]
    return flat[index]


_MBV2_PUBLISHED = Published(3_504_872, 0.30e9, "train", "torchvision mobilenet_v2 (REFERENCE.md)")


@register_model(
    family="mobilenetv2",
    paper=PAPER_MBV2,
    input_size=(3, 224, 224),
    seed_design="baseline: inverted residuals, BN folded at deploy",
    default=True,
    min_input=32,
    published=(_MBV2_PUBLISHED,),
)
def mobilenetv2_100() -> MobileNetV2:
    """MobileNetV2 x1.0: the complete backbone with its 1000-class head."""
    return MobileNetV2(1.0)


@register_model(
    family="mobilenetv2",
    paper=PAPER_YOLORET,
    input_size=(3, 224, 224),  # the classifier's size, to compare with mobilenetv2_100; YOLO-ReT uses 320
    seed_design="truncation: the 320-channel block and the 1280 conv removed (YOLO-ReT)",
    min_input=32,
)
def mobilenetv2_100_truncated() -> MobileNetV2:
    """MobileNetV2 x1.0 without its last two blocks; the classifier reads the 160-channel map."""
    return MobileNetV2(1.0, truncate=True)


@register_model(
    family="mobilenetv2",
    paper=PAPER_YOLORET,
    input_size=(3, 320, 320),  # YOLO-ReT's detection input; H, W must be multiples of 32
    seed_design="multi-scale fusion: truncated backbone + RFCR neck (YOLO-ReT), fusion scalars folded at deploy",
    min_input=32,
)
def mobilenetv2_100_rfcr() -> MobileNetV2RFCR:
    """Truncated MobileNetV2 x1.0 + RFCR neck; outputs (stride 8, 16, 32) maps of 128, 192, 256 channels."""
    return MobileNetV2RFCR(1.0)
