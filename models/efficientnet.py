"""EfficientNet: Rethinking Model Scaling for CNNs (Tan & Le, ICML 2019, arXiv 1905.11946).

EfficientNet-B0, the paper's Table 1 (torchvision's layout):

* stem: 3x3 conv, stride 2, to 32 + BN + swish (SiLU);
* MBConv{1,6} (the MBConv of ``effnetv2.py``, which is exactly this block; the whole network is
  ``effnetv2.EffNetV2`` with no fused stage): [1x1 expand by 6 + BN +
  SiLU, skipped for MBConv1] → k x k depthwise (stride) + BN + SiLU → SE (mean over H, W → 1x1 to
  C_in / 4 of the *block input* (bias) → SiLU → 1x1 back (bias) → sigmoid gate) → 1x1 project +
  BN (linear); the input is added back when stride is 1 and C_in == C_out (drop-connect is the
  identity at inference and is left out);
* stages (expand, kernel, stride, repeats, width): (1,3,1,1,16), (6,3,2,2,24), (6,5,2,2,40),
  (6,3,2,3,80), (6,5,1,3,112), (6,5,2,4,192), (6,3,1,1,320);
* head: 1x1 conv to 1280 + BN + SiLU → global pool → dropout 0.2 → FC.

BN eps is 1e-3, as in the TF reference (torchvision's B0 keeps PyTorch's 1e-5; eps changes no count).

Train form: every conv but the SE's is followed by BN (no conv bias). There is no structural
reparameterization: the deploy form only folds each BN into its conv (``ConvBN.reparameterize``:
W' = W t, b' = beta - mu t, t = gamma / sqrt(var + eps)); SE, SiLU and the residual adds are unchanged.

Counting: the paper's Table 2 "FLOPs" (0.39B for B0) are multiply-adds, i.e. MACs in benchbench's
convention (FLOPs = 2 x MACs); torchvision's "0.39 GFLOPS" are MACs too. torchvision's 5,288,548
params include the BN weights, so they describe the train form.
"""

from __future__ import annotations

from benchbench.models._registry import Paper, Published, register_model
from benchbench.models.effnetv2 import EffNetV2, StageCfg

__all__ = ["efficientnet_b0"]

PAPER = Paper(
    "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", 2019, "https://arxiv.org/abs/1905.11946"
)
# Paper Table 1: expand, stride, in, out, repeats, kernel. The stem's 32 is the first stage's input.
_B0_STAGES = tuple(
    StageCfg(*row)
    for row in [
        (1, 1, 32, 16, 1, 3),
        (6, 2, 16, 24, 2, 3),
        (6, 2, 24, 40, 2, 5),
        (6, 2, 40, 80, 3, 3),
        (6, 1, 80, 112, 3, 5),
        (6, 2, 112, 192, 4, 5),
        (6, 1, 192, 320, 1, 3),
    ]
)


def _create() -> EffNetV2:
    # EfficientNet-B0 is EffNetV2's network with no Fused-MBConv stage: the same stem, MBConv, head (BN eps 1e-3).
    return EffNetV2(_B0_STAGES, fused=(False,) * len(_B0_STAGES))


@register_model(
    family="efficientnet",
    paper=PAPER,
    input_size=(3, 224, 224),
    seed_design="baseline: NAS-found MBConv with SE and swish (compound-scaling base), BN folded at deploy",
    default=True,
    min_input=32,
    published=(
        Published(5_288_548, 0.39e9, "train", "paper Table 2 (0.39B FLOPs = multiply-adds); torchvision params"),
    ),
)
def efficientnet_b0() -> EffNetV2:
    """EfficientNet-B0: MBConv1/6 with SE, 16 blocks in 7 stages, head 1280."""
    return _create()
