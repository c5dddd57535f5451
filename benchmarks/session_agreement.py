"""How far one measurement of a cell is from the next: a ceiling on any latency predictor judged within ±10%.

A run measured in several rounds (``--rounds``, ``claim --reference``) times each cell in fresh workers minutes apart.
For each cell measured in two rounds or more, this compares its second round's median with its first's, per
backend: the share of cells within ±5% and ±10% of each other, and the median difference. A predictor judged
against one measurement cannot be within ±10% of it more often than a second measurement of the same cell is, so
where the rounds agree within ±10% for only 60% of the cells, a predictor's "90% within ±10%" in absolute time
cannot be reached on that machine, whatever the predictor (ratios measured in lockstep cancel this drift; a
latency alone does not). Float forms of zoo models by default (``--all`` for every ok cell).

    python benchmarks/session_agreement.py reports/reference/results.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict

from benchbench.results.load import load_run, model_kind


def round_medians(cell) -> dict[int, float]:
    """The median sample of each round (session) of the cell's blocks, in ms."""
    by: dict[int, list[int]] = defaultdict(list)
    offset = 0
    for block in cell.blocks:
        by[block.get("session", 1)] += cell.samples_ns[offset: offset + block["n"]]
        offset += block["n"]
    return {s: statistics.median(v) / 1e6 for s, v in by.items() if v}


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
        medians = round_medians(cell)
        if 1 in medians and 2 in medians:
            diffs[cell.spec.backend].append(medians[2] / medians[1] - 1)
    if not diffs:
        print(f"{args.results}: no cell was measured in two rounds")
        return 1
    print(f"{'backend':<10} {'cells':>5} {'within ±5%':>11} {'within ±10%':>12} {'median |diff|':>14}")
    for backend, d in sorted(diffs.items()):
        print(f"{backend:<10} {len(d):>5} {sum(abs(x) <= 0.05 for x in d) / len(d):>11.0%} "
              f"{sum(abs(x) <= 0.10 for x in d) / len(d):>12.0%} {statistics.median(abs(x) for x in d):>14.1%}")
    print("a cell's second round against its first (fresh workers, minutes apart; absolute latency, this machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
