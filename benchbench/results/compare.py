"""Compare cells: the latency ratio B/A per matched cell with its 95% interval, and a geometric mean.

The units are what varies independently, never pooled inferences (``shared/MEASUREMENT.md``):

* cells measured in one lockstep group (``--pivot variant`` on a run, train vs deploy) are compared
  **paired**, one log-ratio per round (``benchbench.results.estimates.ratio``);
* cells from two runs were measured apart: their interval is the quotient of the two cells' intervals
  over blocks, and the Mann-Whitney U test runs on the two cells' block medians.

A direction is stated only when the interval lies outside the ``threshold`` band (and, unpaired, the
block-level test is significant at ``alpha``): *faster* / *slower*. An interval inside the band is
*same*; one that straddles a band edge is *unresolved*: the data cannot say.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tabulate import tabulate

from benchbench.core.stats import geometric_mean, mann_whitney

from .estimates import SPEEDUP_PAIRS, RatioEstimate, block_medians_ms, cell_ratio
from .record import CellResult, RunResult

__all__ = ["Comparison", "compare_runs", "comparison_markdown", "pivot", "regressions"]


@dataclass
class Comparison:
    key: tuple
    label: str
    a: CellResult | None
    b: CellResult | None
    estimate: RatioEstimate | None = None  # latency B / A (< 1: B is faster) with its 95% interval
    p_value: float | None = None  # Mann-Whitney U on block medians (unpaired comparisons only)
    verdict: str = ""

    @property
    def ratio(self) -> float | None:
        return self.estimate.value if self.estimate else None

    @property
    def paired(self) -> bool:
        return bool(self.estimate) and not self.estimate.rule.startswith("unpaired")


def _verdict(est: RatioEstimate, p: float | None, threshold: float, alpha: float, paired: bool) -> str:
    if est.inside(threshold):
        return "same"
    direction = est.excludes(threshold)
    significant = paired or (p is not None and p == p and p < alpha)  # nan (too few units) never is
    if direction and significant:
        return "slower" if direction > 0 else "faster"
    return "unresolved"


def _units(cell: CellResult) -> list[float]:
    """The cell's independent units: block medians, or (schema-1 cells) its raw samples."""
    return block_medians_ms(cell.blocks, cell.samples_ns) if cell.blocks else [x / 1e6 for x in cell.samples_ns]


def _not_comparable(a: CellResult, b: CellResult) -> str | None:
    """Why two matched cells cannot be compared, or None. A ratio needs two positive medians: a zero
    or negative one (a cell built in memory, or edited) would make it infinite, zero or negative."""
    if not (a.ok and b.ok):
        return f"{a.status} / {b.status}"
    for side, cell in (("A", a), ("B", b)):
        median = cell.median_ms
        if median is None:
            return f"no samples in {side}"
        if not median > 0:  # nan included
            return f"median {median:g} ms in {side}"
    return None


def compare_runs(a: RunResult, b: RunResult, threshold: float = 0.05, alpha: float = 0.01,
                 paired: bool = False) -> list[Comparison]:
    """Match cells by (model, variant, backend, batch, input, threads, options) and compare B to A.

    ``threshold`` is the relative change inside which a cell is the same (0.05: ±5%), ``alpha`` the
    U test's significance level. ``paired``: ``a`` and ``b`` are two sides of one run (``pivot``), so cells
    of one lockstep group are compared round by round; two runs are always compared unpaired.
    """
    cells_a = {c.spec.key(): c for c in a.cells}
    cells_b = {c.spec.key(): c for c in b.cells}
    out = []
    for key in list(dict.fromkeys([*cells_a, *cells_b])):
        ca, cb = cells_a.get(key), cells_b.get(key)
        label = (ca or cb).spec.label()
        cmp = Comparison(key, label, ca, cb)
        if ca is None or cb is None:
            cmp.verdict = "only in A" if cb is None else "only in B"
        elif why := _not_comparable(ca, cb):
            cmp.verdict = f"not comparable ({why})"
        else:
            cmp.estimate = cell_ratio(cb, ca, same_run=paired)
            if cmp.estimate is None:
                cmp.verdict = "not comparable (no interval)"
                out.append(cmp)
                continue
            if not cmp.paired:
                cmp.p_value = mann_whitney(_units(ca), _units(cb))
            cmp.verdict = _verdict(cmp.estimate, cmp.p_value, threshold, alpha, cmp.paired)
        out.append(cmp)
    return out


def _median_text(cell: CellResult | None) -> str:
    if cell is None:
        return "—"
    return f"{cell.median_ms:.3f}" if cell.ok and cell.median_ms is not None else cell.status


def comparison_markdown(comparisons: list[Comparison], name_a: str = "A", name_b: str = "B") -> str:
    """The comparison as a Markdown table, closed by the geometric mean of the ratios and verdict counts."""
    body = []
    for c in comparisons:
        body.append([
            c.label,
            _median_text(c.a),
            _median_text(c.b),
            f"{c.ratio:.3f}" if c.ratio else "",
            f"[{c.estimate.low:.3f}, {c.estimate.high:.3f}]" if c.estimate else "",
            ("paired" if c.paired else "unpaired") if c.estimate else "",
            f"{c.p_value:.2g}" if c.p_value is not None and c.p_value == c.p_value else "",
            c.verdict,
        ])
    text = tabulate(body, ["cell", f"{name_a} median ms", f"{name_b} median ms", "B/A", "95% CI", "pairing",
                           "p (U, blocks)", "verdict"], tablefmt="github", disable_numparse=True)
    ratios = [c.ratio for c in comparisons if c.ratio]
    gm = geometric_mean(ratios)
    summary = f"\nGeometric mean of B/A over {len(ratios)} matched cells: **{gm:.3f}**" if ratios else \
        "\nNo cells matched in both runs."
    counts = {v: sum(c.verdict == v for c in comparisons) for v in ("faster", "slower", "same", "unresolved")}
    summary += (f" ({counts['faster']} faster, {counts['slower']} slower, {counts['same']} the same within the band, "
                f"{counts['unresolved']} unresolved).")
    summary += ("\nA direction is stated only when the 95% interval of B/A lies outside the no-difference band. "
                "paired: measured in lockstep, one ratio per round; unpaired: measured apart, the quotient of the "
                "cells' intervals over blocks, which cannot see a machine that changed between the two.")
    return text + "\n" + summary


def pivot(run: RunResult, by: str, baseline: str | None = None) -> list[tuple[str, RunResult, RunResult]]:
    """Split one run into (label, A, B) pairs that differ only in ``by`` (``variant``, ``backend`` or
    ``device``).

    ``variant``: A = train, B = deploy (and A = before, B = after for a ``--vs`` pair). ``backend``, ``device``
    (a cluster run's targets, ``run --device``): A = ``baseline`` (default: the first in the file), B = each other
    one in turn. The pivoted field is blanked so the cells match.
    """
    values = list(dict.fromkeys(getattr(c.spec, by) for c in run.cells))
    if by == "variant":  # train → deploy, and a --vs pair of files: before → after
        pairs = [(x, y) for x, y in SPEEDUP_PAIRS if x in values and y in values] \
            or [("train", "deploy")]
    elif by in ("backend", "device"):
        if by == "device" and None in values:
            raise ValueError("the file has cells measured without --device: pivot by device needs a cluster run "
                             "with --device on every cell")
        if not values:
            raise ValueError("the file has no cells to compare")
        base = baseline or values[0]
        base = next((v for v in values if v.casefold() == base.casefold()), base)  # --baseline ORT
        if base not in values:
            raise ValueError(f"{by} '{base}' is not in this file (it has {', '.join(values)})")
        if len(values) < 2:
            raise ValueError(f"the file has one {by} ({values[0]}): nothing to compare it with")
        pairs = [(base, v) for v in values if v != base]
    else:
        raise ValueError(f"cannot pivot by '{by}'; use variant, backend or device")

    def side(value):
        cells = [replace(c, spec=replace(c.spec, **{by: "*"})) for c in run.cells if getattr(c.spec, by) == value]
        return RunResult(meta=run.meta, cells=cells)

    return [(f"{a} → {b}", side(a), side(b)) for a, b in pairs]


def regressions(comparisons: list[Comparison], fail_above: float) -> list[Comparison]:
    """Matched cells significantly slower by more than ``fail_above`` (a fraction): for CI gating."""
    return [c for c in comparisons if c.verdict == "slower" and c.ratio and c.ratio > 1 + fail_above]
