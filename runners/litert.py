"""TFLite (LiteRT) on the CPU: ``ai_edge_litert``'s Interpreter with the XNNPACK delegate and explicit threads.

The artifact is ``model.tflite`` from litert-torch (``export._export_tflite``). TFLite kernels are
channels-last, so the converter keeps PyTorch's NCHW signature by inserting TRANSPOSE ops; the runner
counts them from the op list and records where they sit (input boundary, output boundary, inside).

Options (``--option KEY=VALUE``):

* ``layout=nchw`` (default) runs ``model.tflite`` with the NCHW input; ``layout=nhwc`` runs its twin
  ``model_nhwc.tflite``, which takes NHWC input (and gives rank>=3 outputs channels-last), so the
  difference between the two is the cost of the boundary transposes.
* ``delegate=xnnpack`` (default) or ``delegate=none`` (TFLite's builtin CPU kernels only).

The timed call is ``invoke()``: the input is written once in ``prepare`` (TFLite keeps graph inputs
across invocations), as ``litert-benchmark`` and OpenVINO's ``benchmark_app`` do. Outputs are read in
signature order (``output_0``, ``output_1``, ...), which is PyTorch's output order.
"""

from __future__ import annotations

import importlib.util
from importlib import metadata
from pathlib import Path

import numpy as np
from benchbench.runners.base import BackendUnavailable, Runner, UnsupportedModel

__all__ = ["LiteRtRunner"]

LAYOUTS = ("nchw", "nhwc")
DELEGATES = ("xnnpack", "none")


def _tflite_runtime_broken() -> str | None:
    """Why the legacy ``tflite_runtime`` wheel cannot work here, or None if it may."""
    try:
        version = metadata.version("tflite-runtime")
        numpy_major = int(metadata.version("numpy").split(".")[0])
    except metadata.PackageNotFoundError:
        return None
    if numpy_major >= 2 and tuple(int(p) for p in version.split(".")[:2] if p.isdigit()) <= (2, 14):
        # Its last release (2.14) is compiled against NumPy 1's ABI: creating an Interpreter raises SystemError.
        return (f"tflite_runtime {version} is built for NumPy 1 and fails with NumPy {metadata.version('numpy')} "
                "(SystemError when an Interpreter is created)")
    return None


def _channels_last(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, *range(2, a.ndim), 1)) if a.ndim >= 3 else a


def _channels_first(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, a.ndim - 1, *range(1, a.ndim - 1))) if a.ndim >= 3 else a


def _natural(name: str) -> tuple:
    head = name.rstrip("0123456789")
    tail = name[len(head):]
    return (head, int(tail) if tail else -1)


class LiteRtRunner(Runner):
    name = "tflite"
    aliases = ("litert",)
    artifact = "tflite"
    formats = ("tflite",)
    packages = ("ai_edge_litert",)
    versions = ("ai-edge-litert", "litert-torch", "tflite-runtime")
    extra = "tflite"
    description = "TFLite / LiteRT interpreter, XNNPACK delegate, CPU"
    op_timer = False  # the Python Interpreter has no per-op profiler: profile_ops lists the ops untimed
    OPTIONS = {"layout": LAYOUTS, "delegate": DELEGATES}

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        if importlib.util.find_spec("ai_edge_litert") is not None:
            return True, ""
        if importlib.util.find_spec("tflite_runtime") is not None:
            broken = _tflite_runtime_broken()
            if broken:
                return False, f"{broken}; install ai-edge-litert instead: pip install 'benchbench[tflite]'"
            return True, ""
        return False, "tflite needs ai_edge_litert; install with: pip install 'benchbench[tflite]'"

    def load_runtime(self):
        try:
            from ai_edge_litert import interpreter
            self._runtime = f"ai-edge-litert {metadata.version('ai-edge-litert')}"
        except ImportError:  # the legacy wheel, only where it works (is_available checked)
            from tflite_runtime import interpreter
            self._runtime = f"tflite_runtime {metadata.version('tflite-runtime')}"
        self.tfl = interpreter

    def _option(self, key: str, choices: tuple[str, ...]) -> str:
        value = str(self.options.get(key, choices[0])).lower()
        if value not in choices:
            raise ValueError(f"tflite option {key}={value}: choose from {', '.join(choices)}")
        return value

    @classmethod
    def artifact_for(cls, options):
        # The channels-last twin is a separate conversion, made only for cells that ask for it.
        return "tflite_nhwc" if str(options.get("layout", "nchw")).lower() == "nhwc" else "tflite"

    def prepare(self, artifact, inputs):
        self.layout = self._option("layout", LAYOUTS)
        self.delegate = self._option("delegate", DELEGATES)
        path = Path(artifact)
        resolver = self.tfl.OpResolverType
        try:
            self.interpreter = self.tfl.Interpreter(
                model_path=str(path),
                num_threads=self.threads,
                # AUTO applies the default XNNPACK delegate; the other resolver keeps every op on TFLite's kernels.
                experimental_op_resolver_type=resolver.AUTO if self.delegate == "xnnpack"
                else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
            self.interpreter.allocate_tensors()
        except SystemError as exc:  # tflite_runtime 2.14 under NumPy 2
            raise BackendUnavailable(f"{self._runtime} cannot create an Interpreter here ({exc}); "
                                     "install ai-edge-litert: pip install 'benchbench[tflite]'") from exc
        except (ValueError, RuntimeError) as exc:
            raise UnsupportedModel(f"the TFLite interpreter rejects the model: {exc}") from exc
        details = self.interpreter.get_input_details()
        if isinstance(inputs, dict):  # a user's file: every input by name, resized to the given shape
            self._bind_named(details, inputs)
            return
        if len(details) != 1:
            raise UnsupportedModel(f"the model has {len(details)} inputs; benchbench feeds one")
        fed = _channels_last(inputs) if self.layout == "nhwc" else inputs
        if tuple(details[0]["shape"]) != fed.shape:
            raise UnsupportedModel(f"the model takes {tuple(details[0]['shape'])}, the input is {fed.shape}")
        self.inputs = inputs
        self._input_index = details[0]["index"]
        self.interpreter.set_tensor(self._input_index, fed.astype(details[0]["dtype"], copy=False))
        self._output_indices = self._outputs_in_order()

    def _bind_named(self, details: list[dict], inputs: dict[str, np.ndarray]) -> None:
        it = self.interpreter
        try:
            for d in details:
                if tuple(d["shape"]) != inputs[d["name"]].shape:
                    it.resize_tensor_input(d["index"], list(inputs[d["name"]].shape))
            it.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise UnsupportedModel(f"the TFLite interpreter cannot take these input shapes: {exc}") from exc
        for d in details:
            it.set_tensor(d["index"], inputs[d["name"]].astype(d["dtype"], copy=False))
        self.inputs = inputs
        self._output_indices = [d["index"] for d in it.get_output_details()]

    def _outputs_in_order(self) -> list[int]:
        """Output tensor indices in PyTorch's order: the signature names them output_0, output_1, ..."""
        it = self.interpreter
        signatures = it.get_signature_list()
        if signatures:
            details = it.get_signature_runner(next(iter(signatures))).get_output_details()
            return [details[name]["index"] for name in sorted(details, key=_natural)]
        return [d["index"] for d in it.get_output_details()]

    def run(self):
        self.interpreter.invoke()

    def outputs(self):
        self.interpreter.invoke()
        outs = [np.array(self.interpreter.get_tensor(i)) for i in self._output_indices]
        return [_channels_first(o) for o in outs] if self.layout == "nhwc" else outs

    # -- what runs -------------------------------------------------------------------------------

    def _op_list(self) -> tuple[list[dict], list[dict]]:
        """(the model's ops, the delegate nodes). A delegated interpreter lists the original nodes first and
        appends one DELEGATE node per partition; the original nodes stay listed but no longer run."""
        ops = self.interpreter._get_ops_details()  # experimental API; the only op list LiteRT's Python exposes
        return [o for o in ops if o["op_name"] != "DELEGATE"], [o for o in ops if o["op_name"] == "DELEGATE"]

    def _partitions(self, ops: list[dict], delegates: list[dict]) -> list[set[int]]:
        """The original ops each delegate node replaced: walk back from its outputs to its inputs."""
        producer = {int(t): o["index"] for o in ops for t in o["outputs"]}
        by_index = {o["index"]: o for o in ops}
        parts = []
        for d in delegates:
            boundary = {int(t) for t in d["inputs"]}
            seen: set[int] = set()
            stack = [int(t) for t in d["outputs"]]
            while stack:
                node = producer.get(stack.pop())
                if node is None or node in seen:
                    continue
                seen.add(node)
                stack.extend(int(t) for t in by_index[node]["inputs"] if int(t) >= 0 and int(t) not in boundary)
            parts.append(seen)
        return parts

    def _transpose_positions(self, ops: list[dict]) -> list[tuple[dict, str]]:
        """Each TRANSPOSE op with its position: at an input, at an output, or inside (the model's own permutes, or
        layout changes the converter could not fold)."""
        inputs = {d["index"] for d in self.interpreter.get_input_details()}
        outputs = {d["index"] for d in self.interpreter.get_output_details()}
        return [(o, "input" if int(o["inputs"][0]) in inputs
                 else "output" if any(int(t) in outputs for t in o["outputs"]) else "inside")
                for o in ops if o["op_name"] == "TRANSPOSE"]

    def _transposes(self, ops: list[dict]) -> dict:
        """TRANSPOSE ops counted by position (``_transpose_positions``)."""
        where = {"input": 0, "output": 0, "inside": 0}
        for _, position in self._transpose_positions(ops):
            where[position] += 1
        return {"total": sum(where.values()), **where}

    def layout_reorders(self):
        """The elements of each TRANSPOSE the converter left inside the model to change layout: a 4-D permutation
        between NHWC and NCHW around an operator it ran in the PyTorch model's NCHW order (ShuffleNetV2's channel
        shuffle and split, CondConv's routing, RepMLP's partitions). The one at the NCHW input and any at an output
        are the signature's, which every net pays (the predictor's base), and a permutation of other rank is the
        model's own (an ONNX Transpose). A model whose own graph permutes between NCHW and NHWC would be counted
        here too; none in the zoo does."""
        import math

        ops, _ = self._op_list()
        shapes = {t["index"]: t["shape"] for t in self.interpreter.get_tensor_details()}
        out = []
        for o, position in self._transpose_positions(ops):
            if position != "inside":
                continue
            try:  # the permutation is a constant tensor, readable once the interpreter is allocated
                perm = tuple(int(x) for x in self.interpreter.get_tensor(int(o["inputs"][1])))
            except (ValueError, IndexError):
                continue
            if perm in ((0, 2, 3, 1), (0, 3, 1, 2)):
                out.append(int(math.prod(shapes[int(o["inputs"][0])])))
        return out

    def executed_ops(self):
        """Every TFLite op runs as one kernel, on XNNPACK or on the builtin CPU kernels; both counts are kept."""
        ops, delegates = self._op_list()
        by_type: dict[str, int] = {}
        for o in ops:
            by_type[o["op_name"]] = by_type.get(o["op_name"], 0) + 1
        parts = self._partitions(ops, delegates)
        delegated = set().union(*parts) if parts else set()
        cpu: dict[str, int] = {}
        for o in ops:
            if o["index"] not in delegated:
                cpu[o["op_name"]] = cpu.get(o["op_name"], 0) + 1
        return {
            "count": len(ops),
            "by_type": dict(sorted(by_type.items())),
            "source": "TFLite interpreter op list (_get_ops_details)",
            "delegate": {
                "name": "XNNPACK" if self.delegate == "xnnpack" else "none",
                "partitions": len(delegates),
                "delegated_ops": len(delegated),
                "cpu_kernel_ops": len(ops) - len(delegated),
                "cpu_kernel_by_type": dict(sorted(cpu.items())),
            },
        }

    def profile_ops(self, runs: int) -> dict:
        """LiteRT's Python API has no per-operator timer: the op list comes back without times."""
        ops, _ = self._op_list()
        return {
            "source": "none: LiteRT's Python Interpreter exposes no per-operator profiler",
            "ops": [{"name": f"{o['index']}:{o['op_name']}", "type": o["op_name"], "time_ms": None} for o in ops],
            "note": "No per-op times for TFLite: ai_edge_litert's Interpreter has no profiler API (the C++ "
                    "benchmark_model tool's --enable_op_profiling is not in the wheel). The ops are listed, untimed.",
        }

    def metadata(self):
        ops, _ = self._op_list()
        return {
            **super().metadata(),
            "runtime": self._runtime,
            "interpreter": f"{self.tfl.__name__}.Interpreter",
            "delegate": "XNNPACK (default delegate)" if self.delegate == "xnnpack" else "none (builtin CPU kernels)",
            "precision": "f32",
            "layout": self.layout,
            "layout_handling": ("NCHW signature; the converter runs NHWC kernels and inserts TRANSPOSE ops"
                                if self.layout == "nchw" else "NHWC input given directly (channels-last twin)"),
            "transposes": self._transposes(ops),
            "input_copy_per_run": False,
        }

    def teardown(self):
        self.interpreter = None
