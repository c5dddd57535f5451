"""Two convolutions with and without ShuffleNetV2's channel shuffle between them, loaded as
``tests/data/shuffle.py:shuffled`` and ``:plain``. LiteRT's converter runs the convolutions channels-last and the
shuffle (a reshape, a 5-D transpose, a reshape) in the PyTorch model's NCHW order, so it leaves a TRANSPOSE out of
NHWC before the shuffle and one back after it: the layout transposes ``LiteRtRunner.layout_reorders`` reports.
"""

import torch
import torch.nn as nn


class Shuffle(nn.Module):
    def __init__(self, shuffle: bool, width: int = 16):
        super().__init__()
        self.shuffle = shuffle
        self.a = nn.Conv2d(3, width, 3, padding=1)
        self.b = nn.Conv2d(width, width, 1)

    def forward(self, x):
        x = torch.relu(self.a(x))
        if self.shuffle:
            n, c, h, w = x.shape
            x = x.reshape(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        return torch.relu(self.b(x)).mean((2, 3))


def shuffled():
    return Shuffle(True)


def plain():
    return Shuffle(False)
