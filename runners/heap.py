"""The C heap's policy under a runtime that takes every tensor from it: PyTorch eager on the CPU.

ONNX Runtime, OpenVINO and LiteRT keep their tensors in arenas of their own. PyTorch eager asks ``malloc`` for
each op's output and frees it when the next op is done with it, and glibc's ``malloc`` gives memory back to
the system on its own schedule: it serves a block above its *mmap threshold* with a fresh mapping and unmaps
it on ``free``, and trims the heap's top when more than its *trim threshold* lies free there. Both thresholds
move with what the process freed before (glibc raises them to the largest mapping freed). So, depending on
the process's history, an inference may fault its outputs' pages in afresh every time: in benchbench's own
workers, MobileNetV2-1.0's deploy form on torch took 5,587 page faults and 16.8 ms per inference with
glibc's policy, 0.2 and 10.1 ms with the policy below; EfficientNet-B0 19.9 against 14.8 ms, VanillaNet-5
54.3 against 39.0 ms, ResNet-18 and ShuffleNetV2 within 5% (docs/metrics.md, page faults). In one process,
the same MobileNetV2 took 0 or 2,300 faults per inference depending on which models were built before it.
A latency that depends on the allocator's history is not the model's, and a kernel net timed alone
(``benchbench predict``), whose buffers are reused, never shows it.

The policy takes both out of play: no block is served by a mapping of its own, the heap is not trimmed while
less than 2 GiB lies free at its top, and it grows 64 MiB at a time. A threshold alone does not do it: glibc
caps the mmap threshold at 32 MiB, and VanillaNet-5's deploy form takes a block of about 32 MiB (the size of its
widest convolution's weight) on every inference (8,259 faults and 45.0 ms per inference with the threshold at
its cap, 1 and 37.7 ms without mappings; ``--quick`` runs). What a process keeps is what it once used: the
inference's peak memory moves by no more than 10 MiB either way on those models, while a load's transient blocks
stay resident (VanillaNet-5's ``load_mib`` 119 against 152 MiB). PyTorch's performance tuning guide, and Intel's
for its extension, reach the same end by preloading jemalloc or TCMalloc. ``BENCHBENCH_TORCH_MALLOC=default``
leaves glibc's policy as it is (to measure what an untuned deployment sees); the cell's backend metadata records
which policy it ran under, and every cell records its page faults per timed inference
(``stats.faults_per_inference``).
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["ENV", "keep_freed_memory"]

ENV = "BENCHBENCH_TORCH_MALLOC"

# glibc's mallopt parameters (malloc.h) and the values set
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4
_SETTINGS = {"mmap_max": (_M_MMAP_MAX, 0),  # no block gets a mapping of its own
             "trim_threshold": (_M_TRIM_THRESHOLD, 2**31 - 1),  # the most a C int holds
             "top_pad": (_M_TOP_PAD, 64 << 20)}


def keep_freed_memory() -> dict:
    """Set the policy above in this process, unless ``$BENCHBENCH_TORCH_MALLOC`` is ``default`` or the C library
    is not glibc; returns what holds, for the cell's metadata: ``{"policy": "keep-freed", <setting>: bytes}``
    or ``{"policy": "default" | "partial", "why": ...}``."""
    choice = os.environ.get(ENV, "").strip().lower()
    if choice == "default":
        return {"policy": "default", "why": f"{ENV}=default"}
    if choice not in ("", "keep-freed"):
        return {"policy": "default", "why": f"{ENV}={choice!r} is neither 'keep-freed' nor 'default'"}
    if platform.libc_ver()[0] != "glibc":
        return {"policy": "default", "why": "the C library is not glibc (mallopt's thresholds are glibc's)"}
    libc = ctypes.CDLL(None)
    failed = [name for name, (param, value) in _SETTINGS.items() if libc.mallopt(param, value) != 1]
    if failed:
        return {"policy": "partial", "why": f"glibc's mallopt refused {', '.join(failed)}"}
    return {"policy": "keep-freed", **{name: value for name, (_, value) in _SETTINGS.items()}}
