"""A/A check: one artifact in two lockstep workers, many times. The ratio is 1.00 by construction.

Prints, over ``--trials`` trials: how many intervals hold 1.00 (goal: at least 19 of 20 on a quiet
machine), their median half-width, the smallest difference the machine resolves (goal: <= 1.0% for
models of 5 ms or more), and each trial's wall time (goal: <= 10 s). Each trial measures in up to
``--sessions`` pairs of fresh workers, and its interval adds the between-process term ``benchbench doctor``
cached for this machine (else ``benchbench.results.estimates.PROCESS_SD``). Also the between-process term
the trials show: the spread of their log-ratios beyond what their own within-trial intervals explain. And what
sets the intervals' width, as medians over the trials of their quiet rounds' log-ratios: the edge of the block that
opens a round (``estimates.position_adjusted``, taken out of every ratio), their sd per round with and without it, the
half-width of their Hodges-Lehmann interval (``stats.hodges_lehmann``, which a ratio starts from), of the sessions'
t interval (``estimates.session_spread``, its floor from 4 sessions), and, for comparison, of the median's
interval (``stats.serial_median_ci``, what a ratio started from before) and of a mean's (1.96 sd / sqrt(rounds)).

    benchbench doctor   # measures and caches the between-process term
    python benchmarks/aa_check.py --model resnet18 --backend ort --trials 20 --sessions 8 --max-time 3 --target-ci 0.01
    python benchmarks/aa_check.py --trials 20 --sessions 8 --max-time 3 --target-ci 0.01 --load-procs 1  # under load
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

# the same on/off load (this folder is on the path of a script run from it)
from noise_robustness import start_load, stop_load

from benchbench.cli.cells import process_sd_for
from benchbench.core.spec import CellSpec, MeasureConfig, physical_cores
from benchbench.core.stats import hodges_lehmann, serial_median_ci
from benchbench.measure.doctor import aa_check
from benchbench.results.estimates import (
    PROCESS_SD,
    quiet_rounds,
    session_spread,
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--backend", default="ort")
    ap.add_argument("--variant", default="deploy")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--max-time", type=float, default=5.0, help="sampling cap per worker per trial, all sessions (s)")
    ap.add_argument("--sessions", type=int, default=MeasureConfig().sessions,
                    help="pairs of fresh workers per trial, the time split among them")
    ap.add_argument("--target-ci", type=float, default=MeasureConfig().target_ci,
                    help="stop a trial once its interval is this narrow (fraction), as a run's --target-ci")
    ap.add_argument("--block-s", type=float, default=MeasureConfig().block_s, help="one block's length (s)")
    ap.add_argument("--load-procs", type=int, default=0,
                    help="background processes burning a CPU on and off meanwhile (noise_robustness.py's load)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    spec = CellSpec(args.model, args.variant, args.backend, threads=args.threads or physical_cores())
    config = MeasureConfig(max_s=args.max_time, sessions=args.sessions, process_sd=process_sd_for(spec.threads),
                           block_s=args.block_s, target_ci=args.target_ci)
    term = (f"the doctor's {100 * config.process_sd:.2f}%" if config.process_sd is not None
            else f"the constant {100 * PROCESS_SD:.2f}% (no doctor measurement cached)")
    print(f"{spec.label()}: {args.sessions} session(s), {args.max_time:g} s per worker; between-process term {term}")
    if args.load_procs:
        print(f"under load: {args.load_procs} process(es) burning a CPU in random phases of 0.2-2 s on, 0.2-2 s off")
    results = []
    servers: dict = {}  # one fork server for all trials, as a sweep keeps one for all its groups
    loads = start_load(args.load_procs)
    try:
        for i in range(args.trials):
            results.append(_trial(i, spec, config, servers))
    finally:
        stop_load(loads)
        for server in servers.values():
            server.close()
    _summary(args, spec, results, term)
    return 0


def _trial(i: int, spec: CellSpec, config: MeasureConfig, servers: dict) -> dict:
    t0 = time.perf_counter()
    r = aa_check(spec, config, servers)
    wall = time.perf_counter() - t0
    if r.estimate is None:
        sys.exit(f"trial {i + 1}: {r.reason}")
    e = r.estimate
    out = {"ratio": e.value, "low": e.low, "high": e.high, "half_width": e.half_width,
           "within_half_width": r.within.half_width,
           "units": e.units, "dropped": e.dropped, "median_ms": r.median_ms, "wait_share": r.wait_share,
           "holds_one": r.contains_one, "wall_s": wall,
           "sessions": len({b.get("session", 1) for b in r.cells[0].blocks}), **_parts(r.cells)}
    print(f"trial {i + 1}: {e.value:.4f} [{e.low:.4f}, {e.high:.4f}] ±{100 * e.half_width:.2f}% over {e.units} "
          f"rounds ({e.dropped} dropped) in {out['sessions']} session(s), {wall:.1f} s wall, "
          f"{r.median_ms:.3f} ms, waited {100 * (r.wait_share or 0):.0f}%"
          + ("" if r.contains_one else "  <- excludes 1.00"), flush=True)
    return out


def _parts(cells) -> dict:
    """What sets a trial's width, from its quiet rounds' log-ratios (B over A; relative half-widths)."""
    a, b = cells
    quiet = quiet_rounds(b.blocks, a.blocks, samples_b=b.samples_ns, samples_a=a.samples_ns)
    if len(quiet.units) < 3:
        return {}
    raw, logs, edge = quiet.raw, quiet.logs, quiet.edge
    segments = [unit[0] for unit in quiet.units]
    _, hl_low, hl_high, rho = hodges_lehmann(logs, segments=segments)
    low, high, _ = serial_median_ci(logs, segments=segments)
    spread = session_spread(segments, logs)
    sd = statistics.stdev(logs)
    return {"round_sd": sd, "raw_round_sd": statistics.stdev(raw), "edge": edge, "rho": rho,
            "hl_half": (hl_high - hl_low) / 2, "median_half": (high - low) / 2,
            "t_half": spread[1] if spread else None, "mean_half": 1.96 * sd / math.sqrt(len(logs))}


def _summary(args, spec: CellSpec, results: list[dict], term: str) -> None:
    held = sum(r["holds_one"] for r in results)
    half = statistics.median(r["half_width"] for r in results)
    print(f"\n{spec.label()}: intervals holding 1.00: {held}/{len(results)} (goal >= 95%); median half-width "
          f"±{100 * half:.2f}% (goal <= 1.0% at >= 5 ms); wall per trial median "
          f"{statistics.median(r['wall_s'] for r in results):.1f} s, max {max(r['wall_s'] for r in results):.1f} s "
          f"(goal <= 10 s); model median {statistics.median(r['median_ms'] for r in results):.3f} ms")
    if len(results) >= 3:
        logs = [math.log(r["ratio"]) for r in results]
        within = statistics.mean((r["within_half_width"] / 1.96) ** 2 for r in results)
        between = max(0.0, statistics.variance(logs) - within)
        print(f"between trials: sd of log-ratio {100 * statistics.stdev(logs):.2f}%, of which within-trial sampling "
              f"explains {100 * math.sqrt(within):.2f}%; between-process term {100 * math.sqrt(between):.2f}% "
              f"(the intervals used {term})")
    parts = {k: [r[k] for r in results if r.get(k) is not None]
             for k in ("round_sd", "raw_round_sd", "edge", "hl_half", "t_half", "median_half", "mean_half")}
    if all(parts.values()):
        print("what sets the width (medians over the trials): the opening block's edge "
              f"{100 * statistics.median(parts['edge']):.2f}% (a round's log-ratio shift per opener, taken out); "
              f"sd of a round's log-ratio {100 * statistics.median(parts['round_sd']):.2f}% "
              f"({100 * statistics.median(parts['raw_round_sd']):.2f}% with the edge left in); half-widths: "
              "the Hodges-Lehmann interval "
              f"±{100 * statistics.median(parts['hl_half']):.2f}%, the sessions' t interval "
              f"±{100 * statistics.median(parts['t_half']):.2f}% (the median's would be "
              f"±{100 * statistics.median(parts['median_half']):.2f}%, a mean's "
              f"±{100 * statistics.median(parts['mean_half']):.2f}%)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
