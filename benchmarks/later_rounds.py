"""What a sweep's later round costs, measured in full or blocks only (``measure_group``'s ``blocks_only``).

A later round of a group already measured keeps only its blocks (``CellResult.add_round``), so its workers
can start side by side and skip parity, memory and metadata. This script measures the same comparison
groups both ways, alternating which comes first group by group (ABBA), at the reference's sampling, and
prints the ratio of wall times per group (blocks only / full) with a 95% interval over groups.

    python benchmarks/later_rounds.py --model resnet18,mobileone_s0,repvgg_a0 --backend ort,openvino,tflite,torch

Wall times from a shared machine; the ratio is what to quote. Builds are made first and not timed.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

from benchbench.build.builds import Builds
from benchbench.core.spec import REFERENCE, CellSpec, physical_cores
from benchbench.measure.group import measure_group


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18,mobileone_s0,repvgg_a0")
    ap.add_argument("--backend", default="ort,openvino,tflite,torch")
    ap.add_argument("--variants", default="train,deploy")
    ap.add_argument("--repeats", type=int, default=2, help="times each group is measured each way")
    args = ap.parse_args(argv)
    threads = physical_cores()
    groups = [[CellSpec(m, v, b, threads=threads) for v in args.variants.split(",")]
              for b in args.backend.split(",") for m in args.model.split(",")]
    builds = Builds(REFERENCE, [s for g in groups for s in g])
    servers: dict = {}
    logs, full_s, only_s = [], 0.0, 0.0
    try:
        builds.make_all([s for g in groups for s in g], jobs=2)
        for specs in groups:
            for _ in range(max(1, args.repeats)):
                took = {}
                for blocks_only in ((False, True) if len(logs) % 2 == 0 else (True, False)):
                    t0 = time.perf_counter()
                    cells, _ = measure_group(specs, REFERENCE, builds, servers, blocks_only=blocks_only)
                    took[blocks_only] = time.perf_counter() - t0
                    if not all(c.ok for c in cells):
                        sys.exit(f"{specs[0].label()}: {[c.reason for c in cells if not c.ok]}")
                logs.append(math.log(took[True] / took[False]))
                full_s, only_s = full_s + took[False], only_s + took[True]
                print(f"{specs[0].model} on {specs[0].backend}: full {took[False]:.2f} s, blocks only "
                      f"{took[True]:.2f} s ({took[True] / took[False]:.3f})", flush=True)
    finally:
        for server in servers.values():
            server.close()
        builds.close()
    mean = statistics.mean(logs)
    half = 1.96 * statistics.stdev(logs) / math.sqrt(len(logs)) if len(logs) > 1 else math.inf
    print(f"\nblocks only / full, per group (geometric mean over {len(logs)} measurements): {math.exp(mean):.3f} "
          f"[{math.exp(mean - half):.3f}, {math.exp(mean + half):.3f}]; totals {only_s:.1f} s / {full_s:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
