"""ONNX (``.onnx``), with external weights (``model.onnx.data``) if the file refers to them.

Counts come from the graph with the user's input shapes substituted for its dynamic dims and shapes
inferred (``onnx.shape_inference``): FLOPs/params by ``benchbench.metrics.count_onnx``, graph ops, DAG
width, joins and memory access cost by ``benchbench.metrics.graph_metrics_of``, as for zoo cells.
"""

from __future__ import annotations

from pathlib import Path

from benchbench.core.files import PathError, regular_file

from . import Format, FormatError, TensorDecl

__all__ = ["FORMAT", "OnnxFormat"]


def _np_dtype(elem_type: int) -> str:
    from onnx.helper import tensor_dtype_to_np_dtype

    return str(tensor_dtype_to_np_dtype(elem_type)) if elem_type else "unknown"


def _decl(value_info) -> TensorDecl:
    t = value_info.type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or None)
                 for d in t.shape.dim)
    return TensorDecl(value_info.name, _np_dtype(t.elem_type), dims)


class OnnxFormat(Format):
    name = "onnx"
    suffixes = (".onnx",)
    description = "ONNX model"

    def _load(self, path: Path):
        import onnx

        try:
            return onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # protobuf's DecodeError and friends: a truncated or foreign file
            raise FormatError(f"{path} is not a readable ONNX model (truncated or not ONNX?): "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'parse failed'}") from None

    def files(self, path: Path) -> list[Path]:
        """The file and every external-data file its initializers name (resolved beside it)."""
        from onnx.external_data_helper import uses_external_data

        model = self._load(path)
        found = []
        for tensor in model.graph.initializer:
            if uses_external_data(tensor):
                location = next((e.value for e in tensor.external_data if e.key == "location"), None)
                if location and (path.parent / location) not in found:
                    found.append(path.parent / location)
        for f in found:  # a FIFO or a device there is refused before anything opens it
            try:
                regular_file(f, "weights file")
            except PathError as exc:
                if exc.missing:
                    raise FormatError(f"{path} keeps its weights in {f.name}, which is not beside it") from None
                raise FormatError(f"{path} keeps its weights in {f.name}: {exc}") from None
        return [path, *found]

    def check(self, path: Path) -> None:
        import onnx

        model = self._load(path)
        if not model.graph.node:
            raise FormatError(f"{path} holds no graph (an empty or truncated ONNX file)")
        try:
            # By path: external weights are found beside the file, not in the working directory, as a
            # ModelProto (which knows no folder) would have them.
            onnx.checker.check_model(str(path))
        except Exception as exc:
            raise FormatError(f"{path} is not a valid ONNX model: {str(exc).splitlines()[0]}") from None

    def inputs(self, path: Path) -> list[TensorDecl]:
        g = self._load(path).graph
        initializers = {i.name for i in g.initializer}  # old exporters list weights as inputs too
        return [_decl(v) for v in g.input if v.name not in initializers]

    def outputs(self, path: Path) -> list[TensorDecl]:
        return [_decl(v) for v in self._load(path).graph.output]

    def shaped(self, path: Path, shapes: dict[str, tuple[int, ...]]):
        """The model (weights not loaded) with its inputs' dims set to ``shapes``."""
        model = self._load(path)
        for value in model.graph.input:
            if value.name in shapes:
                dims = value.type.tensor_type.shape.dim
                for dim, size in zip(dims, shapes[value.name]):
                    dim.Clear()
                    dim.dim_value = int(size)
        return model

    def metrics(self, path: Path, shapes: dict[str, tuple[int, ...]]) -> tuple[dict, dict | None]:
        import onnx

        from benchbench.metrics import count_onnx, graph_metrics_of

        model = self.shaped(path, shapes)
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
        counts = count_onnx(inferred)
        try:
            graph = graph_metrics_of(model)
        except Exception as exc:  # shape inference or a cycle: the counts above still stand
            graph = {"reason": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
        return counts, graph


FORMAT = OnnxFormat
