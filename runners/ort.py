"""ONNX Runtime: CPU execution provider with all graph optimizations and explicit intra-op threads."""

from __future__ import annotations

import os
import tempfile

from .base import Runner, UnsupportedModel


class OrtRunner(Runner):
    name = "ort"
    artifact = "onnx"
    packages = ("onnxruntime",)
    extra = "ort"
    description = "ONNX Runtime, CPU execution provider"
    providers = ("CPUExecutionProvider",)

    def load_runtime(self):
        import onnxruntime

        self.ort = onnxruntime

    def _session_options(self):
        ort = self.ort
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        # Write the graph ORT actually runs, after its fusions: the executed-op count comes from it.
        self._optimized_path = os.path.join(tempfile.mkdtemp(prefix="bb-ort-"), "optimized.onnx")
        so.optimized_model_filepath = self._optimized_path
        return so

    def prepare(self, artifact, inputs):
        ort = self.ort
        available = ort.get_available_providers()
        missing = [p for p in self.providers if p not in available]
        if missing:
            from .base import BackendUnavailable

            raise BackendUnavailable(f"onnxruntime has no {', '.join(missing)} here (has {', '.join(available)})")
        try:
            self.session = ort.InferenceSession(str(artifact), self._session_options(), providers=list(self.providers))
        except Exception as exc:  # ORT raises its own exception types for graphs it cannot load
            raise UnsupportedModel(f"onnxruntime cannot load the model: {exc}") from exc
        self.inputs = inputs
        self.feed = {self.session.get_inputs()[0].name: inputs}
        self.session.run(None, self.feed)

    def run(self):
        self.session.run(None, self.feed)

    def outputs(self):
        return self.session.run(None, self.feed)

    def executed_ops(self):
        import onnx

        try:
            graph = onnx.load(self._optimized_path, load_external_data=False).graph
        except Exception:
            return None
        by_type: dict[str, int] = {}
        for node in graph.node:
            by_type[node.op_type] = by_type.get(node.op_type, 0) + 1
        return {"count": len(graph.node), "by_type": dict(sorted(by_type.items())), "source": "ORT optimized graph"}

    def metadata(self):
        return {
            **super().metadata(),
            "runtime": f"onnxruntime {self.ort.__version__}",
            "providers": self.session.get_providers(),
            "graph_optimization": "ORT_ENABLE_ALL",
            "inter_op_threads": 1,
            "precision": "f32",
        }

    def teardown(self):
        import shutil

        shutil.rmtree(os.path.dirname(self._optimized_path), ignore_errors=True)


class OrtCudaRunner(OrtRunner):
    name = "ort-cuda"
    extra = "ort"
    description = "ONNX Runtime, CUDA execution provider (needs onnxruntime-gpu and a GPU)"
    providers = ("CUDAExecutionProvider",)
