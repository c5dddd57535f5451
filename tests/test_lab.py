"""The fragmentation lab: lab nets, the design, and the fit, with planted truths.

* every lab net builds and runs in torch eager at its declared input shape; names round-trip; the registry keeps
  lab nets out of globs that mean the zoo;
* the design: the candidate table is what the generator makes; a selection on a count table meets |r| <= 0.2;
* the fit recovers a planted per-op cost, throughputs and bandwidths from synthetic timings on the lab design,
  and the anchor-relative reading removes a drift over rounds and groups; a zoo-like collinear design (log ops and
  log traffic at r = 0.85) cannot: its per-op interval is far wider and its condition number high.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from benchbench.analysis import lab as labfit
from benchbench.analysis.lab_design import (
    analytic_counts,
    candidate_points,
    design_rows,
    identification,
    select_design,
    select_joint,
    traffic_of_ops,
)
from benchbench.analysis.lab_records import zoo_records
from benchbench.analysis.lab_report import lab_markdown
from benchbench.core.labpoints import (
    ANCHOR,
    ANCHOR_NAME,
    CANDIDATES,
    LabPoint,
    cache_sizes,
    parse_name,
    regime_of,
)

CACHES = {"L1": 48 * 1024, "L2": 2 * 1024 ** 2, "LLC": 32 * 1024 ** 2}
DATA = Path(__file__).parent / "data"

# The planted machine: GFLOP/s per kind, µs per executed op, GB/s per regime, fixed µs.
TRUTH = {"throughput": {"conv3x3": 120.0, "conv1x1": 60.0, "dw3x3": 12.0}, "per_op_us": 4.0,
         "bandwidth": {"L1": 200.0, "L2": 60.0, "LLC": 25.0, "DRAM": 12.0}, "fixed_us": 30.0}


def _true_ms(flops_by_kind: dict, ops: float, bytes_by_regime: dict) -> float:
    us = TRUTH["fixed_us"] + ops * TRUTH["per_op_us"]
    us += sum(f / (TRUTH["throughput"][k] * 1e3) for k, f in flops_by_kind.items())
    us += sum(b / (TRUTH["bandwidth"][g] * 1e3) for g, b in bytes_by_regime.items())
    return us / 1e3


def _lab_design(n: int = 32) -> list[LabPoint]:
    rows = []
    for p in CANDIDATES:
        a = analytic_counts(p, CACHES)
        rows.append({"name": p.name, "kind": p.kind, "regime": a["regime"], "executed_ops": a["ops"],
                     "traffic": a["bytes"], "flops": a["flops"]})
    sel = select_design(rows, n=n, restarts=3, seed=1)
    return [parse_name(name) for name in sel["names"]]


def _synthetic(points, rounds=5, per_group=8, noise=0.03, drift=0.0, group_sd=0.0, seed=0, backend="ort"):
    """Records for ``points`` plus the anchor, grouped ``per_group`` points per lockstep group with the anchor in
    each; a round's timings share a drift factor (1 + drift x round / (rounds - 1)) and a group factor."""
    rng = np.random.default_rng(seed)
    recs = []
    groups = [points[i:i + per_group] for i in range(0, len(points), per_group)]
    for g, members in enumerate(groups):
        g_factor = math.exp(rng.normal(0, group_sd)) if group_sd else 1.0
        for r in range(rounds):
            factor = g_factor * (1 + drift * r / max(rounds - 1, 1))
            for p in [ANCHOR, *members]:
                a = analytic_counts(p, CACHES)
                ms = _true_ms(a["flops_by_kind"], a["ops"], a["bytes_by_regime"])
                recs.append({"backend": backend, "name": ANCHOR_NAME if p == ANCHOR else p.name, "anchor": p == ANCHOR,
                             "group": g, "round": r, "latency_ms": ms * factor * math.exp(rng.normal(0, noise)),
                             "flops_by_kind": a["flops_by_kind"], "executed_ops": a["ops"],
                             "bytes_by_regime": a["bytes_by_regime"]})
    return recs


@pytest.fixture(scope="module")
def design():
    return _lab_design()


# -- nets and registry ------------------------------------------------------------------------------------


def test_every_lab_net_builds_and_runs_at_its_declared_shape():
    import torch
    from benchbench.models import create_model, list_models, model_info

    names = list_models(kind="lab")
    assert ANCHOR_NAME in names and len(names) == len(CANDIDATES) + 1
    for name in names:
        info = model_info(name)
        assert info.kind == "lab" and info.identical_forms
        point = parse_name(name)
        model = create_model(name, "deploy")
        x = torch.randn(1, *info.input_size)
        with torch.no_grad():
            y = model(x)
        out_c = point.channels * (point.k if point.structure == "fan" else 1)
        assert tuple(y.shape) == (1, out_c, point.size, point.size), name
        assert torch.isfinite(y).all() and y.abs().max() > 0, name


def test_names_round_trip():
    for p in CANDIDATES[:20] + (LabPoint("act", 4, 16, 8, 2, 1, "fan"),):
        assert parse_name(p.name) == p
    assert parse_name(ANCHOR_NAME) == ANCHOR
    with pytest.raises(ValueError):
        parse_name("lab_nope_k2_8x8_i1")
    with pytest.raises(ValueError):
        LabPoint("concat", 2, 8, 8, structure="fan")


def test_globs_that_mean_the_zoo_leave_lab_nets_out():
    from benchbench.models import list_models, register_model, resolve_models
    from benchbench.models._registry import Paper

    from benchbench.core.registry import UnknownNameError

    everything = list_models()
    assert everything and not any(n.startswith("lab_") for n in everything)
    assert not any(n.startswith("lab_") for n in resolve_models("*")[0])
    assert not any(n.startswith("lab_") for n in list_models("l*") + list_models("*anchor*"))
    with pytest.raises(UnknownNameError):
        resolve_models("*anchor*")  # matches only a lab net: nothing, for a glob that does not say "lab"
    lab = list_models(kind="lab")
    assert resolve_models("lab_*")[0] == lab == list_models("LAB*")
    assert resolve_models("lab_anchor")[0] == ["lab_anchor"]  # an exact name always resolves
    assert set(list_models(["*", "lab_act*"])) == set(everything) | {n for n in lab if n.startswith("lab_act")}
    with pytest.raises(ValueError, match="starts with 'lab_'"):
        register_model(lambda: None, name="notlab_x", family="lab", kind="lab", paper=Paper("t", 2026))


def test_cache_sizes_read_from_sysfs_with_fallback(tmp_path):
    for i, (level, kind, size) in enumerate([(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "2048K"),
                                             (3, "Unified", "32768K")]):
        d = tmp_path / f"index{i}"
        d.mkdir()
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    c = cache_sizes(tmp_path)
    assert (c["L1"], c["L2"], c["LLC"]) == (48 * 1024, 2 * 1024 ** 2, 32 * 1024 ** 2)
    assert "fallback" not in c["source"]
    missing = cache_sizes(tmp_path / "absent")
    assert missing["L1"] > 0 and "fallback" in missing["source"]
    assert [regime_of(b, c) for b in (1e3, 1e5, 1e7, 1e9)] == ["L1", "L2", "LLC", "DRAM"]


# -- design -----------------------------------------------------------------------------------------------


def test_candidate_table_is_what_the_generator_makes():
    assert tuple(candidate_points()) == CANDIDATES


def test_analytic_counts_match_the_onnx_traffic_convention():
    # the worked numbers: carrier 16 → 32 3x3 on 28x28, eight 1x1 convs 32 → 32
    a = analytic_counts(ANCHOR, CACHES)
    hw = 28 * 28
    assert a["flops"] == 2 * 16 * 32 * 9 * hw + 8 * 2 * 32 * 32 * hw
    assert a["bytes"] == 4 * (16 * hw + 32 * hw + 16 * 32 * 9) + 8 * 4 * (2 * 32 * hw + 32 * 32)
    assert a["ops"] == 9 and set(a["flops_by_kind"]) == {"conv3x3", "conv1x1"}
    assert sum(a["bytes_by_regime"].values()) == a["bytes"]


def test_traffic_of_ops_skips_views_and_places_regimes():
    ops = [{"type": "Conv", "inputs": [[1, 8, 16, 16], [8, 8, 3, 3]], "outputs": [[1, 8, 16, 16]]},
           {"type": "Reshape", "inputs": [[1, 8, 16, 16]], "outputs": [[1, 2048]]},
           {"type": "Add", "inputs": [[1, 64, 64, 64], [1, 64, 64, 64]], "outputs": [[1, 64, 64, 64]]}]
    t = traffic_of_ops(ops, CACHES)
    conv = 4 * (2048 + 576 + 2048)
    assert t["bytes_by_regime"] == {"L1": conv, "LLC": 4 * 3 * 64 ** 3}
    assert t["bytes"] == conv + 4 * 3 * 64 ** 3


def test_selection_meets_the_bound_on_a_count_table():
    """On the analytic table (torch executes the un-fused graph) and on the real executed counts of every
    backend (tests/data/lab_fusion_counts.json, from benchmarks/lab_fusion.py), the design has |r| <= 0.2."""
    rows = []
    for p in CANDIDATES:
        a = analytic_counts(p, CACHES)
        rows.append({"name": p.name, "kind": p.kind, "regime": a["regime"], "executed_ops": a["ops"],
                     "traffic": a["bytes"], "flops": a["flops"]})
    pool = identification(rows)
    sel = select_design(rows, n=32, restarts=3, seed=1)
    assert sel["meets_bound"] and sel["max_abs_corr"] <= 0.2 and sel["n"] == 32
    assert sel["condition_number"] < min(1.6, pool["condition_number"])
    assert len(sel["kinds"]) == len({r["kind"] for r in rows}) and min(sel["kinds"].values()) >= 2
    fusion = json.loads((DATA / "lab_fusion_counts.json").read_text())
    tables = {b: design_rows(fusion, b)[0] for b in fusion["meta"]["backends"]}
    assert set(tables) == {"ort", "openvino", "tflite", "torch"}
    joint = select_joint(tables, n=16, restarts=2, seed=0)
    assert joint["meets_bound"] and set(joint["per_backend"]) == set(tables)
    for backend, d in joint["per_backend"].items():
        assert d["max_abs_corr"] <= 0.2 and d["condition_number"] < 2.5, backend
    for backend, rows in tables.items():  # every backend's pool, alone, is far from the bound
        assert identification(rows)["max_abs_corr"] > 0.3


def test_collapsed_points_leave_the_pool():
    fusion = json.loads((DATA / "lab_fusion_counts.json").read_text())
    rows, dropped = design_rows(fusion, "openvino")
    # OpenVINO fuses element-wise chains into one Subgraph (or into the carrier's post-ops)
    assert dropped and all(parse_name(n).kind in ("add", "act") and parse_name(n).structure == "chain" for n in dropped)
    assert ANCHOR_NAME not in {r["name"] for r in rows}


# -- the fit: planted truths ------------------------------------------------------------------------------


def test_fit_recovers_planted_costs_on_the_lab_design(design):
    recs = _synthetic(design, noise=0.03, seed=3)
    fit = labfit.fit_lab(recs, "absolute", reps=400)
    lo, hi = fit["ci"]["per_op_us"]
    assert lo <= TRUTH["per_op_us"] <= hi and hi - lo < 0.5 * TRUTH["per_op_us"]
    assert abs(fit["per_op_us"] / TRUTH["per_op_us"] - 1) < 0.15
    for kind in fit["throughput_gflops"]:
        lo_t, hi_t = fit["ci"]["throughput_gflops"][kind]
        assert lo_t <= TRUTH["throughput"][kind] <= (hi_t or math.inf), kind
    for regime in ("L2", "LLC"):  # the regimes whose bytes cost enough time to be read
        lo_b, hi_b = fit["ci"]["bandwidth_gbs"][regime]
        assert lo_b <= TRUTH["bandwidth"][regime] <= (hi_b or math.inf), regime
    assert fit["identification"]["max_abs_corr"] <= 0.2


def test_anchor_relative_reading_removes_drift(design):
    recs = _synthetic(design, noise=0.02, drift=0.3, group_sd=0.15, seed=5)
    rel = labfit.fit_lab(recs, "anchor_relative", reps=400)
    ab = labfit.fit_lab(recs, "absolute", reps=400)
    anchor = analytic_counts(ANCHOR, CACHES)
    anchor_true_us = 1e3 * _true_ms(anchor["flops_by_kind"], anchor["ops"], anchor["bytes_by_regime"])
    truth_share = TRUTH["per_op_us"] / anchor_true_us
    lo, hi = (v / (rel["anchor_ms"] * 1e3) for v in rel["ci"]["per_op_us"])
    assert lo <= truth_share <= hi
    width = lambda f: f["ci"]["per_op_us"][1] - f["ci"]["per_op_us"][0]
    assert width(rel) < 0.6 * width(ab)
    assert rel["fit_median_ape"] < ab["fit_median_ape"]


def test_a_collinear_zoo_like_design_cannot_separate_ops_from_traffic(design):
    """A zoo-like design: log ops and log traffic at r = 0.85 (the zoo's within families, net of FLOPs), FLOPs
    moving with both, and the zoo's magnitudes (~100 executed ops, ~30 MB, ~1 GFLOP: the per-op term a few percent
    of a cell's latency). Same truth, noise and number of points as the lab design."""
    rng = np.random.default_rng(7)
    n = len(design)
    corr = np.array([[1.0, 0.85, 0.3], [0.85, 1.0, 0.6], [0.3, 0.6, 1.0]])  # ops, traffic, FLOPs
    z = rng.standard_normal((n, 3)) @ np.linalg.cholesky(corr).T
    zoo_recs = []
    for i in range(n):
        fk = {"conv3x3": math.exp(math.log(1e9) + 1.2 * z[i, 2])}
        br = {"L2": math.exp(math.log(3e7) + 0.8 * z[i, 1])}
        ops = round(math.exp(math.log(100) + 0.8 * z[i, 0]))
        ms = _true_ms(fk, ops, br)
        for r in range(5):
            zoo_recs.append({"backend": "ort", "name": f"z{i}", "anchor": False, "group": 0, "round": r,
                             "latency_ms": ms * math.exp(rng.normal(0, 0.03)), "flops_by_kind": fk,
                             "executed_ops": ops, "bytes_by_regime": br})
    collinear = labfit.fit_lab(zoo_recs, "absolute", reps=400)
    lab = labfit.fit_lab(_synthetic(design, noise=0.03, seed=3), "absolute", reps=400)
    rel_width = lambda f: (f["ci"]["per_op_us"][1] - f["ci"]["per_op_us"][0]) / TRUTH["per_op_us"]
    assert collinear["identification"]["max_abs_corr"] > 0.75
    assert collinear["identification"]["condition_number"] > max(10.0, 5 * lab["identification"]["condition_number"])
    assert rel_width(lab) < 0.25 and rel_width(collinear) > 4 * rel_width(lab)


def test_analysis_transfers_to_zoo_cells_and_decomposes(design):
    lab_recs = _synthetic(design, noise=0.02, seed=11)
    rng = np.random.default_rng(2)
    zoo = []
    for i in range(40):  # zoo cells on the same machine: the lab's truth, with 5% model error
        fk = {"conv3x3": 10 ** rng.uniform(8, 9.5), "dw3x3": 10 ** rng.uniform(6, 7.5)}
        ops = int(10 ** rng.uniform(1.5, 2.7))
        br = {"L2": 10 ** rng.uniform(6.5, 7.5), "LLC": 10 ** rng.uniform(6, 7.5)}
        zoo.append({"backend": "ort", "name": f"m{i}", "family": f"f{i % 8}", "flops_by_kind": fk,
                    "executed_ops": ops, "bytes_by_regime": br,
                    "latency_ms": _true_ms(fk, ops, br) * math.exp(rng.normal(0, 0.05))})
    out = labfit.lab_analysis(lab_recs, zoo, zoo_anchor_ms={"ort": None}, reps=200)
    r = out["backends"]["ort"]
    for key in ("per_op_us", "per_op_us_low", "per_op_us_high", "design_max_abs_corr", "zoo_within_10pct"):
        assert key in r
    assert r["per_op_us_low"] <= r["per_op_us"] <= r["per_op_us_high"]
    assert r["zoo_within_10pct"] > 0.6 and r["zoo_within_10pct"] > r["zoo_within_10pct_flops_only"]
    shares = r["decomposition"]["variance_share"]
    assert abs(sum(shares.values()) - 1) < 1e-9 and shares["compute"] > 0
    assert r["ops_doubling"]["causal"]["ci95"][0] <= r["ops_doubling"]["causal"]["effect"] <= r["ops_doubling"]["causal"]["ci95"][1]
    json.dumps(out)  # JSON-able as it stands
    md = lab_markdown(out)
    assert "## The fragmentation lab" in md and "| ort |" in md


def test_zoo_records_from_the_reference():
    ref = Path(__file__).parents[1] / "reports" / "reference" / "results.json"
    if not ref.exists():
        pytest.skip("no reference results")
    zoo = zoo_records([json.loads(ref.read_text())], CACHES)
    backends = {r["backend"] for r in zoo}
    assert {"ort", "openvino", "tflite", "torch"} <= backends  # and the int8 targets the reference measures now
    assert len(zoo) >= 4 * 100
    for r in zoo:
        assert r["executed_ops"] > 0 and sum(r["bytes_by_regime"].values()) > 0 and sum(r["flops_by_kind"].values()) > 0
    dw = [r for r in zoo if r["name"].startswith("mobilenetv2") and r["backend"] == "ort"]
    assert dw and all(r["flops_by_kind"].get("dw3x3", 0) > 0 for r in dw)


def test_observational_estimate_is_cr2_and_covers_a_planted_effect():
    """A zoo-like set of families with a planted +10% per doubling of executed ops (FLOPs and traffic held in the
    model): the within-family estimate is near it, its CR2 interval holds it, and its df are small-sample ones."""
    rng = np.random.default_rng(3)
    planted = math.log2(1.10)
    rows = []
    for f in range(12):
        base = rng.normal(0, 1)
        for _ in range(5):
            lf, lo, lt = rng.normal(20, 1), rng.normal(5, 0.7), rng.normal(16, 0.8)
            log_ms = base + 0.6 * lf + planted * lo + 0.2 * lt + rng.normal(0, 0.02) - 12
            rows.append({"family": f"f{f}", "latency_ms": math.exp(log_ms), "executed_ops": math.exp(lo),
                         "bytes_by_regime": {"l2": math.exp(lt)}, "flops_by_kind": {"conv": math.exp(lf)}})
    est = labfit.observational_ops_effect(rows)
    assert est["families"] == 12 and "CR2" in est["model"]
    assert 0 < est["df"] <= 11
    assert est["ci95"][0] < 0.10 < est["ci95"][1] and abs(est["effect"] - 0.10) < 0.02
    assert labfit.observational_ops_effect(rows[:10]) is None  # two families: no cluster inference
