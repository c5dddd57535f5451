"""PyTorch eager on an NVIDIA GPU: each sample timed with CUDA events, peak device memory recorded.

A timed call records a start event, runs the model, records an end event and waits for it, so the
sample is the stream's time from launch to completion, including any gaps where the GPU waits for
the host. TF32 is off by default (``--option tf32=on`` allows it): with it, matmuls and convolutions
round inputs to 10 mantissa bits and parity against float32 fails by design. cuDNN autotuning
(``cudnn.benchmark``) is off unless ``--option cudnn_benchmark=on``.
"""

from __future__ import annotations

import importlib.util

from benchbench.runners.base import BackendUnavailable
from benchbench.runners.torch_eager import TorchRunner

__all__ = ["TorchCudaRunner"]

_SWITCHES = ("off", "on")


class TorchCudaRunner(TorchRunner):
    name = "torch-cuda"
    aliases = ("cuda",)
    description = "PyTorch eager, CUDA (CUDA-event timing)"
    OPTIONS = {"tf32": _SWITCHES, "cudnn_benchmark": _SWITCHES}
    device = "cuda"

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        if importlib.util.find_spec("torch") is None:
            return False, "torch-cuda needs torch built with CUDA and an NVIDIA GPU"
        import torch  # the parent imports torch anyway (the zoo needs it); CUDA is not initialized here

        if torch.version.cuda is None:
            return False, (f"torch-cuda needs a CUDA build of torch; this one ({torch.__version__}) is CPU-only "
                           "(install a CUDA wheel from https://pytorch.org)")
        if not torch.cuda.is_available():
            return False, f"torch-cuda: torch {torch.__version__} has CUDA {torch.version.cuda}, but no GPU is visible"
        return True, ""

    def _switch(self, key: str) -> bool:
        value = str(self.options.get(key, "off")).lower()
        if value not in _SWITCHES:
            raise ValueError(f"torch-cuda option {key}={value}: choose from on, off")
        return value == "on"

    def load_runtime(self):
        super().load_runtime()
        torch = self.torch
        if not torch.cuda.is_available():
            raise BackendUnavailable(self.is_available()[1])
        self.tf32 = self._switch("tf32")
        torch.backends.cuda.matmul.allow_tf32 = self.tf32
        torch.backends.cudnn.allow_tf32 = self.tf32
        torch.backends.cudnn.benchmark = self._switch("cudnn_benchmark")
        torch.cuda.init()  # context creation belongs to the runtime's load, not to prepare

    def prepare(self, artifact, inputs):
        torch = self.torch
        torch.cuda.reset_peak_memory_stats()
        super().prepare(artifact, inputs)  # builds the model on the device and runs it once
        torch.cuda.synchronize()
        self._load_peak = torch.cuda.max_memory_allocated()
        torch.cuda.reset_peak_memory_stats()  # from here on, the peak is the inference phase's
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def run(self):
        """One complete inference: the launch returns early on CUDA, so wait for the stream."""
        super().run()
        self.torch.cuda.synchronize()

    def time_once(self) -> int:
        self._start.record()
        super().run()  # no host sync inside: the end event marks completion on the stream
        self._end.record()
        self._end.synchronize()  # the sample ends when the GPU has finished, not when the launch returns
        return int(self._start.elapsed_time(self._end) * 1e6)  # ms → ns

    def device_memory(self) -> dict:
        """Peak CUDA memory held by tensors (the caching allocator's max allocated), load and inference."""
        torch, mib = self.torch, 2**20
        return {
            "cuda_load_peak_mib": self._load_peak / mib,
            "cuda_infer_peak_mib": torch.cuda.max_memory_allocated() / mib,
            "cuda_reserved_mib": torch.cuda.memory_reserved() / mib,
            "cuda_source": "torch.cuda.max_memory_allocated (tensors only; not the CUDA context)",
        }

    def metadata(self):
        torch = self.torch
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        return {
            **super().metadata(),
            "device": f"cuda:{torch.cuda.current_device()}",
            "gpu": props.name,
            "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "precision": "tf32" if self.tf32 else "f32",
            "timing": "CUDA events around each inference, end event synchronized",
        }
