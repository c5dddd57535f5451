"""Metrics: work counts, graph fragmentation and the roofline. Definitions, units and worked example:
``docs/metrics.md``.

* :func:`count_model`: params, FLOPs/MACs (``FlopCounterMode``) and element-ops of a torch model;
* :func:`graph_metrics`: ops, DAG width, joins and memory access cost of an exported ONNX file;
* :func:`count_onnx`: params and FLOPs/MACs of an ONNX graph at concrete shapes (a user's own file);
* :func:`roofline_point`: a cell on its backend's roofline (the calibration is ``benchbench.measure.calibration``);
* :func:`cell_metrics`: the flat per-cell record the harness stores in ``CellResult.metrics``.

Pure computation: nothing here starts a process or imports the harness (``tests/test_layering.py``).
Nothing heavy is imported here: torch, onnx and scipy load inside the functions that need them.
"""

from .cell import METRIC_KEYS, cell_metrics
from .flops import ELEMENT_OPS_CONVENTION, FLOPS_CONVENTION, count_dispatched_ops, count_model
from .fragmentation import graph_metrics, graph_metrics_of, max_antichain
from .onnx_flops import count_onnx
from .opgraph import op_graph_metrics
from .roofline import roofline_point

# Bump when a definition changes: cached builds are keyed by it, so their counts are redone.
METRICS_VERSION = 1

__all__ = [
    "METRICS_VERSION",
    "METRIC_KEYS",
    "FLOPS_CONVENTION",
    "ELEMENT_OPS_CONVENTION",
    "count_model",
    "count_dispatched_ops",
    "graph_metrics",
    "graph_metrics_of",
    "count_onnx",
    "op_graph_metrics",
    "max_antichain",
    "roofline_point",
    "cell_metrics",
]
