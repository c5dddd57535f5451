"""What each backend fuses in the lab nets: build every candidate, read each backend's executed graph.

For each lab net (``--model``, default every registered ``lab_*`` net) the script makes the ordinary build
(``benchbench.build.export.build``: torch counts, ONNX, TFLite, the pickled eager model) into its own cache, then
opens the artifact with each backend's runner, in this process, and records:

* the executed ops the runner reports (``Runner.executed_ops``: ORT's optimized graph, OpenVINO's runtime model,
  the TFLite op list, torch's dispatched aten ops), by type;
* the traffic of the executed graph by cache regime (``benchbench.analysis.lab_design.traffic_of_ops``) from
  the per-op tensor shapes: ORT's profiler, OpenVINO's performance counters and torch.profiler through the
  runners' ``profile_ops`` (the shapes the zoo's reference profiles hold), and the TFLite op list's tensors;
* whether the backend's fusion collapsed the point (``lab_design.collapsed``), and how long each build step took.

Nothing is timed for latency here; one inference per backend runs for the profiles. Then, with ``--select N``,
the design is chosen per backend from these counts (``lab_design.select_design``) and written beside them.

    nice -n 10 python benchmarks/lab_fusion.py --out reports/lab/fusion.json --select 32

Every backend's runtime is imported into one process; the harness never does that (each backend runs in its own
worker), but only graphs are read here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

BACKENDS = ("ort", "openvino", "tflite", "torch")
TFLITE_NO_DATA = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "SHAPE"}


def _build(name: str, cache: Path, formats: list[str]) -> dict:
    from benchbench.models import model_info

    from benchbench.build.export import build

    info = model_info(name)
    shape = [1, *info.input_size]
    job = {"dir": str(cache / name), "model": name, "variant": "deploy", "input_shape": shape, "seed": 0,
           "formats": formats}
    t0 = time.perf_counter()
    manifest = build(job)
    manifest["build_s"] = round(time.perf_counter() - t0, 3)
    return manifest


def _tflite_ops(runner) -> list[dict]:
    it = runner.interpreter
    tensors = {d["index"]: [int(v) for v in d["shape"]] for d in it.get_tensor_details()}
    ops, _ = runner._op_list()
    return [{"type": o["op_name"], "inputs": [tensors.get(int(t)) for t in o["inputs"] if int(t) >= 0],
             "outputs": [tensors.get(int(t)) for t in o["outputs"] if int(t) >= 0]}
            for o in ops if o["op_name"] not in TFLITE_NO_DATA]


def _read_backend(backend: str, name: str, build_dir: Path, manifest: dict, caches: dict) -> dict:
    import numpy as np
    from benchbench.runners import get_runner

    from benchbench.analysis.lab_design import NO_DATA_TYPES, traffic_of_ops

    x = np.load(build_dir / "input.npy")
    runner = get_runner(backend)(threads=1)
    runner.load_runtime()
    t0 = time.perf_counter()
    if backend == "torch":
        artifact = {"path": str(build_dir / "model.pt"), "model": name, "variant": "deploy", "seed": 0,
                    "input_size": None, "executed_ops": manifest.get("torch_ops")}
    else:
        fmt = "onnx" if backend in ("ort", "openvino") else "tflite"
        entry = manifest["artifacts"].get(fmt) or {}
        if entry.get("status") != "ok":
            return {"status": "unsupported", "reason": entry.get("reason", f"no {fmt} artifact")}
        artifact = build_dir / entry["file"]
    try:
        runner.prepare(artifact, x)
        executed = runner.executed_ops()
        if backend == "tflite":
            ops = _tflite_ops(runner)
        else:
            prof = runner.profile_ops(1)
            ops = [o for o in prof["ops"] if o.get("type") not in NO_DATA_TYPES]
        traffic = traffic_of_ops(ops, caches)
    finally:
        runner.teardown()
    rec = {"status": "ok", "executed_ops": executed["count"], "by_type": executed["by_type"],
           "traffic": traffic["bytes"], "bytes_by_regime": traffic["bytes_by_regime"],
           "traffic_source": "profiler shapes" if backend != "tflite" else "TFLite op list",
           "traffic_unknown_ops": traffic["unknown"], "read_s": round(time.perf_counter() - t0, 3)}
    if backend == "torch":
        # Eager runs the un-fused graph: its traffic is the ONNX mac_bytes (the profiler records no shapes for
        # tensor lists, and views as ops). The lab's analytic counts equal mac_bytes; their regimes are the split.
        from benchbench.analysis.lab_design import analytic_counts
        from benchbench.core.labpoints import parse_name

        rec["profile_traffic"] = rec["traffic"]
        rec["traffic"] = (manifest.get("graph") or {}).get("mac_bytes") or rec["traffic"]
        rec["bytes_by_regime"] = analytic_counts(parse_name(name), caches)["bytes_by_regime"]
        rec["traffic_source"] = "ONNX mac_bytes (eager does not fuse)"
    return rec


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="lab_*", help="lab nets (fnmatch; default: every registered lab net)")
    p.add_argument("--backend", default=",".join(BACKENDS))
    p.add_argument("--out", default="reports/lab/fusion.json")
    p.add_argument("--cache", default=None, help="build cache folder (default: a temporary one)")
    p.add_argument("--limit", type=int, default=0, help="only the first N nets (a smoke run)")
    p.add_argument("--select", type=int, default=0, help="then select an N-point design per backend")
    args = p.parse_args(argv)

    from benchbench.models import list_models

    from benchbench.analysis.lab_design import analytic_counts, collapsed
    from benchbench.core.env import package_versions
    from benchbench.core.labpoints import cache_sizes, parse_name

    backends = [b.strip() for b in args.backend.split(",") if b.strip()]
    names = list_models([p.strip() for p in args.model.split(",") if p.strip()], kind="lab")
    if args.limit:
        names = names[: args.limit]
    caches = cache_sizes()
    cache = Path(args.cache or tempfile.mkdtemp(prefix="bb-labfusion-"))
    formats = sorted({"onnx" for b in backends if b in ("ort", "openvino")} | ({"tflite"} if "tflite" in backends else set()))
    out_path = Path(args.out)
    result = {"meta": {"caches": caches, "backends": backends, "threads": 1,
                       "packages": package_versions(("torch", "onnx", "onnxscript", "onnxruntime", "openvino",
                                                     "ai-edge-litert", "litert-torch")),
                       "started": time.strftime("%Y-%m-%dT%H:%M:%S")},
              "points": {}}
    if out_path.exists():  # resume: keep what an earlier run read
        old = json.loads(out_path.read_text())
        result["points"] = {n: v for n, v in old.get("points", {}).items() if v.get("backends") and n in names}
    t_all = time.perf_counter()
    for i, name in enumerate(names):
        if name in result["points"] and all(b in result["points"][name]["backends"] for b in backends):
            continue
        point = parse_name(name)
        entry = {"point": {"kind": point.kind, "structure": point.structure, "k": point.k, "channels": point.channels,
                           "size": point.size, "carrier_in": point.carrier_in, "carrier_kernel": point.carrier_kernel},
                 "analytic": analytic_counts(point, caches), "backends": {}}
        try:
            manifest = _build(name, cache, formats)
        except Exception as exc:  # a converter's failure is a finding, not a crash
            entry["build_error"] = f"{type(exc).__name__}: {exc}"[:400]
            result["points"][name] = entry
            print(f"[{i + 1}/{len(names)}] {name}: build failed: {entry['build_error']}", flush=True)
            continue
        entry["build"] = {"total_s": manifest["build_s"],
                          **{f"{fmt}_s": a.get("export_s") for fmt, a in manifest["artifacts"].items()},
                          "status": {fmt: a.get("status") for fmt, a in manifest["artifacts"].items()}}
        entry["model"] = {k: manifest["model"].get(k) for k in ("flops", "params")}
        entry["mac_bytes"] = (manifest.get("graph") or {}).get("mac_bytes")
        entry["graph_ops"] = (manifest.get("graph") or {}).get("graph_ops")
        for b in backends:
            try:
                rec = _read_backend(b, name, cache / name, manifest, caches)
            except Exception as exc:
                rec = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"[:400],
                       "traceback": traceback.format_exc(limit=2)}
            if rec.get("status") == "ok":
                rec["collapsed"] = collapsed(entry["analytic"]["ops"], rec["executed_ops"])
            entry["backends"][b] = rec
        result["points"][name] = entry
        summary = " ".join(f"{b}={r.get('executed_ops', r.get('status'))}" for b, r in entry["backends"].items())
        print(f"[{i + 1}/{len(names)}] {name}: build {manifest['build_s']:.1f}s, analytic ops "
              f"{entry['analytic']['ops']}; executed {summary}", flush=True)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(result, indent=1))
    result["meta"]["elapsed_s"] = round(time.perf_counter() - t_all, 1)
    if args.select:
        from benchbench.analysis.lab_design import design_from_fusion

        result["design"] = design_from_fusion(result, n=args.select)
        for b, d in result["design"]["backends"].items():
            print(f"{b}: {d['n']} of {d['candidates']} candidates, max |r| {d['max_abs_corr']:.3f}, "
                  f"condition number {d['condition_number']:.2f}, dropped as collapsed {d['collapsed']}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=1))
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
