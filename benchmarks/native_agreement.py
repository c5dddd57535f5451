"""Does benchbench agree with the backends' own benchmark tools? Same artifact, three ways, one run.

For one model/variant it builds (or reuses) the cached ONNX and TFLite artifacts, then, round after
round, measures

* the ONNX model with benchbench's ``openvino`` runner and with OpenVINO's ``benchmark_app``
  (``-hint none -nstreams 1 -nthreads N -api sync -infer_precision f32``);
* the TFLite model with benchbench's ``tflite`` runner and with ai-edge-litert's ``litert-benchmark``
  (``--num_threads N``).

Every tool takes the same number of timed inferences after a warm-up. Rounds interleave the tools (in
alternating order), so drift in the machine's load reaches all of them alike. Each round gives a ratio of
medians, benchbench / native tool, for the two tools that ran back to back; the headline is the median
of those ratios over rounds. Why they may differ: docs/backends.md.

    python benchmarks/native_agreement.py --model vanillanet_5 --input-size 64 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from tabulate import tabulate

from benchbench.build.builds import ensure_build
from benchbench.core.spec import CellSpec, MeasureConfig, physical_cores
from benchbench.measure.sweep import run_sweep
from benchbench.processes.manager import worker_env
from benchbench.results.record import RunResult


def _tool(name: str) -> str:
    """A console script of the venv this Python runs in (benchmark_app, litert-benchmark)."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        sys.exit(f"{name} not found next to {sys.executable} or on PATH")
    return found


def benchmark_app(onnx: str, threads: int, runs: int, tmp: Path) -> float:
    """OpenVINO benchmark_app's median latency (ms): sync API, one stream, f32 pinned as benchbench does."""
    report = tmp / "benchmark_app"
    report.mkdir(exist_ok=True)
    cmd = [_tool("benchmark_app"), "-m", onnx, "-d", "CPU", "-hint", "none", "-nstreams", "1", "-nthreads",
           str(threads), "-api", "sync", "-infer_precision", "f32", "-niter", str(runs),
           "-report_type", "no_counters", "-report_folder", str(report), "-json_stats"]
    subprocess.run(cmd, check=True, capture_output=True, env=worker_env(threads))
    stats = json.loads((report / "benchmark_report.json").read_text())["execution_results"]
    return float(stats["latency (ms)"])  # the median (benchmark_app's default latency percentile is 50)


def litert_benchmark(tflite: str, threads: int, runs: int, warmup: int, tmp: Path) -> float:
    """ai-edge-litert's litert-benchmark median latency (ms), CPU accelerator."""
    out = tmp / "litert.json"
    cmd = [_tool("litert-benchmark"), "--model", tflite, "--num_threads", str(threads), "--num_runs", str(runs),
           "--warmup_runs", str(warmup), "--result_json", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, env=worker_env(threads))
    return float(json.loads(out.read_text())["latency"]["median_ms"])


def benchbench(spec: CellSpec, config: MeasureConfig, tmp: Path) -> float:
    """benchbench's median (ms) for one cell, measured by the ordinary harness (fresh worker)."""
    run = RunResult(meta={"settings": config.__dict__}, path=tmp / "bb.json")
    cell = run_sweep([spec], config, run, progress=lambda msg: None).cells[0]
    if not cell.ok:
        sys.exit(f"benchbench could not measure {spec.label()}: {cell.status}: {cell.reason}")
    if cell.parity.get("checked") and not cell.parity.get("passed"):
        print(f"warning: {spec.label()} fails parity", file=sys.stderr)
    return cell.median_ms


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vanillanet_5")
    ap.add_argument("--variant", default="deploy", choices=["train", "deploy"])
    ap.add_argument("--input-size", type=int, default=None, help="H = W (default: the model's)")
    ap.add_argument("--threads", type=int, default=None, help="default: physical cores")
    ap.add_argument("--runs", type=int, default=50, help="timed inferences per tool per round")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)

    threads = args.threads or physical_cores()
    size = (args.input_size, args.input_size) if args.input_size else None
    spec = CellSpec(args.model, args.variant, "openvino", input_size=size, threads=threads)
    # Exactly --runs samples after --warmup inferences, as the native tools take: blocks of one inference.
    config = MeasureConfig(warmup_min_count=args.warmup, warmup_min_s=0.0, min_count=args.runs, min_s=0.0,
                           max_s=1e9, max_count=1, block_s=0.0, min_blocks=args.runs, max_blocks=args.runs,
                           target_ci=0.0, cell_timeout_s=1800)
    build = ensure_build(spec, {"onnx", "tflite"}, config)
    if build["status"] != "ok":
        sys.exit(f"build failed: {build.get('reason')}")
    artifacts = build["manifest"]["artifacts"]
    for fmt in ("onnx", "tflite"):
        if artifacts[fmt]["status"] != "ok":
            sys.exit(f"no {fmt} artifact: {artifacts[fmt].get('reason')}")
    onnx, tflite = (str(Path(build["dir"]) / artifacts[fmt]["file"]) for fmt in ("onnx", "tflite"))

    tools = {
        "benchbench openvino": lambda tmp: benchbench(spec, config, tmp),
        "benchmark_app": lambda tmp: benchmark_app(onnx, threads, args.runs, tmp),
        "benchbench tflite": lambda tmp: benchbench(replace(spec, backend="tflite"), config, tmp),
        "litert-benchmark": lambda tmp: litert_benchmark(tflite, threads, args.runs, args.warmup, tmp),
    }
    medians: dict[str, list[float]] = {name: [] for name in tools}
    with tempfile.TemporaryDirectory(prefix="bb-agree-") as tmp:
        for r in range(args.rounds):
            order = list(tools) if r % 2 == 0 else list(reversed(tools))  # no tool always goes first
            for name in order:
                medians[name].append(tools[name](Path(tmp)))
                print(f"round {r + 1}/{args.rounds}: {name}: {medians[name][-1]:.3f} ms", file=sys.stderr)

    mid = {name: statistics.median(v) for name, v in medians.items()}
    pairs = [("openvino", "benchbench openvino", "benchmark_app", onnx),
             ("tflite", "benchbench tflite", "litert-benchmark", tflite)]
    body, ratios = [], {}
    for backend, ours, native, artifact in pairs:
        per_round = [a / b for a, b in zip(medians[ours], medians[native])]
        ratios[backend] = statistics.median(per_round)
        body.append([backend, f"{mid[ours]:.3f}", f"{mid[native]:.3f}", f"{ratios[backend]:.3f}",
                     f"{min(per_round):.3f}–{max(per_round):.3f}", Path(artifact).name])
    print(f"{args.model} [{args.variant}], input {size or 'default'}, {threads} threads, {args.runs} runs x "
          f"{args.rounds} rounds; median over rounds of each tool's median (ms)\n")
    print(tabulate(body, ["backend", "benchbench ms", "native ms", "ratio", "per-round ratios", "artifact"],
                   tablefmt="github", disable_numparse=True))
    # The two tools of a pair run back to back, so a round's ratio of medians cancels the machine's drift
    # between rounds; the headline is the median of those ratios, not a ratio of unpaired medians.
    print("\nratio = median over rounds of (benchbench median / native tool median); 1.000 is agreement, "
          ">1 means benchbench measures slower")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "threads": threads, "medians_ms": medians,
                                               "ratios": ratios}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
