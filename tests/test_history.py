"""history: cells lined up across runs in time order, with planted truth. Four runs of the same twelve
measured cells (and two failed ones); one cell is slowed by 20% from run 3 on. It must be flagged, once, at
run 3; no unchanged cell may be."""

import random
from dataclasses import replace

import pytest
from _synthetic import small_run

from benchbench.results.history import history

SLOW = ("beta", "deploy", "ort")


def _runs(slow_from: int = 3, slow_until: int = 4, factor: float = 1.2):
    return [small_run(time=f"2026-01-0{i}T12:00:00+00:00", seed=i,
                      slow={SLOW: factor} if slow_from <= i <= slow_until else None) for i in (1, 2, 3, 4)]


def test_a_planted_slowdown_is_flagged_once_and_nothing_else_is():
    runs = _runs()
    shuffled = runs[:]
    random.Random(3).shuffle(shuffled)
    h = history(shuffled)  # given in any order, lined up by time
    assert h.times == [r.meta["environment"]["time"] for r in runs]
    changes = h.changes()
    assert [(c.label, i, p.verdict) for c, i, p in changes] == [("beta [deploy] on ort", 2, "slower")]
    ((_, _, point),) = changes
    assert point.ratio.low <= 1.2 <= point.ratio.high and point.ratio.low > 1.05
    assert point.ratio.rule.startswith("unpaired")  # two runs: never paired by round
    for c in h.cells:
        if c.label != "beta [deploy] on ort":
            assert not c.changes
            assert all(p.verdict in (None, "same") for p in c.points if p.status == "ok"), c.label
    # every cell keeps its median and interval per run
    point = next(c for c in h.cells if c.label == "alpha [train] on ort").points[1]
    stats = runs[1].cells[0].stats
    assert (point.median_ms, point.low_ms, point.high_ms) == (stats["median_ms"], stats["ci_low_ms"], stats["ci_high_ms"])


def test_a_slowdown_that_ends_is_flagged_both_ways():
    h = history(_runs(slow_from=3, slow_until=3))
    assert [(c.label, i, p.verdict) for c, i, p in h.changes()] == [
        ("beta [deploy] on ort", 2, "slower"), ("beta [deploy] on ort", 3, "faster")]


def test_a_change_inside_the_band_is_not_flagged():
    h = history(_runs(), threshold=0.25)  # 20% is inside ±25%
    assert not h.changes()
    verdicts = {p.verdict for c in h.cells if c.label == "beta [deploy] on ort" for p in c.points}
    assert "slower" not in verdicts


def test_runs_from_folders_failed_and_missing_cells(tmp_path):
    runs = _runs()
    runs[1].cells = [replace(c, group=None) for c in runs[1].cells if c.spec.model != "gamma"]  # gamma absent
    runs[1].groups = []
    paths = []
    for i, run in enumerate(runs):
        paths.append(run.save(tmp_path / f"2026010{i + 1}-run" / "results.json").parent)
    h = history(paths[::-1])
    assert h.names == [p.name for p in paths]
    gamma = next(c for c in h.cells if c.label == "gamma [train] on ort")
    assert [p.status for p in gamma.points] == ["ok", "absent", "ok", "ok"]
    assert gamma.points[2].verdict == "same"  # compared with run 1, its last measurement
    failed = next(c for c in h.cells if c.label == "delta [deploy] on ort")
    assert {p.status for p in failed.points} == {"unsupported"} and not failed.changes
    text = h.terminal_table()
    assert "▲ slower +" in text and "unsupported" in text and "—" in text
    md = h.markdown(only_changed=True)
    assert md.count("\n| beta [deploy] on ort") == 1 and "**▲ slower" in md and "alpha" not in md


def test_plot_and_page(tmp_path):
    h = history(_runs())
    png = h.plot_png(tmp_path / "history.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert h.plot_png(tmp_path / "none.png", cells=[c for c in h.cells if c.label.startswith("delta")]) is None
    page = h.write_html(tmp_path).read_text()
    assert page.count('data-changed="yes"') == 1 and page.count('data-changed="no"') == 13
    assert "▲ slower" in page and "default-src 'none'" in page


def test_rows_are_long_format():
    h = history(_runs())
    rows = h.rows()
    assert len(rows) == 14 * 4
    flagged = [r for r in rows if r["verdict"] == "slower"]
    assert len(flagged) == 1 and flagged[0]["ratio_low"] <= 1.2 <= flagged[0]["ratio_high"]
    with pytest.raises(ValueError):
        history([])
