"""ONNX Runtime: CPU execution provider with all graph optimizations and explicit intra-op threads."""

from __future__ import annotations

import os
import tempfile

from benchbench.runners.base import Runner, UnsupportedModel


class OrtRunner(Runner):
    name = "ort"
    aliases = ("onnxruntime",)
    artifact = "onnx"
    formats = ("onnx",)
    packages = ("onnxruntime",)
    versions = ("onnxruntime", "onnxruntime-gpu", "onnx", "onnxscript")
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
        return so

    def prepare(self, artifact, inputs):
        ort = self.ort
        available = ort.get_available_providers()
        missing = [p for p in self.providers if p not in available]
        if missing:
            from benchbench.runners.base import BackendUnavailable

            raise BackendUnavailable(f"onnxruntime has no {', '.join(missing)} here (has {', '.join(available)})")
        self._artifact_path = str(artifact)  # profile_ops opens a second, profiling session on it
        try:
            self.session = ort.InferenceSession(str(artifact), self._session_options(), providers=list(self.providers))
        except Exception as exc:  # ORT raises its own exception types for graphs it cannot load
            raise UnsupportedModel(f"onnxruntime cannot load the model: {exc}") from exc
        self.inputs = inputs
        self.feed = dict(inputs) if isinstance(inputs, dict) else {self.session.get_inputs()[0].name: inputs}

    def run(self):
        self.session.run(None, self.feed)

    def outputs(self):
        return self.session.run(None, self.feed)

    def _optimized_graph(self):
        """The graph ORT runs, after its fusions and layout passes, written by a second session with the measured
        one's options (None if it cannot be written). Only after the timed blocks: a session that writes its
        optimized graph takes 20-30 ms longer to create (resnet18 91 against 65 ms here), which the measured
        session's load time (``init_ms``) must not hold, and which a later round's worker, keeping only its
        blocks, never pays."""
        import shutil

        import onnx

        tmp = tempfile.mkdtemp(prefix="bb-ort-")
        try:
            so = self._session_options()
            so.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
            self.ort.InferenceSession(self._artifact_path, so, providers=list(self.providers))
            return onnx.load(so.optimized_model_filepath, load_external_data=False).graph
        except Exception:
            return None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def executed_ops(self):
        """The nodes of the graph ORT runs, after its fusions (``_optimized_graph``)."""
        graph = self._optimized_graph()
        if graph is None:
            return None
        by_type: dict[str, int] = {}
        for node in graph.node:
            by_type[node.op_type] = by_type.get(node.op_type, 0) + 1
        return {"count": len(graph.node), "by_type": dict(sorted(by_type.items())), "source": "ORT optimized graph"}

    def layout_reorders(self):
        """The elements of each ``ReorderInput`` and ``ReorderOutput`` in the optimized graph: its NCHW side is a
        tensor of the model's own graph, whose shape ONNX's shape inference gives (a reorder of a tensor it
        cannot size is left out)."""
        import math

        import onnx

        graph = self._optimized_graph()
        if graph is None:
            return None
        try:
            model = onnx.shape_inference.infer_shapes(onnx.load(self._artifact_path, load_external_data=False))
        except Exception:
            return None
        shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
                  for v in [*model.graph.value_info, *model.graph.input, *model.graph.output]}
        out = []
        for node in graph.node:
            if node.op_type in ("ReorderInput", "ReorderOutput"):
                tensor = node.input[0] if node.op_type == "ReorderInput" else node.output[0]
                dims = shapes.get(tensor)
                if dims and all(d > 0 for d in dims):
                    out.append(math.prod(dims))
        return out

    def profile_ops(self, runs: int) -> dict:
        """Per-node kernel times from ORT's profiler (a second session with enable_profiling)."""
        import json
        import shutil
        import statistics

        tmp = tempfile.mkdtemp(prefix="bb-ort-")  # the profile's file
        so = self._session_options()
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "profile")
        try:
            session = self.ort.InferenceSession(self._artifact_path, so, providers=list(self.providers))
            session.run(None, self.feed)  # warm: the profile covers steady-state runs only
            for _ in range(runs):
                session.run(None, self.feed)
            with open(session.end_profiling(), encoding="utf-8") as fh:
                events = json.load(fh)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        # Each run is a Session/model_run event; node events inside its window belong to it.
        windows = [(e["ts"], e["ts"] + e["dur"]) for e in events if e.get("name") == "model_run"][-runs:]
        times: dict[str, list] = {}
        for e in events:
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and \
                    any(lo <= e["ts"] <= hi for lo, hi in windows):
                name = e["name"][: -len("_kernel_time")]
                args = e["args"]
                entry = times.setdefault(name, [args.get("op_name", "?"), args.get("provider", ""), [], _shapes(args)])
                entry[2].append(e["dur"] / 1e3)
        ops = [{"name": n, "type": t, "kernel": p, "time_ms": statistics.median(ms), **shapes}
               for n, (t, p, ms, shapes) in times.items()]
        return {"source": "onnxruntime profiler (SessionOptions.enable_profiling, *_kernel_time events)",
                "ops": ops, "run_ms": [(hi - lo) / 1e3 for lo, hi in windows]}

    def metadata(self):
        return {
            **super().metadata(),
            "runtime": f"onnxruntime {self.ort.__version__}",
            "providers": self.session.get_providers(),
            "graph_optimization": "ORT_ENABLE_ALL",
            "inter_op_threads": 1,
            "precision": "f32",
        }


def _shapes(args: dict) -> dict:
    """A node event's tensor shapes (``[{"float": [1, 3, 224, 224]}, ...]``) as plain lists: the kernel's
    identity for the kernel-sum latency predictor."""
    def plain(entries):
        return [next(iter(e.values())) for e in entries or [] if isinstance(e, dict) and e]

    return {"inputs": plain(args.get("input_type_shape")), "outputs": plain(args.get("output_type_shape"))}


class OrtCudaRunner(OrtRunner):
    """session.run copies the input to the GPU and the outputs back, and returns when they are on the
    host, so a wall-clock sample is already synchronized (host↔device copies included)."""

    name = "ort-cuda"
    extra = "ort"
    description = "ONNX Runtime, CUDA execution provider (needs onnxruntime-gpu and a GPU)"
    providers = ("CUDAExecutionProvider",)

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        ok, why = super().is_available()
        if not ok:
            return ok, why
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            return False, (f"ort-cuda needs onnxruntime-gpu and an NVIDIA GPU; this onnxruntime "
                           f"{onnxruntime.__version__} has {', '.join(onnxruntime.get_available_providers())}")
        return True, ""

    def prepare(self, artifact, inputs):
        super().prepare(artifact, inputs)
        # ORT falls back to the CPU provider when CUDA cannot start (no device, driver mismatch): that
        # would be a CPU measurement under a CUDA name.
        if self.session.get_providers()[0] != "CUDAExecutionProvider":
            from benchbench.runners.base import BackendUnavailable

            raise BackendUnavailable(f"onnxruntime could not start CUDA here (session runs on "
                                     f"{', '.join(self.session.get_providers())})")
