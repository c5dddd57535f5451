"""The claim analysis computes its verdicts from data: planted truths in both directions come out."""

import numpy as np
import pytest

from benchbench.analysis.claim import analyze
from benchbench.analysis.claim_report import claim_markdown
from benchbench.analysis.guidelines import verdict
from benchbench.cli import main
from benchbench.core.spec import CellSpec
from benchbench.results.record import CellResult, RunResult


def _cell(model, family, backend, median_ms, flops, ops, mac, variant="deploy", rng=None):
    rng = rng or np.random.default_rng(0)
    samples = (median_ms * 1e6 * (1 + 0.01 * rng.standard_normal(30))).astype(int).tolist()
    cell = CellResult(CellSpec(model, variant, backend), "ok", samples_ns=samples,
                      model={"family": family, "flops": flops, "params": flops // 100},
                      metrics={"executed_ops": ops, "graph_ops": ops, "mac_bytes": mac, "dag_width": 1,
                               "joins": ops // 4, "element_ops": flops // 50})
    cell.recompute()
    return cell


def _population(latency_from: str, backend="ort", seed=0):
    """Six families of five models; latency is planted as a function of ops or of FLOPs."""
    rng = np.random.default_rng(seed)
    cells = []
    for f in range(6):
        for m in range(5):
            flops = int(10 ** rng.uniform(8, 10))
            ops = int(10 ** rng.uniform(1, 3))
            mac = int(10 ** rng.uniform(6, 8))
            lat = (0.05 * ops if latency_from == "ops" else flops / 1e8) * np.exp(0.03 * rng.standard_normal())
            cells.append(_cell(f"fam{f}_m{m}", f"fam{f}", backend, lat, flops, ops, mac, rng=rng))
    return RunResult(meta={}, cells=cells)


def test_verdict_says_yes_when_latency_follows_ops():
    a = analyze([_population("ops")])["per_backend"]["ort"]
    assert a["forms"]["additive"]["median_ape"] < a["forms"]["flops"]["median_ape"]
    assert a["verdict"].startswith("ort: yes")
    assert a["effect"]["effect_ci95"][0] > 0.5  # planted: latency proportional to ops, +100% per doubling
    corr = {c["predictor"]: c for c in a["correlations"]}
    assert corr["executed_ops"]["spearman"] > 0.9 and abs(corr["flops"]["spearman"]) < 0.5
    part = {p["predictor"]: p for p in a["partial"]}
    assert part["executed_ops"]["partial_spearman"] > 0.9 and part["executed_ops"]["p"] < 1e-6


def test_the_report_reads_the_verdict_every_way_beside_the_model_with_traffic(tmp_path):
    analysis = analyze([_population("ops")])
    e = analysis["per_backend"]["ort"]["effect"]
    assert {"cr1", "cr2", "wild_bootstrap", "lofo", "with_traffic"} <= set(e)
    text = claim_markdown(analysis, tmp_path)
    section = text[text.index("## ort"):]
    assert "| log FLOPs + log ops (the verdict's)" in section and "| log FLOPs + log ops + log traffic" in section
    assert "The zoo here: 30 models in 6 families, each in its deploy form, on 1 backend." in text


def test_verdict_says_no_when_latency_follows_flops():
    a = analyze([_population("flops", backend="tflite")])["per_backend"]["tflite"]
    assert a["verdict"].startswith("tflite: no, executed ops make no practical difference")
    assert a["forms"]["flops"]["within_10pct"] > 0.8


def test_guideline_verdicts_need_an_interval_clear_of_one():
    # the speed of the paper's best row relative to its worst row: (value, low, high)
    assert verdict((2.0, 1.9, 2.1)) == "holds"
    assert verdict((0.5, 0.45, 0.55)) == "reversed"
    assert verdict((1.1, 0.98, 1.2)) == "not resolved"
    assert verdict(None) == "not measured"


def _lockstep_cells(models, latencies, drift, group, backend="ort", rounds=20, seed=0, noise=0.005):
    """Cells measured in one lockstep group on a drifting machine: each round's blocks share a slowdown;
    every inference varies by ``noise`` (relative sd)."""
    rng = np.random.default_rng(seed)
    slow = [1 + drift * np.sin(r / 3) ** 2 for r in range(rounds)]
    cells = []
    for model, lat in zip(models, latencies):
        samples, blocks = [], []
        for r in range(rounds):
            block = (lat * slow[r] * 1e6 * (1 + noise * rng.standard_normal(5))).astype(int).tolist()
            samples += block
            blocks.append({"n": 5, "round": r, "session": 1, "wait_share": 0.0, "run_ns": 1, "wait_ns": 0})
        c = CellResult(CellSpec(model, "deploy", backend), "ok", samples_ns=samples, blocks=blocks, group=group,
                       model={"family": "guideline_g4", "flops": 10**8})
        c.recompute()
        cells.append(c)
    return cells


def test_guideline_rows_in_lockstep_resolve_what_unpaired_intervals_cannot():
    """Planted truth: no-ReLU rows 3% faster on a machine drifting by 40%. Each cell's own interval is
    wide (the drift), so unpaired the table is not resolved; paired per round, it holds."""
    models = [f"g4_{r}_x1" for r in ("relu_shortcut", "relu_noshortcut", "norelu_shortcut", "norelu_noshortcut")]
    paired = _lockstep_cells(models, [1.0, 0.99, 0.98, 0.97], drift=0.4, group=0)
    g4 = next(g for g in analyze([RunResult(meta={}, cells=paired)])["guidelines"] if g["table"] == "G4")
    assert g4["verdict"] == "holds" and all(r["paired"] for r in g4["rows"])
    speed = g4["rows"][3]["ours"]
    # paired: the interval is the rounds' plus the between-process term (±1.27%), still clear of 1
    assert speed[1] <= 1 / 0.97 <= speed[2] and speed[2] - speed[1] < 0.04 and speed[1] > 1
    apart = paired
    for c in apart:
        c.group = None  # the same samples, as if measured apart
    g4 = next(g for g in analyze([RunResult(meta={}, cells=apart)])["guidelines"] if g["table"] == "G4")
    assert g4["verdict"] == "not resolved" and not any(r["paired"] for r in g4["rows"])


def test_guideline_tables_and_report_with_plots(tmp_path):
    rng = np.random.default_rng(1)
    run = _population("ops")
    # G1 on ort: the 1:1 row fastest, as the paper says, except one planted reversal at x2.
    for i, ratio in enumerate((1, 2, 6, 12)):
        for mult in (1, 2):
            lat = (1.0 + 0.2 * i) if mult == 1 else (2.0 - 0.2 * i)
            run.cells.append(_cell(f"g1_ratio{ratio}_x{mult}", "guideline_g1", "ort", lat, 10**8, 20, 10**6, rng=rng))
    analysis = analyze([run])
    g1 = {g["multiplier"]: g for g in analysis["guidelines"] if g["table"] == "G1"}
    assert g1[1]["verdict"] == "holds" and g1[2]["verdict"] == "reversed"
    first, last = g1[1]["rows"][0]["ours"], g1[1]["rows"][3]["ours"]
    assert first[0] == pytest.approx(1.0) and last[0] == pytest.approx(1 / 1.6, rel=0.03)
    assert g1[1]["rows"][3]["arm"] == pytest.approx(57.6 / 76.2)
    text = claim_markdown(analysis, tmp_path)
    assert "G1: equal channel width" in text and "**reversed**" in text
    for plot in ("latency_vs_flops", "guidelines", "overhead_curve", "held_out_errors"):
        assert f"(plots/{plot}.png)" in text
        assert (tmp_path / "plots" / f"{plot}.png").stat().st_size > 10_000
    assert "## Threats to validity" in text and "## Which graph each metric describes" in text


def test_family_ratios_and_train_deploy_plot(tmp_path):
    rng = np.random.default_rng(2)
    cells = []
    for m in range(3):
        cells.append(_cell(f"rep{m}", "rep", "ort", 2.0, 2 * 10**9, 40, 10**7, "train", rng))
        cells.append(_cell(f"rep{m}", "rep", "ort", 1.0, 10**9, 20, 10**7, "deploy", rng))
    analysis = analyze([RunResult(meta={}, cells=cells)])
    (ratio,) = analysis["family_ratios"]
    assert ratio["flops_ratio"] == pytest.approx(0.5) and ratio["latency_ratio"] == pytest.approx(0.5, rel=0.03)
    claim_markdown(analysis, tmp_path)
    assert (tmp_path / "plots" / "pair_ratios.png").stat().st_size > 10_000


def test_compare_pivot_and_fail_above(tmp_path, capsys):
    rng = np.random.default_rng(3)
    cells = [_cell("m", "f", "ort", 2.0, 10**9, 10, 10**6, "train", rng),
             _cell("m", "f", "ort", 1.0, 10**9, 10, 10**6, "deploy", rng),
             _cell("m", "f", "tflite", 3.0, 10**9, 10, 10**6, "train", rng),
             _cell("m", "f", "tflite", 3.3, 10**9, 10, 10**6, "deploy", rng)]
    path = RunResult(meta={}, cells=cells).save(tmp_path / "r.json")
    assert main(["compare", str(path), "--pivot", "variant"]) == 0
    out = capsys.readouterr().out
    assert "train → deploy" in out and "faster" in out and "slower" in out
    assert main(["compare", str(path), "--pivot", "variant", "--fail-above", "5%"]) == 1
    assert "slower by more than 5%" in capsys.readouterr().err
    assert main(["compare", str(path), "--pivot", "backend", "--baseline", "ort"]) == 0
    assert "ort → tflite" in capsys.readouterr().out
    assert main(["compare", str(path), "--pivot", "backend", "--baseline", "ov"]) == 2


def _noise_population(seed):
    run = _population("ops", seed=seed)
    rng = np.random.default_rng(seed + 100)
    for c in run.cells:  # latency depends on neither predictor
        c.samples_ns = [int(1e6 * np.exp(rng.standard_normal()))] * 30
        c.recompute()
    return run


def test_verdict_is_inconclusive_when_latency_is_noise():
    """Latency that is pure noise gives an interval holding 0 and ±5%: inconclusive, in about 95% of zoos
    (the interval's nominal coverage); the sentence says so."""
    from benchbench.analysis.correlate import observations
    from benchbench.analysis.verdict import ops_effect

    verdicts = [ops_effect(observations([_noise_population(s)]), noise_reps=0)["verdict"] for s in range(40)]
    assert verdicts.count("inconclusive") >= 34
    seed = verdicts.index("inconclusive")
    a = analyze([_noise_population(seed)])["per_backend"]["ort"]
    assert a["verdict"].startswith("ort: inconclusive"), a["verdict"]


def test_zero_is_a_value_for_correlations():
    run = _population("ops")
    for c in run.cells[:5]:
        c.metrics["joins"] = 0  # plain nets have no joins: they stay in the population
    corr = {c["predictor"]: c for c in analyze([run])["per_backend"]["ort"]["correlations"]}
    assert corr["joins"]["n"] == len(run.cells)


def test_reference_is_a_fixed_set_and_refuses_changes(capsys):
    assert main(["claim", "--reference", "--model", "resnet18"]) == 2
    assert "--reference measures a fixed set" in capsys.readouterr().err
    assert main(["claim", "--reference", "--backend", "ort"]) == 2
    capsys.readouterr()
    assert main(["claim", "--reference", "--lab", "reports/lab/full_lab.json"]) == 2  # it runs its own lab
    assert "--lab" in capsys.readouterr().err


def test_publish_reference_replaces_the_folder_and_keeps_the_run(tmp_path):
    from benchbench.cli.reference import REFERENCE_MARKER, publish_reference

    run_dir = tmp_path / "runs" / "20260101-000000_reference"
    (run_dir / "plots").mkdir(parents=True)
    (run_dir / "claim.md").write_text("new")
    (run_dir / "plots" / "a.png").write_bytes(b"png")
    dest = tmp_path / "reference"
    dest.mkdir()
    (dest / "stale.md").write_text("old")
    (dest / REFERENCE_MARKER).write_text("")  # an earlier publish made it: it may be replaced
    assert publish_reference(run_dir, dest) == dest
    assert (dest / "claim.md").read_text() == "new" and (dest / "plots" / "a.png").exists()
    assert not (dest / "stale.md").exists() and (run_dir / "claim.md").exists()
    assert (dest / REFERENCE_MARKER).exists()  # and the next publish may replace it again


def test_claim_report_ends_with_the_machine_and_sweep_time(tmp_path):
    run = _population("flops")
    run.path = tmp_path / "20260101-000000_x" / "results.json"
    run.meta = {"environment": {"cpu": {"model": "Test CPU", "physical_cores": 2}, "packages": {"onnxruntime": "9.9"}},
                "sweep": {"cells": 30, "wall_s": 600.0, "build_s": 120.0, "builds_run": 4}}
    text = claim_markdown(analyze([run]), tmp_path, [run])
    measured = text[text.index("## Measured on (20260101-000000_x, 30 cells)"):]
    assert "Test CPU, 2 physical" in measured and "onnxruntime 9.9" in measured
    assert "10.0 min for 30 cells, of which 2.0 min exporting (4 builds not in the cache)" in measured
    assert "Profiling time" not in measured and "whole command" not in measured  # not recorded: not shown
    run.meta.update(profile={"cells": 12, "wall_s": 90.0}, claim={"analysis_s": 30.0, "total_s": 900.0})
    measured = claim_markdown(analyze([run]), tmp_path, [run])
    assert "**Profiling time**: 1.5 min for 12 cells" in measured
    assert "analysis 0.5 min; the whole command 15.0 min" in measured


def test_claim_on_result_files_prints_verdicts_and_guideline_tables(tmp_path, capsys):
    rng = np.random.default_rng(4)
    run = _population("ops")
    for i, ratio in enumerate((1, 2, 6, 12)):
        run.cells.append(_cell(f"g1_ratio{ratio}_x1", "guideline_g1", "ort", 1.0 + 0.2 * i, 10**8, 20, 10**6, rng=rng))
    path = run.save(tmp_path / "r.json")
    assert main(["claim", str(path), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "ort: yes, more executed ops cost latency at equal FLOPs" in out
    assert "held out by family" in out and "additive fit" in out
    assert "### G1: equal channel width" in out and "| 1:12" in out and "ort: **holds**" in out
    assert len(list((tmp_path / "out").glob("*/claim.md"))) == 1


def test_the_reference_allocates_a_third_round_only_to_unsettled_groups_and_profiles_zoo_cells():
    import argparse

    from benchbench.cli.reference import reference_allocation
    from benchbench.cli.reference import reference_args as _reference_args
    from benchbench.measure.sweep import _wanted_rounds

    alloc = reference_allocation()
    zoo_group = [CellSpec("resnet18", v, "ort") for v in ("train", "deploy", "int8")]
    table = [CellSpec(name, "deploy", "ort") for name in ("g3_1frag_x1", "g3_2parallel_x1")]
    assert _wanted_rounds(zoo_group + table, [[0, 1, 2], [3, 4]], alloc) == [(2, 3), (2, 3)]
    assert alloc.max_s(zoo_group[0]) < alloc.max_s(table[0])  # the zoo samples less per round
    # planted: a 10% speedup decides its direction; a 0.3% one, pinned to ±0.5% by 40 quiet rounds, is
    # settled by its precision; the same 0.3% over 6 rounds on a machine drifting by 40% is neither
    decided = _lockstep_cells(["a_x1", "b_x1"], [1.0, 0.9], drift=0.0, group=0)
    pinned = _lockstep_cells(["a_x1", "b_x1"], [1.0, 0.997], drift=0.0, group=0, rounds=40)
    wide = _lockstep_cells(["a_x1", "b_x1"], [1.0, 0.997], drift=0.0, group=0, rounds=6, noise=0.05)
    assert alloc.settled(decided) and alloc.settled(pinned) and not alloc.settled(wide)
    assert alloc.settled(decided[:1])  # one cell: the claim reads its latency, two rounds are enough
    assert alloc.settled([wide[0], CellResult(wide[1].spec, "unsupported")])  # nothing left to compare
    args = argparse.Namespace(results=[], model=None, backend=None, sampling="default", rounds=1)
    _reference_args(args)
    assert args.profile and args.sampling == "reference" and args.backend == "torch,ort,tflite,openvino"
    assert args.variant == "all"  # the int8 forms too
    zoo, net = CellSpec("resnet18", "deploy", "ort"), CellSpec("g3_1frag_x1", "deploy", "ort")
    untimed, int8 = CellSpec("resnet18", "deploy", "tflite"), CellSpec("resnet18", "int8", "ort")
    assert args.profile_select(zoo) and not any(map(args.profile_select, (net, untimed, int8)))


def test_claim_never_pools_cells_of_two_cluster_devices():
    import dataclasses

    run = _population("ops")
    twin = _population("flops")
    for c in twin.cells:
        c.spec = dataclasses.replace(c.spec, device="pi4")
    per = analyze([run, twin])["per_backend"]
    assert set(per) == {"ort", "ort@pi4"}
    assert per["ort"]["verdict"].startswith("ort: yes") and per["ort@pi4"]["verdict"].startswith("ort@pi4: no")


def test_int8_cells_are_their_own_analysis_never_pooled_with_float():
    """Planted: the float deploy forms' latency follows ops, their int8 forms' follows FLOPs. Pooled, the two
    would blur; analysed apart, each verdict finds its own truth."""
    import dataclasses

    run = _population("ops")
    int8 = _population("flops", seed=1)
    for c in int8.cells:
        c.spec = dataclasses.replace(c.spec, variant="int8")
    per = analyze([run, int8])["per_backend"]
    assert set(per) == {"ort", "ort int8"} and per["ort"]["n"] == per["ort int8"]["n"] == 30
    assert per["ort"]["verdict"].startswith("ort: yes") and per["ort int8"]["verdict"].startswith("ort int8: no")


def test_the_zoo_summary_is_counted_from_the_cells():
    from benchbench.analysis.claim import zoo_summary

    rows = [{"model": m, "family": m[:4], "variant": v, "backend": b, "macs": macs * (2 if v == "train" else 1)}
            for m, macs in (("fam0_a", 1e8), ("fam0_b", 4e9), ("fam1_a", 2e9)) for v in ("train", "deploy")
            for b in ("ort", "torch")]
    zoo = zoo_summary(rows)
    assert (zoo["models"], zoo["families"], zoo["backends"], zoo["variants"]) == (3, 2, 2, ["deploy", "train"])
    assert zoo["macs_range_deploy"] == pytest.approx(40.0)  # 4e9 / 1e8, deploy forms only
    assert zoo["macs_range_both"] == pytest.approx(80.0)  # 8e9 (b's train form) / 1e8


def test_the_readme_quotes_the_reference_zoo_as_its_claim_counts_it():
    """The README's figures for the reference zoo come from the published claim.json, not from memory."""
    import json
    from pathlib import Path

    root = Path(__file__).parents[1]
    zoo = json.loads((root / "reports" / "reference" / "claim.json").read_text())["zoo"]
    readme = (root / "README.md").read_text()
    assert f"whole zoo ({zoo['models']} models" in readme
    assert f"{zoo['macs_range_deploy']:.0f}x in MACs" in readme


def test_a_measuring_claim_records_its_analysis_and_total_seconds_in_the_run(tmp_path):
    from benchbench.cli.claim import _record_times
    from benchbench.results.load import load_run

    run = _population("flops")
    run.path = tmp_path / "results.json"
    _record_times(run, analysis_s=12.34, total_s=3600.0)
    assert load_run(tmp_path / "results.json").meta["claim"] == {"analysis_s": 12.3, "total_s": 3600.0}


def test_the_claims_times_reach_the_runs_journal_which_the_folders_readers_read(tmp_path):
    """A measured run's folder is read from its journal (``benchbench.load``, the index page), so the meta a
    claim writes after the sweep goes into the journal too, not only into results.json; and a later claim
    (``--reference`` writes the times once more) replaces it there."""
    import benchbench
    from benchbench.analysis.index_page import _folder_meta
    from benchbench.cli.claim import _record_times
    from benchbench.results.journal import JOURNAL, Journal

    run = _population("flops")
    run.path = tmp_path / "results.json"
    journal = Journal.create(tmp_path / JOURNAL, run.meta)
    journal.append_group(run.meta, 0, [], run.cells)
    journal.close()
    assert "claim" not in benchbench.load(tmp_path).meta
    _record_times(run, analysis_s=12.34, total_s=3600.0, lab_s=400.0)
    want = {"analysis_s": 12.3, "total_s": 3600.0, "lab_s": 400.0}
    assert benchbench.load(tmp_path).meta["claim"] == want and _folder_meta(tmp_path)["claim"] == want
    assert len(benchbench.load(tmp_path)) == len(run.cells)  # the meta line commits no cell and drops none
    _record_times(run, analysis_s=1.0, total_s=2.0)
    assert _folder_meta(tmp_path)["claim"] == {"analysis_s": 1.0, "total_s": 2.0}
