"""How many sessions (rounds in fresh workers) does the claim's verdict need? Re-read a reference run with only
its first 1, 2, … sessions' blocks and compare what the claim decides with each.

Every figure comes from the stored raw blocks (``benchbench.results.estimates``): a cell's blocks of later
sessions are dropped, with their samples, and the claim is computed again (``benchbench.analysis.claim``).
Printed per backend and per number of sessions: the verdict, the width of its 95% interval (CR2, on the
per-doubling effect), the share of that interval's variance that measurement noise carries, and the
guideline verdicts that change. The goal of issue 26: intervals no more than 10% wider than with all sessions.
Then, per number of sessions, the zoo's own ratios (each form of a model against its train form, which the
report gives per model and which a verdict read through a regression over models barely shows): their median
and 90th-percentile 95% half-widths, how many hold 1.00, and how many zoo groups the reference's allocation
would call unsettled (``cli.reference.ratios_settled``).

    python benchmarks/verdict_sessions.py reports/reference/results.json
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys

from benchbench.analysis.claim import analyze
from benchbench.cli.reference import group_ratios, ratios_settled
from benchbench.results.load import load_run, model_kind


def first_sessions(run, keep: int, share: float = 1.0, zoo_only: bool = False):
    """A copy of ``run`` whose cells hold only the blocks (and samples) of sessions 1..``keep``, and of each
    session only its first ``share`` of lockstep rounds (as if its time cap had been that much shorter; with
    ``zoo_only``, for the zoo's cells only, the guideline nets keeping every round)."""
    out = copy.deepcopy(run)
    for cell in out.cells:
        if not cell.blocks:
            continue
        cut = share if not zoo_only or model_kind(cell.model) == "zoo" else 1.0
        rounds: dict[int, int] = {}
        for b in cell.blocks:
            rounds[b.get("session", 1)] = max(rounds.get(b.get("session", 1), 0), b["round"] + 1)
        blocks, samples, offset = [], [], 0
        for b in cell.blocks:
            session = b.get("session", 1)
            if session <= keep and b["round"] < max(1, math.ceil(cut * rounds[session])):
                blocks.append(b)
                samples += cell.samples_ns[offset: offset + b["n"]]
            offset += b["n"]
        cell.blocks, cell.samples_ns = blocks, samples
        cell.recompute()
    return out


def zoo_summary(run) -> str:
    """One line on the zoo groups' ratios to their first measured cell (the train form), as the report reads them:
    how many, their median and 90th-percentile half-widths, how many hold 1.00, and the groups the reference's
    allocation would call unsettled."""
    ratios, unsettled, groups = [], 0, 0
    for group in run.groups:
        cells = [run.cells[i] for i in group["cells"]]
        if model_kind(cells[0].model) != "zoo":
            continue
        groups += 1
        mine = list(group_ratios(cells))
        unsettled += not ratios_settled(mine)
        ratios += mine
    halves = sorted(e.half_width for e in ratios)
    if not halves:
        return "no zoo ratios"
    return (f"{len(halves):>7} {100 * statistics.median(halves):>8.1f}% {100 * halves[int(0.9 * len(halves))]:>7.1f}% "
            f"{sum(e.excludes() == 0 for e in ratios):>9} {unsettled:>9} of {groups}")


def _guideline_codes(result: dict) -> dict:
    return {(g["table"], g["backend"], g.get("multiplier")): g.get("verdict") for g in result["guidelines"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="a reference run's results.json (cells measured in several sessions)")
    ap.add_argument("--share", type=float, default=1.0,
                    help="keep only this share of each session's lockstep rounds (a shorter time cap), in (0, 1]")
    ap.add_argument("--zoo-only", action="store_true",
                    help="apply --share to the zoo's cells only; the guideline nets keep every round")
    args = ap.parse_args(argv)
    run = load_run(args.results)
    most = max((b.get("session", 1) for c in run.cells for b in c.blocks), default=1)
    full = analyze([run])
    full_guides = _guideline_codes(full)
    print(f"{args.results}: {len(run.cells)} cells, up to {most} sessions each; keeping {args.share:.0%} of each "
          "session's rounds" + (" (zoo cells only)" if args.zoo_only else ""))
    print(f"{'backend':<10} {'sessions':>8} {'verdict':<14} {'CR2 95% interval':<18} {'width':>8} {'vs all':>7} "
          f"{'noise share':>11}")
    zoo_lines = []
    for keep in range(1, most + 1):
        cut = run if keep == most and args.share == 1 else first_sessions(run, keep, args.share, args.zoo_only)
        zoo_lines.append(f"{keep:>8} {zoo_summary(cut)}")
        result = full if cut is run else analyze([cut])
        for backend, a in sorted(result["per_backend"].items()):
            e, f = a["effect"], full["per_backend"][backend]["effect"]
            if not e or not f:
                continue
            lo, hi = e["cr2"]["ci95"]
            width = hi - lo
            full_width = f["cr2"]["ci95"][1] - f["cr2"]["ci95"][0]
            noise = e["se_noise"] ** 2 / e["cr2"]["se"] ** 2 if e["cr2"]["se"] else float("nan")
            print(f"{backend:<10} {keep:>8} {a['verdict_code']:<14} [{100 * lo:+.1f}, {100 * hi:+.1f}]%"
                  f"{'':<4} {100 * width:>7.1f}% {width / full_width:>6.2f}x {100 * noise:>10.0f}%")
        changed = [k for k, v in _guideline_codes(result).items() if full_guides.get(k) != v]
        shown = ", ".join(f"{t} {b} x{m}" for t, b, m in changed[:6])
        print(f"{'':<10} {keep:>8} guideline verdicts that differ from all sessions': {len(changed)} of "
              f"{len(full_guides)}" + (f" ({shown})" if changed else ""))
    print(f"\nthe zoo's ratios to their train form\n{'sessions':>8} {'ratios':>7} {'median ±':>9} {'p90 ±':>8} "
          f"{'hold 1.00':>9} {'unsettled groups':>16}")
    print("\n".join(zoo_lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
