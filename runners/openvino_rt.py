"""OpenVINO on the CPU: the cached ONNX model, compiled for latency with one stream and explicit threads.

Compile settings: ``PERFORMANCE_HINT=LATENCY``, ``NUM_STREAMS=1``, ``INFERENCE_NUM_THREADS=<threads>``
and ``INFERENCE_PRECISION_HINT=f32``. The precision is pinned because on a CPU with bf16 support
(avx512_bf16, AMX) OpenVINO's default silently runs bf16, which is neither what the other backends
compute nor what parity checks against. ``--option precision=bf16`` (or ``f16``) asks for it on purpose;
the precision the compiled model reports, and the precisions its runtime nodes actually use, are
recorded either way.

Timing uses one synchronous InferRequest whose input tensor shares the input array's memory (set once
in ``prepare``), so a timed call is ``infer()`` alone, as in ``benchmark_app -api sync``.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from benchbench.runners.base import Runner, UnsupportedModel

__all__ = ["OpenVinoRunner"]

PRECISIONS = {"f32": "f32", "fp32": "f32", "bf16": "bf16", "f16": "f16", "fp16": "f16"}
# Runtime-model node types that are not kernels: graph inputs and outputs.
_NOT_KERNELS = {"Input", "Output"}


def _static(shape) -> list | None:
    """A runtime-model port's shape as a list of ints, or None where a dimension is dynamic."""
    return [d.get_length() for d in shape] if shape.is_static else None


class OpenVinoRunner(Runner):
    name = "openvino"
    aliases = ("ov",)
    artifact = "onnx"
    formats = ("onnx", "openvino_ir")
    packages = ("openvino",)
    versions = ("openvino", "onnx", "onnxscript")
    extra = "openvino"
    description = "OpenVINO, CPU plugin (latency hint, 1 stream, f32 pinned)"
    OPTIONS = {"precision": tuple(PRECISIONS)}

    def load_runtime(self):
        import openvino

        self.ov = openvino
        self.core = openvino.Core()

    def _config(self, profiling: bool = False) -> dict:
        precision = str(self.options.get("precision", "f32")).lower()
        if precision not in PRECISIONS:
            raise ValueError(f"openvino option precision={precision}: choose from f32, bf16, f16")
        self.requested_precision = PRECISIONS[precision]
        return {
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "INFERENCE_NUM_THREADS": self.threads,
            "INFERENCE_PRECISION_HINT": self.requested_precision,
            "PERF_COUNT": profiling,
        }

    def _compile(self, profiling: bool = False):
        return self.core.compile_model(self.model, "CPU", self._config(profiling))

    def prepare(self, artifact, inputs):
        try:
            self.model = self.core.read_model(str(artifact))
            if isinstance(inputs, dict):  # a user's file: dynamic dims take the given shapes, as benchmark_app -shape
                self.model.reshape({name: list(a.shape) for name, a in inputs.items()})
            self.compiled = self._compile()
        except RuntimeError as exc:  # OpenVINO reports unsupported ops and failed conversions this way
            raise UnsupportedModel(f"OpenVINO cannot compile the model: {exc}") from exc
        if not isinstance(inputs, dict) and len(self.model.inputs) != 1:
            raise UnsupportedModel(f"the model has {len(self.model.inputs)} inputs; benchbench feeds one")
        self.inputs = inputs
        self.request = self._request(self.compiled)

    def _request(self, compiled):
        request = compiled.create_infer_request()
        # shared_memory: the tensor wraps the array, so nothing is copied per inference.
        if isinstance(self.inputs, dict):
            for name, array in self.inputs.items():
                request.set_tensor(name, self.ov.Tensor(np.ascontiguousarray(array), shared_memory=True))
        else:
            request.set_input_tensor(self.ov.Tensor(self.inputs, shared_memory=True))
        return request

    def run(self):
        self.request.infer()

    def outputs(self):
        self.request.infer()
        return [self.request.get_output_tensor(i).data.copy() for i in range(len(self.compiled.outputs))]

    def _runtime_nodes(self) -> list:
        """The runtime model's per-inference nodes, after the plugin's fusions, in execution order.

        Nodes fed only by constants (the plugin keeps bias reshapes as runtime nodes) are evaluated once,
        at compile time, so they are left out with the constants, inputs and outputs."""
        nodes, constant = [], set()
        for op in self.compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            kind = info["layerType"].astype(str)
            inputs = [v.get_node().get_friendly_name() for v in op.input_values()]
            if kind == "Const" or (inputs and all(i in constant for i in inputs)):
                constant.add(op.get_friendly_name())
            elif kind not in _NOT_KERNELS:
                nodes.append((op.get_friendly_name(), kind, info["runtimePrecision"].astype(str)))
        return nodes

    def executed_ops(self):
        by_type: dict[str, int] = {}
        for _, kind, _ in self._runtime_nodes():
            by_type[kind] = by_type.get(kind, 0) + 1
        return {"count": sum(by_type.values()), "by_type": dict(sorted(by_type.items())),
                "source": "OpenVINO runtime model (compiled.get_runtime_model); constants, inputs, outputs excluded"}

    def profile_ops(self, runs: int) -> dict:
        """Per-node times from OpenVINO's performance counters (a second compile with PERF_COUNT=YES)."""
        compiled = self._compile(profiling=True)
        shapes = {op.get_friendly_name(): {"inputs": [_static(v.get_partial_shape()) for v in op.input_values()],
                                           "outputs": [_static(op.get_output_partial_shape(i))
                                                       for i in range(op.get_output_size())]}
                  for op in compiled.get_runtime_model().get_ordered_ops()}
        request = self._request(compiled)
        request.infer()  # warm: the first inference builds kernels' lazy state
        times: dict[str, list] = {}
        run_ms = []
        for _ in range(runs):
            t0 = time.perf_counter_ns()
            request.infer()
            run_ms.append((time.perf_counter_ns() - t0) / 1e6)
            for info in request.profiling_info:  # counters of the last inference only
                if info.status != info.Status.EXECUTED:
                    continue  # fused into a neighbour, or an in-place no-op (Reshape)
                entry = times.setdefault(info.node_name, [info.node_type, info.exec_type, []])
                entry[2].append(info.real_time.total_seconds() * 1e3)
        ops = [{"name": n, "type": t, "kernel": k, "time_ms": statistics.median(ms),
                **shapes.get(n, {"inputs": [], "outputs": []})} for n, (t, k, ms) in times.items()]
        return {"source": "OpenVINO performance counters (PERF_COUNT=YES, InferRequest.profiling_info, real_time)",
                "ops": ops, "run_ms": run_ms}

    def metadata(self):
        used: dict[str, int] = {}
        for _, _, precision in self._runtime_nodes():
            used[precision] = used.get(precision, 0) + 1
        compiled = self.compiled
        return {
            **super().metadata(),
            "runtime": f"openvino {self.ov.get_version()}",
            "device": "CPU",
            "performance_hint": str(compiled.get_property("PERFORMANCE_HINT")),
            "num_streams": int(compiled.get_property("NUM_STREAMS")),
            "inference_num_threads": int(compiled.get_property("INFERENCE_NUM_THREADS")),
            "cpu_pinning": bool(compiled.get_property("ENABLE_CPU_PINNING")),
            "requested_precision": self.requested_precision,
            # read back, not assumed: what the compiled model says it runs
            "precision": compiled.get_property("INFERENCE_PRECISION_HINT").to_string(),
            "runtime_precisions": dict(sorted(used.items())),
            "api": "sync InferRequest, input tensor shared (no copy per inference)",
        }

    def teardown(self):
        self.request = self.compiled = self.model = None
