"""The ShuffleNetV2 guideline tables (Ma et al., ECCV 2018), the paper's numbers beside ours.

Speeds are shown relative to each table's first row at the same channel multiplier, as the paper's
own columns invite: 1.00 is the first row, below 1 is slower. The rows of one table at one width on one
backend are measured in lockstep (``benchbench.measure.sweep.comparison_groups``), so each relative speed is
a paired ratio with its 95% interval from the rounds (``benchbench.measure.scheduler``). The verdict for a table
is computed from the data: the guideline *holds* on a backend when the interval of the speed of the row
the paper says is best, relative to the row it says is worst, lies above 1; *reversed* when it lies
below 1; *not resolved* when it holds 1.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchbench.results.estimates import RatioEstimate, cell_ratio

__all__ = ["GuidelineTable", "TABLES", "guideline_results", "verdict"]


@dataclass(frozen=True)
class GuidelineTable:
    key: str
    title: str
    rows: tuple[tuple[str, str], ...]  # (label, member prefix; the member is f"{prefix}_x{mult}")
    # Paper speeds per row: ARM images/s and GPU batches/s at x1, x2, x4.
    arm: tuple[tuple[float, float, float], ...]
    gpu: tuple[tuple[float, float, float], ...]
    best: int  # the row index the guideline says is fastest
    worst: int  # ... and slowest


TABLES = (
    GuidelineTable(
        "G1", "G1: equal channel width minimizes memory access cost",
        (("c1:c2 = 1:1", "g1_ratio1"), ("1:2", "g1_ratio2"), ("1:6", "g1_ratio6"), ("1:12", "g1_ratio12")),
        arm=((76.2, 21.7, 5.3), (72.9, 20.5, 5.1), (69.1, 17.9, 4.6), (57.6, 15.1, 4.4)),
        gpu=((1480, 723, 232), (1296, 586, 206), (876, 489, 189), (748, 392, 163)),
        best=0, worst=3,
    ),
    GuidelineTable(
        "G2", "G2: excessive group convolution increases memory access cost",
        (("g = 1", "g2_groups1"), ("g = 2", "g2_groups2"), ("g = 4", "g2_groups4"), ("g = 8", "g2_groups8")),
        arm=((40.0, 10.2, 2.3), (35.0, 9.5, 2.2), (32.9, 8.7, 2.1), (27.8, 7.5, 1.8)),
        gpu=((2451, 1289, 437), (1725, 873, 341), (1026, 644, 338), (634, 445, 230)),
        best=0, worst=3,
    ),
    GuidelineTable(
        "G3", "G3: network fragmentation reduces parallelism",
        (("1-fragment", "g3_1frag"), ("2-fragment-series", "g3_2series"), ("4-fragment-series", "g3_4series"),
         ("2-fragment-parallel", "g3_2parallel"), ("4-fragment-parallel", "g3_4parallel")),
        arm=((40.2, 10.1, 2.3), (38.6, 10.1, 2.2), (38.4, 10.1, 2.3), (33.4, 9.1, 2.2), (35.0, 8.4, 2.1)),
        gpu=((2446, 1274, 434), (1790, 909, 336), (752, 745, 349), (1537, 803, 320), (691, 572, 292)),
        best=0, worst=4,
    ),
    GuidelineTable(
        "G4", "G4: element-wise operations are non-negligible",
        (("ReLU, shortcut", "g4_relu_shortcut"), ("ReLU, no shortcut", "g4_relu_noshortcut"),
         ("no ReLU, shortcut", "g4_norelu_shortcut"), ("no ReLU, no shortcut", "g4_norelu_noshortcut")),
        arm=((56.7, 16.9, 5.0), (61.9, 18.8, 5.2), (57.3, 18.2, 5.1), (66.3, 20.2, 5.4)),
        gpu=((2427, 2066, 1436), (2647, 2256, 1735), (2672, 2121, 1458), (2842, 2376, 1782)),
        best=3, worst=0,
    ),
)
MULTIPLIERS = (1, 2, 4)


def _speed(row, first) -> tuple[float, float, float] | None:
    """Speed of ``row`` relative to ``first`` (= latency first / latency row) as (value, low, high)."""
    est = cell_ratio(first, row) if row is not None and first is not None else None
    return (est.value, est.low, est.high) if est else None


def verdict(speed: RatioEstimate | tuple | None) -> str:
    """From the speed of the paper's best row relative to its worst row, with its interval."""
    if speed is None:
        return "not measured"
    _, low, high = speed if isinstance(speed, tuple) else (speed.value, speed.low, speed.high)
    if low > 1:
        return "holds"
    if high < 1:
        return "reversed"
    return "not resolved"


def guideline_results(cells: dict) -> list[dict]:
    """For each table, backend and multiplier: our relative speeds with intervals, the paper's, a verdict.

    ``cells`` maps (model, backend) to its measured cell (a ``CellResult``).
    """
    backends = sorted({b for _, b in cells})
    out = []
    for table in TABLES:
        for backend in backends:
            for j, mult in enumerate(MULTIPLIERS):
                row_cells = [cells.get((f"{prefix}_x{mult}", backend)) for _, prefix in table.rows]
                if not any(row_cells):
                    continue
                first = row_cells[0]
                rows = []
                for i, (label, prefix) in enumerate(table.rows):
                    c = row_cells[i]
                    rows.append({
                        "row": label, "model": f"{prefix}_x{mult}", "latency_ms": c.median_ms if c else None,
                        "ours": _speed(c, first), "paired": bool(c and first and c.group is not None
                                                                 and c.group == first.group),
                        "arm": table.arm[i][j] / table.arm[0][j], "gpu": table.gpu[i][j] / table.gpu[0][j],
                    })
                out.append({"table": table.key, "title": table.title, "backend": backend, "multiplier": mult,
                            "rows": rows, "verdict": verdict(_speed(row_cells[table.best], row_cells[table.worst])),
                            "best": table.rows[table.best][0], "worst": table.rows[table.worst][0]})
    return out
