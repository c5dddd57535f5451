"""Compare two runs: ratio of medians per matched cell, a Mann-Whitney U test, and a geometric mean.

A cell counts as changed only when both the ratio leaves the ``threshold`` band and the test is
significant (asv's rule): a 1% drift with p = 1e-9 is not a regression, and neither is a 20% swing
measured on three noisy samples.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tabulate import tabulate

from .result import CellResult, RunResult
from .stats import geometric_mean, mann_whitney

__all__ = ["Comparison", "compare_runs", "comparison_markdown", "pivot", "regressions"]


@dataclass
class Comparison:
    key: tuple
    label: str
    a: CellResult | None
    b: CellResult | None
    ratio: float | None = None  # median B / median A (< 1: B is faster)
    p_value: float | None = None
    verdict: str = ""


def _verdict(ratio: float, p: float, threshold: float, alpha: float) -> str:
    significant = p == p and p < alpha  # nan (too few samples) is never significant
    if significant and ratio > 1 + threshold:
        return "slower"
    if significant and ratio < 1 / (1 + threshold):
        return "faster"
    return "same"


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


def compare_runs(a: RunResult, b: RunResult, threshold: float = 0.05, alpha: float = 0.01) -> list[Comparison]:
    """Match cells by (model, variant, backend, batch, input, threads, options) and compare B to A.

    ``threshold`` is the relative change inside which a cell is the same (0.05: ±5%), ``alpha`` the
    U test's significance level.
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
            cmp.ratio = cb.median_ms / ca.median_ms
            cmp.p_value = mann_whitney(ca.samples_ns, cb.samples_ns)
            cmp.verdict = _verdict(cmp.ratio, cmp.p_value, threshold, alpha)
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
            f"{c.p_value:.2g}" if c.p_value is not None and c.p_value == c.p_value else "",
            c.verdict,
        ])
    text = tabulate(body, ["cell", f"{name_a} median ms", f"{name_b} median ms", "B/A", "p (Mann-Whitney U)", "verdict"],
                    tablefmt="github", disable_numparse=True)
    ratios = [c.ratio for c in comparisons if c.ratio]
    gm = geometric_mean(ratios)
    summary = f"\nGeometric mean of B/A over {len(ratios)} matched cells: **{gm:.3f}**" if ratios else \
        "\nNo cells matched in both runs."
    counts = {v: sum(c.verdict == v for c in comparisons) for v in ("faster", "slower", "same")}
    summary += f" ({counts['faster']} faster, {counts['slower']} slower, {counts['same']} unchanged)."
    return text + "\n" + summary


def pivot(run: RunResult, by: str, baseline: str | None = None) -> list[tuple[str, RunResult, RunResult]]:
    """Split one run into (label, A, B) pairs that differ only in ``by`` (``variant`` or ``backend``).

    ``variant``: A = train, B = deploy. ``backend``: A = ``baseline`` (default: the first backend in
    the file), B = each other backend in turn. The pivoted field is blanked so the cells match.
    """
    values = list(dict.fromkeys(getattr(c.spec, by) for c in run.cells))
    if by == "variant":
        pairs = [("train", "deploy")]
    elif by == "backend":
        if not values:
            raise ValueError("the file has no cells to compare")
        base = baseline or values[0]
        base = next((v for v in values if v.casefold() == base.casefold()), base)  # --baseline ORT
        if base not in values:
            raise ValueError(f"backend '{base}' is not in this file (it has {', '.join(values)})")
        if len(values) < 2:
            raise ValueError(f"the file has one backend ({values[0]}): nothing to compare it with")
        pairs = [(base, v) for v in values if v != base]
    else:
        raise ValueError(f"cannot pivot by '{by}'; use variant or backend")

    def side(value):
        cells = [replace(c, spec=replace(c.spec, **{by: "*"})) for c in run.cells if getattr(c.spec, by) == value]
        return RunResult(meta=run.meta, cells=cells)

    return [(f"{a} → {b}", side(a), side(b)) for a, b in pairs]


def regressions(comparisons: list[Comparison], fail_above: float) -> list[Comparison]:
    """Matched cells significantly slower by more than ``fail_above`` (a fraction): for CI gating."""
    return [c for c in comparisons if c.verdict == "slower" and c.ratio and c.ratio > 1 + fail_above]
