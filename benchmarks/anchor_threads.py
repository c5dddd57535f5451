"""The lab anchor at one thread and at the cells' thread count, over time: is it a steady unit?

Each probe is a fresh process that loads the anchor's ONNX build in ONNX Runtime and times it at ``--threads``
(the cells' count, default: the physical cores), then at one thread, then at ``--threads`` again (``--runs``
inferences each, median). Probes follow one another ``--gap`` seconds apart. Prints every probe and, per thread
count, the spread of the probes' medians (max over min) and how many read more than 15% above the fastest (the
predictor's disturbed threshold, ``benchbench.analysis.anchored.DISTURBED``).

    python benchmarks/anchor_threads.py --probes 30 --gap 3

Needs the anchor's build in the cache (any ``benchbench predict`` or ``lab`` run makes it). Measure nothing else
meanwhile: the probes are the machine's state, and a second load is part of it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

PROBE = r"""
import sys, time, numpy as np, onnxruntime as ort
path, threads, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
x = np.load(sys.argv[4])
def median_ms(n_threads):
    so = ort.SessionOptions(); so.intra_op_num_threads = n_threads; so.inter_op_num_threads = 1
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    for _ in range(200):
        s.run(None, {name: x})
    t = []
    for _ in range(runs):
        t0 = time.perf_counter(); s.run(None, {name: x}); t.append(time.perf_counter() - t0)
    return float(np.median(t)) * 1e3
print(median_ms(threads), median_ms(1), median_ms(threads))
"""


def anchor_files() -> tuple[str, str]:
    """The anchor's cached ONNX model and its input (made by any ``benchbench predict`` or ``lab`` run)."""
    from benchbench.build.builds import input_shape
    from benchbench.build.cache import cache_root
    from benchbench.build.export import build_key
    from benchbench.core.labpoints import ANCHOR_NAME
    from benchbench.core.spec import CellSpec

    spec = CellSpec(ANCHOR_NAME, "deploy", "ort")
    folder = cache_root() / build_key(spec.model, spec.variant, input_shape(spec), spec.seed)
    if not (folder / "model.onnx").exists():
        raise SystemExit(f"no build of {ANCHOR_NAME} in {folder}: run benchbench predict or lab on ort first")
    return str(folder / "model.onnx"), str(folder / "input.npy")


def main(argv: list[str] | None = None) -> int:
    from benchbench.analysis.anchored import DISTURBED
    from benchbench.core.spec import physical_cores

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probes", type=int, default=30)
    ap.add_argument("--gap", type=float, default=3.0, help="seconds between probes")
    ap.add_argument("--runs", type=int, default=2000, help="timed inferences per thread count and probe")
    ap.add_argument("--threads", type=int, default=None, help="the cells' thread count (default: physical cores)")
    args = ap.parse_args(argv)
    threads = args.threads or physical_cores()
    model, data = anchor_files()
    many, one = [], []
    for i in range(args.probes):
        out = subprocess.run([sys.executable, "-c", PROBE, model, str(threads), str(args.runs), data],
                             capture_output=True, text=True, check=True).stdout.split()
        a, b, c = (float(v) for v in out)
        many += [a, c]
        one.append(b)
        print(f"probe {i + 1:2d}: {threads} threads {a:.4f} ms, 1 thread {b:.4f} ms, {threads} threads {c:.4f} ms",
              flush=True)
        time.sleep(args.gap)
    for label, v in ((f"{threads} threads", many), ("1 thread", one)):
        slow = sum(x > min(v) * (1 + DISTURBED) for x in v)
        print(f"{label}: median {statistics.median(v):.4f} ms, {min(v):.4f}-{max(v):.4f} (max/min {max(v) / min(v):.2f}); "
              f"{slow} of {len(v)} readings more than {DISTURBED:.0%} above the fastest")
    return 0


if __name__ == "__main__":
    sys.exit(main())
