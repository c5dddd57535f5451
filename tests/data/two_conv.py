"""The worked example of docs/metrics.md: two 3x3 conv layers, the second with a parallel 1x1 branch.

Loaded as ``tests/data/two_conv.py:two_conv``. Train form: conv1 → ReLU → (conv2 + conv3) → ReLU →
mean; ``reparameterize()`` folds the 1x1 branch into the 3x3 conv (RepVGG style), so the deploy form is
conv1 → ReLU → conv2 → ReLU → mean. Every count in docs/metrics.md is checked by tests/test_metrics.py.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class TwoConv(nn.Module):
    def __init__(self, width: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.conv3 = nn.Conv2d(width, width, 1)  # the training-time branch

    def forward(self, x):
        y = torch.relu(self.conv1(x))
        z = self.conv2(y) if self.conv3 is None else self.conv2(y) + self.conv3(y)
        return torch.relu(z).mean((2, 3))

    @torch.no_grad()
    def reparameterize(self):
        """conv2 + conv3 → one 3x3 conv: the 1x1 kernel becomes the centre tap. Idempotent."""
        if self.conv3 is None:
            return
        self.conv2.weight += F.pad(self.conv3.weight, [1, 1, 1, 1])
        self.conv2.bias += self.conv3.bias
        self.conv3 = None


def two_conv():
    return TwoConv()
