"""Weight-dominated user models for the memory tests: the same two-layer graph, 10x the weights.

Loaded as ``tests/data/weights.py:small`` / ``:large``. The input is the harness's (1, 3, 32, 32),
flattened; activations are a few KiB, so resident memory after load is the runtime plus the weights.
"""

import torch.nn as nn


class MLP(nn.Module):
    """flatten → Linear(3072, d) → ReLU → Linear(d, d): 4 (3072 d + d²) bytes of float32 weights."""

    def __init__(self, width: int):
        super().__init__()
        self.fc1 = nn.Linear(3 * 32 * 32, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, x):
        return self.fc2(self.fc1(x.flatten(1)).relu())


def small():
    """d = 512: 1.84 M params, 7.0 MiB."""
    return MLP(512)


def large():
    """d = 3000: 18.2 M params, 69.5 MiB, 9.9x small's."""
    return MLP(3000)
