"""PyTorch eager on the CPU: ``inference_mode``, explicit intra-op threads, one inter-op thread, and a C heap that
keeps what it freed (``runners/heap.py``)."""

from __future__ import annotations

from benchbench.runners.base import Runner


def _from_weights(torch, artifact: dict, size):
    """The model built on the meta device with the build's weights assigned, or None when its structure does
    not come out whole that way (the caller then builds it in full)."""
    from benchbench.models import create_model

    state = torch.load(artifact["weights"], weights_only=True, map_location="cpu")  # tensors only: no code
    try:
        with torch.device("meta"):
            model = create_model(artifact["model"], artifact["variant"], input_size=size, seed=artifact["seed"],
                                 randomize=False)
        model.load_state_dict(state, assign=True)
    except (RuntimeError, TypeError, ValueError, NotImplementedError):
        return None
    tensors = [*model.parameters(), *model.buffers(),
               *(v for m in model.modules() for v in vars(m).values() if isinstance(v, torch.Tensor))]
    if any(t.is_meta for t in tensors):
        return None  # a non-persistent buffer or a plain tensor attribute: not in the state dict
    return model


class TorchRunner(Runner):
    name = "torch"
    aliases = ("pytorch", "torch-cpu")
    artifact = "torch"
    packages = ("torch",)
    versions = ("torch",)
    # The zoo too: every torch worker rebuilds its model from it. And torch._dynamo: see load_runtime.
    preload = ("torch", "torch._dynamo", "benchbench.models")
    # OpenMP threads busy-wait at their barriers: two torch workers warming up side by side on two cores took
    # 1.1-2x as long as one after the other (benchmarks/later_rounds.py), where the other runtimes gained.
    starts_side_by_side = False
    description = "PyTorch eager, CPU"
    heap: dict = {}  # the C heap's policy in this worker (load_runtime)
    device = "cpu"

    def load_runtime(self):
        import torch
        from benchbench.runners.heap import keep_freed_memory

        self.torch = torch
        # Before any tensor: glibc's malloc would otherwise hand freed outputs back to the system and fault
        # them in again on the next inference, as the process's history decides (runners/heap.py).
        self.heap = keep_freed_memory()
        torch.set_num_threads(self.threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set in this process
            pass
        # prepare() builds the model on the meta device, and a deploy form's reparameterization computes there:
        # torch's first meta arithmetic imports its Python reference kernels and torch._dynamo (~800 modules,
        # ~1 s, ~70 MiB). Paid here, before the memory baseline (a fork server has imported them already), it
        # is no cell's load time or memory; paid in prepare, it was charged to deploy forms only (resnet18 on
        # torch: load 159 MiB and 0.96 s for the deploy form against 87 MiB and 0.05 s for the train form).
        with torch.device("meta"):
            torch.zeros(1) + 1

    def prepare(self, artifact: dict, inputs):
        """The build's model: its structure from the registry, built without initializing it (on the meta
        device), and its tensors loaded weights-only from the build (``artifact["weights"]``), so nothing from
        the cache is unpickled as code. A network whose structure cannot be built that way (a tensor made in
        its constructor, a buffer left out of its state dict) is built and initialized from the registry and
        seed instead; so is one whose build has no weights file."""
        from benchbench.models import create_model

        torch = self.torch
        size = tuple(artifact["input_size"]) if artifact.get("input_size") else None
        self.model = _from_weights(torch, artifact, size) if artifact.get("weights") else None
        if self.model is None:
            self.model = create_model(artifact["model"], artifact["variant"], input_size=size, seed=artifact["seed"])
        self.model = self.model.eval().to(self.device)
        self.inputs = torch.from_numpy(inputs).to(self.device)
        self._ops = artifact.get("executed_ops")  # else counted on demand: a forward of its own

    def run(self):
        with self.torch.inference_mode():
            self._last = self.model(self.inputs)

    def outputs(self):
        with self.torch.inference_mode():
            out = self.model(self.inputs)
        out = out if isinstance(out, (tuple, list)) else (out,)
        return [o.detach().float().cpu().numpy() for o in out]

    def executed_ops(self):
        """aten ops per forward: counted once per build (``artifact["executed_ops"]``), else here."""
        if self._ops is None:
            from benchbench.metrics import count_dispatched_ops

            self._ops = count_dispatched_ops(self.model, self.inputs)
        return self._ops

    def profile_ops(self, runs: int) -> dict:
        """Per-op times from torch.profiler: the top-level aten ops of each forward, named by the innermost
        module they ran in. Time is inclusive (an op's nested aten calls count once, in it); on CUDA it
        is the device time of the kernels the op launched."""
        import statistics
        import time

        from torch.profiler import ProfilerActivity, profile, record_function

        torch, cuda = self.torch, self.device == "cuda"
        stack, handles = [], []

        def enter(name):
            def hook(module, args):
                scope = record_function(f"module::{name}")
                scope.__enter__()
                stack.append(scope)
            return hook

        def leave(module, args, out):
            stack.pop().__exit__(None, None, None)

        for name, module in self.model.named_modules():
            if name:  # an op is named by the innermost module it ran in
                handles += [module.register_forward_pre_hook(enter(name)), module.register_forward_hook(leave)]
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        run_ms = []
        try:
            self.run()  # warm, with the hooks in place
            with profile(activities=activities, record_shapes=True) as prof:
                for _ in range(runs):
                    with record_function("benchbench::run"):
                        t0 = time.perf_counter_ns()
                        self.run()
                        if cuda:
                            torch.cuda.synchronize()
                        run_ms.append((time.perf_counter_ns() - t0) / 1e6)
        finally:
            for h in handles:
                h.remove()

        def top_ops(event, scope=""):
            for child in event.cpu_children:
                if child.name.startswith("module::"):
                    yield from top_ops(child, child.name[len("module::"):])
                else:
                    yield scope, child

        per_run = []
        for run in (e for e in prof.events() if e.name == "benchbench::run"):
            per_run.append([(f"{scope}/{ev.name}" if scope else ev.name, ev.name,
                             (ev.device_time_total if cuda else ev.cpu_time_total) / 1e3, ev)
                            for scope, ev in top_ops(run)])
        ops = []
        for i, (name, kind, _, ev) in enumerate(per_run[0] if per_run else []):
            times = [r[i][2] for r in per_run if len(r) > i]
            ops.append({"name": name, "type": kind.removeprefix("aten::"), "time_ms": statistics.median(times),
                        **_shapes(kind.removeprefix("aten::"), ev)})
        source = "torch.profiler, top-level aten ops per forward, " + ("CUDA kernel time" if cuda else "inclusive CPU time")
        return {"source": source, "ops": ops, "run_ms": run_ms}

    def metadata(self):
        torch = self.torch
        return {
            **super().metadata(),
            "runtime": f"torch {torch.__version__}",
            "device": self.device,
            "interop_threads": torch.get_num_interop_threads(),
            "precision": "f32",
            "heap": self.heap,
        }


def _shapes(kind: str, event) -> dict:
    """A profiled op's tensor shapes: its inputs as torch.profiler recorded them, and its output where the
    op's arguments determine it (convolutions, linear, matmul; torch.profiler records no output shapes).
    Other ops are taken to keep their first input's shape, which holds for elementwise ops."""
    inputs = [list(s) for s in (event.input_shapes or []) if s]
    args = list(getattr(event, "concrete_inputs", None) or [])
    out = list(inputs[0]) if inputs else None
    try:
        if kind in ("conv1d", "conv2d", "conv3d", "convolution", "_convolution") and len(inputs) >= 2:
            x, w = inputs[0], inputs[1]
            spatial = len(x) - 2
            def per_dim(v, default):
                v = default if v in (None, []) else v
                return list(v) * spatial if len(list(v)) == 1 else list(v)
            stride, padding, dilation = (per_dim(args[i] if len(args) > i else None, [d]) for i, d in ((3, 1), (4, 0), (5, 1)))
            if isinstance(args[4] if len(args) > 4 else None, str):  # padding="same" / "valid"
                padding = [(k - 1) // 2 for k in w[2:]] if args[4] == "same" else [0] * spatial
            out = [x[0], w[0]] + [(n + 2 * p - d * (k - 1) - 1) // s + 1
                                  for n, k, s, p, d in zip(x[2:], w[2:], stride, padding, dilation)]
        elif kind in ("linear", "matmul", "mm", "addmm", "bmm") and len(inputs) >= 2:
            a, b = (inputs[1], inputs[2]) if kind == "addmm" else (inputs[0], inputs[1])
            out = a[:-1] + [b[0] if kind == "linear" else b[-1]]
    except (TypeError, ValueError, IndexError):
        out = None  # an argument form this does not know: the output stays unknown, not wrong
    return {"inputs": inputs, "outputs": [out] if out else []}
