"""How far one measurement of a cell is from the next: what bounds any latency predictor judged within ±10%.

A run measured in several rounds (``--rounds``, ``claim --reference``) times each cell in fresh workers minutes apart.
For each cell measured in two rounds or more, this compares its second round's latency with its first's, per
backend: the share of cells within ±5%, ±10% and ±14.1% of each other, and the median difference. A perfect
predictor of a cell's typical latency misses one round by that round's own deviation, about 1/sqrt(2) of the
difference between two independent rounds; so it is within ±10% of one round about as often as two rounds are
within ±14.1% (10 x sqrt(2)) of each other. Where that share is under 90%, "90% within ±10%" in absolute time
cannot be reached on that machine, whatever the predictor (ratios measured in lockstep cancel this drift; a
latency alone does not). Float forms of zoo models by default (``--all`` for every ok cell).

With ``--against OTHER``, two runs measured apart (two ``predict --evaluate`` checks, hours apart) are compared cell
by cell instead, anchor-relative as the predictor is judged (``analysis.anchored``: each cell over the lab anchor
of its own group; cells whose anchor was disturbed in either run left out) and absolute beside it. Where two checks
agree within ±14.1% on at least 90% of cells, the check's measurements leave room for a predictor to reach "90%
within ±10%"; what is missing is then the predictor's.

    python benchmarks/session_agreement.py reports/reference/results.json
    python benchmarks/session_agreement.py CHECK_A/results.json --against CHECK_B/results.json
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections import defaultdict

from benchbench.analysis.anchored import anchored_cells
from benchbench.core.text import one_line
from benchbench.results.estimates import session_latencies
from benchbench.results.load import load_run, model_kind


def round_latencies(cell) -> dict[int, float]:
    """Each round's (session's) latency of the cell in ms, read as the cell's own is
    (``estimates.session_latencies``: the median of its quiet blocks' medians, from that round's blocks alone)."""
    return session_latencies(cell.blocks, cell.samples_ns)


_LIMITS = (0.05, 0.10, 0.10 * math.sqrt(2))


def _table(diffs: dict[str, list[float]]) -> None:
    """Per backend: the cells, the shares of relative differences within ±5%, ±10%, ±14.1%, their median size."""
    print(f"{'backend':<10} {'cells':>5} {'within ±5%':>11} {'within ±10%':>12} {'within ±14.1%':>14} "
          f"{'median |diff|':>14}")
    for backend, d in sorted(diffs.items()):
        share = {limit: sum(abs(x) <= limit for x in d) / len(d) for limit in _LIMITS}
        print(f"{one_line(backend):<10} {len(d):>5} {share[0.05]:>11.0%} {share[0.10]:>12.0%} "
              f"{share[_LIMITS[2]]:>14.0%} {statistics.median(abs(x) for x in d):>14.1%}")


def two_runs(first, second, everything: bool = False) -> tuple[dict, dict]:
    """Per target, the second run's cells over the first's (two loaded runs): the relative differences of their
    anchor-relative (``t_rel``) and absolute (``t_ms``) latencies, over the cells both measured beside a quiet
    anchor."""
    def keep(cell) -> bool:
        return everything or (model_kind(cell.get("model") or {}) == "zoo" and cell["spec"]["variant"] != "int8")
    a, b = anchored_cells([first.to_dict()], keep), anchored_cells([second.to_dict()], keep)
    rel: dict[str, list[float]] = defaultdict(list)
    absolute: dict[str, list[float]] = defaultdict(list)
    for target, cells in a.items():
        for key, x in cells.items():
            y = b.get(target, {}).get(key)
            if y is None or x["disturbed"] or y["disturbed"]:
                continue
            rel[target].append(y["t_rel"] / x["t_rel"] - 1)
            absolute[target].append(y["t_ms"] / x["t_ms"] - 1)
    return rel, absolute


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="a results.json measured in two rounds or more (with --against: any run)")
    ap.add_argument("--against", metavar="OTHER", help="another run's results.json: compare the two runs' cells, "
                    "anchor-relative (both measured beside the lab anchor) and absolute")
    ap.add_argument("--all", action="store_true", help="every ok cell, not only the zoo's float forms")
    args = ap.parse_args(argv)
    if args.against:
        rel, absolute = two_runs(load_run(args.results), load_run(args.against), args.all)
        if not rel:
            print(f"{args.results}, {args.against}: no cell measured beside a quiet anchor in both")
            return 1
        print("anchor-relative (each cell over its group's anchor):")
        _table(rel)
        print("absolute (ms):")
        _table(absolute)
        print("the second run's cells against the first's; within ±14.1%: about how often a perfect predictor of a "
              "cell's typical latency would be within ±10% of one run")
        return 0
    run = load_run(args.results)
    diffs: dict[str, list[float]] = defaultdict(list)
    for cell in run.cells:
        if not cell.ok or (not args.all and (model_kind(cell.model) != "zoo" or cell.spec.variant == "int8")):
            continue
        latency = round_latencies(cell)
        if 1 in latency and 2 in latency:
            diffs[cell.spec.backend].append(latency[2] / latency[1] - 1)
    if not diffs:
        print(f"{args.results}: no cell was measured in two rounds")
        return 1
    _table(diffs)
    print("a cell's second round against its first (fresh workers, minutes apart; absolute latency, this machine); "
          "within ±14.1%: about how often a perfect predictor would be within ±10% of one round")
    return 0


if __name__ == "__main__":
    sys.exit(main())
