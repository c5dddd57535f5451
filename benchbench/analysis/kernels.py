"""What the runtimes' profilers say about kernels: time shares, and a kernel-sum latency predictor.

Both read the per-operator profiles ``benchbench run --profile`` stores in ``cell.metrics["profile"]`` (taken
in separate workers after the timed samples; see ``benchbench.measure.profile``). LiteRT's Python API has no
per-operator profiler, so TFLite cells have op lists without times and appear in neither analysis.

* **Time shares.** The share of the per-op time spent in MAC-heavy kernels (convolutions, matrix products:
  ``MAC_TYPES``) and in everything else. The time *not* in MAC-heavy kernels is the most direct measure of
  fragmentation a profiler gives: it is what FLOPs cannot see.
* **Kernel-sum predictor**, after nn-Meter: a model's latency is the sum of its kernels' latencies plus a
  per-kernel overhead. Each kernel the runtime executes is predicted, in this order, from
  1. the same kernel (type and tensor shapes) profiled in other families: the median of its times;
  2. a non-negative linear model of its kind over MACs and bytes moved, fitted on other families' kernels for
     relative error
     (convolutions by depthwise or dense and kernel size, ``Conv/dw3``; else the plain type);
  3. a roofline-style estimate for unseen types: one non-negative fit of fixed cost + MACs / throughput +
     bytes / bandwidth over every training kernel.
  The sum is then calibrated on the training models' end-to-end latencies (scale, per-kernel overhead and a
  fixed cost, least squares on relative error), which absorbs the profiler's own bias. Evaluated leave one
  family out, like the latency models in ``latency_models``.
"""

from __future__ import annotations

import math

import numpy as np

from benchbench.results.load import DESIGNED_KINDS, model_kind

from .correlate import target

__all__ = ["MAC_TYPES", "profiled_cells", "time_shares", "kernel_kind", "kernel_features", "kernel_sum_loo"]

# Kernel types that do multiply-accumulate work, in every backend's naming (compared in lower case).
MAC_TYPES = frozenset({
    # ONNX Runtime
    "conv", "fusedconv", "nhwcfusedconv", "convtranspose", "qlinearconv", "gemm", "fusedgemm", "matmul",
    "fusedmatmul", "einsum",
    # OpenVINO runtime model
    "convolution", "groupconvolution", "deconvolution", "groupdeconvolution", "fullyconnected",
    # torch aten ops
    "conv1d", "conv2d", "conv3d", "_convolution", "conv_transpose2d", "linear", "mm", "addmm", "bmm", "baddbmm",
    # TFLite builtins
    "conv_2d", "depthwise_conv_2d", "fully_connected", "batch_matmul", "transpose_conv",
})
_MIN_TYPE_KERNELS = 4  # distinct training kernels before a type gets its own linear model


def profiled_cells(runs) -> list[dict]:
    """Zoo cells with a timed profile: identity, end-to-end median, and the profiled ops."""
    out = []
    for run in runs:
        for c in run.cells:
            p = c.metrics.get("profile") or {}
            family = c.model.get("family", "")
            if not (c.ok and c.median_ms and p.get("status") == "ok" and p.get("timed") and p.get("ops")):
                continue
            if model_kind(c.model) in DESIGNED_KINDS:  # designed nets: not models a predictor is judged on
                continue
            out.append({"model": c.spec.model, "family": family, "variant": c.spec.variant, "backend": target(c.spec),
                        "median_ms": c.median_ms, "flops": c.model.get("flops"), "ops": p["ops"],
                        "op_sum_ms": p["op_sum_ms"]})
    return out


def _is_conv(kind: str) -> bool:
    return "conv" in kind.lower() and _is_mac(kind)


def _is_mac(kind: str) -> bool:
    return kind.lower().removeprefix("aten::") in MAC_TYPES


def time_shares(cells: list[dict]) -> dict[str, dict]:
    """Per backend: each cell's share of per-op time outside MAC-heavy kernels, and the median over cells."""
    per: dict[str, list] = {}
    for c in cells:
        mac = sum(o["time_ms"] for o in c["ops"] if _is_mac(o["type"]))
        total = c["op_sum_ms"]
        if not total:
            continue
        per.setdefault(c["backend"], []).append({"model": c["model"], "family": c["family"], "variant": c["variant"],
                                                 "non_mac_share": 1 - mac / total,
                                                 "kernels": len(c["ops"]), "median_ms": c["median_ms"],
                                                 "flops": c["flops"]})
    out = {}
    for backend, rows in sorted(per.items()):
        shares = [r["non_mac_share"] for r in rows]
        out[backend] = {"n": len(rows), "median_non_mac_share": float(np.median(shares)),
                        "quartiles": [float(np.percentile(shares, 25)), float(np.percentile(shares, 75))],
                        "cells": rows}
    return out


def _prod(shape) -> int:
    return math.prod(shape) if shape else 0


def kernel_kind(op: dict) -> str:
    """The kernel's type, refined for convolutions by what changes their speed per MAC: depthwise or dense,
    and the kernel size (``Conv/dw3``, ``Conv/k1``), as nn-Meter keeps separate predictors for them."""
    inputs = [s for s in op.get("inputs") or [] if s]
    if _is_conv(op["type"]) and len(inputs) >= 2 and len(inputs[1]) >= 4 and len(inputs[0]) == 4:
        w = inputs[1]
        return f"{op['type']}/{'dw' if w[-3] == 1 and inputs[0][1] > 1 else 'k'}{w[-1]}"
    return op["type"]


def kernel_features(op: dict) -> tuple[tuple, np.ndarray]:
    """(identity, features) of one profiled kernel. Identity: type and tensor shapes. Features: [1, MMACs,
    MB moved], MACs estimated from the shapes (convolutions: output elements x the weight's fan-in, C_in/groups x
    kernel; matrix products: output elements x the first input's last dimension), bytes as f32 inputs plus outputs."""
    inputs = [s for s in op.get("inputs") or [] if s]
    outputs = [s for s in op.get("outputs") or [] if s]
    first_out = _prod(outputs[0]) if outputs else (_prod(inputs[0]) if inputs else 0)
    macs = 0
    if _is_mac(op["type"]) and len(inputs) >= 2:
        x, w = inputs[0], inputs[1]
        # a convolution's weight is [C_out, C_in / groups, (1,) k...] (OpenVINO's grouped: [G, C_out/G, C_in/G, k...])
        fan_in = _prod(w[-3:]) if len(w) >= 5 else _prod(w[1:])
        macs = first_out * (fan_in if _is_conv(op["type"]) and len(w) >= 3 else x[-1])
    moved = 4 * (sum(_prod(s) for s in inputs) + sum(_prod(s) for s in outputs))
    key = (op["type"], tuple(tuple(s) for s in inputs), tuple(tuple(s) for s in outputs))
    return key, np.array([1.0, macs / 1e6, moved / 1e6])


def _nnls(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative coefficients minimizing the squared *relative* error of ``x @ coef`` against ``y``. Relative,
    as every latency model here: fitted for absolute error, a kind's few large kernels decide its throughput, and
    the many small kernels of other families come out several times too slow (tried on the reference: the share
    of models within ±10% fell from 39–72% to 24–30%). Times under 0.1 µs (a profiler's zero) count as 0.1 µs."""
    from scipy.optimize import nnls

    y = np.maximum(y, 1e-4)
    return nnls(x / y[:, None], np.ones(len(y)))[0]


class _KernelModel:
    """Per-kernel latency from training kernels: exact lookup, then a type model, then the all-kernel fit."""

    def __init__(self, cells: list[dict]):
        times: dict[tuple, list] = {}
        features: dict[tuple, np.ndarray] = {}
        for c in cells:
            for op in c["ops"]:
                key, f = kernel_features(op)
                times.setdefault(key, []).append(op["time_ms"])
                features[key] = f
        self.lookup = {k: float(np.median(v)) for k, v in times.items()}
        # one model per refined kind (Conv/dw3) and per plain type (Conv), each from its distinct kernels
        groups: dict[str, list[tuple]] = {}
        for key in features:
            op = {"type": key[0], "inputs": [list(s) for s in key[1]]}
            groups.setdefault(kernel_kind(op), []).append(key)
            if kernel_kind(op) != key[0]:
                groups.setdefault(key[0], []).append(key)
        self.type_coef = {kind: _nnls(np.array([features[k] for k in keys]), np.array([self.lookup[k] for k in keys]))
                          for kind, keys in groups.items() if len(keys) >= _MIN_TYPE_KERNELS}
        keys = list(features)
        self.fallback = (_nnls(np.array([features[k] for k in keys]), np.array([self.lookup[k] for k in keys]))
                         if keys else np.zeros(3))

    def predict(self, op: dict) -> tuple[float, str]:
        key, f = kernel_features(op)
        if key in self.lookup:
            return self.lookup[key], "lookup"
        for kind in (kernel_kind(op), op["type"]):
            if kind in self.type_coef:
                return float(f @ self.type_coef[kind]), "type model"
        return float(f @ self.fallback), "roofline"


def _calibrate(cells: list[dict], sums: list[float]) -> np.ndarray:
    """latency ≈ s x kernel sum + k x kernels + c, least squares on relative error (signed: the profiler's
    bias can go either way)."""
    y = np.array([c["median_ms"] for c in cells])
    x = np.column_stack([sums, [len(c["ops"]) for c in cells], np.ones(len(cells))]) / y[:, None]
    coef, *_ = np.linalg.lstsq(x, np.ones(len(cells)), rcond=None)
    return coef


def kernel_sum_loo(cells: list[dict]) -> dict[str, dict]:
    """Per backend, leave one family out: the kernel-sum prediction's relative error per cell, and where the
    kernel predictions came from (share of predicted kernel time by lookup, type model, roofline)."""
    out = {}
    for backend in sorted({c["backend"] for c in cells}):
        sub = [c for c in cells if c["backend"] == backend]
        families = sorted({c["family"] for c in sub})
        if len(families) < 3:
            continue
        fams, errors, ids, source_ms = [], [], [], {"lookup": 0.0, "type model": 0.0, "roofline": 0.0}
        for fam in families:
            train = [c for c in sub if c["family"] != fam]
            test = [c for c in sub if c["family"] == fam]
            model = _KernelModel(train)
            coef = _calibrate(train, [sum(model.predict(o)[0] for o in c["ops"]) for c in train])
            for c in test:
                preds = [model.predict(o) for o in c["ops"]]
                for ms, source in preds:
                    source_ms[source] += ms
                total = sum(ms for ms, _ in preds)
                pred = coef[0] * total + coef[1] * len(c["ops"]) + coef[2]
                errors.append(pred / c["median_ms"] - 1)
                fams.append(fam)
                ids.append([c["model"], c["variant"]])
        whole = sum(source_ms.values()) or 1.0
        out[backend] = {"family": fams, "error": errors, "cells": ids,
                        "sources": {k: v / whole for k, v in source_ms.items()}}
    return out
