"""Fusion rules per backend, decided by experiment.

Each fusion experiment (``benchbench.core.kernelpoints.FUSION_PATTERNS``) is a head kernel followed by a chain
(``conv-bnrelu``: a convolution, a batch norm, a ReLU), measured beside its head alone. A backend **fuses** the
chain when the pattern net executes no more kernels than the head alone (``metrics.executed_ops``, which each
runner reads from the graph it runs: ORT's optimized graph, OpenVINO's runtime model, TFLite's op list, the aten
ops PyTorch dispatches). The timing says what the fused chain still costs: ``extra`` is the pattern's marginal
latency over the head's, minus one (``(t_pattern - base) / (t_head - base) - 1``, anchor-relative; at most
``MAX_EXTRA``), applied to a fused head's prediction. A chain the op count says is not fused is predicted as separate kernels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from benchbench.core.kernelpoints import FUSION_PATTERNS, KernelPoint, fusion_points

__all__ = ["MAX_EXTRA", "fusion_rules"]

MAX_EXTRA = 3.0  # a fused chain's cost at most this many times its head's


def fusion_rules(cells: Mapping[str, Mapping], base: Callable[[KernelPoint], float]) -> dict:
    """Rules from one backend's measured fusion experiments.

    ``cells``: kernel net name → ``{"executed_ops": int, "t_rel": float}`` (anchor-relative latency);
    ``base(point)``: the backend's fixed cost of a one-kernel net (anchor-relative). Returns
    ``{"<head>+<chain>": {"fused": bool, "executed": [head, pattern], "extra": float}}`` for every experiment
    whose two nets were measured."""
    heads = {p.op: p for p in fusion_points() if not p.post}
    rules = {}
    for head, chain in FUSION_PATTERNS:
        h = heads[head]
        pattern = KernelPoint(**{**h.__dict__, "post": chain})
        a, b = cells.get(h.name), cells.get(pattern.name)
        if not a or not b or a.get("executed_ops") is None or b.get("executed_ops") is None:
            continue
        fused = int(b["executed_ops"]) <= int(a["executed_ops"])
        # a head whose marginal cost is lost in its net's fixed cost (a small add) would make any ratio explode:
        # its marginal counts as at least a tenth of its net's latency, and the extra is capped
        marginal = max(a["t_rel"] - base(h), 0.1 * a["t_rel"])
        extra = min(MAX_EXTRA, max(0.0, (b["t_rel"] - base(pattern)) / marginal - 1.0))
        rules[f"{head}+{chain}"] = {"fused": fused, "executed": [int(a["executed_ops"]), int(b["executed_ops"])],
                                    "extra": float(extra)}
    return rules
