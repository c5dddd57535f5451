"""A user model whose every inference makes, and frees, a 40 MiB intermediate: the heap-policy test's model.

Loaded as ``tests/data/scratch.py:wide``. The input (1, 3, 32, 32), flattened, is repeated 3,414 times
(10.5 M floats) and averaged back: glibc's malloc serves a block that size with a mapping of its own and
unmaps it when freed, so without ``runners/heap.py``'s policy every inference faults 10,240 pages in.
"""

import torch.nn as nn


class Wide(nn.Module):
    def forward(self, x):
        return x.flatten(1).repeat(1, 3414).mean(dim=1, keepdim=True)


def wide():
    return Wide()
