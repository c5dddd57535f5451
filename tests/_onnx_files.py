"""Small hand-built ONNX models for the tests that need a user's model file without a torch export."""

from __future__ import annotations

from pathlib import Path

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


def conv_transpose_conv(path: Path, between: str | None) -> None:
    """An ONNX file at ``path``: two 32-channel 3x3 convolutions on 16x16, with a Transpose between them when
    ``between`` is "Transpose" (an op ORT's blocked layout does not cover)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((32, 32, 3, 3)).astype(np.float32), f"w{i}")
             for i in (1, 2)]
    nodes = [helper.make_node("Conv", ["input", "w1"], ["c1"], pads=[1, 1, 1, 1])]
    if between == "Transpose":
        nodes.append(helper.make_node("Transpose", ["c1"], ["t"], perm=[0, 1, 3, 2]))
    nodes.append(helper.make_node("Conv", ["t" if between else "c1", "w2"], ["y"], pads=[1, 1, 1, 1]))
    graph = helper.make_graph(nodes, "two_conv", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                [1, 32, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32, 16, 16])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
