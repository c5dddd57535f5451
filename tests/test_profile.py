"""Per-operator profiles: the unified record, each CPU backend's source, and the CLI."""

from pathlib import Path

import pytest
from _sweep import shared_sweep
from benchbench.runners import get_runner

from benchbench.cli import main
from benchbench.core.spec import QUICK, CellSpec
from benchbench.measure.profile import profile_cell, profile_run, profile_table, summarize, write_profiles
from benchbench.results.load import load_run
from benchbench.results.record import CellResult

DATA = Path(__file__).parent / "data"
TINY = f"{DATA / 'tiny.py'}:tiny"
FAST = QUICK.replace(min_count=6, min_s=0.05, max_s=0.5, warmup_min_s=0.01, cell_timeout_s=300)
BACKENDS = ("torch", "ort", "openvino", "tflite")


def test_summarize_shares_types_and_unaccounted():
    raw = {"source": "fake", "run_ms": [5.0, 6.0, 7.0],
           "ops": [{"name": "a", "type": "Conv", "time_ms": 3.0}, {"name": "b", "type": "Relu", "time_ms": 0.5},
                   {"name": "c", "type": "Conv", "time_ms": 0.5}]}
    p = summarize(raw, e2e_median_ms=5.0)
    assert p["op_sum_ms"] == pytest.approx(4.0) and p["op_count"] == 3 and p["timed"]
    assert [o["share"] for o in p["ops"]] == pytest.approx([0.75, 0.125, 0.125])
    assert list(p["by_type"]) == ["Conv", "Relu"]  # slowest type first
    assert p["by_type"]["Conv"] == {"count": 2, "time_ms": pytest.approx(3.5), "share": pytest.approx(0.875)}
    assert p["unaccounted_ms"] == pytest.approx(1.0) and p["unaccounted_share"] == pytest.approx(0.2)
    assert p["profiled_run_median_ms"] == 6.0 and p["runs"] == 3


def test_summarize_untimed_ops_keeps_counts_and_note():
    raw = {"source": "none", "note": "no profiler", "ops": [{"name": "0:CONV_2D", "type": "CONV_2D", "time_ms": None}]}
    p = summarize(raw, e2e_median_ms=2.0)
    assert not p["timed"] and p["op_sum_ms"] is None and p["unaccounted_ms"] is None
    assert p["by_type"]["CONV_2D"]["count"] == 1 and p["note"] == "no profiler"
    cell = CellResult(CellSpec("m", "deploy", "tflite"), "ok", metrics={"profile": p})
    text = profile_table(cell)
    assert "no profiler" in text and "CONV_2D" in text


def test_profiling_writes_the_run_every_so_often_and_skips_cells_profiled_already(monkeypatch):
    """results.json is written at most every ``save_every_s`` and once at the end, not after every cell (a
    reference-sized file takes seconds to write); a cell profiled ok before (a resumed run's) is left alone."""
    from benchbench.measure import profile as profile_mod

    class Run:
        saves = 0

        def __init__(self, cells):
            self.cells = cells

        def save(self):
            Run.saves += 1

    cells = [CellResult(CellSpec(f"m{i}", "deploy", "ort"), "ok") for i in range(6)]
    cells[0].metrics["profile"] = {"status": "ok", "timed": True, "op_count": 1, "op_sum_ms": 1.0, "e2e_median_ms": 1.0}
    done = []
    monkeypatch.setattr(profile_mod, "profile_cell",
                        lambda cell, config, runs: done.append(cell.spec.model) or {"status": "failed", "reason": "x"})
    profile_run(Run(cells), FAST, progress=lambda msg: None, save_every_s=3600)
    assert done == ["m1", "m2", "m3", "m4", "m5"] and Run.saves == 1  # once, at the end
    Run.saves = 0
    profile_run(Run(cells), FAST, progress=lambda msg: None, save_every_s=0)
    assert Run.saves == 5  # failed profiles are tried again; with no interval, a save after each


@pytest.fixture(scope="module")
def profiled(cache_dir, tmp_path_factory):
    """The tiny model measured on every CPU backend, profiled (3 runs) by its own measuring worker after its
    timed blocks, in two rounds (the profile follows the cell's median); once per session."""
    cells = [CellSpec(TINY, "deploy", b, input_size=(32, 32), threads=1) for b in BACKENDS]
    return shared_sweep(tmp_path_factory, "profile", cells, FAST, profile=lambda spec: 3, rounds=2)


def test_a_profile_in_the_measuring_worker_matches_one_in_a_worker_of_its_own(profiled):
    """The same ops, whichever process profiles them; the samples of the sweep never saw a profiler (the
    profile is taken after the timed blocks: every block has its samples, no block is missing)."""
    cell = next(c for c in profiled.cells if c.spec.backend == "ort")
    assert cell.ok, cell.reason
    apart = profile_cell(cell, FAST, runs=3)
    here = cell.metrics["profile"]
    assert apart["status"] == here["status"] == "ok"
    # the same kernels in the same order (ORT numbers the nodes its optimizer adds per session: names differ)
    assert [o["type"] for o in here["ops"]] == [o["type"] for o in apart["ops"]]
    assert {b["session"] for b in cell.blocks} == {1, 2} and sum(b["n"] for b in cell.blocks) == len(cell.samples_ns)
    # what the profiles cost the sweep is recorded: each profile's seconds, and their sum in meta.sweep
    took = [c.metrics["profile"]["took_s"] for c in profiled.cells if c.ok]
    assert all(t >= 0 for t in took) and sum(took) > 0
    assert profiled.meta["sweep"]["profile_s"] == pytest.approx(sum(took), abs=0.1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_cpu_backend_profiles(profiled, backend):
    ok, why = get_runner(backend).is_available()
    if not ok:
        pytest.skip(why)
    cell = next(c for c in profiled.cells if c.spec.backend == backend)
    assert cell.ok, cell.reason
    p = cell.metrics["profile"]
    assert p["status"] == "ok", p
    assert p["op_count"] > 0 and p["e2e_median_ms"] == cell.median_ms
    if backend == "tflite":  # LiteRT's Python API has no per-op timer: the ops come back untimed, said plainly
        assert not p["timed"] and "no per-op" in p["note"].lower()
    else:
        assert p["timed"] and p["op_sum_ms"] > 0 and p["runs"] == 3
        assert sum(o["share"] for o in p["ops"]) == pytest.approx(1.0)
        assert "unaccounted" in profile_table(cell)


def test_profile_is_stored_and_written(profiled, tmp_path):
    path = write_profiles(profiled, tmp_path / "profile.md")
    text = path.read_text()
    assert text.count("## ") == sum(1 for c in profiled.cells if c.ok)
    again = load_run(profiled.path)  # the profile lives in the run's JSON
    assert all(c.metrics.get("profile") for c in again.cells if c.ok)


def test_cli_profile(cache_dir, tmp_path, capsys):
    code = main(["profile", "--model", TINY, "--backend", "ort", "--variant", "deploy", "--input-size", "32",
                 "--threads", "1", "--quick", "--max-time", "0.3", "--profile-runs", "2", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "per-op sum" in out and "unaccounted" in out
    assert list(tmp_path.glob("*/profile.md"))
    (results,) = tmp_path.glob("*/results.json")
    recorded = load_run(results).meta["profile"]  # the profiling's time, beside the sweep's
    assert recorded["cells"] == 1 and recorded["wall_s"] >= 0
    from benchbench.results.journal import read_journal

    assert read_journal(results.with_name("cells.jsonl")).meta["profile"] == recorded  # the journal holds it too
