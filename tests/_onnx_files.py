"""A small hand-built ONNX model for the tests that need a user's model file without a torch export."""

from __future__ import annotations

import numpy as np


def matmul_model():
    """x float [N, 64] @ W [64, 8] as an ``onnx.ModelProto``: a dynamic batch, opset 17, IR version 8."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.linspace(-1, 1, 64 * 8, dtype=np.float32).reshape(64, 8), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model
