"""The result schema: round trips, statistics recomputed from samples, old files still load."""

import json
import math
import os
import re
from pathlib import Path

import pytest

from benchbench.core.spec import CellSpec
from benchbench.core.stats import summarize
from benchbench.results.load import SchemaError, load_run
from benchbench.results.record import SCHEMA_VERSION, CellResult, RunResult

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


# --- Validation on load: every bad file is one SchemaError line that names the file and the problem. ---

def _v1() -> dict:
    return json.loads((DATA / "result_v1.json").read_text())


def _edit(change):
    doc = _v1()
    change(doc)
    return json.dumps(doc)


BAD_FILES = {
    "wrong_top_level": (json.dumps([1, 2]), "is not a benchbench result file"),
    "cells_not_a_list": (_edit(lambda d: d.__setitem__("cells", {})), r"cells: Input should be a valid list"),
    "spec_missing": (_edit(lambda d: d["cells"][0].pop("spec")), r"cells\[0\]\.spec: Field required"),
    "batch_as_text": (_edit(lambda d: d["cells"][0]["spec"].__setitem__("batch", "1")),
                      r"cells\[0\]\.spec\.batch: Input should be a valid integer \(got '1'\)"),
    "unknown_status": (_edit(lambda d: d["cells"][1].__setitem__("status", "great")), r"cells\[1\]\.status: Input should be 'ok'"),
    "meta_not_a_dict": (_edit(lambda d: d.__setitem__("meta", [])), r"meta: Input should be a valid dictionary$"),
    "flops_as_text": (_edit(lambda d: d["cells"][0]["model"].__setitem__("flops", "many")),
                      r"cells\[0\]\.model\.flops: Input should be a valid number"),
    "ok_cell_without_samples": (_edit(lambda d: d["cells"][0].__setitem__("samples_ns", [])),
                                r"cells\[0\]: an ok cell has no samples_ns"),
    "zero_sample": (_edit(lambda d: d["cells"][0]["samples_ns"].__setitem__(2, 0)),
                    r"cells\[0\]\.samples_ns\[2\]: Input should be greater than 0 \(got 0\)"),
    "negative_sample": (_edit(lambda d: d["cells"][1]["samples_ns"].__setitem__(0, -5)),
                        r"cells\[1\]\.samples_ns\[0\]: Input should be greater than 0 \(got -5\)"),
    "huge_sample": (_edit(lambda d: d["cells"][0]["samples_ns"].__setitem__(0, 10**17)),
                    r"cells\[0\]\.samples_ns\[0\]: Input should be less than or equal to 1000000000000000"),
    "nan_sample": (_edit(lambda d: d["cells"][0]["samples_ns"].__setitem__(0, float("nan"))),
                   r"cells\[0\]\.samples_ns\[0\]: Input should be a finite number \(got nan\)"),
    "inf_sample": (_edit(lambda d: d["cells"][0]["samples_ns"].__setitem__(0, float("inf"))),
                   r"samples_ns\[0\]: Input should be a finite number \(got inf\)"),
    "negative_inf_sample": (_edit(lambda d: d["cells"][0]["samples_ns"].__setitem__(0, float("-inf"))),
                            r"samples_ns\[0\]: Input should be a finite number \(got -inf\)"),
    "bad_round_sample": (_edit(lambda d: d["cells"][0].__setitem__("rounds", [{"round": 1, "status": "ok",
                                                                              "samples_ns": [-1]}])),
                         r"cells\[0\]\.rounds\[0\]\.samples_ns\[0\]: Input should be greater than 0"),
    "float_literal_beyond_double": (_edit(lambda d: None).replace("279595", "1e400", 1), "number too large: 1e400"),
    "integer_beyond_int64": (_edit(lambda d: None).replace("279595", "9" * 30, 1), "number too large: 9999"),
    "integer_beyond_python_limit": (_edit(lambda d: None).replace("279595", "9" * 5000, 1), r"number too large: 9+\.\.\."),
    "version_as_text": (_edit(lambda d: d.__setitem__("schema_version", "1")), "schema_version is '1', not a version number"),
    "version_as_list": (_edit(lambda d: d.__setitem__("schema_version", [1])), r"schema_version is \[1\]"),
    "truncated": (_edit(lambda d: None)[:500], r"is not JSON \(Unterminated string starting at: line 1 column \d+\)"),
    "empty": ("", r"is not JSON \(Expecting value: line 1 column 1\)"),
    "nested_too_deeply": ("[" * 100_000, "nested too deeply"),
    "binary": (bytes(range(256)), r"is not JSON \(binary data, not UTF-8 text\)"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_result_files_are_one_line_schema_errors(tmp_path, name):
    content, expected = BAD_FILES[name]
    path = tmp_path / f"{name}.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(SchemaError) as err:
        load_run(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    assert re.search(expected, message), message


def test_missing_directory_and_unreadable_files(tmp_path, monkeypatch):
    with pytest.raises(SchemaError, match=f"no such result file: {tmp_path / 'nope.json'}$"):
        load_run(tmp_path / "nope.json")
    with pytest.raises(SchemaError, match=f"{tmp_path} is a directory, not a result file$"):
        load_run(tmp_path)
    path = tmp_path / "r.json"
    path.write_text((DATA / "result_v1.json").read_text())

    real_open = os.open

    def denied(name, *args, **kwargs):
        if os.fspath(name) == str(path):
            raise PermissionError(13, "Permission denied")
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)  # the real chmod test below is skipped for root
    with pytest.raises(SchemaError, match=f"cannot read {path}: permission denied$"):
        load_run(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file of mode 000")
def test_unreadable_file_mode_000(tmp_path):
    path = tmp_path / "r.json"
    path.write_text((DATA / "result_v1.json").read_text())
    path.chmod(0)
    with pytest.raises(SchemaError, match="permission denied"):
        load_run(path)


def test_extra_keys_are_allowed_but_not_in_a_spec(tmp_path):
    """Forward compatibility within a version: more metadata loads; a spec CellSpec cannot hold does not."""
    doc = _v1()
    doc["meta"]["new_field"] = {"x": 1}
    doc["cells"][0]["new_field"] = [1, 2]
    (tmp_path / "extra.json").write_text(json.dumps(doc))
    assert load_run(tmp_path / "extra.json").cells[0].ok
    doc["cells"][0]["spec"]["new_field"] = 1
    (tmp_path / "spec.json").write_text(json.dumps(doc))
    with pytest.raises(SchemaError, match=r"cells\[0\]\.spec\.new_field: Extra inputs are not permitted"):
        load_run(tmp_path / "spec.json")


# --- Strict JSON out: no NaN or Infinity; null with a reason beside it. ---

def _strict(path: Path) -> dict:
    def refuse(token):
        raise AssertionError(f"{path} holds {token}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_saved_results_are_strict_json_with_reasons_beside_nulls(tmp_path):
    zero = CellResult(CellSpec("m", "deploy", "ort"), "ok", samples_ns=[0, 0, 0])  # a clock too coarse to tick
    zero.recompute()
    assert zero.stats["ci_rel"] == math.inf  # what summarize gives (stats.py is not ours to change)
    odd = CellResult(CellSpec("m", "train", "ort"), "ok", samples_ns=[1000, 2000, 3000],
                     parity={"checked": True, "cosine": math.nan},
                     metrics={"peak_share": -math.inf, "series": [1.0, math.nan]})
    run = RunResult(meta={"settings": {}, "roofline": {"x": math.inf}}, cells=[zero, odd])
    doc = _strict(run.save(tmp_path / "r.json"))
    stats = doc["cells"][0]["stats"]
    assert stats["ci_rel"] is None and stats["ci_rel_reason"] == "not a finite number (inf)"
    assert stats["robust_cv"] is None and "robust_cv_reason" in stats
    assert doc["cells"][1]["parity"] == {"checked": True, "cosine": None, "cosine_reason": "not a finite number (nan)"}
    assert doc["cells"][1]["metrics"]["peak_share_reason"] == "not a finite number (-inf)"
    assert doc["cells"][1]["metrics"]["series"] == [1.0, None]  # in a list there is no room for a reason
    assert doc["meta"]["roofline"] == {"x": None, "x_reason": "not a finite number (inf)"}
    assert run.cells[1].parity["cosine"] != run.cells[1].parity["cosine"]  # the run in memory is not changed


def test_old_files_with_nan_outside_samples_still_load_as_null(tmp_path):
    text = (DATA / "result_v1.json").read_text().replace('"metrics": {}', '"metrics": {"peak_share": NaN}', 1)
    (tmp_path / "old.json").write_text(text)
    cell = load_run(tmp_path / "old.json").cells[0]
    assert cell.metrics["peak_share"] is None and "peak_share_reason" in cell.metrics
