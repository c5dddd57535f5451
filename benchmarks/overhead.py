"""Harness overhead, in lockstep: benchbench's measuring worker against a raw API loop, as two arms of one group.

For each backend, one model's artifact (the same file) is timed by two processes taking turns block by
block (``benchbench.measure.scheduler``): arm A is benchbench's own measuring worker (runner, ``time_once``,
interference readings, settling), arm B a bare loop written against the runtime's API alone
(``InferenceSession.run``, ``InferRequest.infer``, ``Interpreter.invoke``, ``model(x)`` under
``inference_mode``) with the same runtime settings, timing each call with ``perf_counter_ns``. The ratio
benchbench / raw, with its 95% interval over rounds and over ``--sessions`` pairs of fresh processes (the
between-process term of ``benchbench doctor``, else ``estimates.PROCESS_SD``), is the overhead. Which process
starts, and is timed, first alternates by session (as ``measure.group`` does for every comparison).
Goal (issue 26): every median within [0.98, 1.02], each interval no wider than ±1%.

    python benchmarks/overhead.py --model resnet18 --backend ort,openvino,tflite,torch --sessions 6
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from benchbench.runners import get_runner

from benchbench.build.builds import Builds
from benchbench.cli.cells import process_sd_for
from benchbench.core.spec import CellSpec, MeasureConfig, physical_cores
from benchbench.measure.group import session_config
from benchbench.measure.scheduler import Arm, run_lockstep
from benchbench.processes.manager import Worker, worker_env
from benchbench.processes.protocol import Block, BlockDone, Finish, Prepare, Ready
from benchbench.results.estimates import PROCESS_SD, ratio

# The raw arm: the runtime's own API, nothing of benchbench's harness (torch builds its module with the zoo's
# constructor, untimed). One JSON line in (backend, artifact, input, threads); then "N" → N timed calls.
RAW_LOOP = r"""
import json, sys, time
import numpy as np

job = json.loads(sys.stdin.readline())
backend, artifact, threads = job["backend"], job["artifact"], job["threads"]
x = np.load(job["input"])
if backend == "ort":
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(artifact, so, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x}
    call = lambda: sess.run(None, feed)
elif backend == "openvino":
    import openvino as ov
    core = ov.Core()
    compiled = core.compile_model(core.read_model(artifact), "CPU", {
        "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": threads,
        "INFERENCE_PRECISION_HINT": ov.Type.f32})
    request = compiled.create_infer_request()
    request.set_input_tensor(ov.Tensor(x, shared_memory=True))
    call = request.infer
elif backend == "tflite":
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    it = Interpreter(model_path=artifact, num_threads=threads, experimental_op_resolver_type=OpResolverType.AUTO)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    call = it.invoke
elif backend == "torch":
    import torch
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    from benchbench.runners.torch_eager import TorchRunner
    holder = TorchRunner(threads, {})
    holder.load_runtime()
    holder.prepare(artifact, x)  # builds the module from the cache's weights; the loop below is bare torch
    model, inp = holder.model, holder.inputs
    def call():
        with torch.inference_mode():
            model(inp)
for _ in range(job["warmup"]):
    call()
print("ready", flush=True)
for line in sys.stdin:
    n = int(line)
    out = []
    call()  # the lead-in, as benchbench's worker runs one before each block's samples
    for _ in range(n):
        t0 = time.perf_counter_ns()
        call()
        out.append(time.perf_counter_ns() - t0)
    if job["settle_s"]:
        time.sleep(job["settle_s"])  # as benchbench's worker lets its thread pools go quiet before the other arm
    print(json.dumps(out), flush=True)
"""


class RawArm:
    """The bare loop's process and its block function."""

    def __init__(self, spec: CellSpec, artifact, input_path: str, warmup: int, settle_s: float):
        # the environment benchbench gives its workers (thread-count variables), so both arms run alike
        self.proc = subprocess.Popen([sys.executable, "-P", "-c", RAW_LOOP], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=worker_env(spec.threads))
        artifact = str(artifact) if not isinstance(artifact, dict) else artifact
        self.proc.stdin.write(json.dumps({"backend": spec.backend, "artifact": artifact, "input": input_path,
                                          "threads": spec.threads, "warmup": warmup, "settle_s": settle_s}) + "\n")
        self.proc.stdin.flush()
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the raw {spec.backend} loop did not start")

    def run_block(self, count: int, settle: bool) -> dict:
        self.proc.stdin.write(f"{count}\n")
        self.proc.stdin.flush()
        return {"samples_ns": json.loads(self.proc.stdout.readline())}

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def harness_arm(worker: Worker, timeout_s: float):
    def run_block(count: int, settle: bool) -> dict:
        reply = worker.request(Block(count, settle), timeout_s)
        assert isinstance(reply, BlockDone), reply
        return {"samples_ns": reply.samples_ns, **reply.interference, "settle_ns": reply.settle_ns}
    return run_block


def measure(spec: CellSpec, config: MeasureConfig, settle_s: float):
    """Both arms' blocks over ``config.sessions`` sessions (each in fresh processes), and the settle times."""
    builds = Builds(config, [spec])
    try:
        build = builds.ensure(spec)
        if build["status"] != "ok":
            raise SystemExit(f"{spec.label()}: build {build['status']}: {build.get('reason')}")
        artifact, _, unusable = builds.artifact_for(get_runner(spec.backend), spec)
        if unusable:
            raise SystemExit(f"{spec.label()}: {unusable}")
        part = session_config(config)
        harness, raw = Arm(None, 1.0), Arm(None, 1.0)
        warmups: list[int] = []  # the worker's warm-up count per session
        for session in range(1, config.sessions + 1):
            # Which process starts first, and is timed first, alternates by session, as measure_group does: the
            # worker started second ran ~0.3% faster in doctor's A/A, an edge that must not go to one arm.
            raw_first = session % 2 == 0
            worker, bare = None, None
            try:
                if raw_first:  # the raw loop warms up as long as the worker will; the first session set that
                    bare = RawArm(spec, artifact, build["input_path"], warmups[0], settle_s)
                worker = Worker(spec.threads, f"overhead worker of {spec.label()}")
                ready = worker.request(Prepare(spec, config, artifact, build["input_path"], None),
                                       config.cell_timeout_s)
                assert isinstance(ready, Ready), ready
                warmups.append(ready.warmup_count)
                if bare is None:
                    bare = RawArm(spec, artifact, build["input_path"], ready.warmup_count, settle_s)
                harness.run_block, harness.estimate_ns = harness_arm(worker, config.cell_timeout_s), ready.estimate_ns
                raw.run_block, raw.estimate_ns = bare.run_block, ready.estimate_ns
                arms = [raw, harness] if raw_first else [harness, raw]
                run_lockstep(arms, part.replace(target_ci=1e-9, min_s=part.max_s), session=session)
                worker.request(Finish(), config.cell_timeout_s)
            finally:
                if worker is not None:
                    worker.close()
                if bare is not None:
                    bare.close()
        settles = [b["settle_ns"] / 1e9 for b in harness.blocks if b.get("settle_ns")]
        return harness.blocks, raw.blocks, settles
    finally:
        builds.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--backend", default="ort,openvino,tflite,torch")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--sessions", type=int, default=16, help="pairs of fresh processes per backend")
    ap.add_argument("--max-time", type=float, default=16.0, help="sampling per arm per backend, all sessions (s)")
    args = ap.parse_args(argv)
    threads = args.threads or physical_cores()
    process_sd = process_sd_for(threads)
    config = MeasureConfig(max_s=args.max_time, sessions=args.sessions, process_sd=process_sd)
    term = f"doctor's {100 * process_sd:.2f}%" if process_sd is not None else f"constant {100 * PROCESS_SD:.2f}%"
    print(f"benchbench worker / raw API loop, {args.model}, {threads} threads, {args.sessions} sessions, "
          f"{args.max_time:g} s per arm; between-process term: {term}")
    for backend in args.backend.split(","):
        spec = CellSpec(args.model, "deploy", backend, threads=threads)
        ok, why = get_runner(backend).is_available()
        if not ok:
            print(f"{backend}: not measured ({why})")
            continue
        t0 = time.perf_counter()
        # the raw arm sleeps as long as benchbench's worker settled in a first, short pass (its median)
        _, _, settles = measure(spec, config.replace(sessions=1, max_s=1.0), 0.05)
        settle_s = sorted(settles)[len(settles) // 2] if settles else 0.05
        a, b, _ = measure(spec, config, settle_s)
        est = ratio(a, b, process_sd=process_sd)
        verdict = "ok" if 0.98 <= est.value <= 1.02 and est.half_width <= 0.01 else "MISSES the goal"
        print(f"{backend:<9} benchbench/raw {est.value:.4f} [{est.low:.4f}, {est.high:.4f}] "
              f"±{100 * est.half_width:.2f}% "
              f"over {est.units} rounds in {len({x['session'] for x in a})} sessions ({est.dropped} dropped); "
              f"raw arm settles {1e3 * settle_s:.0f} ms; {time.perf_counter() - t0:.0f} s wall — {verdict}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
