"""Planted truths for the claim's models: synthetic zoos with a known answer come out with that answer."""

import math

import numpy as np
import pytest

from benchbench.analysis import kernels, latency_models
from benchbench.analysis.correlate import band_correlations, spearman_ci
from benchbench.analysis.pairs import aa_control, within_pair_regression
from benchbench.analysis.verdict import classify, family_error_test, ops_effect


def _zoo(rng, families=10, members=5, overhead_us=10.0, gflops_per_s=200.0, gbs=20.0, noise=0.02,
         ops_effect_log2=None, family_sd=0.0, ci=0.01):
    """Cells with latency = 0.05 ms + FLOPs/throughput + overhead x ops + traffic/bandwidth (additive truth), or,
    with ``ops_effect_log2``, log latency = log FLOPs + b log2 ops + a family effect (multiplicative truth)."""
    rows = []
    for f in range(families):
        u = family_sd * rng.standard_normal()
        for m in range(members):
            for variant in ("train", "deploy"):
                flops = 10 ** rng.uniform(8.5, 10)
                ops = int(10 ** rng.uniform(1.3, 2.7))
                mac = 10 ** rng.uniform(6.5, 8)
                if ops_effect_log2 is None:
                    lat = 0.05 + flops / 1e9 / gflops_per_s * 1e3 + overhead_us * 1e-3 * ops + mac / 1e6 / gbs
                else:
                    lat = flops / 1e8 * 2 ** (ops_effect_log2 * math.log2(ops)) * math.exp(u)
                lat *= math.exp(noise * rng.standard_normal())
                rows.append({"model": f"f{f}m{m}", "family": f"f{f}", "variant": variant, "median_ms": lat,
                             "ci_low_ms": lat * (1 - ci), "ci_high_ms": lat * (1 + ci), "flops": flops,
                             "executed_ops": ops, "mac_bytes": mac, "macs": flops / 2})
    return rows


def test_the_additive_model_recovers_a_planted_per_op_overhead_and_throughput():
    fit = latency_models.additive_fit(_zoo(np.random.default_rng(1)))
    assert fit["overhead_us_per_op"] == pytest.approx(10.0, rel=0.15)
    lo, hi = fit["ci"]["overhead_us_per_op"]
    assert lo <= 10.0 <= hi and hi - lo < 6
    assert fit["throughput_gflops"] == pytest.approx(200.0, rel=0.1)
    assert fit["ci"]["throughput_gflops"][0] <= 200.0 <= fit["ci"]["throughput_gflops"][1]


def test_held_out_errors_favour_the_form_that_generated_the_data():
    rows = _zoo(np.random.default_rng(2), overhead_us=40.0)
    loo = latency_models.loo_errors(rows, forms=("flops", "additive", "loglinear"))
    summary = latency_models.error_summary(loo)
    assert summary["additive"]["within_10pct"] > 0.95  # 2% noise: the true form predicts within ±10%
    assert summary["flops"]["within_10pct"] < 0.5  # FLOPs alone cannot see 40 µs per op
    assert summary["additive"]["median_ape_ci"][1] < summary["flops"]["median_ape_ci"][0]
    test = family_error_test(loo)
    assert test["better"] == test["families"] == 10 and test["p"] < 0.01
    # and with no per-op cost, the additive form finds none
    flat = latency_models.additive_fit(_zoo(np.random.default_rng(3), overhead_us=0.0))
    assert flat["overhead_us_per_op"] < 1.0


def test_the_mixed_model_sees_a_planted_ops_effect_through_family_intercepts():
    pytest.importorskip("statsmodels", reason="the mixed model needs statsmodels (benchbench[analysis])")
    rows = _zoo(np.random.default_rng(4), families=12, ops_effect_log2=0.2, family_sd=0.4)
    m = latency_models.mixed_model(rows)
    assert m["ops_doubling_effect_ci"][0] <= 2 ** 0.2 - 1 <= m["ops_doubling_effect_ci"][1]
    assert m["ops_doubling_effect_ci"][0] > 0 and m["family_sd"] > 0.2


def test_the_family_verdict_finds_a_planted_effect_with_its_size():
    e = ops_effect(_zoo(np.random.default_rng(5), families=12, ops_effect_log2=0.3, family_sd=0.5), noise_reps=50)
    assert e["verdict"] == "yes"
    assert e["effect_ci95"][0] <= 2 ** 0.3 - 1 <= e["effect_ci95"][1]


def _confounded_null(rng, families=12):
    """No within-family effect of ops; but families with more ops are slower (a family-level confounder)."""
    rows = []
    for f in range(families):
        z = rng.standard_normal()
        for m in range(int(rng.integers(2, 5))):
            for variant in ("train", "deploy"):
                flops = 10 ** rng.uniform(8.5, 10)
                ops = math.exp(4 + z + 0.5 * rng.standard_normal())
                lat = flops / 1e8 * math.exp(0.4 * z + 0.05 * rng.standard_normal())
                rows.append({"model": f"f{f}m{m}", "family": f"f{f}", "variant": variant, "median_ms": lat,
                             "ci_low_ms": lat * 0.99, "ci_high_ms": lat * 1.01, "flops": flops, "executed_ops": ops})
    return rows


def test_the_family_level_verdict_keeps_its_false_positive_rate_on_clustered_data():
    rng = np.random.default_rng(6)
    significant, false_verdict, naive_positive, trials = 0, 0, 0, 300
    for _ in range(trials):
        rows = _confounded_null(rng)
        e = ops_effect(rows, noise_reps=0, bootstrap_reps=0)  # the interval is under test here, not the bootstrap
        significant += e["effect_ci95"][0] > 0 or e["effect_ci95"][1] < 0
        false_verdict += e["verdict"] in ("yes", "no-opposite")
        # the cell-level regression, blind to families, is fooled by the confounder
        y = np.log([r["median_ms"] for r in rows])
        x = np.column_stack([np.ones(len(rows)), np.log([r["flops"] for r in rows]),
                             np.log([r["executed_ops"] for r in rows])])
        beta, res, *_ = np.linalg.lstsq(x, y, rcond=None)
        sigma2 = float(np.sum((y - x @ beta) ** 2)) / (len(y) - 3)
        se = math.sqrt(sigma2 * np.linalg.inv(x.T @ x)[2, 2])
        naive_positive += abs(beta[2] / se) > 1.96
    # The 95% interval excludes the true zero about 5% of the time (binomial sd 1.3% at 300 trials) ...
    assert 0.01 <= significant / trials <= 0.10
    # ... and a tiny significant effect inside the equivalence band is called equivalent, not "yes"
    assert false_verdict <= significant
    assert naive_positive / trials > 0.5  # the data really are confounded


def test_no_effect_with_precise_data_is_stated_as_equivalent():
    verdicts = [ops_effect(_zoo(np.random.default_rng(s), families=20, ops_effect_log2=0.0, noise=0.02),
                           noise_reps=20)["verdict"] for s in range(10)]
    assert verdicts.count("equivalent") >= 9


def test_noisy_measurements_widen_the_interval_and_can_make_a_verdict_inconclusive():
    rng = np.random.default_rng(7)
    rows = _zoo(rng, families=8, ops_effect_log2=0.05, noise=0.01, ci=0.0)
    tight = ops_effect(rows, noise_reps=100)
    for r in rows:  # the same medians, measured with ±60% intervals
        r["ci_low_ms"], r["ci_high_ms"] = r["median_ms"] / 1.6, r["median_ms"] * 1.6
    loose = ops_effect(rows, noise_reps=100)
    assert loose["se_noise"] > 5 * tight["se_noise"]
    assert loose["effect_ci95"][1] - loose["effect_ci95"][0] > 2 * (tight["effect_ci95"][1] - tight["effect_ci95"][0])
    assert loose["verdict"] == "inconclusive" and loose["noise_stability"] < 1.0


def test_classify_reads_intervals_against_zero_and_the_equivalence_band():
    assert classify(0.2, 0.05, 20) == "yes"
    assert classify(-0.2, 0.05, 20) == "no-opposite"
    assert classify(0.0, 0.01, 20) == "equivalent"
    assert classify(0.03, 0.05, 20) == "inconclusive"
    assert classify(0.03, math.inf, 20) == "inconclusive"


def test_within_pair_regression_recovers_planted_elasticities_and_the_aa_control_holds_one():
    rng = np.random.default_rng(8)
    pairs = []
    for i in range(40):
        fr, opr = 10 ** rng.uniform(-0.3, 0.05), 10 ** rng.uniform(-0.5, 0.2)
        lat = fr ** 0.9 * opr ** 0.25 * math.exp(0.01 * rng.standard_normal())
        pairs.append({"model": f"m{i}", "family": f"f{i % 10}", "identical": False, "latency_ratio": lat,
                      "latency_ratio_ci": [lat * 0.98, lat / 0.98], "flops_ratio": fr, "ops_ratio": opr})
    for i in range(6):
        lat = math.exp(0.005 * rng.standard_normal())
        pairs.append({"model": f"same{i}", "family": "same", "identical": True, "latency_ratio": lat,
                      "latency_ratio_ci": [lat * 0.98, lat / 0.98], "flops_ratio": 1.0, "ops_ratio": 1.0})
    reg = within_pair_regression(pairs)
    assert reg["n"] == 40
    assert reg["flops"]["ci"][0] <= 0.9 <= reg["flops"]["ci"][1] and reg["ops"]["ci"][0] <= 0.25 <= reg["ops"]["ci"][1]
    assert reg["ops"]["ci"][0] > 0.1
    aa = aa_control(pairs)
    assert aa["n"] == 6 and aa["holds_one"] == 6 and aa["max_deviation"] < 0.03


def test_iso_flops_bands_split_by_macs_and_carry_intervals():
    rng = np.random.default_rng(9)
    rows = []
    for i in range(60):
        macs = 10 ** rng.uniform(8, 9.8)
        ops = 10 ** rng.uniform(1, 3)
        rows.append({"variant": "deploy", "macs": macs, "flops": 2 * macs, "executed_ops": ops, "mac_bytes": macs / 10,
                     "median_ms": macs / 1e8 + 0.01 * ops})
        rows.append(dict(rows[-1], variant="train"))  # train forms are left out: one cell per model
    bands = {b["band"]: b for b in band_correlations(rows)}
    assert bands["whole zoo"]["n"] == 60
    assert sum(bands[k]["n"] for k in bands if k != "whole zoo") == 60
    for b in bands.values():
        if "flops" in b["rho"]:
            lo, hi = b["rho"]["flops"]["ci"]
            assert lo <= b["rho"]["flops"]["rho"] <= hi
    assert spearman_ci(0.5, 4) is None
    lo, hi = spearman_ci(0.5, 30)
    assert 0.1 < lo < 0.5 < hi < 0.8


def _profiled(rng, families=6, members=3, per_kernel_ms=0.02):
    """Models built from a shared kernel vocabulary; a kernel's time follows its MACs and bytes; a model's
    latency is its kernels' sum plus a fixed cost per kernel."""
    shapes = [(c, hw) for c in (16, 32, 64, 128) for hw in (14, 28, 56)]
    cells = []
    for f in range(families):
        for m in range(members):
            ops = []
            for _ in range(int(rng.integers(10, 40))):
                c, hw = shapes[int(rng.integers(len(shapes)))]
                conv = {"type": "Conv", "inputs": [[1, c, hw, hw], [c, c, 3, 3]], "outputs": [[1, c, hw, hw]]}
                act = {"type": "Relu", "inputs": [[1, c, hw, hw]], "outputs": [[1, c, hw, hw]]}
                for op in (conv, act):
                    _, feat = kernels.kernel_features(op)
                    op["time_ms"] = float(feat @ [0.005, 0.004, 0.01]) * math.exp(0.02 * rng.standard_normal())
                    ops.append(op)
            total = sum(o["time_ms"] for o in ops)
            cells.append({"model": f"f{f}m{m}", "family": f"f{f}", "variant": "deploy", "backend": "ort",
                          "median_ms": total + per_kernel_ms * len(ops) + 0.1, "flops": 1e9, "ops": ops,
                          "op_sum_ms": total})
    return cells


def test_the_kernel_sum_predictor_recovers_latency_from_kernels_seen_in_other_families():
    cells = _profiled(np.random.default_rng(10))
    loo = kernels.kernel_sum_loo(cells)["ort"]
    err = np.abs(loo["error"])
    assert np.mean(err <= 0.10) >= 0.9
    assert loo["sources"]["lookup"] > 0.9  # the vocabulary is shared: nearly every kernel was seen elsewhere
    shares = kernels.time_shares(cells)["ort"]
    assert 0 < shares["median_non_mac_share"] < 0.5 and shares["n"] == len(cells)


def test_unseen_kernels_fall_back_to_the_type_model_and_then_the_roofline():
    cells = _profiled(np.random.default_rng(11))
    held = cells[0]["family"]
    for c in cells:
        if c["family"] == held:  # this family's convs have a width no other family uses
            for o in c["ops"]:
                if o["type"] == "Conv":
                    o["inputs"][0][1] = o["outputs"][0][1] = o["inputs"][1][0] = o["inputs"][1][1] = 96
                if o["type"] == "Relu":
                    o["type"] = "Sigmoid"  # and an op type no other family has
    loo = kernels.kernel_sum_loo(cells)["ort"]
    assert loo["sources"]["type model"] > 0 and loo["sources"]["roofline"] > 0


def test_kernel_macs_follow_each_runtimes_weight_layout():
    conv = {"type": "Conv", "inputs": [[1, 64, 56, 56], [128, 64, 3, 3]], "outputs": [[1, 128, 56, 56]]}
    grouped = {"type": "GroupConvolution", "inputs": [[1, 64, 56, 56], [64, 1, 1, 3, 3]], "outputs": [[1, 64, 56, 56]]}
    matmul = {"type": "MatMul", "inputs": [[1, 8, 196, 64], [1, 8, 64, 196]], "outputs": [[1, 8, 196, 196]]}
    assert kernels.kernel_features(conv)[1][1] == pytest.approx(128 * 56 * 56 * 64 * 9 / 1e6)
    assert kernels.kernel_features(grouped)[1][1] == pytest.approx(64 * 56 * 56 * 9 / 1e6)
    assert kernels.kernel_features(matmul)[1][1] == pytest.approx(8 * 196 * 196 * 64 / 1e6)
    assert (kernels.kernel_kind(conv), kernels.kernel_kind(grouped), kernels.kernel_kind(matmul)) == \
        ("Conv/k3", "GroupConvolution/dw3", "MatMul")
