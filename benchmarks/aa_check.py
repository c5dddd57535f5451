"""A/A check: one artifact in two lockstep workers, many times. The ratio is 1.00 by construction.

Prints, over ``--trials`` trials: how many intervals hold 1.00 (goal: at least 19 of 20 on a quiet
machine) and their median half-width, the smallest difference the machine resolves (goal: <= 2% for
models of 5 ms or more). Also the between-process term it measured: the spread of the trials' log-ratios
beyond what their own within-trial intervals explain (``benchbench.results.estimates.PROCESS_SD`` is this
figure from the reference VM).

    python benchmarks/aa_check.py --model resnet18 --backend ort --trials 20
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

from benchbench.core.spec import CellSpec, MeasureConfig, physical_cores
from benchbench.measure.doctor import aa_check
from benchbench.results.estimates import PROCESS_SD


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--backend", default="ort")
    ap.add_argument("--variant", default="deploy")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--max-time", type=float, default=5.0, help="sampling cap per worker per trial (s)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    spec = CellSpec(args.model, args.variant, args.backend, threads=args.threads or physical_cores())
    config = MeasureConfig(max_s=args.max_time)
    results = []
    for i in range(args.trials):
        r = aa_check(spec, config)
        if r.estimate is None:
            sys.exit(f"trial {i + 1}: {r.reason}")
        e = r.estimate
        results.append({"ratio": e.value, "low": e.low, "high": e.high, "half_width": e.half_width,
                        "within_half_width": r.within.half_width,
                        "units": e.units, "dropped": e.dropped, "median_ms": r.median_ms, "wait_share": r.wait_share,
                        "holds_one": r.contains_one})
        print(f"trial {i + 1}: {e.value:.4f} [{e.low:.4f}, {e.high:.4f}] ±{100 * e.half_width:.2f}% over {e.units} "
              f"rounds ({e.dropped} dropped), {r.median_ms:.3f} ms, waited {100 * (r.wait_share or 0):.0f}%"
              + ("" if r.contains_one else "  <- excludes 1.00"), flush=True)
    held = sum(r["holds_one"] for r in results)
    half = statistics.median(r["half_width"] for r in results)
    print(f"\n{spec.label()}: intervals holding 1.00: {held}/{len(results)} (goal >= 95%); median half-width "
          f"±{100 * half:.2f}% (goal <= 2% at >= 5 ms); model median {statistics.median(r['median_ms'] for r in results):.3f} ms")
    if len(results) >= 3:
        logs = [math.log(r["ratio"]) for r in results]
        within = statistics.mean((r["within_half_width"] / 1.96) ** 2 for r in results)
        between = max(0.0, statistics.variance(logs) - within)
        print(f"between trials: sd of log-ratio {100 * statistics.stdev(logs):.2f}%, of which within-trial sampling "
              f"explains {100 * math.sqrt(within):.2f}%; between-process term {100 * math.sqrt(between):.2f}% "
              f"(benchbench.results.estimates.PROCESS_SD = {100 * PROCESS_SD:.2f}%)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
