"""A convolution inside a model against the same convolution alone, in PyTorch eager: is the difference the caches?

The latency predictor learns each kernel's cost from one-kernel nets timed in a loop, where the kernel's weights
and input stay in the caches from one inference to the next. In a model, other kernels' data pass through the
caches between two calls of the same kernel. ``kernel_context.py`` measures the gap on ONNX Runtime with its
profiler; this script measures it on PyTorch eager without a profiler (torch's inflates small ops about 2x), by
timing each ``Conv2d`` module's call with forward hooks inside the model, then the same module alone on the input it
received there, in three contexts:

- **hot**: called back to back, as a kernel net is timed;
- **flushed**: before each call, untimed, a 16 MiB tensor is written (more than both cores' L2 here) and the
  input written again, so the weights come from beyond L2 and the input is fresh, as after the kernel before it;
- **idle**: before each call, untimed, the thread spins 200 µs, letting torch's worker threads go idle without
  evicting anything (the other candidate cause: threads waking up).

Each model is measured in ``--passes`` passes (model, then its convolutions alone; each context's order turns
from pass to pass), and each figure is the median over passes of the per-call medians. Prints, per model, the
summed in-model time of its convolutions and its ratio to each context's sum; ``--verbose`` adds the convolutions
whose flushed time is furthest from their in-model time. The C heap is set as the torch worker sets it
(``runners/heap.py``; ``BENCHBENCH_TORCH_MALLOC=default`` leaves glibc's policy, under which a model's
buffers may be faulted in again on every call). Measure nothing else meanwhile.

    python benchmarks/torch_kernel_context.py --model resnet18,mobilenetv2_100,efficientnet_b0,shufflenetv2_x1_0
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

FLUSH_BYTES = 16 * 2**20
CALLS = 40
WARM = 5


def _spin(us: float) -> None:
    end = time.perf_counter_ns() + us * 1000
    while time.perf_counter_ns() < end:
        pass


def _in_model(model, x, convs, calls: int) -> tuple[dict[str, float], dict[str, object]]:
    """Each convolution's median call time (ns) inside the model over ``calls`` inferences (after ``WARM``), and
    the input it received."""
    import torch

    started, times, inputs = {}, {n: [] for n, _ in convs}, {}
    hooks = []
    for name, mod in convs:
        def pre(_mod, inp, name=name):
            inputs.setdefault(name, inp[0].detach().clone())
            started[name] = time.perf_counter_ns()

        def post(_mod, _inp, _out, name=name):
            times[name].append(time.perf_counter_ns() - started[name])
        hooks += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
    try:
        with torch.inference_mode():
            for _ in range(WARM + calls):
                model(x)
    finally:
        for h in hooks:
            h.remove()
    return {n: statistics.median(v[WARM:]) for n, v in times.items()}, inputs


def _alone(mod, x, before, calls: int) -> float:
    """The module's median call time (ns) on ``x`` with ``before()`` run, untimed, ahead of each call."""
    import torch

    out = []
    with torch.inference_mode():
        for i in range(WARM + calls):
            before()
            start = time.perf_counter_ns()
            mod(x)
            if i >= WARM:
                out.append(time.perf_counter_ns() - start)
    return statistics.median(out)


def compare(name: str, threads: int, passes: int, verbose: bool) -> dict[str, float]:
    """The summed in-model time of the zoo model's convolutions (ms) and each context's sum, medians over passes."""
    import torch
    from benchbench.models import create_model

    torch.set_num_threads(threads)
    model = create_model(name, "deploy")
    x = torch.randn(1, 3, 224, 224)
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    flush = torch.zeros(FLUSH_BYTES // 4)
    per_pass: dict[str, list[dict[str, float]]] = {"model": [], "hot": [], "flushed": [], "idle": []}
    for p in range(passes):
        in_model, inputs = _in_model(model, x, convs, CALLS)
        per_pass["model"].append(in_model)
        contexts = {"hot": lambda xi: None,
                    "flushed": lambda xi: (flush.add_(1.0), xi.mul_(1.0)),
                    "idle": lambda xi: _spin(200)}
        order = list(contexts)[p % 3:] + list(contexts)[:p % 3]
        for ctx in order:
            per_pass[ctx].append({n: _alone(m, inputs[n], lambda n=n: contexts[ctx](inputs[n]), CALLS)
                                  for n, m in convs})
    median = {ctx: {n: statistics.median(r[n] for r in runs) for n, _ in convs} for ctx, runs in per_pass.items()}
    sums = {ctx: sum(v.values()) / 1e6 for ctx, v in median.items()}
    print(f"{name}: {len(convs)} convolutions, in model {sums['model']:.2f} ms; alone "
          + ", ".join(f"{ctx} {sums[ctx]:.2f} ms (model / {ctx} x{sums['model'] / sums[ctx]:.2f})"
                      for ctx in ("hot", "flushed", "idle")))
    if verbose:
        far = sorted(convs, key=lambda c: -abs(median["flushed"][c[0]] / median["model"][c[0]] - 1))[:8]
        for n, m in far:
            w = m.weight.numel() * 4 / 1024
            print(f"  {n:32s} model {median['model'][n] / 1e3:7.1f} us, hot {median['hot'][n] / 1e3:7.1f}, "
                  f"flushed {median['flushed'][n] / 1e3:7.1f}, idle {median['idle'][n] / 1e3:7.1f}  "
                  f"{m.in_channels}->{m.out_channels} k{m.kernel_size[0]} s{m.stride[0]} g{m.groups} "
                  f"on {tuple(inputs[n].shape[2:])}, weights {w:.0f} KiB")
    return sums


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18,mobilenetv2_100,efficientnet_b0,shufflenetv2_x1_0",
                    help="zoo models, comma-separated")
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2, the cells' own here)")
    ap.add_argument("--passes", type=int, default=3, help="passes over the model and its convolutions (median)")
    ap.add_argument("--verbose", action="store_true", help="the convolutions whose flushed time is furthest off")
    args = ap.parse_args(argv)
    from benchbench.runners.heap import keep_freed_memory

    print(f"heap: {keep_freed_memory()}")
    for name in args.model.split(","):
        compare(name.strip(), args.threads, args.passes, args.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(main())
