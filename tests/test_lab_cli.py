"""``benchbench lab``: the design's cells in anchored lockstep blocks, a run folder like ``run`` with lab.json and
lab.md, ``--resume`` after a kill, and one-line errors. The fit itself has planted-truth tests in test_lab.py."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from _sweeping import groups_in, wait_for

from benchbench.cli import main
from benchbench.cli.cells import lab_cells
from benchbench.cli.parser import build_parser
from benchbench.core.labpoints import ANCHOR_NAME, BLOCK_POINTS, DESIGN, DESIGN_QUICK
from benchbench.measure.sweep import comparison_groups
from benchbench.processes.manager import module_command
from benchbench.results.journal import read_journal

FUSION = Path(__file__).parents[1] / "reports" / "lab" / "fusion.json"


def test_the_shipped_design_is_the_one_selected_on_every_backend():
    design = json.loads(FUSION.read_text())["design"]
    assert list(DESIGN) == design["joint"]["names"] and list(DESIGN_QUICK) == design["joint_quick"]["names"]
    for name in ("joint", "joint_quick"):  # the bound holds on each backend's executed graph
        assert all(b["max_abs_corr"] <= design["max_abs_corr_bound"] for b in design[name]["per_backend"].values())


def test_blocks_each_lead_with_their_own_anchor_and_form_one_group_each():
    args = build_parser().parse_args(["lab", "--backend", "null", "--quick"])
    cells, names = lab_cells(args)
    blocks = -(-len(DESIGN_QUICK) // BLOCK_POINTS)
    assert names == [ANCHOR_NAME, *DESIGN_QUICK]
    assert len(cells) == len(DESIGN_QUICK) + blocks
    assert len({c.key() for c in cells}) == len(cells)  # the anchor copies are told apart by their block
    groups = comparison_groups(cells)
    assert len(groups) == blocks
    for g in groups:
        assert cells[g[0]].model == ANCHOR_NAME and len({cells[i].block for i in g}) == 1
        assert sum(cells[i].model == ANCHOR_NAME for i in g) == 1
    assert sorted(c.model for c in cells if c.model != ANCHOR_NAME) == sorted(DESIGN_QUICK)


def _env(cache_dir):
    return {**os.environ, "BENCHBENCH_CACHE": str(cache_dir)}


def _lab(out: Path, *extra: str) -> list[str]:
    return module_command("benchbench", "lab", "--backend", "null", "--sampling", "quick", "--out", str(out), *extra)


def test_a_killed_lab_run_resumes_and_writes_its_fit(cache_dir, tmp_path):
    # 5 points: two blocks (anchor + 3, anchor + 2); killed once the first block is journaled
    proc = subprocess.Popen(_lab(tmp_path, "--points", "5", "--rounds", "1"),  # one round: kept cells are final stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(cache_dir))
    wait_for(lambda: groups_in(tmp_path) >= 1, proc)
    proc.kill()
    proc.wait(30)
    (folder,) = tmp_path.glob("*_lab_null")
    kept = read_journal(folder / "cells.jsonl")
    if len(kept.cells) == 7:
        pytest.fail("the run finished before the kill: nothing left to resume")
    resumed = subprocess.run(module_command("benchbench", "lab", "--resume", str(folder)), capture_output=True,
                             text=True, env=_env(cache_dir), timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-1500:]
    doc = json.loads((folder / "results.json").read_text())
    assert len(doc["cells"]) == 7 and all(c["status"] == "ok" for c in doc["cells"])
    assert sorted(c["spec"]["block"] for c in doc["cells"] if c["spec"]["model"] == ANCHOR_NAME) == [0, 1]
    for cell in kept.cells:  # the cells measured before the kill are kept, not measured again
        (same,) = [c for c in doc["cells"] if c["spec"] == cell.spec.to_dict()]
        assert same["samples_ns"] == cell.samples_ns
    lab = json.loads((folder / "lab.json").read_text())
    assert lab["backends"] == {}  # the null backend executes no graph: nothing to fit, and lab.md says so
    assert "no backend has enough lab points" in (folder / "lab.md").read_text()
    assert (folder / "report.md").exists() and "wrote" in resumed.stdout


def test_lab_mistakes_are_one_line(cache_dir, tmp_path, capsys):
    assert main(["lab", "--backend", "onnxrt", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "onnxrt" in err[0] and "ort" in err[0]  # a close match is suggested
    assert main(["lab", "--backend", "null", "--zoo", str(tmp_path / "missing.json"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.json" in err[0]
    assert not list(tmp_path.glob("*_lab_*"))  # a bad --zoo costs no sweep and leaves no folder


@pytest.mark.parametrize("int8", [False, True])
def test_lab_json_recovers_a_planted_per_op_cost_through_the_blocks_despite_drift(int8):
    """Planted truth, through the command's own path (cells → lab records → fit): latency = 20 µs + 5 µs per
    executed op + FLOPs at 100 GFLOP/s + bytes at 20 GB/s, and each block runs on a machine slowed by its own
    factor (drift between blocks, up to 1.6x). The anchor in each block cancels the drift: the per-op cost is
    recovered within its interval, and the design's bound holds on the records."""
    from _synthetic import timed_cell

    from benchbench.analysis.lab_design import analytic_counts
    from benchbench.cli.lab import lab_json
    from benchbench.core.labpoints import cache_sizes, parse_name
    from benchbench.results.record import RunResult

    caches = cache_sizes()

    def truth_ms(name: str) -> float:
        a = analytic_counts(parse_name(name), caches)
        return 0.020 + 0.005 * a["ops"] + a["flops"] / 100e9 * 1e3 + a["bytes"] / 20e9 * 1e3

    args = build_parser().parse_args(["lab", "--backend", "null", "--quick", *(["--int8"] if int8 else [])])
    specs, _ = lab_cells(args)
    assert {s.variant for s in specs} == {"int8" if int8 else "deploy"}
    drift = {b: 1.0 + 0.2 * b for b in range(len(specs))}
    cells = []
    for i, spec in enumerate(specs):
        a = analytic_counts(parse_name(spec.model), caches)
        cell = timed_cell(spec.model, spec.variant, "ort", truth_ms(spec.model) * drift[spec.block], jitter=0.002, seed=i,
                          group=spec.block, family="lab", flops=a["flops"], ops=a["ops"])
        cell.spec = spec.__class__(**{**spec.__dict__, "backend": "ort"})
        cells.append(cell)
    out = lab_json(RunResult(meta={}, cells=cells), reps=200)
    assert list(out["backends"]) == ["ort int8" if int8 else "ort"]  # an int8 lab's fit is named as the claim's
    r = out["backends"]["ort int8" if int8 else "ort"]
    assert r["reading"] == "anchor_relative" and r["n_points"] == len(DESIGN_QUICK)
    # anchor-relative latencies are in the anchor's typical milliseconds, i.e. times the drift's median factor
    scale = r["anchor_ms"] / truth_ms(ANCHOR_NAME)
    assert r["per_op_us_low"] <= 5.0 * scale <= r["per_op_us_high"]
    assert r["per_op_us"] == pytest.approx(5.0 * scale, rel=0.25)
    assert r["design_max_abs_corr"] <= 0.2 and "zoo_within_10pct" not in r  # no zoo given


def test_the_claims_lab_comparison_says_where_the_zoo_and_the_lab_agree():
    from benchbench.analysis.claim_lab import lab_comparison

    def claim(ci_traffic):
        return {"per_backend": {"ort": {"effect": {"effect": 0.05, "cr2": {"ci95": [0.01, 0.09]},
                                                   "with_traffic": {"effect": 0.02, "cr2": {"ci95": ci_traffic}}}}}}

    def lab(ci_causal):
        return {"backends": {"ort": {"per_op_us": 1.0, "per_op_us_low": 0.5, "per_op_us_high": 1.5,
                                     "ops_doubling": {"causal": {"effect": 0.01, "ci95": ci_causal}}}}}

    cases = {((-0.1, 0.1), (-0.01, 0.02)): "neither resolves an effect",
             ((0.01, 0.1), (0.001, 0.02)): "they agree: both above zero",
             ((-0.1, 0.1), (0.001, 0.02)): "only the lab resolves an effect (above zero)",
             ((0.01, 0.1), (-0.01, 0.02)): "only the zoo resolves an effect (above zero)",
             ((-0.1, -0.01), (0.001, 0.02)): "they disagree in sign"}
    for (zoo_ci, lab_ci), said in cases.items():
        c = lab_comparison(claim(list(zoo_ci)), lab(list(lab_ci)))["ort"]
        assert c["agreement"] == said, (zoo_ci, lab_ci)
        assert c["zoo"]["ci95"] == [0.01, 0.09] and c["lab_per_op_us"] == [1.0, 0.5, 1.5]


def test_claim_with_a_lab_run_adds_the_lab_beside_the_zoo(tmp_path, capsys):
    root = Path(__file__).parents[1]
    ref, lab = root / "reports" / "reference" / "results.json", root / "reports" / "lab" / "ort_quick_lab.json"
    assert main(["claim", str(ref), "--lab", str(lab), "--out", str(tmp_path), "--html"]) == 0
    (folder,) = tmp_path.glob("*_claim")
    md = (folder / "claim.md").read_text()
    assert "## The fragmentation lab beside the zoo" in md and "| ort " in md
    doc = json.loads((folder / "claim.json").read_text())
    assert set(doc["lab"]["comparison"]) == set(json.loads(lab.read_text())["backends"])
    page = (folder / "claim.html").read_text()  # the page shows the lab too, with the same per-op cost as claim.md
    assert "The fragmentation lab beside the zoo" in page and 'id="lab-vs-zoo"' in page and 'id="lab-fit"' in page
    cost = doc["lab"]["comparison"]["ort"]["lab_per_op_us"]
    cell = f"{cost[0]:.3g} [{cost[1]:.3g}, {cost[2]:.3g}]"
    assert cell in md and cell in page
    # a float lab and an int8 one side by side; one backend's fit from two files is refused
    int8_lab = json.loads(lab.read_text())
    int8_lab["backends"] = {f"{b} int8": fit for b, fit in int8_lab["backends"].items()}
    (tmp_path / "int8_lab.json").write_text(json.dumps(int8_lab))
    assert main(["claim", str(ref), "--lab", str(lab), "--lab", str(tmp_path / "int8_lab.json"),
                 "--out", str(tmp_path / "both")]) == 0
    (both,) = (tmp_path / "both").glob("*_claim")
    merged = json.loads((both / "claim.json").read_text())["lab"]
    assert set(merged["fit"]["backends"]) == {"ort", "ort int8"} and "int8_lab.json" in merged["source"]
    capsys.readouterr()
    assert main(["claim", str(ref), "--lab", str(lab), "--lab", str(lab), "--out", str(tmp_path / "twice")]) == 2
    assert "two lab files fit ort" in capsys.readouterr().err
    bad = tmp_path / "not_lab.json"
    bad.write_text('{"backends": {"ort": {}}}')
    capsys.readouterr()
    assert main(["claim", str(ref), "--lab", str(bad), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a lab.json" in err[0]


def test_the_reference_runs_the_lab_in_its_own_folder_resumable_as_a_lab(cache_dir, tmp_path, monkeypatch):
    """``claim --reference``'s lab step, on the null backend with 3 design points: the full design's settings (the
    reference sampling in rounds, profiles), a run folder under the reference's ``lab/`` with lab.json and lab.md,
    and a stored command line that ``benchbench lab --resume`` reads as a lab run."""
    import argparse

    from benchbench.cli.claim import reference_lab
    from benchbench.cli.lab import reference_lab_args
    from benchbench.cli.resume import resumed_args

    monkeypatch.setenv("BENCHBENCH_CACHE", str(cache_dir))
    full = reference_lab_args(tmp_path / "lab", "torch,ort,tflite,openvino")
    assert full.sampling == "reference" and full.rounds == 3 and full.points is None  # the lab's defaults
    assert full.profile and full.quick is False and full.command == "lab"
    code, rel, lab = reference_lab(argparse.Namespace(threads=1), None, tmp_path, backends="null", points=3)
    assert code == 0 and rel.parts[0] == "lab" and (tmp_path / rel).is_file() and lab["backends"] == {}
    folder = (tmp_path / rel).parent
    doc = json.loads((folder / "results.json").read_text())
    assert len(doc["cells"]) == 4 and all(c["status"] == "ok" for c in doc["cells"])  # the anchor and 3 points
    assert doc["meta"]["argv"][1] == "lab"
    stored, cells, _, _ = resumed_args(build_parser().parse_args(["lab", "--resume", str(folder)]))
    assert stored.rounds == 3 and stored.sampling == "reference" and len(cells) == 4
