"""PyTorch eager on the CPU: ``inference_mode``, explicit intra-op threads, one inter-op thread."""

from __future__ import annotations

from .base import Runner


class TorchRunner(Runner):
    name = "torch"
    artifact = "torch"
    packages = ("torch",)
    description = "PyTorch eager, CPU"
    device = "cpu"

    def load_runtime(self):
        import torch

        self.torch = torch
        torch.set_num_threads(self.threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set in this process
            pass

    def prepare(self, artifact: dict, inputs):
        from benchbench.models import create_model

        torch = self.torch
        self.model = create_model(
            artifact["model"],
            artifact["variant"],
            input_size=tuple(artifact["input_size"]) if artifact.get("input_size") else None,
            seed=artifact["seed"],
        ).to(self.device)
        self.inputs = torch.from_numpy(inputs).to(self.device)
        with torch.inference_mode():  # build lazy state (e.g. oneDNN weight caches) here, not in run()
            self._last = self.model(self.inputs)
        self._count_ops()

    def run(self):
        with self.torch.inference_mode():
            self._last = self.model(self.inputs)

    def outputs(self):
        with self.torch.inference_mode():
            out = self.model(self.inputs)
        out = out if isinstance(out, (tuple, list)) else (out,)
        return [o.detach().float().cpu().numpy() for o in out]

    def _count_ops(self):
        """aten ops dispatched per forward: torch executes every one (eager has no fusion)."""
        from torch.utils._python_dispatch import TorchDispatchMode

        counts: dict[str, int] = {}

        class _Count(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                name = func.overloadpacket.__name__
                counts[name] = counts.get(name, 0) + 1
                return func(*args, **(kwargs or {}))

        with self.torch.inference_mode(), _Count():
            self.model(self.inputs)
        # Views and metadata ops launch no kernel; keep them out of the executed count.
        free = {"view", "_unsafe_view", "reshape", "t", "transpose", "permute", "expand", "detach", "alias",
                "unsqueeze", "squeeze", "flatten", "as_strided", "slice", "select", "split", "chunk",
                "split_with_sizes", "unbind", "_reshape_alias"}
        kernels = {k: v for k, v in counts.items() if k not in free}
        self._ops = {"count": sum(kernels.values()), "by_type": dict(sorted(kernels.items())), "source": "aten dispatch"}

    def executed_ops(self):
        return self._ops

    def metadata(self):
        torch = self.torch
        return {
            **super().metadata(),
            "runtime": f"torch {torch.__version__}",
            "device": self.device,
            "interop_threads": torch.get_num_interop_threads(),
            "precision": "f32",
        }
