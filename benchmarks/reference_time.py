"""The reference's sweep, timed: every cell ``claim --reference`` measures (the zoo's train, deploy and int8 forms
and the guideline nets on torch, ort, tflite and openvino), with its sampling, its allocation (rounds and the
zoo's time cap) and its in-worker profiles, but without the roofline calibration, the analysis and the lab,
which ``claim --reference`` times apart (``meta.claim``). Missing builds are made first and timed apart
(``build_wall_s``). Writes results.json and a progress log with elapsed seconds into OUT; the claim can be read
from it afterwards (``benchbench claim OUT/results.json``).

    python benchmarks/reference_time.py /tmp/reference-sweep

It ends with where the sweep's time went, per round, backend and kind of group (zoo or guideline table): the
groups' wall time (``wall_s`` of each group's round record), their lockstep sampling and the part of it spent
settling, the first round's start-ups one worker at a time (load, first inference, warm-up), the profiles taken in
the measuring workers, and the rest (a later round's workers starting side by side, closing checks, process
exits). ``--read`` prints that table for a finished sweep's results.json.

    python benchmarks/reference_time.py --read /tmp/reference-sweep/results.json
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

from benchbench.runners import tracked_packages

from benchbench.cli.cells import cells_from
from benchbench.cli.parser import build_parser
from benchbench.cli.reference import (
    REFERENCE_BACKENDS,
    REFERENCE_MODELS,
    REFERENCE_PROFILE_RUNS,
    reference_allocation,
    reference_profiled,
)
from benchbench.core.env import environment
from benchbench.core.spec import REFERENCE
from benchbench.core.text import one_line
from benchbench.measure.sweep import run_sweep
from benchbench.results.load import load_run, model_kind
from benchbench.results.record import RunResult

_COLUMNS = ("wall", "sampling", "settle", "start-up", "profiles", "rest")


def time_breakdown(run: RunResult) -> list[str]:
    """Where a sweep's group time went, one line per (round, backend, kind of group), in seconds (see the module's
    docstring); an empty list for a run whose round records hold no ``wall_s`` (written before it was recorded)."""
    rows: dict[tuple, dict] = defaultdict(lambda: defaultdict(float))
    for group in run.groups:
        cells = [run.cells[i] for i in group["cells"]]
        kind = "guideline" if model_kind(cells[0].model) == "guideline" else "zoo"
        for r, rec in enumerate(group.get("rounds") or [], start=1):
            if "wall_s" not in rec:
                return []
            row = rows[(r, cells[0].spec.backend, kind)]
            row["groups"] += 1
            row["wall"] += rec["wall_s"]
            row["sampling"] += rec.get("sampling_s") or 0.0
            row["settle"] += (rec.get("sampling_s") or 0.0) * (rec.get("settle_share") or 0.0)
            if r == 1:  # the first round's start-up times are each cell's own (later rounds' are not kept)
                for c in cells:
                    row["start-up"] += ((c.timing.get("init_ms") or 0.0) + (c.timing.get("first_ms") or 0.0)) / 1e3 \
                        + (c.timing.get("warmup_s") or 0.0)
                    row["profiles"] += ((c.metrics.get("profile") or {}).get("took_s") or 0.0)
    lines = [f"{'round':>5} {'backend':<9} {'groups':<10} {'n':>4} " + " ".join(f"{c:>9}" for c in _COLUMNS)]
    total = defaultdict(float)
    for (r, backend, kind), row in sorted(rows.items()):
        row["rest"] = row["wall"] - row["sampling"] - row["start-up"] - row["profiles"]
        for c in _COLUMNS:
            total[c] += row[c]
        lines.append(f"{r:>5} {one_line(backend):<9} {kind:<10} {row['groups']:>4.0f} "
                     + " ".join(f"{row[c]:>9.0f}" for c in _COLUMNS))  # the file's names, escaped
    lines.append(f"{'all':>5} {'':<9} {'':<10} {sum(r['groups'] for r in rows.values()):>4.0f} "
                 + " ".join(f"{total[c]:>9.0f}" for c in _COLUMNS))
    lines.append("seconds of wall time (absolute, this machine); settle is part of sampling; start-up and profiles "
                 "are the first round's")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, nargs="?", help="an empty folder for results.json and progress.log")
    ap.add_argument("--read", type=Path, help="print where a finished sweep's time went (its results.json) instead")
    args = ap.parse_args(argv)
    if args.read is not None:
        lines = time_breakdown(load_run(args.read))
        print("\n".join(lines) if lines else f"{args.read}: its group records hold no wall_s (written before "
              "benchbench recorded it)")
        return 0
    if args.out is None:
        ap.error("give an empty folder for the sweep, or --read RESULTS")
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"{args.out}: not empty")
    args.out.mkdir(parents=True, exist_ok=True)
    run_args = build_parser().parse_args(["run", "--model", REFERENCE_MODELS, "--backend", REFERENCE_BACKENDS,
                                          "--variant", "all"])
    cells, _ = cells_from(run_args)
    allocation = reference_allocation()
    # what `claim --reference` records of the run too, so that a claim read from this file says where and how
    run = RunResult(meta={"settings": REFERENCE.to_dict(), "rounds": allocation.note, "argv": sys.argv,
                          "environment": environment(tracked_packages())}, path=args.out / "results.json")
    started = time.perf_counter()
    with open(args.out / "progress.log", "w", encoding="utf-8") as log:
        def progress(line: str) -> None:
            log.write(f"{time.perf_counter() - started:8.1f} {line}\n")
            log.flush()

        run_sweep(cells, REFERENCE, run, rounds=allocation, progress=progress,
                  profile=lambda spec: REFERENCE_PROFILE_RUNS if reference_profiled(spec) else 0)
    wall = time.perf_counter() - started
    sweep = run.meta["sweep"]
    builds = sweep.get("build_wall_s", 0.0)
    print(f"{len(run.cells)} cells in {len(run.groups)} groups, {sum(len(g['rounds']) for g in run.groups)} "
          f"group-rounds: {wall / 60:.1f} min of wall time, of which builds {builds / 60:.1f} min "
          f"({sweep.get('builds_run', 0)} made) and profiles {sweep.get('profile_s', 0.0) / 60:.1f} min; "
          f"the sweep with every build cached: {(wall - builds) / 60:.1f} min (absolute, this machine)")
    print("\n".join(time_breakdown(run)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
