"""The result schema: round trips, statistics recomputed from samples, old files still load."""

import json
import os
from pathlib import Path

import pytest

from benchbench.result import SCHEMA_VERSION, CellResult, RunResult, SchemaError, load_run
from benchbench.spec import CellSpec
from benchbench.stats import summarize

DATA = Path(__file__).parent / "data"


def test_round_trip_and_stats_recomputed_from_samples(tmp_path):
    samples = [1_000_000 + 1000 * i for i in range(50)]
    cell = CellResult(CellSpec("m", "deploy", "ort", input_size=(64, 64), options=(("a", "b"),)), "ok",
                      samples_ns=samples, stats={"median_ms": 999.0})  # a stale, wrong statistic
    run = RunResult(meta={"settings": {}}, cells=[cell, CellResult(CellSpec("m", "train", "ort"), "crashed", "boom")])
    run.save(tmp_path / "r.json")
    loaded = load_run(tmp_path / "r.json")
    assert loaded.cells[0].spec == cell.spec
    assert loaded.cells[0].stats["median_ms"] == pytest.approx(1.0245)  # from the samples, not the stale field
    assert loaded.cells[1].status == "crashed" and loaded.cells[1].reason == "boom"
    mask = os.umask(0o022)
    try:
        run.save(tmp_path / "r2.json")
    finally:
        os.umask(mask)
    assert (tmp_path / "r2.json").stat().st_mode & 0o777 == 0o644  # not mkstemp's owner-only 0600


def test_v1_fixture_still_loads():
    """A file written by schema v1. When the schema changes, keep this file and add a migration."""
    run = load_run(DATA / "result_v1.json")
    assert run.cells and all(c.spec.model for c in run.cells)
    ok = [c for c in run.cells if c.ok]
    assert ok and all(c.stats["count"] == len(c.samples_ns) for c in ok)


def test_unknown_version_and_foreign_files_are_refused(tmp_path):
    doc = json.loads((DATA / "result_v1.json").read_text())
    doc["schema_version"] = SCHEMA_VERSION + 1
    (tmp_path / "future.json").write_text(json.dumps(doc))
    with pytest.raises(SchemaError, match="schema version"):
        load_run(tmp_path / "future.json")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(SchemaError, match="not a benchbench result"):
        load_run(tmp_path / "other.json")


def test_summary_statistics():
    s = summarize([1e6] * 9 + [1e7])
    assert s["median_ms"] == 1.0 and s["min_ms"] == 1.0 and s["max_ms"] == 10.0
    assert s["ci_low_ms"] <= 1.0 <= s["ci_high_ms"]
    assert s["mean_ms"] == pytest.approx(1.9)
    noisy = summarize([1e6, 2e6] * 20)
    assert noisy["noisy"]
