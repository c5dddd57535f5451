"""Would more kernel nets help, and which class? The predictor's learning curve, from a fitted predictor's points.

For each backend's predictor file, each regressor class is cross-validated (``analysis.predictor.cross_validate``,
5 folds over its one-kernel nets) on a random share of its points (the probes and the other classes kept whole),
three draws per share; printed: the share of held-out nets predicted within ±10%, per class, at each share. A
class whose figure still rises towards 100% of its points gains from more points; a flat one is limited by its
features or its measurements, not by their number. Nothing is measured; no zoo model is read.

    python benchmarks/predictor_points.py reports/predictor/predictor_*.json
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from benchbench.analysis.predictor import cross_validate
from benchbench.core.kernelpoints import CLASSES

SHARES = (0.5, 0.75, 1.0)
DRAWS = 3


def curve(doc: dict, shares=SHARES, draws: int = DRAWS) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Per class, the mean cross-validated share within ±10% at each share of its points; and its points."""
    points, base = doc["points"], doc["base"]
    out: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for share in shares:
        runs: dict[str, list[float]] = {}
        for draw in range(draws if share < 1 else 1):
            rng = np.random.default_rng(draw)
            keep = [p for p in points if p["kernel"]["kind"] not in CLASSES or rng.random() < share]
            for kind, cv in cross_validate(keep, base).items():
                runs.setdefault(kind, []).append(cv["within_10pct"])
                if share == 1:
                    counts[kind] = cv["n"]
        for kind in CLASSES:
            out.setdefault(kind, []).append(float(np.mean(runs[kind])) if kind in runs else float("nan"))
    return out, counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("predictors", nargs="+", type=Path, help="predictor_<backend>.json files")
    args = ap.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)
    print("cross-validated share of one-kernel nets within ±10%, per class, fitting on "
          + " / ".join(f"{s:.0%}" for s in SHARES) + " of its points")
    for path in args.predictors:
        doc = json.loads(path.read_text())
        rows, counts = curve(doc)
        print(f"\n{doc['backend']} ({path}):")
        for kind, values in rows.items():
            print(f"  {kind:8s} n={counts.get(kind, 0):3d}  " + "  ".join(f"{v:4.0%}" for v in values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
