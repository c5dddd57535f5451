"""OpenVINO IR (``model.xml`` with its weights in ``model.bin`` beside it), read with ``openvino``.

Counts come from the model's ops after ``Model.reshape`` to the user's input shapes (before the CPU
plugin's fusions): FLOPs/MACs for ``Convolution``, ``GroupConvolution``, ``ConvolutionBackpropData``,
``GroupConvolutionBackpropData`` and ``MatMul`` (2 FLOPs per multiply-accumulate, no bias); params are the
elements of float ``Constant`` ops. Graph ops leave out ``Parameter``, ``Result`` and ``Constant``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from benchbench.core.files import PathError, regular_file

from . import Format, FormatError, TensorDecl

__all__ = ["FORMAT", "OpenVinoIrFormat"]

_NOT_OPS = {"Parameter", "Result", "Constant"}


def _core():
    sys.modules.setdefault("openvino_telemetry", None)  # no usage event from a benchmark (see _worker)
    try:
        import openvino
    except ImportError:
        raise FormatError("reading OpenVINO IR needs openvino: pip install 'benchbench[openvino]'") from None
    return openvino.Core()


def _macs(op) -> int:
    kind = op.get_type_name()
    out = [d.get_length() for d in op.get_output_partial_shape(0)] if op.get_output_partial_shape(0).is_static else None
    ins = [[d.get_length() for d in op.get_input_partial_shape(i)] if op.get_input_partial_shape(i).is_static else None
           for i in range(op.get_input_size())]
    if kind in ("Convolution", "GroupConvolution"):  # weights [O, I, k...] or [G, O/G, I/G, k...]
        w = ins[1]
        if not out or not w:
            return -1
        return math.prod(out) * math.prod(w[1:] if kind == "Convolution" else w[2:])
    if kind in ("ConvolutionBackpropData", "GroupConvolutionBackpropData"):  # weights [I, O, k...] / [G, I/G, O/G, k...]
        x, w = ins[0], ins[1]
        return x[0] * math.prod(x[2:]) * math.prod(w) if x and w else -1
    if kind == "MatMul":
        a = ins[0]
        if not a or out is None:
            return -1
        k = a[-2] if op.get_attributes().get("transpose_a") and len(a) > 1 else a[-1]
        return math.prod(out) * k
    return 0


class OpenVinoIrFormat(Format):
    name = "openvino_ir"
    suffixes = (".xml",)
    description = "OpenVINO IR (.xml + .bin)"

    def files(self, path: Path) -> list[Path]:
        weights = path.with_suffix(".bin")
        try:  # a FIFO or a device there is refused before OpenVINO opens it
            regular_file(weights, "weights file")
        except PathError as exc:
            if exc.missing:
                raise FormatError(f"{path} is OpenVINO IR, whose weights must be in {weights.name} beside it; "
                                  f"{weights} is missing") from None
            raise FormatError(f"{path} is OpenVINO IR, whose weights must be in {weights.name} beside it: "
                              f"{exc}") from None
        return [path, weights]

    def _read(self, path: Path):
        self.files(path)
        _core()  # openvino installed, its telemetry off
        from openvino.frontend import FrontEndManager

        # The IR frontend alone: Core.read_model tries every frontend on a file IR's rejects, and TensorFlow's
        # writes its parse errors straight to stderr, around benchbench's one line.
        try:
            frontend = FrontEndManager().load_by_framework("ir")
            return frontend.convert(frontend.load(str(path)))
        except RuntimeError as exc:
            # "Check '...' failed at src/...cpp:219:" then what is wrong: keep the last line
            lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
            raise FormatError(f"{path} is not a readable OpenVINO IR model: {lines[-1] if lines else 'rejected'}") from None

    def check(self, path: Path) -> None:
        self._read(path)

    @staticmethod
    def _decls(ports) -> list[TensorDecl]:
        out = []
        for p in ports:
            dims = tuple(d.get_length() if d.is_static else None for d in p.get_partial_shape())
            names = p.get_names()
            out.append(TensorDecl(p.get_any_name() if names else p.get_node().get_friendly_name(),
                                  p.get_element_type().to_dtype().name, dims))
        return out

    def inputs(self, path: Path) -> list[TensorDecl]:
        return self._decls(self._read(path).inputs)

    def outputs(self, path: Path) -> list[TensorDecl]:
        return self._decls(self._read(path).outputs)

    def metrics(self, path: Path, shapes: dict[str, tuple[int, ...]]) -> tuple[dict, dict | None]:
        import numpy as np

        from benchbench.metrics import op_graph_metrics

        model = self._read(path)
        model.reshape({name: list(dims) for name, dims in shapes.items()})
        ops = model.get_ordered_ops()
        macs, unknown, params = 0, {}, 0
        for op in ops:
            kind = op.get_type_name()
            if kind == "Constant":
                shape = op.get_output_partial_shape(0)
                if np.issubdtype(op.get_output_element_type(0).to_dtype(), np.floating):
                    params += math.prod(d.get_length() for d in shape)
                continue
            n = _macs(op)
            if n < 0:
                unknown[kind] = unknown.get(kind, 0) + 1
            else:
                macs += n

        def tid(value):  # a tensor: (producing op, port)
            return (value.get_node().get_friendly_name(), value.get_index())

        nbytes = {}
        listed = []
        for op in ops:
            for i in range(op.get_output_size()):
                shape = op.get_output_partial_shape(i)
                if shape.is_static:
                    nbytes[(op.get_friendly_name(), i)] = (math.prod(d.get_length() for d in shape)
                                                          * op.get_output_element_type(i).size)
            if op.get_type_name() not in _NOT_OPS:
                listed.append((op.get_type_name(), [tid(v) for v in op.input_values()],
                               [(op.get_friendly_name(), i) for i in range(op.get_output_size())]))
        fed = {(p.get_node().get_friendly_name(), 0) for p in model.inputs}
        graph = op_graph_metrics(listed, fed, nbytes, "OpenVINO model ops (read_model + reshape), before "
                                 "the plugin's fusions")
        counts = {"params": int(params), "macs": int(macs), "flops": int(2 * macs),
                  "flops_unknown_ops": dict(sorted(unknown.items()))}
        return counts, graph


FORMAT = OpenVinoIrFormat
