"""How far one measurement of a cell is from the next: what bounds any latency predictor judged within ±10%.

A run measured in several rounds (``--rounds``, ``claim --reference``) times each cell in fresh workers minutes apart.
For each cell measured in two rounds or more, this compares its second round's latency with its first's, per
backend: the share of cells within ±5%, ±10% and ±14.1% of each other, and the median difference. A perfect
predictor of a cell's typical latency misses one round by that round's own deviation, about 1/sqrt(2) of the
difference between two independent rounds; so it is within ±10% of one round about as often as two rounds are
within ±14.1% (10 x sqrt(2)) of each other. Where that share is under 90%, "90% within ±10%" in absolute time
cannot be reached on that machine, whatever the predictor (ratios measured in lockstep cancel this drift; a
latency alone does not). Float forms of zoo models by default (``--all`` for every ok cell).

    python benchmarks/session_agreement.py reports/reference/results.json
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections import defaultdict

from benchbench.core.text import one_line
from benchbench.results.estimates import session_latencies
from benchbench.results.load import load_run, model_kind


def round_latencies(cell) -> dict[int, float]:
    """Each round's (session's) latency of the cell in ms, read as the cell's own is
    (``estimates.session_latencies``: the median of its quiet blocks' medians, from that round's blocks alone)."""
    return session_latencies(cell.blocks, cell.samples_ns)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="a results.json measured in two rounds or more")
    ap.add_argument("--all", action="store_true", help="every ok cell, not only the zoo's float forms")
    args = ap.parse_args(argv)
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
    print(f"{'backend':<10} {'cells':>5} {'within ±5%':>11} {'within ±10%':>12} {'within ±14.1%':>14} "
          f"{'median |diff|':>14}")
    for backend, d in sorted(diffs.items()):
        share = {limit: sum(abs(x) <= limit for x in d) / len(d) for limit in (0.05, 0.10, 0.10 * math.sqrt(2))}
        print(f"{one_line(backend):<10} {len(d):>5} {share[0.05]:>11.0%} {share[0.10]:>12.0%} "
              f"{share[0.10 * math.sqrt(2)]:>14.0%} {statistics.median(abs(x) for x in d):>14.1%}")
    print("a cell's second round against its first (fresh workers, minutes apart; absolute latency, this machine); "
          "within ±14.1%: about how often a perfect predictor would be within ±10% of one round")
    return 0


if __name__ == "__main__":
    sys.exit(main())
