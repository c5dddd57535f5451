"""Is the lab anchor a steady unit? Its group medians per sweep, and how far the nets beside it follow it.

The anchored sweeps (``benchbench lab``, ``predict --fit``, ``predict --evaluate``) divide each net's latency by
that of the anchor measured in the same group, which cancels drift only while the anchor moves with the nets.
For each results.json given, per backend: the anchor's group medians (10th, 50th and 90th percentile, max over
min) and, where the sorted medians have a gap wider than ``GAP`` (two states), each state's median and count.
Then, for every net measured in two of the files (a sweep and its retake), the ratio of its two measurements
against the ratio of its two groups' anchors: the slope of log net ratio on log anchor ratio, over the nets
whose anchor moved by more than ``MOVED`` (1: the nets follow the anchor, as drift would move them; 0: the
anchor moves alone). Nothing is measured.

    python benchmarks/anchor_states.py reports/runs/<sweep>/results.json [<retake>/results.json ...]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

ANCHOR = "lab_anchor"
GAP = 1.2  # a jump between consecutive sorted group medians this large splits them into two states
MOVED = 0.1  # nets whose two groups' anchors differ by more than this fraction enter the slope


def _cells(path: Path) -> tuple[dict, dict]:
    """(backend → [anchor medians]), ((model, variant, backend) → (net ms, its group's anchor ms))."""
    doc = json.loads(path.read_text())
    anchors = {(c["group"], c["spec"]["backend"]): c["stats"]["median_ms"]
               for c in doc["cells"] if c["status"] == "ok" and c["spec"]["model"] == ANCHOR}
    per_backend: dict[str, list[float]] = {}
    for (_, backend), ms in anchors.items():
        per_backend.setdefault(backend, []).append(ms)
    nets = {}
    for c in doc["cells"]:
        s = c["spec"]
        if c["status"] == "ok" and s["model"] != ANCHOR and (c["group"], s["backend"]) in anchors:
            nets[(s["model"], s["variant"], s["backend"])] = (c["stats"]["median_ms"], anchors[(c["group"], s["backend"])])
    return per_backend, nets


def _states(values: list[float]) -> str:
    v = np.sort(np.asarray(values, float))
    jumps = v[1:] / v[:-1]
    if not len(jumps) or jumps.max() < GAP:
        return "one state"
    cut = int(np.argmax(jumps)) + 1
    low, high = v[:cut], v[cut:]
    return (f"two states: {np.median(low):.4g} ms (x{len(low)}) and {np.median(high):.4g} ms (x{len(high)}), "
            f"{np.median(high) / np.median(low):.2f}x apart")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", type=Path, help="results.json of anchored sweeps")
    args = ap.parse_args()
    sweeps = [(p, *_cells(p)) for p in args.results]
    print("the anchor's group medians, ms: 10th / 50th / 90th percentile, max over min")
    for path, per_backend, _ in sweeps:
        print(f"\n{path}:")
        for backend, values in sorted(per_backend.items()):
            q = np.quantile(values, [0.1, 0.5, 0.9])
            print(f"  {backend:9s} n={len(values):3d}  {q[0]:.4g} / {q[1]:.4g} / {q[2]:.4g}  "
                  f"{max(values) / min(values):.2f}x  {_states(values)}")
    print(f"\nnets measured in two files: log net ratio over log anchor ratio, nets whose anchor moved > {MOVED:.0%}")
    for (pa, _, na), (pb, _, nb) in itertools.combinations(sweeps, 2):
        by_backend: dict[str, list[tuple[float, float]]] = {}
        for key in na.keys() & nb.keys():
            (ma, aa), (mb, ab) = na[key], nb[key]
            if abs(ab / aa - 1) > MOVED:
                by_backend.setdefault(key[2], []).append((np.log(ab / aa), np.log(mb / ma)))
        for backend, pairs in sorted(by_backend.items()):
            x, y = np.array(pairs).T
            slope = float(np.sum(x * y) / np.sum(x * x))  # through the origin: no move, no change
            print(f"  {pa.parent.name[:24]} vs {pb.parent.name[:24]}  {backend:9s} {len(pairs):3d} nets  "
                  f"slope {slope:.2f}  (anchor moved {np.exp(np.median(np.abs(x))):.2f}x, nets "
                  f"{np.exp(np.median(np.abs(y))):.2f}x, medians of |log|)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
