"""TFLite / LiteRT flatbuffers (``.tflite``), read with the LiteRT interpreter (``ai_edge_litert``).

Counts come from the ops the interpreter lists (``_get_ops_details``) at the user's input shapes, without
the default delegate (which would hide the ops it takes): FLOPs/MACs for ``CONV_2D``,
``DEPTHWISE_CONV_2D``, ``TRANSPOSE_CONV``, ``FULLY_CONNECTED`` and ``BATCH_MATMUL`` (the project's
convention: 2 FLOPs per multiply-accumulate, no bias); any other op that multiplies matrices (``CONV_3D``)
is listed as unknown. Params are the elements of float tensors no op produces and no input feeds.
"""

from __future__ import annotations

import math
from pathlib import Path

from . import Format, FormatError, TensorDecl

__all__ = ["FORMAT", "TfliteFormat"]

_PRODUCTS = {"CONV_3D", "CONV_3D_TRANSPOSE", "UNIDIRECTIONAL_SEQUENCE_LSTM", "LSTM", "STABLEHLO_DOT_GENERAL"}


def _interpreter(path: Path):
    try:
        from ai_edge_litert import interpreter as tfl
    except ImportError:
        raise FormatError("reading a .tflite file needs ai-edge-litert: pip install 'benchbench[tflite]'") from None
    try:
        return tfl.Interpreter(model_path=str(path),
                               experimental_op_resolver_type=tfl.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    except (ValueError, RuntimeError) as exc:
        raise FormatError(f"{path} is not a readable TFLite model: {str(exc).splitlines()[0]}") from None


def _decl(d: dict) -> TensorDecl:
    sig = d.get("shape_signature")
    dims = tuple(int(x) if x >= 0 else None for x in (sig if sig is not None and len(sig) else d["shape"]))
    return TensorDecl(d["name"], str(d["dtype"].__name__ if hasattr(d["dtype"], "__name__") else d["dtype"]), dims)


def _macs(kind: str, ins: list, outs: list, shape) -> int | None:
    out = shape(outs[0]) if outs else None
    if kind == "CONV_2D":  # filter [O, kh, kw, I]
        w = shape(ins[1])
        return math.prod(out) * math.prod(w[1:]) if out and w else None
    if kind == "DEPTHWISE_CONV_2D":  # filter [1, kh, kw, C x multiplier]
        w = shape(ins[1])
        return math.prod(out) * w[1] * w[2] if out and w else None
    if kind == "TRANSPOSE_CONV":  # inputs: output shape, filter [O, kh, kw, I], input
        w, x = shape(ins[1]), shape(ins[2])
        return math.prod(x) * w[0] * w[1] * w[2] if x and w else None
    if kind == "FULLY_CONNECTED":  # filter [O, I]
        w = shape(ins[1])
        return math.prod(out) * w[1] if out and w else None
    if kind == "BATCH_MATMUL":
        a = shape(ins[0])
        return math.prod(out) * a[-1] if a and out else None
    return None if kind in _PRODUCTS else 0


class TfliteFormat(Format):
    name = "tflite"
    suffixes = (".tflite",)
    description = "TFLite / LiteRT flatbuffer"

    def inputs(self, path: Path) -> list[TensorDecl]:
        return [_decl(d) for d in _interpreter(path).get_input_details()]

    def outputs(self, path: Path) -> list[TensorDecl]:
        return [_decl(d) for d in _interpreter(path).get_output_details()]

    def check(self, path: Path) -> None:
        _interpreter(path)

    def metrics(self, path: Path, shapes: dict[str, tuple[int, ...]]) -> tuple[dict, dict | None]:
        import numpy as np

        from benchbench.metrics import op_graph_metrics

        it = _interpreter(path)
        inputs = it.get_input_details()
        for d in inputs:
            if d["name"] in shapes and tuple(d["shape"]) != tuple(shapes[d["name"]]):
                it.resize_tensor_input(d["index"], list(shapes[d["name"]]))
        it.allocate_tensors()
        tensors = {t["index"]: t for t in it.get_tensor_details()}
        ops = it._get_ops_details()  # experimental API; the only op list LiteRT's Python exposes

        def shape(index):
            t = tensors.get(int(index))
            return [int(x) for x in t["shape"]] if t is not None and len(t["shape"]) else None

        macs, unknown = 0, {}
        for o in ops:
            n = _macs(o["op_name"], [int(t) for t in o["inputs"]], [int(t) for t in o["outputs"]], shape)
            if n is None:
                unknown[o["op_name"]] = unknown.get(o["op_name"], 0) + 1
            else:
                macs += n
        produced = {int(t) for o in ops for t in o["outputs"]}
        fed = {d["index"] for d in inputs}
        numel = {i: math.prod(int(d) for d in t["shape"]) for i, t in tensors.items()}  # ints, not numpy's
        params = sum(numel[i] for i, t in tensors.items() if i not in produced and i not in fed
                     and np.issubdtype(t["dtype"], np.floating) and len(t["shape"]))
        nbytes = {i: numel[i] * np.dtype(t["dtype"]).itemsize for i, t in tensors.items()}
        graph = op_graph_metrics([(o["op_name"], [int(t) for t in o["inputs"] if int(t) >= 0],
                                   [int(t) for t in o["outputs"]]) for o in ops], fed, nbytes,
                                 "TFLite interpreter op list (_get_ops_details), before delegation")
        counts = {"params": int(params), "macs": int(macs), "flops": int(2 * macs),
                  "flops_unknown_ops": dict(sorted(unknown.items()))}
        return counts, graph


FORMAT = TfliteFormat
