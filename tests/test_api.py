"""The Python API: benchbench.load / compare / history, Results and its DataFrame, and a light import."""

import subprocess
import sys
from pathlib import Path

import pytest
from _synthetic import HOSTILE_REASON, small_run

import benchbench
from benchbench.results.load import SchemaError
from benchbench.results.record import RunResult
from benchbench.results.views import speedups

REFERENCE = Path(__file__).parents[1] / "reports" / "reference"


def test_import_benchbench_stays_light():
    code = ("import sys, benchbench\n"
            "heavy = sorted(m for m in ('pandas', 'numpy', 'torch', 'scipy', 'matplotlib', 'benchbench.api') if m in sys.modules)\n"
            "print(heavy)\n"
            "print(callable(benchbench.load), 'load' in dir(benchbench), 'pandas' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["[]", "True True False"]
    with pytest.raises(AttributeError):
        getattr(benchbench, "no_such_thing")


def test_load_a_folder_a_file_or_a_run(tmp_path):
    run = small_run()
    path = run.save(tmp_path / "20260101-000000_x" / "results.json")
    for source in (path.parent, path, run, benchbench.Results(run)):
        res = benchbench.load(source)
        assert len(res) == 14 and res.cells[0].spec.model == "alpha"
        assert res.meta["environment"]["time"] == "2026-01-01T00:00:00+00:00"
    assert "14 cells, 12 ok" in repr(benchbench.load(path))
    with pytest.raises(SchemaError):
        benchbench.load(tmp_path)  # neither a journal nor a results.json
    with pytest.raises(TypeError):
        benchbench.Results("results.json")


def test_to_pandas_one_row_per_cell():
    pytest.importorskip("pandas")
    run = small_run()
    df = benchbench.Results(run).to_pandas()
    assert len(df) == len(run.cells)
    for col in ("label", "model", "variant", "backend", "batch", "threads", "seed", "status", "reason", "median_ms",
                "ci_low_ms", "ci_high_ms", "speedup", "speedup_low", "speedup_high", "flops", "metric_executed_ops"):
        assert col in df.columns, col
    ok = df[df.status == "ok"]
    assert (ok.ci_low_ms <= ok.median_ms).all() and (ok.median_ms <= ok.ci_high_ms).all()
    deploy = df[(df.variant == "deploy") & (df.status == "ok")].set_index(["model", "backend"])
    for key, est in speedups(run).items():
        row = deploy.loc[(key[0], key[2])]  # the deploy cell's own key: (model, variant, backend, ...)
        assert (row.speedup, row.speedup_low, row.speedup_high) == pytest.approx((est.value, est.low, est.high))
    assert df[df.variant == "train"].speedup.isna().all()
    failed = df[df.status != "ok"]
    assert list(failed.reason) == [HOSTILE_REASON, "worker died (exit code -9)"] and failed.median_ms.isna().all()


def test_reference_loads():
    """The published folder loads through the API (its journal) with every cell its results.json holds."""
    import json

    raw = json.loads((REFERENCE / "results.json").read_text())["cells"]
    res = benchbench.load(REFERENCE)
    assert len(res) == len(raw) > 0
    assert sum(c.ok for c in res.cells) == sum(c["status"] == "ok" for c in raw) > 0


def test_a_clear_error_without_pandas(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    with pytest.raises(ImportError, match=r"benchbench\[pandas\]"):
        benchbench.Results(small_run()).to_pandas()
    with pytest.raises(ImportError, match=r"benchbench\[pandas\]"):
        benchbench.compare(small_run(), small_run(seed=1))


def test_compare_two_runs_is_unpaired_and_finds_the_planted_change():
    pytest.importorskip("pandas")
    a = small_run(seed=1)
    b = small_run(seed=2, slow={("beta", "deploy", "ort"): 1.2})
    df = benchbench.compare(a, b).set_index("cell")
    assert len(df) == 14
    assert df.loc["beta [deploy] on ort", "verdict"] == "slower"
    assert df.loc["beta [deploy] on ort", "low"] <= 1.2 <= df.loc["beta [deploy] on ort", "high"]
    assert set(df.drop("beta [deploy] on ort").verdict) == {"same", "not comparable (unsupported / unsupported)",
                                                            "not comparable (crashed / crashed)"}
    # the two runs' lockstep groups share indices, but their rounds did not run together
    assert not df.paired.dropna().any()
    assert (df.loc["alpha [train] on ort", "a_median_ms"], df.loc["alpha [train] on ort", "b_median_ms"]) == (
        a.cells[0].median_ms, b.cells[0].median_ms)


def test_compare_pivot_is_paired_within_a_run():
    pytest.importorskip("pandas")
    df = benchbench.compare(small_run(), pivot="variant")
    assert set(df.pair) == {"train → deploy"} and len(df) == 8  # delta: a deploy cell only, twice
    measured = df[df.ratio.notna()]
    assert len(measured) == 6 and measured.paired.all()
    assert (measured.verdict == "faster").all()  # deploy is planted 20% faster
    assert ((measured.low <= 0.8) & (0.8 <= measured.high)).all()
    with pytest.raises(ValueError):
        benchbench.compare(small_run(), small_run(), pivot="variant")
    with pytest.raises(ValueError):
        benchbench.compare(small_run())


def test_history_from_the_api():
    pytest.importorskip("pandas")
    runs = [small_run(time=f"2026-01-0{i}T00:00:00+00:00", seed=i) for i in (1, 2)]
    h = benchbench.history(runs)
    df = h.to_pandas()
    assert len(df) == 28 and set(df.run) == {"run 1", "run 2"}
    assert isinstance(h.runs[0], RunResult)
