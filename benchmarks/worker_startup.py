"""What a cell costs beyond its sampling: fresh interpreters against fork servers, side by side.

For each backend, the same single cells (tiny sampling: a few blocks) are measured through the harness
with ``fork_servers=False`` (every worker a fresh ``python -m benchbench.measure.worker``: it imports its runtime,
torch alone is ~3 s here) and with fork servers (workers forked from a process that imported the runtime
once), in alternating order, ``--rounds`` times. Printed: the median wall time per cell each way, and
their ratio. Warm cache: run it twice, or after a sweep of the same models.

    python benchmarks/worker_startup.py --model resnet18,repvgg_a0 --backend torch,ort --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

from benchbench.core.spec import CellSpec, MeasureConfig, physical_cores
from benchbench.measure.sweep import run_sweep
from benchbench.results.record import RunResult


def sweep(cells, config, fork_servers: bool, tmp: Path) -> float:
    run = RunResult(meta={}, path=tmp / "r.json")
    t0 = time.perf_counter()
    run_sweep(cells, config, run, progress=lambda m: None, lockstep="off", fork_servers=fork_servers)
    bad = [c for c in run.cells if not c.ok]
    if bad:
        sys.exit(f"{bad[0].spec.label()}: {bad[0].status}: {bad[0].reason}")
    return (time.perf_counter() - t0) / len(cells)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18,repvgg_a0")
    ap.add_argument("--backend", default="torch,ort")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=4, help="cells per sweep: each model this many times, so a "
                    "fork server's own start is spread over several cells, as in a real sweep")
    args = ap.parse_args(argv)
    threads = physical_cores()
    # A little sampling, the same both ways: what differs is the worker's start.
    config = MeasureConfig(warmup_min_count=2, warmup_min_s=0.0, min_s=0.0, max_s=0.5, block_s=0.02,
                           min_blocks=3, max_blocks=3)
    body = []
    with tempfile.TemporaryDirectory(prefix="bb-startup-") as tmp:
        for backend in args.backend.split(","):
            cells = [CellSpec(m, "deploy", backend, threads=threads) for m in args.model.split(",")] * args.repeat
            sweep(cells, config, True, Path(tmp))  # builds, if the cache lacks them
            fresh, forked = [], []
            for r in range(args.rounds):
                for fs in ((False, True) if r % 2 == 0 else (True, False)):
                    (forked if fs else fresh).append(sweep(cells, config, fs, Path(tmp)))
            f, k = statistics.median(fresh), statistics.median(forked)
            body.append([backend, len(cells), f"{f:.2f}", f"{k:.2f}", f"{f - k:.2f}", f"{k / f:.2f}"])
            print(f"{backend}: fresh {', '.join(f'{v:.2f}' for v in fresh)} s/cell; forked "
                  f"{', '.join(f'{v:.2f}' for v in forked)} s/cell", file=sys.stderr)
    print(tabulate(body, ["backend", "cells", "fresh s/cell", "fork server s/cell", "saved s/cell", "ratio"],
                   tablefmt="github", disable_numparse=True))
    print("\nper cell: worker start, prepare, warm-up, 3 blocks, parity, teardown; median over rounds, "
          "alternating order. The ratio is the figure; absolute seconds are this machine's at that moment.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
