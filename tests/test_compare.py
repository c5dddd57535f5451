"""compare: ratio of medians, Mann-Whitney U, geometric mean, and the verdict rule."""

import numpy as np

from benchbench.core.spec import CellSpec
from benchbench.results.compare import compare_runs, comparison_markdown
from benchbench.results.record import CellResult, RunResult


def _run(medians_ms: dict, jitter=0.01, seed=0):
    rng = np.random.default_rng(seed)
    cells = []
    for model, med in medians_ms.items():
        samples = (med * 1e6 * (1 + jitter * rng.standard_normal(40))).astype(int).tolist()
        cell = CellResult(CellSpec(model, "deploy", "ort"), "ok", samples_ns=samples)
        cell.recompute()
        cells.append(cell)
    return RunResult(meta={}, cells=cells)


def test_verdicts_need_both_a_large_ratio_and_significance():
    a = _run({"same": 1.0, "slower": 1.0, "faster": 2.0, "tiny_drift": 1.0})
    b = _run({"same": 1.0, "slower": 1.5, "faster": 1.0, "tiny_drift": 1.02}, seed=1)
    by_model = {c.key[0]: c for c in compare_runs(a, b)}
    assert by_model["slower"].verdict == "slower" and by_model["slower"].ratio > 1.4
    assert by_model["faster"].verdict == "faster" and by_model["faster"].p_value < 1e-6
    assert by_model["same"].verdict == "same"
    assert by_model["tiny_drift"].verdict == "same"  # significant, but inside the 5% band


def test_unmatched_cells_are_listed_not_dropped():
    a, b = _run({"x": 1.0, "only_a": 1.0}), _run({"x": 1.0, "only_b": 1.0})
    verdicts = {c.key[0]: c.verdict for c in compare_runs(a, b)}
    assert verdicts["only_a"] == "only in A" and verdicts["only_b"] == "only in B"
    text = comparison_markdown(compare_runs(a, b))
    assert "only in A" in text and "Geometric mean of B/A over 1 matched cells" in text


def _pair(lat_train, lat_deploy, drift, rounds=16, seed=0):
    """A train/deploy pair measured in lockstep on a machine whose speed drifts by ``drift`` per round."""
    rng = np.random.default_rng(seed)
    cells = []
    for variant, lat in (("train", lat_train), ("deploy", lat_deploy)):
        samples, blocks = [], []
        for r in range(rounds):
            slow = 1 + drift * (r % 4)  # a staircase: each round's two blocks share it
            samples += (lat * slow * 1e6 * (1 + 0.003 * rng.standard_normal(4))).astype(int).tolist()
            blocks.append({"n": 4, "round": r, "session": 1, "run_ns": 1, "wait_ns": 0})
        cell = CellResult(CellSpec("m", variant, "ort"), "ok", samples_ns=samples, blocks=blocks, group=0)
        cell.recompute()
        cells.append(cell)
    return RunResult(meta={}, cells=cells, groups=[{"id": 0, "cells": [0, 1], "rounds": []}])


def test_pivot_variant_is_paired_and_sees_through_drift():
    """Planted: deploy 8% faster on a machine drifting by up to 90%. Each cell's own interval is wide,
    so unpaired the answer is unresolved; paired per round it is faster, with the truth in the interval."""
    from benchbench.results.compare import pivot

    run = _pair(1.08, 1.0, drift=0.3)
    ((label, a, b),) = pivot(run, "variant")
    (cmp,) = compare_runs(a, b, paired=True)
    assert cmp.paired and cmp.verdict == "faster"
    assert cmp.estimate.low <= 1 / 1.08 <= cmp.estimate.high
    for c in run.cells:
        c.group = None  # the same samples, as if measured apart
    ((label, a, b),) = pivot(run, "variant")
    (cmp,) = compare_runs(a, b, paired=True)
    assert not cmp.paired and cmp.verdict == "unresolved"


def test_equivalent_cells_are_stated_the_same():
    run = _pair(1.0, 1.004, drift=0.0, seed=2)
    from benchbench.results.compare import pivot

    ((label, a, b),) = pivot(run, "variant")
    (cmp,) = compare_runs(a, b, paired=True)
    assert cmp.verdict == "same" and cmp.estimate.inside(0.05)


def test_zero_or_negative_medians_are_not_comparable():
    """Cells built in memory (pivot, tests, other tools) can hold what a loaded file cannot: a ratio of
    a zero or negative median would be infinite or negative, so the cell gets no verdict."""
    a = _run({"zero": 1.0, "negative": 1.0, "fine": 1.0})
    b = _run({"zero": 1.0, "negative": 1.0, "fine": 1.0}, seed=1)
    for cell in b.cells[:2]:
        cell.samples_ns = [0] * 40 if cell.spec.model == "zero" else [-1000] * 40
        cell.recompute()
    by_model = {c.key[0]: c for c in compare_runs(a, b)}
    assert by_model["zero"].verdict == "not comparable (median 0 ms in B)" and by_model["zero"].ratio is None
    assert by_model["negative"].verdict == "not comparable (median -0.001 ms in B)"
    assert by_model["fine"].verdict == "same"
    text = comparison_markdown(list(by_model.values()))
    assert "Geometric mean of B/A over 1 matched cells" in text and "inf" not in text


def test_an_ok_cell_without_samples_is_not_comparable():
    a, b = _run({"x": 1.0}), _run({"x": 1.0})
    b.cells[0].samples_ns = []
    b.cells[0].recompute()
    (cmp,) = compare_runs(a, b)
    assert cmp.verdict == "not comparable (no samples in B)"
    assert "not comparable (no samples in B)" in comparison_markdown([cmp])  # and no TypeError on None


def test_two_runs_are_compared_unpaired_even_when_their_group_numbers_match():
    """Cells of two runs can share a lockstep group number by chance; their rounds were never paired, so the
    comparison must be unpaired (the paired interval would be far too narrow)."""
    a, b = _pair(1.0, 1.0, drift=0.5, seed=1), _pair(1.0, 1.0, drift=0.5, seed=2)
    for cmp in compare_runs(a, b):
        assert cmp.estimate is not None and not cmp.paired and cmp.p_value is not None
