"""A convolution inside a model against the same convolution alone: does a one-kernel net time what a model's
kernel costs?

The latency predictor (``benchbench predict``) learns each kernel's cost from one-kernel nets, each timed in a
loop, and sums them. This script checks that premise on ONNX Runtime, where a per-op profiler exists. It loads a
zoo model's cached ONNX build, profiles it (``--runs`` inferences, ``--threads`` threads), and for every
convolution the profile names it cuts the convolution out, with what ORT fused into it (the activation, a
residual add), as a net of its own, and profiles that net the same way. The profiler times each kernel by
itself, so ORT's layout reorders around the lone net are not in the comparison; what differs is the context:
in a loop over a lone net, its input and weights stay in the caches, while in a model its weights and input
come after other kernels'.

    python benchmarks/kernel_context.py --model mobilenetv2_100,resnet18 --threads 1

Each is profiled in ``--passes`` passes (the model, then every lone net; the next pass in the other order), and
its kernel time is the median over passes. Prints, per model, every convolution's in-model and alone kernel time
(``--verbose``), their sums and ratio (each pass's too), and
per kind of convolution (1x1, k x k, depthwise, grouped) the median ratio and its quartiles. Needs the models'
builds in the cache (a ``benchbench run`` of them makes them). Measure nothing else meanwhile.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

# ops ORT folds into the convolution before them (its Conv+activation and Conv+Add(+Relu) fusions)
_FOLDED = {"Relu", "Clip", "Sigmoid", "HardSigmoid", "LeakyRelu", "Add", "Sum", "BatchNormalization"}


def _model_file(name: str) -> Path:
    """The cached ONNX export of the zoo model's deploy form (made if missing)."""
    from benchbench.build.builds import ensure_build
    from benchbench.core.spec import CellSpec, MeasureConfig

    build = ensure_build(CellSpec(name, "deploy", "ort", 1, None, 1, 0, ()), {"onnx"}, MeasureConfig())
    entry = (build.get("manifest") or {}).get("artifacts", {}).get("onnx") or {}
    if build.get("status") != "ok" or entry.get("status") != "ok":
        raise SystemExit(f"kernel_context: no ONNX build of {name}: {build.get('reason') or entry.get('reason')}")
    return Path(build["dir"]) / entry["file"]


def _profile(path: Path, feeds: dict, threads: int, runs: int) -> dict[str, float]:
    """Per profiled node name, its median kernel time (ms) over ``runs`` inferences: the ORT runner's own per-op
    profile (``OrtRunner.profile_ops``: a second session with ORT's profiler, after one warm inference)."""
    from benchbench.runners import get_runner

    runner = get_runner("ort")(threads)
    runner.load_runtime()
    try:
        runner.prepare(path, feeds)
        return {op["name"]: op["time_ms"] for op in runner.profile_ops(runs)["ops"]}
    finally:
        runner.teardown()


def _conv_chain(node_name: str, by_name: dict, producer: dict) -> list | None:
    """The original nodes behind a profiled name: the convolution and the folded ops after it. ORT keeps a node's
    name, but names a kernel its layout pass rewrote after the kernel's output tensor (``<output>_nchwc``), which
    a fusion takes from its last op. None if no convolution heads the chain."""
    base = node_name.removesuffix("_nchwc")
    node = by_name.get(base) or producer.get(base)
    chain = []
    while node is not None and len(chain) < 4:
        chain.insert(0, node)
        if node.op_type == "Conv":
            return chain
        if node.op_type not in _FOLDED:
            return None
        # an Add's convolution is whichever input a convolution (or its activation) produced
        node = next((producer[i] for i in node.input if i in producer
                     and producer[i].op_type in _FOLDED | {"Conv"}), None)
    return None


def _alone(chain: list, graph, shapes: dict, inits: dict, path: Path) -> tuple[Path, dict]:
    """The chain as a net of its own (its outside inputs as the net's inputs, random), saved at ``path``; and its
    feeds."""
    import numpy as np
    import onnx
    from onnx import helper

    made = {o for n in chain for o in n.output}
    outside = [i for n in chain for i in n.input if i and i not in made and i not in inits]
    outside = list(dict.fromkeys(outside))
    used = {i for n in chain for i in n.input if i in inits}
    rng = np.random.default_rng(0)
    inputs = [helper.make_tensor_value_info(i, onnx.TensorProto.FLOAT, shapes[i]) for i in outside]
    out = chain[-1].output[0]
    outputs = [helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, shapes.get(out))]
    g = helper.make_graph(list(chain), "alone", inputs, outputs, [inits[i] for i in used])
    model = helper.make_model(g, opset_imports=list(graph.opset_import))
    model.ir_version = graph.ir_version
    feeds = {i: rng.standard_normal(shapes[i]).astype(np.float32) for i in outside}
    onnx.save(model, str(path))
    return path, feeds


def _kind(conv, inits: dict, shapes: dict) -> str:
    from onnx import numpy_helper

    group = next((a.i for a in conv.attribute if a.name == "group"), 1)
    w = numpy_helper.to_array(inits[conv.input[1]]) if conv.input[1] in inits else None
    cin = shapes[conv.input[0]][1]
    if group > 1:
        return "depthwise" if group == cin else "grouped"
    k = w.shape[2:] if w is not None else (1, 1)
    return "1x1" if tuple(k) == (1, 1) else "k x k"


def compare(name: str, threads: int, runs: int, passes: int, verbose: bool) -> list[tuple[str, float, float]]:
    """(kind, in-model ms, alone ms) of each profiled convolution of the zoo model ``name``, each the median over
    ``passes`` passes; a pass profiles the model and every lone net, in alternating order (the machine drifts
    between one profile and the next: a single pass here read mobilenetv2's ratio as x1.11 and then x1.30)."""
    import numpy as np
    import onnx

    path = _model_file(name)
    model = onnx.load(str(path))
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value or 1 for d in v.type.tensor_type.shape.dim]
              for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
    inits = {i.name: i for i in model.graph.initializer}
    by_name = {n.name: n for n in model.graph.node}
    producer = {o: n for n in model.graph.node for o in n.output}
    x = next(i for i in model.graph.input if i.name not in inits)
    feeds = {x.name: np.random.default_rng(0).standard_normal(shapes[x.name]).astype(np.float32)}
    with tempfile.TemporaryDirectory(prefix="bb-kernel-context-") as tmp:
        chains = {}
        for node_name in sorted(_profile(path, feeds, threads, 4)):  # which kernels the profile names
            chain = _conv_chain(node_name, by_name, producer)
            if chain is not None:
                chains[node_name] = (chain, *_alone(chain, model, shapes, inits, Path(tmp) / f"{len(chains)}.onnx"))
        in_model: dict[str, list[float]] = defaultdict(list)
        alone: dict[str, list[float]] = defaultdict(list)
        totals = []
        for p in range(passes):
            steps = ["model", *chains] if p % 2 == 0 else [*chains, "model"]
            for step in steps:
                if step == "model":
                    profile = _profile(path, feeds, threads, runs)
                    totals.append(sum(profile.values()))
                    for n in chains:
                        in_model[n].append(profile.get(n, float("nan")))
                else:
                    _, net, net_feeds = chains[step]
                    # the lone net's own kernel: every profiled node but ORT's layout reorders
                    alone[step].append(sum(v for k, v in _profile(net, net_feeds, threads, runs).items()
                                           if not k.startswith("Reorder")))
    rows = []
    for n, (chain, _, _) in chains.items():
        kind, ms, alone_ms = _kind(chain[0], inits, shapes), statistics.median(in_model[n]), statistics.median(alone[n])
        rows.append((kind, ms, alone_ms))
        if verbose:
            print(f"  {n:28s} {kind:9s} {'+'.join(c.op_type for c in chain):18s} in model {ms:7.3f} ms, "
                  f"alone {alone_ms:7.3f} ms, x{ms / alone_ms:.2f}")
    per_pass = [sum(in_model[n][p] for n in chains) / sum(alone[n][p] for n in chains) for p in range(passes)]
    conv_in, conv_alone = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"{name}: {len(rows)} convolutions, {conv_in:.2f} ms of the profile's {statistics.median(totals):.2f} ms; "
          f"alone {conv_alone:.2f} ms: in model / alone x{conv_in / conv_alone:.2f} (passes: "
          f"{', '.join(f'x{r:.2f}' for r in per_pass)})")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mobilenetv2_100,shufflenetv2_x1_0,resnet18,efficientnet_b0",
                    help="zoo models, comma-separated")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    ap.add_argument("--runs", type=int, default=200, help="profiled inferences per net, after one warm one (the median counts)")
    ap.add_argument("--passes", type=int, default=3, help="passes over the model and its lone nets (median)")
    ap.add_argument("--verbose", action="store_true", help="every convolution")
    args = ap.parse_args(argv)
    by_kind: dict[str, list[float]] = defaultdict(list)
    for name in args.model.split(","):
        for kind, in_model, alone in compare(name.strip(), args.threads, args.runs, args.passes, args.verbose):
            if alone > 0:
                by_kind[kind].append(in_model / alone)
    print(f"\nin model / alone, per convolution ({args.threads} thread(s), ONNX Runtime's profiler):")
    for kind, ratios in sorted(by_kind.items()):
        q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
        print(f"  {kind:9s} n={len(ratios):3d}  median x{statistics.median(ratios):.2f}  quartiles "
              f"x{q[0]:.2f}-x{q[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
