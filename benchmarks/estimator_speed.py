"""What reading a paired ratio costs as its rounds grow: the opener's edge (``estimates.position_adjusted``) by
selection (``stats.hodges_lehmann_shift``) against the outer product it replaced, and the whole ``estimates.ratio``
with short blocks' medians taken in Python (``estimates.block_medians_ms``) against np.median for every block.

A sweep reads every ratio of a group after each of its rounds once its minimums are met, between rounds, so these
costs are paid once per round and count against the group's time. For each size, the two ways of each are timed
in alternating order (ABBA), ``--repeats`` times, on the same synthetic rounds (blocks of 5 inferences), and the
script prints each one's median time and the ratio of the two with a 95% interval over the repeats (a t interval
of the log-ratios). It checks, too, that both ways give the same edge and the same ratio.

    python benchmarks/estimator_speed.py --rounds 250,1000,4000

Times are absolute and from a shared machine; the ratios, measured side by side, are what to quote.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

import numpy as np

from benchbench.core.stats import hodges_lehmann_shift, student_t_quantile
from benchbench.results import estimates
from benchbench.results.estimates import ratio


def _outer_edge(plus: np.ndarray, minus: np.ndarray) -> float:
    return float(np.median(np.subtract.outer(plus, minus))) / 2


def _blocks(rounds: int, rng: np.random.Generator) -> tuple[list[dict], list[dict]]:
    """Two arms' blocks over ``rounds`` lockstep rounds of 8 sessions, each block of 5 inferences, B 5% slower."""
    a, b = [], []
    per = max(1, rounds // 8)
    for r in range(rounds):
        session, k = 1 + r // per, r % per
        opener = (k % 2 == 1)  # ABBA: A opens the odd rounds after the first
        for blocks, ms, first in ((a, 10.0, opener), (b, 10.5, not opener)):
            blocks.append({"round": k, "session": session, "position": 0 if first else 1, "wait_share": 0.0,
                           "samples_ns": [int(1e6 * ms * math.exp(rng.normal(0, 0.03))) for _ in range(5)]})
    return a, b


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _paired(first, second, repeats: int) -> tuple[float, float, float, float, float]:
    """Median seconds of ``first()`` and ``second()`` timed in alternating order, and the ratio first/second with
    its 95% interval."""
    times: dict[int, list[float]] = {0: [], 1: []}
    logs = []
    for rep in range(repeats):
        pair = {}
        for way in ((0, 1) if rep % 2 == 0 else (1, 0)):
            pair[way] = _timed(first if way == 0 else second)
            times[way].append(pair[way])
        logs.append(math.log(pair[0] / pair[1]))
    half = student_t_quantile(0.975, len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    centre = statistics.mean(logs)
    return (statistics.median(times[0]), statistics.median(times[1]), math.exp(centre), math.exp(centre - half),
            math.exp(centre + half))


def _numpy_medians(b, a):
    """``ratio`` with every block's median taken by np.median (as before)."""
    short, estimates._SHORT_BLOCK = estimates._SHORT_BLOCK, 0
    try:
        return ratio(b, a)
    finally:
        estimates._SHORT_BLOCK = short


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", default="250,1000,4000", help="rounds per arm, comma-separated")
    ap.add_argument("--repeats", type=int, default=8)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"{'rounds':>7} {'edge ms':>8} {'outer ms':>9} {'edge/outer [95% CI]':>24} {'ratio() ms':>11} "
          f"{'np.median':>10} {'ratio()/np.median [95% CI]':>28}")
    for rounds in (int(r) for r in args.rounds.split(",")):
        plus, minus = rng.normal(0.02, 0.03, rounds // 2), rng.normal(-0.02, 0.03, rounds - rounds // 2)
        if hodges_lehmann_shift(plus, minus) / 2 != _outer_edge(plus, minus):
            sys.exit(f"{rounds} rounds: the two ways read different edges")
        edge = _paired(lambda: hodges_lehmann_shift(plus, minus) / 2, lambda: _outer_edge(plus, minus), args.repeats)
        a, b = _blocks(rounds, rng)
        if ratio(b, a) != _numpy_medians(b, a):
            sys.exit(f"{rounds} rounds: the two ways read different ratios")
        whole = _paired(lambda: ratio(b, a), lambda: _numpy_medians(b, a), max(4, args.repeats // 2))
        print(f"{rounds:>7} {1e3 * edge[0]:>8.2f} {1e3 * edge[1]:>9.2f} {edge[2]:>9.3f} [{edge[3]:.3f}, {edge[4]:.3f}]"
              f" {1e3 * whole[0]:>11.1f} {1e3 * whole[1]:>10.1f} {whole[2]:>13.3f} [{whole[3]:.3f}, {whole[4]:.3f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
