"""ResNet: Deep Residual Learning for Image Recognition (He et al., CVPR 2016, arXiv 1512.03385).

The plain baseline of the zoo, built from the shared backbone in ``_resnet.py`` with its default
hooks (torchvision's layout: 7x7 stem, 3x3 max-pool, four stages, stride on the 3x3).

Train form: every conv is followed by BatchNorm (no conv bias). Deploy form: each BN folded into
its conv (``ConvBN.reparameterize``: W' = W t, b' = beta - mu t, t = gamma / sqrt(var + eps)); nothing
else changes, so the two forms have the same ops apart from the BNs.
"""

from __future__ import annotations

from benchbench.models._registry import Paper, Published, register_model
from benchbench.models._resnet import ResNet

__all__ = ["ResNet"]

PAPER = Paper("Deep Residual Learning for Image Recognition", 2016, "https://arxiv.org/abs/1512.03385")
_SEED = "baseline: conv+BN, BN folded into the conv at deploy"


@register_model(
    family="resnet",
    paper=PAPER,
    input_size=(3, 224, 224),
    seed_design=_SEED + " (BasicBlock)",
    default=True,
    min_input=32,
    # torchvision counts the train form (BN weights included): 11,689,512 params, 1.82 GMACs.
    published=(Published(11.7e6, 1.8e9, "train", "torchvision resnet18 (REFERENCE.md)"),),
)
def resnet18() -> ResNet:
    """ResNet-18: BasicBlocks [2, 2, 2, 2], widths 64-512."""
    return ResNet(18)


@register_model(
    family="resnet",
    paper=PAPER,
    input_size=(3, 224, 224),
    seed_design=_SEED + " (Bottleneck)",
    min_input=32,
    published=(Published(25.6e6, 4.1e9, "train", "torchvision resnet50 (REFERENCE.md)"),),
)
def resnet50() -> ResNet:
    """ResNet-50: Bottlenecks [3, 4, 6, 3], widths 64-512 (x4 expansion)."""
    return ResNet(50)
