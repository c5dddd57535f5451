"""The reference's sweep, timed: every cell ``claim --reference`` measures (the zoo's train, deploy and int8 forms
and the guideline nets on torch, ort, tflite and openvino), with its sampling, its allocation (rounds and the
zoo's time cap) and its in-worker profiles, but without the roofline calibration, the analysis and the lab,
which ``claim --reference`` times apart (``meta.claim``). Missing builds are made first and timed apart
(``build_wall_s``). Writes results.json and a progress log with elapsed seconds into OUT; the claim can be read
from it afterwards (``benchbench claim OUT/results.json``).

    python benchmarks/reference_time.py /tmp/reference-sweep
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchbench.cli.cells import cells_from
from benchbench.cli.parser import build_parser
from benchbench.cli.reference import (
    REFERENCE_BACKENDS,
    REFERENCE_MODELS,
    REFERENCE_PROFILE_RUNS,
    reference_allocation,
    reference_profiled,
)
from benchbench.core.spec import REFERENCE
from benchbench.measure.sweep import run_sweep
from benchbench.results.record import RunResult


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="an empty folder for results.json and progress.log")
    args = ap.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"{args.out}: not empty")
    args.out.mkdir(parents=True, exist_ok=True)
    run_args = build_parser().parse_args(["run", "--model", REFERENCE_MODELS, "--backend", REFERENCE_BACKENDS,
                                          "--variant", "all"])
    cells, _ = cells_from(run_args)
    run = RunResult(meta={"settings": REFERENCE.to_dict()}, path=args.out / "results.json")
    started = time.perf_counter()
    with open(args.out / "progress.log", "w", encoding="utf-8") as log:
        def progress(line: str) -> None:
            log.write(f"{time.perf_counter() - started:8.1f} {line}\n")
            log.flush()

        run_sweep(cells, REFERENCE, run, rounds=reference_allocation(), progress=progress,
                  profile=lambda spec: REFERENCE_PROFILE_RUNS if reference_profiled(spec) else 0)
    wall = time.perf_counter() - started
    sweep = run.meta["sweep"]
    builds = sweep.get("build_wall_s", 0.0)
    print(f"{len(run.cells)} cells in {len(run.groups)} groups, {sum(len(g['rounds']) for g in run.groups)} "
          f"group-rounds: {wall / 60:.1f} min of wall time, of which builds {builds / 60:.1f} min "
          f"({sweep.get('builds_run', 0)} made) and profiles {sweep.get('profile_s', 0.0) / 60:.1f} min; "
          f"the sweep with every build cached: {(wall - builds) / 60:.1f} min (absolute, this machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
