"""Fragmentation of an op list that a runtime reports (TFLite's op details, OpenVINO's model ops), by the
definitions ``fragmentation.py`` applies to ONNX: graph ops, DAG width, joins and memory access cost.

An op is ``(type, input tensor ids, output tensor ids)``; tensors are any hashable ids. Pure computation.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from .fragmentation import max_antichain

__all__ = ["JOIN_TYPES", "NO_DATA_TYPES", "op_graph_metrics"]

# The runtime spellings of fragmentation.JOIN_OPS and NO_DATA_OPS (TFLite upper case, OpenVINO CamelCase).
JOIN_TYPES = frozenset({"ADD", "SUB", "MUL", "DIV", "SUM", "MEAN", "MAXIMUM", "MINIMUM", "CONCATENATION",
                        "Add", "Subtract", "Multiply", "Divide", "Maximum", "Minimum", "Concat"})
NO_DATA_TYPES = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "SHAPE", "Reshape", "Squeeze", "Unsqueeze",
                           "ShapeOf"})


def op_graph_metrics(ops: Sequence[tuple[str, Sequence[Hashable], Sequence[Hashable]]], graph_inputs: set,
                     nbytes: dict, source: str) -> dict:
    """Metrics of ``ops`` (in topological order). ``graph_inputs``: the tensors fed by the user;
    ``nbytes``: tensor → bytes (a tensor missing there counts as unknown)."""
    dynamic = set(graph_inputs)
    producer = {}
    for i, (_, ins, outs) in enumerate(ops):
        if any(t in dynamic for t in ins):
            dynamic.update(outs)
        for t in outs:
            producer[t] = i
    data = [i for i, (_, _, outs) in enumerate(ops) if any(t in dynamic for t in outs)]
    index = {i: k for k, i in enumerate(data)}
    edges = {(index[producer[t]], index[i]) for i in data for t in ops[i][1] if producer.get(t) in index}
    joins = sum(1 for kind, ins, _ in ops if kind in JOIN_TYPES and sum(1 for t in ins if t in dynamic) >= 2)
    mac, unknown = 0, 0
    for kind, ins, outs in ops:
        if kind in NO_DATA_TYPES:
            continue
        for t in [*ins, *outs]:
            b = nbytes.get(t)
            if b is None:
                unknown += 1
            else:
                mac += b
    by_type: dict[str, int] = {}
    for kind, _, _ in ops:
        by_type[kind] = by_type.get(kind, 0) + 1
    return {"graph_ops": len(ops), "graph_ops_by_type": dict(sorted(by_type.items())),
            "dag_width": max_antichain(len(data), sorted(edges)), "joins": joins, "mac_bytes": mac,
            "mac_unknown_tensors": unknown, "source": source}
