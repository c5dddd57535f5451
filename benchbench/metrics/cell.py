"""One flat metrics record per cell, assembled from the build, the worker's result and the roofline.

Model-level counts (params, FLOPs, MACs) stay in ``CellResult.model`` and memory in
``CellResult.memory``; this record holds the rest, flat so that every key is a CSV column.
"""

from __future__ import annotations

__all__ = ["METRIC_KEYS", "cell_metrics"]

# Every key cell_metrics returns, in report order; a key is None where its source is missing
# (no ONNX export, a backend that cannot list its ops, no roofline calibration).
METRIC_KEYS = (
    "element_ops",         # model: element-ops per inference (flops.py)
    "graph_ops",           # deploy graph: ops in the exported ONNX
    "executed_ops",        # ops the backend runs after its own fusions
    "executed_qdq_ops",    # of those, QuantizeLinear / DequantizeLinear (an int8 form's requantizing)
    "dag_width",           # max antichain of the ONNX op DAG
    "joins",               # multi-input merges in the ONNX graph
    "mac_bytes",           # memory access cost, bytes per inference
    "arithmetic_intensity",  # FLOPs / mac_bytes
    "artifact_bytes",      # the backend's artifact on disk, sidecars included
    "achieved_gflops",     # FLOPs / median latency
    "peak_share",          # achieved / the backend's calibrated peak
    "attainable_gflops",   # min(peak, intensity x bandwidth)
    "bound",               # "compute" or "memory" by the roofline
)


_QDQ = ("QuantizeLinear", "DequantizeLinear", "QUANTIZE", "DEQUANTIZE")


def cell_metrics(model: dict, graph: dict | None, backend: dict, artifact: dict, median_ms: float | None,
                 roofline: dict | None) -> dict:
    """Metrics of one cell. ``model`` and ``graph`` come from the build, ``backend`` from the worker,
    ``roofline`` is the calibration entry of the cell's backend and threads (or None)."""
    from .roofline import roofline_point

    graph = graph or {}
    flops = model.get("flops")
    mac = graph.get("mac_bytes")
    executed = (backend or {}).get("executed_ops") or {}
    out = {
        "element_ops": model.get("element_ops"),
        "graph_ops": graph.get("graph_ops"),
        "executed_ops": executed.get("count"),
        # ORT names its Q/DQ nodes; OpenVINO folds them into its Subgraph and FakeQuantize nodes (not counted)
        "executed_qdq_ops": (sum(n for t, n in executed["by_type"].items() if t in _QDQ)
                             if isinstance(executed.get("by_type"), dict) else None),
        "dag_width": graph.get("dag_width"),
        "joins": graph.get("joins"),
        "mac_bytes": mac,
        "arithmetic_intensity": flops / mac if flops and mac else None,
        "artifact_bytes": (artifact or {}).get("bytes"),
        **roofline_point(flops, mac, median_ms, roofline),
    }
    return out
