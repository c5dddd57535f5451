"""FLOPs/MACs and params of an ONNX graph at concrete input shapes, over ``onnx.shape_inference``.

The project's convention (``FLOPS_CONVENTION``, docs/metrics.md) holds: only convolutions and matrix
products count, one multiply-accumulate is 2 FLOPs (FLOPs = 2 x MACs), bias additions are not counted, and
counts are per batch. Per op, with shapes from inference:

* ``Conv``: output elements x (input channels / group) x kernel area (= weight dims [1:]);
* ``ConvTranspose``: input elements x (output channels / group) x kernel area (= input spatial x all weight dims);
* ``Gemm``: M x N x K;
* ``MatMul`` (and ``MatMulInteger``, ``QLinearMatMul``): output elements x the contracted dim;
* ``Einsum``: the product of every index's size, once per product of two operands (operands - 1).

An op of these types whose shapes are not known is listed in ``flops_unknown_ops``; FLOPs are then a lower
bound. Params are the elements of every initializer (and ``Constant`` node tensor) of float type.
"""

from __future__ import annotations

import math

__all__ = ["COUNTED_OPS", "count_onnx"]

COUNTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "MatMulInteger", "QLinearMatMul", "Einsum")


def _shapes(model) -> dict[str, list[int] | None]:
    from .fragmentation import _tensor_info

    return {name: shape for name, (shape, _) in _tensor_info(model).items()}


def _attr(node, name: str, default=None):
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _einsum_macs(node, shapes) -> int | None:
    equation = _attr(node, "equation")
    if isinstance(equation, bytes):
        equation = equation.decode()
    lhs = equation.replace(" ", "").split("->")[0].split(",")
    if len(lhs) < 2 or any("." in term for term in lhs):
        return 0 if len(lhs) < 2 else None  # one operand: a transpose or reduction, no product; ellipsis: unknown
    sizes: dict[str, int] = {}
    for term, name in zip(lhs, node.input):
        shape = shapes.get(name)
        if shape is None or len(shape) != len(term):
            return None
        for letter, dim in zip(term, shape):
            sizes[letter] = max(sizes.get(letter, 1), dim)  # a broadcast dim of 1 takes the other's size
    return math.prod(sizes.values()) * (len(lhs) - 1)


def _macs(node, shapes) -> int | None:
    op = node.op_type
    ins = [shapes.get(x) if x else None for x in node.input]
    out = shapes.get(node.output[0]) if node.output else None
    if op == "Conv":
        w = ins[1] if len(ins) > 1 else None
        return math.prod(out) * math.prod(w[1:]) if out and w else None
    if op == "ConvTranspose":
        x, w = ins[0], ins[1] if len(ins) > 1 else None
        return x[0] * math.prod(x[2:]) * math.prod(w) if x and w else None
    if op == "Gemm":
        a, b = ins[0], ins[1]
        if not a or not b or not out:
            return None
        k = a[0] if _attr(node, "transA", 0) else a[1]
        return math.prod(out) * k
    if op in ("MatMul", "MatMulInteger"):
        a = ins[0]
        return math.prod(out) * a[-1] if a and out is not None else None
    if op == "QLinearMatMul":
        a = ins[0]
        return math.prod(out) * a[-1] if a and out is not None else None
    if op == "Einsum":
        return _einsum_macs(node, shapes)
    return 0


def count_onnx(model) -> dict:
    """Params, FLOPs and MACs of a shape-inferred ONNX ``ModelProto`` (its input dims all concrete)."""
    import numpy as np
    from onnx.helper import tensor_dtype_to_np_dtype

    g = model.graph
    shapes = _shapes(model)
    macs, unknown, by_type = 0, {}, {}
    for node in g.node:
        if node.op_type not in COUNTED_OPS:
            continue
        n = _macs(node, shapes)
        if n is None:
            unknown[node.op_type] = unknown.get(node.op_type, 0) + 1
            continue
        macs += n
        by_type[node.op_type] = by_type.get(node.op_type, 0) + 2 * n
    tensors = list(g.initializer) + [a.t for nd in g.node if nd.op_type == "Constant" for a in nd.attribute
                                     if a.name == "value"]
    params = sum(math.prod(t.dims) for t in tensors
                 if np.issubdtype(tensor_dtype_to_np_dtype(t.data_type), np.floating))
    return {"params": params, "macs": macs, "flops": 2 * macs, "flops_by_type": dict(sorted(by_type.items())),
            "flops_unknown_ops": dict(sorted(unknown.items()))}
