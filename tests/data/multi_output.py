"""A user model with many outputs, for output order and layout checks (``tests/data/multi_output.py:heads``).

Output 0 is a feature map (NCHW, so a channels-last backend must give it back in PyTorch's layout);
outputs 1..11 are vectors of one shape, each scaled differently, so any reordering (``output_10``
sorted before ``output_2``, say) fails parity instead of passing by luck.
"""

import torch
import torch.nn as nn
from benchbench.models._layers import ConvBN


class Heads(nn.Module):
    def __init__(self, width: int = 8, heads: int = 11):
        super().__init__()
        self.stem = ConvBN(3, width, 3, 2)
        self.heads = nn.ModuleList(nn.Linear(width, 10) for _ in range(heads))

    def forward(self, x):
        feat = torch.relu(self.stem(x))
        pooled = feat.mean((2, 3))
        return (feat, *[(i + 1) * head(pooled) for i, head in enumerate(self.heads)])


def heads():
    """12 outputs: a feature map, then 11 differently scaled logits."""
    return Heads()
