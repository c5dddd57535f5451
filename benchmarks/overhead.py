"""Harness overhead: benchbench's median against a raw API loop on the same artifact, side by side.

For each model, the cached ONNX artifact is measured, round after round, two ways:

* ``raw``: a fresh Python process that creates an ONNX Runtime session exactly as benchbench's ort
  runner does (all graph optimizations, N intra-op threads, one inter-op thread, sequential), warms up,
  and times ``--runs`` calls of ``session.run`` one by one with ``perf_counter_ns``;
* ``benchbench``: the ordinary harness (a measuring worker driven in blocks over the protocol), as a
  single cell with nothing to compare, with the same number of timed inferences.

Rounds alternate the order, so drift reaches both alike; each round gives a ratio of medians,
benchbench / raw, and the headline per model is the median of those ratios with its distribution-free
95% interval over rounds (the machine moves by tens of percent between seconds here, so one round's
ratio says little; 11 rounds give an interval). Goal: <= 1.02 for models of 1 ms or more.

    python benchmarks/overhead.py --model resnet18,repvgg_a0,mobilenetv2_100 --rounds 11
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tabulate import tabulate

from benchbench.build.builds import ensure_build
from benchbench.core.spec import CellSpec, MeasureConfig, physical_cores
from benchbench.core.stats import median_ci
from benchbench.measure.sweep import run_sweep
from benchbench.processes.manager import worker_env
from benchbench.results.record import RunResult

RAW_LOOP = r"""
import sys, time, numpy as np, onnxruntime as ort
path, inputs, threads, runs, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
so = ort.SessionOptions()
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
so.intra_op_num_threads = threads
so.inter_op_num_threads = 1
so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
feed = {s.get_inputs()[0].name: np.load(inputs)}
for _ in range(warmup):
    s.run(None, feed)
t = []
for _ in range(runs):
    t0 = time.perf_counter_ns(); s.run(None, feed); t.append(time.perf_counter_ns() - t0)
print(sorted(t)[len(t) // 2] / 1e6)
"""


def raw(onnx: str, inputs: str, threads: int, runs: int, warmup: int) -> float:
    out = subprocess.run([sys.executable, "-P", "-c", RAW_LOOP, onnx, inputs, str(threads), str(runs), str(warmup)],
                         check=True, capture_output=True, text=True, env=worker_env(threads))
    return float(out.stdout.strip().splitlines()[-1])


def harness(spec: CellSpec, config: MeasureConfig, tmp: Path) -> float:
    run = RunResult(meta={"settings": config.__dict__}, path=tmp / "bb.json")
    cell = run_sweep([spec], config, run, progress=lambda msg: None).cells[0]
    if not cell.ok:
        sys.exit(f"benchbench could not measure {spec.label()}: {cell.status}: {cell.reason}")
    return float(statistics.median(cell.samples_ns)) / 1e6  # the same statistic as the raw loop's


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18,repvgg_a0,mobilenetv2_100")
    ap.add_argument("--variant", default="deploy", choices=["train", "deploy"])
    ap.add_argument("--threads", type=int, default=None, help="default: physical cores")
    ap.add_argument("--runs", type=int, default=200, help="timed inferences per way per round")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    threads = args.threads or physical_cores()
    config = MeasureConfig(warmup_min_count=args.warmup, warmup_min_s=0.0, min_s=0.0, max_s=1e9,
                           block_s=0.05, min_blocks=1, target_ci=0.0, cell_timeout_s=1800)
    body, figures = [], {}
    with tempfile.TemporaryDirectory(prefix="bb-overhead-") as tmp:
        for model in args.model.split(","):
            spec = CellSpec(model, args.variant, "ort", threads=threads)
            build = ensure_build(spec, {"onnx"}, config)
            if build["status"] != "ok" or build["manifest"]["artifacts"]["onnx"]["status"] != "ok":
                sys.exit(f"no ONNX artifact for {model}: {build.get('reason')}")
            onnx = str(Path(build["dir"]) / build["manifest"]["artifacts"]["onnx"]["file"])
            inputs = str(Path(build["dir"]) / "input.npy")
            raws, ours = [], []
            for r in range(args.rounds):
                # blocks of ~50 ms until --runs inferences: size the block count from a first raw median
                first = raws[0] if raws else raw(onnx, inputs, threads, 20, args.warmup)
                per_block = max(1, round(50 / max(first, 1e-3)))
                cfg = config.replace(min_blocks=max(1, args.runs // per_block), max_blocks=max(1, args.runs // per_block))
                steps = [("raw", lambda: raw(onnx, inputs, threads, args.runs, args.warmup)),
                         ("benchbench", lambda: harness(spec, cfg, Path(tmp)))]
                for name, fn in (steps if r % 2 == 0 else steps[::-1]):
                    (raws if name == "raw" else ours).append(fn())
                print(f"{model} round {r + 1}: raw {raws[-1]:.3f} ms, benchbench {ours[-1]:.3f} ms", file=sys.stderr)
            ratios = [o / w for o, w in zip(ours, raws)]
            figures[model] = {"raw_ms": raws, "benchbench_ms": ours, "ratios": ratios}
            low, high = median_ci(ratios)
            body.append([model, f"{statistics.median(raws):.3f}", f"{statistics.median(ours):.3f}",
                         f"{statistics.median(ratios):.3f} [{low:.3f}, {high:.3f}]", f"{min(ratios):.3f}–{max(ratios):.3f}"])
    print(f"ort, {args.variant} forms, {threads} threads, {args.runs} timed inferences per way, {args.rounds} "
          "alternating rounds\n")
    print(tabulate(body, ["model", "raw loop ms", "benchbench ms", "ratio (median of rounds) [95% CI]", "per-round range"],
                   tablefmt="github", disable_numparse=True))
    print("\nratio = benchbench median / raw-loop median in the same round; 1.000 = no overhead. Absolute ms "
          "are this machine's at that moment; the ratio is the figure.")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
