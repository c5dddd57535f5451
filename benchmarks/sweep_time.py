"""How long a sweep takes, cold (empty artifact cache) and warm (everything exported already).

    python benchmarks/sweep_time.py --model 'resnet18,repvgg_a0' --backend torch,ort,tflite,openvino

Runs the same ``benchbench run`` twice against a fresh temporary cache and prints the wall time of each,
the number of cells, and the time per cell, so the cost of exports and of measuring are seen apart.
Pass ``--cache DIR`` to time against an existing cache (e.g. before regenerating the reference report).

    python benchmarks/sweep_time.py --reference --cache ~/.cache/benchbench

times the reference report's sweep (``benchbench claim --reference``: every model on the four CPU backends,
``--sampling reference``) against your cache. The reference run also records its own time in
``meta.sweep`` of ``reports/reference/results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchbench.processes.manager import module_command


def _sweep(args, cache: str, out: str) -> tuple[float, list[dict]]:
    cmd = module_command("benchbench", "run", "--model", args.model, "--backend", args.backend,
                         "--out", out, "--roofline", "off", *args.extra)
    env = {**os.environ, "BENCHBENCH_CACHE": cache}
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=False, stdout=subprocess.DEVNULL)
    took = time.perf_counter() - t0
    newest = max(Path(out).iterdir(), key=lambda p: p.stat().st_mtime)
    cells = json.loads((newest / "results.json").read_text())["cells"]
    if args.keep:  # e.g. to write the reference report's claim from this very sweep
        shutil.copytree(newest, Path(args.keep) / newest.name)
    return took, cells


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18,repvgg_a0,mobilenetv2_100")
    parser.add_argument("--backend", default="torch,ort,tflite,openvino")
    parser.add_argument("--cache", help="an existing cache to time against (default: a fresh one, cold then warm)")
    parser.add_argument("--reference", action="store_true",
                        help="the reference report's sweep: every model, torch,ort,tflite,openvino, reference sampling")
    parser.add_argument("--keep", help="copy each sweep's run folder into this folder")
    parser.add_argument("extra", nargs="*", help="more `benchbench run` arguments, after --")
    args = parser.parse_args()
    if args.reference:
        from benchbench.cli import REFERENCE_BACKENDS, REFERENCE_MODELS

        args.model, args.backend = REFERENCE_MODELS, REFERENCE_BACKENDS
        args.extra = ["--sampling", "reference", *args.extra]
    with tempfile.TemporaryDirectory(prefix="bb-sweep-") as tmp:
        cache = args.cache or str(Path(tmp) / "cache")
        rounds = ["given cache"] if args.cache else ["cold cache", "warm cache"]
        print(f"sweep: --model {args.model} --backend {args.backend} {' '.join(args.extra)}")
        for label in rounds:
            took, cells = _sweep(args, cache, str(Path(tmp) / "out"))
            statuses = {s: sum(c["status"] == s for c in cells) for s in {c["status"] for c in cells}}
            print(f"{label:>12}: {took:7.1f} s for {len(cells)} cells ({took / max(1, len(cells)):.1f} s/cell); "
                  + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
