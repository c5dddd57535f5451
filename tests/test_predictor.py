"""The kernel-level latency predictor: kernel points and nets' names, the graph cut into kernels, fusion rules by
experiment, and planted truths: a synthetic backend with known fusion rules and kernel costs is recovered, and
models made of kernels the sweep never measured are predicted within the planted noise."""

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from benchbench.analysis.anchored import anchored_cells, quiet_anchor_ms
from benchbench.analysis.kernel_graph import LAYOUT, fuse, layout_kernel, onnx_kernels, point_kernel
from benchbench.analysis.predictor import Predictor, cross_validate, fit_document
from benchbench.analysis.predictor_report import (
    evaluation,
    evaluation_markdown,
    fit_quiet_anchor_ms,
    predictor_markdown,
)
from benchbench.cli.predict import SWEEP
from benchbench.core.kernelpoints import (
    CLASSES,
    FUSION_PATTERNS,
    POSTS,
    KernelPoint,
    chain_points,
    dispatch_points,
    fusion_points,
    io_points,
    parse_kernel_name,
    point_flops,
    probe_points,
    sample_points,
)


def test_kernel_names_round_trip_and_bad_names_are_refused():
    points = sample_points({c: 6 for c in CLASSES}, seed=3) + fusion_points() + probe_points()
    assert len({p.name for p in points}) == len(points)
    for p in points:
        assert parse_kernel_name(p.name) == p
    assert sample_points({"conv": 5}, seed=3) == sample_points({"conv": 5}, seed=3)  # deterministic
    with pytest.raises(ValueError, match="not a kernel net name"):
        parse_kernel_name("kern_conv_c8")
    with pytest.raises(ValueError, match="groups = cin = cout"):
        KernelPoint("dwconv", 8, 16, 4, groups=8)
    assert {(p.op, p.post) for p in fusion_points() if p.post} == set(FUSION_PATTERNS)


def test_sampled_points_stay_in_the_sweeps_budget():
    for p in sample_points(SWEEP, seed=0):
        assert point_flops(p) <= 2.5e9 and p.cin * p.size ** 2 <= 4 * 1024 * 1024
    counts = {c: sum(p.kind == c for p in sample_points(SWEEP, seed=0)) for c in CLASSES}
    assert counts == SWEEP


def test_depthwise_points_cover_every_kernel_size_across_the_sizes_and_classes_draw_apart():
    """Each depthwise kernel size gets a third of the points, spread over the log of their output elements (LiteRT
    runs a 7x7 depthwise kernel ten times slower per MAC than a 5x5 one: only points of each size across the range
    show it); and one class's draw does not move another's points."""
    points = [p for p in sample_points({"dwconv": 30}, seed=0)]
    for k in (3, 5, 7):
        elements = sorted(p.cin * (p.size // p.stride) ** 2 for p in points if p.k == k)
        assert len(elements) == 10
        assert elements[-1] >= 64 * elements[0] and elements[-1] >= 2 ** 17  # large ones, not only tiny ones
    alone = sample_points({"gemm": 5}, seed=0)
    assert [p for p in sample_points({"dwconv": 30, "gemm": 5}, seed=0) if p.kind == "gemm"] == alone


def test_kernel_nets_resolve_by_name_and_compute_their_kernel():
    torch = pytest.importorskip("torch")
    from benchbench.models import create_model, model_info, resolve_models

    name = "kern_conv-bnrelu_c8o8_s6_k3_st1_g1"
    assert resolve_models(name)[0] == [name]
    info = model_info(name)
    assert info.kind == "kernel" and info.input_size == (8, 6, 6)
    net = create_model(name, "deploy")
    x = torch.randn(1, 8, 6, 6)
    assert (net(x) >= 0).all() and net(x).shape == (1, 8, 6, 6)  # the chain ends in a ReLU
    gemm = create_model("kern_gemm_c16o4_s1_k1_st1_g1_m1", "deploy")
    assert gemm(torch.randn(1, 16, 1, 1)).shape == (1, 4)
    from benchbench.models import list_models

    assert not any(n.startswith("kern_") for n in list_models("*"))  # a glob reaches them only by their prefix


# -- the graph ---------------------------------------------------------------------------------------------

def _graph() -> onnx.ModelProto:
    """x -> Conv -> BN -> Relu -> Conv -> Add(residual) -> Relu -> Div/Erf/Add/Mul/Mul (gelu) -> Sigmoid*x
    (silu) -> GlobalAveragePool -> Flatten -> MatMul + bias Add."""
    rng = np.random.default_rng(0)
    c = 8
    inits = [numpy_helper.from_array(rng.standard_normal((c, c, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.standard_normal((c, c, 3, 3)).astype(np.float32), "w2"),
             *[numpy_helper.from_array(np.ones(c, np.float32), n) for n in ("g", "b", "m", "v")],
             numpy_helper.from_array(np.array(1.41, np.float32), "sq"),
             numpy_helper.from_array(np.array(1.0, np.float32), "one"),
             numpy_helper.from_array(np.array(0.5, np.float32), "half"),
             numpy_helper.from_array(rng.standard_normal((c, 4)).astype(np.float32), "fc"),
             numpy_helper.from_array(np.zeros(4, np.float32), "fcb")]
    n = helper.make_node
    nodes = [n("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             n("BatchNormalization", ["c1", "g", "b", "m", "v"], ["bn1"], name="bn1"),
             n("Relu", ["bn1"], ["r1"], name="relu1"),
             n("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             n("Add", ["c2", "r1"], ["a2"], name="add2"),
             n("Relu", ["a2"], ["r2"], name="relu2"),
             n("Div", ["r2", "sq"], ["g1"], name="gelu_div"), n("Erf", ["g1"], ["g2"], name="gelu_erf"),
             n("Add", ["g2", "one"], ["g3"], name="gelu_add"), n("Mul", ["r2", "g3"], ["g4"], name="gelu_mul"),
             n("Mul", ["g4", "half"], ["g5"], name="gelu_half"),
             n("Sigmoid", ["g5"], ["s1"], name="silu_sig"), n("Mul", ["g5", "s1"], ["s2"], name="silu_mul"),
             n("GlobalAveragePool", ["s2"], ["p"], name="gap"), n("Flatten", ["p"], ["f"], name="flat"),
             n("MatMul", ["f", "fc"], ["mm"], name="fc"), n("Add", ["mm", "fcb"], ["y"], name="fc_bias")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _ops(kernels):
    return [k["op"] + (f"-{k['post']}" if k["post"] else "") for k in kernels]


def test_the_graph_becomes_kernels_and_the_exporters_activations_are_one_each():
    kernels = onnx_kernels(_graph())
    assert _ops(kernels) == ["conv", "bn", "relu", "conv", "add", "relu", "gelu", "silu", "gap", "reshape", "gemm"]
    conv = kernels[0]
    assert (conv["cin"], conv["cout"], conv["size"], conv["out"], conv["k"]) == (8, 8, 16, 16, 3)
    gemm = kernels[-1]
    assert (gemm["rows"], gemm["cin"], gemm["cout"]) == (1, 8, 4) and gemm["nodes"] == ["fc", "fc_bias"]


def test_fusion_follows_the_rules_and_only_them():
    kernels = onnx_kernels(_graph())
    none = fuse(kernels, {})
    assert _ops(none) == _ops(kernels)
    rules = {"conv+bnrelu": {"fused": True}, "conv+addrelu": {"fused": True}, "conv+bn": {"fused": True}}
    fused = fuse(kernels, rules)
    assert _ops(fused) == ["conv-bnrelu", "conv-addrelu", "gelu", "silu", "gap", "reshape", "gemm"]
    assert fused[0]["fusion"] == "conv+bnrelu" and fused[0]["nodes"] == ["conv1", "bn1", "relu1"]
    # bn fuses but not bn+relu: the longest chain the rules allow
    partial = fuse(kernels, {"conv+bn": {"fused": True}, "conv+bnrelu": {"fused": False}})
    assert _ops(partial)[:3] == ["conv-bn", "relu", "conv"]
    # a depthwise head without a rule of its own takes the conv rule
    dw = {**kernels[0], "op": "dwconv", "kind": "dwconv"}
    assert _ops(fuse([dw, *kernels[1:]], rules))[0] == "dwconv-bnrelu"


def _clip_graph() -> onnx.ModelProto:
    """x -> depthwise Conv -> Clip(0, 6) -> 1x1 Conv -> BN -> Clip(0, 6): MobileNetV2's ReLU6s."""
    rng = np.random.default_rng(0)
    c = 8
    inits = [numpy_helper.from_array(rng.standard_normal((c, 1, 3, 3)).astype(np.float32), "wd"),
             numpy_helper.from_array(rng.standard_normal((c, c, 1, 1)).astype(np.float32), "wp"),
             *[numpy_helper.from_array(np.ones(c, np.float32), n) for n in ("g", "b", "m", "v")],
             numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
             numpy_helper.from_array(np.array(6.0, np.float32), "hi")]
    n = helper.make_node
    nodes = [n("Conv", ["x", "wd"], ["d"], pads=[1, 1, 1, 1], group=c, name="dw"),
             n("Clip", ["d", "lo", "hi"], ["d6"], name="clip1"),
             n("Conv", ["d6", "wp"], ["p"], name="pw"),
             n("BatchNormalization", ["p", "g", "b", "m", "v"], ["pb"], name="bn"),
             n("Clip", ["pb", "lo", "hi"], ["y"], name="clip2")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, 16, 16])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_a_clip_is_a_kernel_of_its_own_and_older_rules_still_read_it_as_a_relu():
    """ReLU6 exports as Clip, which ONNX Runtime runs fused behind a convolution at up to 1.45x a fused ReLU's cost
    (docs/predictor.md): it has its own op and fusion experiments. Rules fitted before them (no ``+clip`` key)
    still fuse it as the ReLU they read it as, so a stored predictor cuts a model as it did."""
    kernels = onnx_kernels(_clip_graph())
    assert _ops(kernels) == ["dwconv", "clip", "conv", "bn", "clip"]
    older = {"conv+bn": {"fused": True}, "conv+relu": {"fused": True}, "conv+bnrelu": {"fused": True}}
    cut = fuse(kernels, older)
    assert _ops(cut) == ["dwconv-clip", "conv-bnclip"]
    assert [k["fusion"] for k in cut] == ["conv+relu", "conv+bnrelu"]
    # rules with clip experiments: a fused clip, no bnclip experiment (the bn alone fuses), and an unfused one
    newer = {**older, "conv+clip": {"fused": True}, "dwconv+clip": {"fused": False}}
    assert _ops(fuse(kernels, newer)) == ["dwconv", "clip", "conv-bn", "clip"]
    assert "clip" in POSTS and ("dwconv", "clip") in FUSION_PATTERNS


def test_a_clip_kernel_net_exports_as_an_onnx_clip(tmp_path):
    torch = pytest.importorskip("torch")
    from benchbench.models import create_model

    net = create_model("kern_dwconv-clip_c8o8_s6_k3_st1_g8", "deploy").eval()
    x = torch.randn(1, 8, 6, 6) * 10
    y = net(x)
    assert float(y.min()) >= 0 and float(y.max()) <= 6 and float(y.max()) > 0
    path = tmp_path / "clip.onnx"
    torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=17)
    assert [k["op"] for k in onnx_kernels(onnx.load(str(path)))] == ["dwconv", "clip"]


# -- a synthetic backend -----------------------------------------------------------------------------------

BASE_A, BASE_B = 0.05, 3e-7  # anchor units, and per I/O element
FUSES = {"conv+bn", "conv+relu", "conv+bnrelu", "dwconv+bnrelu", "dwconv+relu", "gemm+relu", "dwconv+clip"}
ELEMENT_COST = {"relu": 1.0, "sigmoid": 2.0, "hswish": 1.5, "gelu": 3.0, "silu": 2.5, "bn": 1.2, "add": 1.5,
                "mul": 1.5, "mulbc": 1.3, "softmax": 4.0, "layernorm": 4.0, "clip": 1.2}


def _true_marginal(k) -> float:
    """The synthetic backend's kernel costs (anchor units): a fixed cost per kernel and a rate per MAC or element
    that depends on the kernel's kind, in a real backend's proportions (ORT at two threads here, anchor 0.1 ms:
    about 160 GMAC/s for a dense convolution, 0.05-0.2 ns per element of an element-wise op, a boundary near the
    2.1e-6 anchors per element ``chain_fit`` read there), so that the base, the boundary and the marginals weigh
    against each other as they do."""
    kind, op = k["kind"], k["op"]
    if op == "reshape":
        return 0.0
    if kind in ("conv", "dwconv", "gconv"):
        macs = k["cout"] * k["out"] ** 2 * (k["cin"] // k["groups"]) * k["k"] ** 2
        rate = {"conv": 1.6e7, "dwconv": 4e6, "gconv": 8e6}[kind] * (1.3 if k["k"] == 1 else 1.0)
        return 0.004 + macs / rate + k["out_elems"] * 2e-7
    if kind == "gemm":
        return 0.003 + k["rows"] * k["cin"] * k["cout"] / 1.6e7
    if kind == "eltwise":
        return 0.002 + k["out_elems"] * 5e-7 * ELEMENT_COST[op]
    return 0.002 + (k["in_elems"] + k["out_elems"]) * 5e-7


def _base(k) -> float:
    return BASE_A + BASE_B * (k["in_elems"] + k["out_elems"]) / 2


BOUNDARY = 1.5e-6  # a one-kernel net's convolution pays this per element in and out (its layout reorders)


def _synthetic_sweep(noise: float, seed: int = 1, boundary: float = 0.0, dispatch: float = 0.0,
                     probe_copy: float = 0.0) -> dict:
    """The sweep's nets on the synthetic backend. ``dispatch``: what each kernel of a chain after the first costs
    beyond its marginal (a one-kernel net's base holds one dispatch already, so its marginal does not show it).
    ``probe_copy``: what a reshape probe's own copy costs per element it writes (a net of any other kernel
    does not pay it)."""
    rng = np.random.default_rng(seed)
    points = probe_points() + fusion_points() + dispatch_points() + io_points() + sample_points(SWEEP, seed=0) + (
        chain_points() if boundary else [])
    out = {}
    for p in points:
        k = point_kernel(p)
        t = _base(k) + _true_marginal(k) * p.repeat + dispatch * (p.repeat - 1)
        if p.op == "reshape":
            t += probe_copy * k["out_elems"]
        if k["kind"] in ("conv", "dwconv", "gconv"):
            t += boundary * (k["in_elems"] + k["out_elems"])
        executed = p.repeat  # a chain executes each of its kernels (no synthetic rule fuses one)
        if p.post:
            head = point_kernel(p.without_post())
            key = f"{p.op}+{p.post}"
            if key in FUSES:
                t = _base(k) + _true_marginal(head) * 1.05  # a fused chain costs 5% of its head
            else:
                extra_kernels = 1 + ("bn" in p.post) + ("relu" in p.post and p.post != "relu")
                t = _base(k) + _true_marginal(head) + 0.003 * extra_kernels
                executed = 1 + len([x for x in ("bn", "add", "relu", "sigmoid", "hswish", "gelu", "clip")
                                    if x in p.post])
        out[p.name] = {"t_rel": t * (1 + noise * rng.standard_normal()), "t_ms": 0.1 * t, "anchor_ms": 0.1,
                       "executed_ops": executed}
    return out


def test_a_synthetic_backends_fusion_rules_are_recovered():
    doc = fit_document(_synthetic_sweep(0.02), "synthetic", {})
    assert {k for k, r in doc["rules"].items() if r["fused"]} == FUSES
    assert set(doc["rules"]) == {f"{h}+{c}" for h, c in FUSION_PATTERNS}
    for key in FUSES:  # the fused chain's extra cost, planted at 5%, read from the timing within the noise
        assert abs(doc["rules"][key]["extra"] - 0.05) < 0.1
    assert abs(doc["base"]["a"] - BASE_A) / BASE_A < 0.1


def _unseen_models(n: int, seed: int, dispatch: float = 0.0) -> list[tuple[list[dict], dict, float]]:
    """Models of kernels the sweep never measured (another seed), with their true latency (each kernel pays the
    ``dispatch`` too)."""
    rng = np.random.default_rng(seed)
    pool = [point_kernel(p) for p in sample_points({"conv": 60, "dwconv": 30, "gconv": 10, "gemm": 10,
                                                    "eltwise": 40, "pool": 10, "move": 10}, seed=seed)]
    models = []
    for _ in range(n):
        kernels = [dict(pool[i], nodes=[]) for i in rng.choice(len(pool), size=int(rng.integers(15, 60)))]
        io = {"in_elems": 3 * 224 * 224, "out_elems": 1000}
        models.append((kernels, io, _base(io) + sum(_true_marginal(k) + dispatch for k in kernels)))
    return models


def test_unseen_models_are_predicted_within_the_planted_noise():
    doc = fit_document(_synthetic_sweep(0.02), "synthetic", {"anchor_ms": 0.1})
    predictor = Predictor(doc)
    errors, covered = [], 0
    for kernels, io, truth in _unseen_models(40, seed=7):
        p = predictor.predict(kernels, io)
        errors.append(p["t_rel"] / truth - 1)
        covered += p["t_rel_low"] <= truth <= p["t_rel_high"]
    errors = np.abs(errors)
    assert np.mean(errors <= 0.10) >= 0.9, np.sort(errors)
    assert np.median(errors) < 0.05
    assert covered >= 36  # the intervals hold the truth for at least 90% of the models


def test_kernels_priced_by_their_own_nets_sum_to_the_model_and_show_a_context_the_nets_lack():
    """The oracle of ``benchmarks/kernel_oracle.py``: each kernel priced at its own net's marginal. Where a kernel
    costs in a model what it costs alone, the sum is the model (the base, boundary and dispatch read from the sweep
    are taken back out); where the model's kernels cost 15% more (a context no one-kernel net has), the sum reads
    the model that much low, whatever a regressor would have said. Without noise, exactly: a kernel's dispatch is
    a fraction of a percent of these models."""
    dispatch = 0.01
    predictor = Predictor(fit_document(_synthetic_sweep(0.0, boundary=BOUNDARY, dispatch=dispatch), "synthetic",
                                       {"anchor_ms": 0.1}))

    def net(k):  # the synthetic backend's one-kernel net of ``k``
        conv = k["kind"] in ("conv", "dwconv", "gconv")
        return _base(k) + _true_marginal(k) + (BOUNDARY * (k["in_elems"] + k["out_elems"]) if conv else 0.0)

    for kernels, io, truth in _unseen_models(10, seed=5, dispatch=dispatch):
        oracle = predictor.fixed(io) + sum(predictor.measured_marginal(k, net(k)) for k in kernels)
        assert oracle == pytest.approx(truth, rel=2e-4)
        in_context = predictor.fixed(io) + sum(1.15 * (_true_marginal(k) + dispatch) for k in kernels)
        assert oracle / in_context - 1 == pytest.approx(1 / 1.15 - 1, abs=0.02)


def test_the_interval_holds_the_prediction_when_the_kernels_fit_exactly():
    """Residuals of 0 (a backend the regressors fit exactly, such as the null one) leave the interval at the
    prediction itself; summed in another order it must not miss it by a rounding."""
    predictor = Predictor(fit_document(_synthetic_sweep(0.02), "synthetic", {"anchor_ms": 0.1}))
    predictor.residuals = {kind: (np.zeros(3), np.ones(3)) for kind in predictor.residuals}
    for kernels, io, _ in _unseen_models(20, seed=3):
        p = predictor.predict(kernels, io)
        assert p["t_rel_low"] <= p["t_rel"] <= p["t_rel_high"] and p["ms_low"] <= p["ms"] <= p["ms_high"]
        assert p["t_rel_high"] - p["t_rel_low"] < 1e-9 * p["t_rel"]


def test_a_predictor_that_never_saw_a_class_still_predicts_and_a_wrong_document_is_refused():
    sweep = {k: v for k, v in _synthetic_sweep(0.02).items() if not parse_kernel_name(k).kind == "pool"}
    predictor = Predictor(fit_document(sweep, "synthetic", {}))
    k = point_kernel(KernelPoint("maxpool", 64, 64, 56, k=3, stride=2))
    assert predictor.marginal([k])[0] > 0  # priced as an element-wise op of its size
    with pytest.raises(ValueError, match="not a benchbench predictor"):
        Predictor({"schema": "other"})
    with pytest.raises(ValueError, match="reshape probes"):
        fit_document({k: v for k, v in sweep.items() if "reshape" not in k}, "synthetic", {})


def test_the_evaluation_reports_both_readings_and_flops_only_beside():
    doc = fit_document(_synthetic_sweep(0.0), "synthetic", {})
    doc["anchor_ms"] = 0.1
    predictor = Predictor(doc)
    rows = []
    for i, (kernels, io, truth) in enumerate(_unseen_models(10, seed=11)):
        p = predictor.predict(kernels, io)
        drift = 1.2  # the machine is 20% slower at check time: the absolute reading sees it, the relative does not
        rows.append({"model": f"m{i}", "variant": "deploy", "family": "f", "flops": 1e9, "measured_rel": truth,
                     "measured_ms": truth * 0.1 * drift, "anchor_ms": 0.1 * drift, "by_kind": {"conv": 1.0},
                     **{k: p[k] for k in ("t_rel", "t_rel_low", "t_rel_high", "ms")}})
    ev = evaluation({"synthetic": rows}, {"synthetic": doc})
    s = ev["backends"]["synthetic"]
    assert s["within_10pct_rel"] >= 0.9 and s["within_10pct_abs"] <= 0.1
    assert s["interval_coverage"] >= 0.9  # the 95% intervals hold the measured latencies
    assert math.isclose(s["anchor_ms_now"], 0.12)
    # the anchor moved with the models: the ratio cancels it, and the check says nothing of it
    assert s["anchor"]["steady"] and math.isclose(s["anchor"]["shift"], 0.2, abs_tol=1e-9)
    md = evaluation_markdown(ev)
    assert "| synthetic | 10 |" in md and "FLOPs-only" in md and "not steady" not in md
    assert "conv+bnrelu" in predictor_markdown([doc])


def test_an_anchor_that_moves_alone_or_in_two_states_is_reported():
    doc = fit_document(_synthetic_sweep(0.0), "synthetic", {})
    fit_anchor = float(np.median([p["t_ms"] / p["t_rel"] for p in doc["points"]]))
    predictor = Predictor(doc)

    def check(anchor_of):  # the models measured as at fit time; each group's anchor from ``anchor_of(i)``
        rows = []
        for i, (kernels, io, truth) in enumerate(_unseen_models(12, seed=3)):
            p = predictor.predict(kernels, io)
            anchor = anchor_of(i)
            rows.append({"model": f"m{i}", "variant": "deploy", "family": "f", "flops": 1e9,
                         "measured_rel": truth * fit_anchor / anchor, "measured_ms": truth * fit_anchor,
                         "anchor_ms": anchor, "by_kind": {"conv": 1.0},
                         **{k: p[k] for k in ("t_rel", "t_rel_low", "t_rel_high", "ms")}})
        return evaluation({"synthetic": rows}, {"synthetic": doc})

    steady = check(lambda i: fit_anchor)["backends"]["synthetic"]["anchor"]
    assert steady["steady"] and abs(steady["shift"]) < 1e-9 and abs(steady["cells_shift"]) < 0.05
    alone = check(lambda i: 1.47 * fit_anchor)  # the anchor alone 47% slower, as OpenVINO's was in one check here
    a = alone["backends"]["synthetic"]["anchor"]
    assert not a["steady"] and math.isclose(a["shift"], 0.47, abs_tol=1e-9) and abs(a["cells_shift"]) < 0.05
    assert alone["backends"]["synthetic"]["within_10pct_rel"] <= 0.1  # what the report warns of
    assert "**The anchor was not steady** on synthetic" in evaluation_markdown(alone)
    two = check(lambda i: fit_anchor * (1.6 if i % 2 else 1.0))["backends"]["synthetic"]["anchor"]  # two states
    assert not two["steady"] and two["now"]["p90"] / two["now"]["p10"] > 1.5


def test_the_claim_reads_a_predictor_check_and_shows_it_beside_the_other_predictors(tmp_path):
    from benchbench.analysis.claim_report import predictor_section
    from benchbench.cli.claim import read_predictor_eval
    from benchbench.cli.errors import UsageError
    from benchbench.core import strictjson

    doc = fit_document(_synthetic_sweep(0.0), "synthetic", {"anchor_ms": 0.1})
    predictor = Predictor(doc)
    rows = []
    for i, (kernels, io, truth) in enumerate(_unseen_models(5, seed=3)):
        p = predictor.predict(kernels, io)
        rows.append({"model": f"m{i}", "variant": "deploy", "family": "f", "flops": 1e9, "measured_rel": truth,
                     "measured_ms": truth * 0.1, "anchor_ms": 0.1, "by_kind": {"conv": 0.7, "eltwise": 0.3},
                     **{k: p[k] for k in ("t_rel", "t_rel_low", "t_rel_high", "ms")}})
    (tmp_path / "predictor_eval.json").write_text(strictjson.dumps(evaluation({"synthetic": rows},
                                                                              {"synthetic": doc})))
    read = read_predictor_eval(str(tmp_path))
    assert "cells" not in read["backends"]["synthetic"] and read["backends"]["synthetic"]["n"] == 5
    share = read["backends"]["synthetic"]["within_10pct_rel"]
    lines = predictor_section({"predictor": read, "per_backend": {"synthetic": {"kernel_sum": {"within_10pct": 0.4}}}})
    row = next(line for line in lines if line.startswith("| synthetic"))
    assert f"| {share:.0%} |" in row and "| 40% |" in row and "conv 70%" in row
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(UsageError, match="not a predictor check"):
        read_predictor_eval(str(tmp_path / "bad.json"))


def test_a_fused_chain_behind_a_head_lost_in_its_fixed_cost_gets_a_bounded_extra():
    from benchbench.analysis.fusion import MAX_EXTRA

    sweep = _synthetic_sweep(0.0)
    add = next(p for p in fusion_points() if p.op == "add" and not p.post)
    sweep[add.name]["t_rel"] = _base(point_kernel(add)) * 0.99  # measured just under its base: no marginal left
    sweep[KernelPoint(**{**add.__dict__, "post": "relu"}).name]["executed_ops"] = 1  # and fused
    doc = fit_document(sweep, "synthetic", {})
    assert 0 <= doc["rules"]["add+relu"]["extra"] <= MAX_EXTRA


def test_the_boundary_a_lone_convolution_pays_is_read_from_chains_and_kept_out_of_models():
    # half a percent of noise: the boundary is read from differences of two nets, and an error in it lands on every
    # convolution's marginal cost (at 1% here, 63% of the models stay within ±10%: docs/predictor.md)
    doc = fit_document(_synthetic_sweep(0.005, boundary=BOUNDARY), "synthetic", {"anchor_ms": 0.1})
    assert abs(doc["base"]["boundary"]["conv"] / BOUNDARY - 1) < 0.15
    assert abs(doc["base"]["boundary"]["dwconv"] / BOUNDARY - 1) < 0.15
    predictor = Predictor(doc)
    errors = [predictor.predict(kernels, io)["t_rel"] / truth - 1 for kernels, io, truth in _unseen_models(30, 7)]
    assert np.mean(np.abs(errors) <= 0.10) >= 0.9  # the models' inner convolutions pay no boundary


def test_a_models_layout_reorders_cost_the_boundary_a_lone_convolution_pays():
    """Planted: the models' layout breaks out of and back into the blocked layout after a third of their
    convolutions, each reorder paying the lone convolution's boundary per element it moves. Priced from the
    chains' boundary, the reorder kernels restore the models; left out, the models read fast."""
    doc = fit_document(_synthetic_sweep(0.005, boundary=BOUNDARY), "synthetic", {"anchor_ms": 0.1})
    predictor = Predictor(doc)
    with_reorders, without = [], []
    for kernels, io, truth in _unseen_models(30, 7):
        convs = [k for k in kernels if k["kind"] in ("conv", "dwconv", "gconv")]
        reorders = [layout_kernel(k["out_elems"]) for k in convs[::3] for _ in range(2)]
        moved = sum(r["in_elems"] for r in reorders)
        true = truth + BOUNDARY * moved
        p = predictor.predict(kernels + reorders, io)
        priced = sum(k["t_rel"] for k in p["kernels"] if k["kind"] == LAYOUT)
        assert priced == pytest.approx(doc["base"]["boundary"]["conv"] * moved)
        assert p["t_rel_low"] <= p["t_rel"] <= p["t_rel_high"]
        with_reorders.append(p["t_rel"] / true - 1)
        without.append(predictor.predict(kernels, io)["t_rel"] / true - 1)
    assert np.mean(np.abs(with_reorders) <= 0.10) >= 0.9
    assert np.median(without) < np.median(with_reorders) - 0.02, (np.median(without), np.median(with_reorders))


def test_the_dispatch_a_model_pays_per_kernel_is_read_from_chains_of_tiny_kernels():
    # planted: every kernel of a model pays 0.05 anchors beyond its one-kernel net's marginal (5 us: a dispatch);
    # a predictor that missed it would under-predict each model by its kernel count times that
    dispatch = 0.05
    doc = fit_document(_synthetic_sweep(0.005, boundary=BOUNDARY, dispatch=dispatch), "synthetic", {"anchor_ms": 0.1})
    assert abs(doc["base"]["dispatch"] / dispatch - 1) < 0.15
    assert abs(doc["base"]["boundary"]["dwconv"] / BOUNDARY - 1) < 0.25  # read together with the dispatch
    predictor = Predictor(doc)
    models = _unseen_models(30, 7, dispatch=dispatch)
    errors = np.array([predictor.predict(kernels, io)["t_rel"] / truth - 1 for kernels, io, truth in models])
    assert np.mean(np.abs(errors) <= 0.10) >= 0.9
    blind = Predictor({**doc, "base": {**doc["base"], "dispatch": 0.0}})
    missed = np.array([blind.predict(kernels, io)["t_rel"] / truth - 1 for kernels, io, truth in models])
    # without it every model comes out low by its kernels' dispatch: a few percent of a model here
    shares = np.array([len(kernels) * dispatch / truth for kernels, _, truth in models])
    assert np.median(missed) < 0
    assert np.median(errors - missed) == pytest.approx(np.median(shares), rel=0.3)


def test_a_base_that_over_prices_io_is_corrected_from_chains_of_element_wise_kernels():
    # planted: the reshape probes pay for their own copy, so their line over-prices a net's I/O; a memory-bound
    # kernel's net then reads cheaper than its base, and without the correction its marginal is lost
    copy = 2 * BASE_B
    doc = fit_document(_synthetic_sweep(0.005, boundary=BOUNDARY, probe_copy=copy), "synthetic", {"anchor_ms": 0.1})
    assert doc["base"]["boundary"]["io"] < 0
    assert abs(doc["base"]["boundary"]["io"] / (-copy / 2) - 1) < 0.25
    predictor = Predictor(doc)
    models = _unseen_models(30, 7)
    errors = np.array([predictor.predict(kernels, io)["t_rel"] / truth - 1 for kernels, io, truth in models])
    assert np.mean(np.abs(errors) <= 0.10) >= 0.9
    # without the correction the memory-bound kernels' marginals are lost and the element-wise class errs more
    # (its median error: the share within ±10% of a few dozen nets is too coarse to show it on every design draw)
    blind = {**doc["base"], "boundary": {**doc["base"]["boundary"], "io": 0.0}}
    without = cross_validate(doc["points"], blind)["eltwise"]
    assert without["median_abs_error"] > 1.2 * doc["cv"]["eltwise"]["median_abs_error"]
    assert without["within_10pct"] <= doc["cv"]["eltwise"]["within_10pct"]


def _cell(model, group, rounds_ms, backend="ort"):
    stats = {"median_ms": float(np.median(rounds_ms))}
    if len(rounds_ms) > 1:
        stats["round_medians_ms"] = list(rounds_ms)
    return {"spec": {"model": model, "variant": "deploy", "backend": backend}, "group": group, "status": "ok",
            "stats": stats, "model": {"name": model}}


def test_anchor_ratios_pair_each_file_s_groups_and_leave_out_disturbed_rounds():
    # planted: the anchor takes 1.0 ms; x costs 2 anchors, y 4, z 3. A disturbance in x's second round slows the
    # anchor 1.4x and x 2.5x (a memory-bound cell suffers more): only the quiet round may count. z ran disturbed
    # in every round of the first file and is measured again, quietly, in the second.
    first = {"cells": [_cell("lab_anchor", 0, [1.0, 1.4]), _cell("x", 0, [2.0, 5.0]),
                       _cell("lab_anchor", 1, [1.3, 1.35]), _cell("z", 1, [6.0, 6.2]),
                       _cell("lab_anchor", 2, [1.0, 1.0]), _cell("lab_anchor", 3, [0.99, 1.01])]}
    first["cells"].append(_cell("w", 2, [1.5, 1.5]))
    second = {"cells": [_cell("lab_anchor", 0, [1.02, 0.98]), _cell("y", 0, [4.08, 3.92]),
                        _cell("lab_anchor", 1, [1.0, 1.0]), _cell("z", 1, [3.0, 3.0]),
                        _cell("lab_anchor", 2, [1.0, 1.0]), _cell("w", 2, [1.7, 1.7])]}
    only_first = anchored_cells([first], lambda c: True)["ort"]
    assert only_first[("z", "deploy")]["disturbed"] and only_first[("z", "deploy")]["rounds"] == 2
    cells = anchored_cells([first, second], lambda c: True)["ort"]
    x, y, z = (cells[(m, "deploy")] for m in "xyz")
    assert x["t_rel"] == pytest.approx(2.0) and x["rounds"] == 1 and not x["disturbed"]
    assert y["t_rel"] == pytest.approx(4.0)  # against its own file's group 0, not the first file's
    assert z["t_rel"] == pytest.approx(3.0) and not z["disturbed"]
    assert only_first[("w", "deploy")]["t_rel"] == pytest.approx(1.5)  # measured once: its own two rounds
    assert cells[("w", "deploy")]["t_rel"] == pytest.approx(1.6) and cells[("w", "deploy")]["rounds"] == 4
    # with the screen off, the disturbed round pulls x's ratio up
    assert anchored_cells([first], lambda c: True, disturbed=10.0)["ort"][("x", "deploy")]["t_rel"] > 2.5


def test_an_anchor_in_its_slow_state_is_told_from_its_quiet_latency_not_its_median():
    # planted: the anchor's quiet latency is 1.0 ms and x costs 2 anchors. For most of the first sweep the anchor
    # sits in a slow state, 1.5 ms, where x barely moves (2.1 ms): its median is the slow state, so a threshold
    # over the median calls those groups quiet and reads x at 1.4 anchors. The quiet latency is a low quantile.
    slow = [_cell("lab_anchor", g, [1.5, 1.52]) for g in range(7)] + [_cell("x", g, [2.1, 2.1]) for g in range(7)]
    fast = [_cell("lab_anchor", g, [1.0, 1.01]) for g in range(7, 10)] + [_cell("y", g, [3.0, 3.03])
                                                                           for g in range(7, 10)]
    sweep = {"cells": slow + fast}
    assert quiet_anchor_ms([1.5] * 14 + [1.0, 1.01] * 3) == pytest.approx(1.0, abs=0.011)
    read = anchored_cells([sweep], lambda c: True)["ort"]
    assert read[("x", "deploy")]["disturbed"] and read[("y", "deploy")]["t_rel"] == pytest.approx(3.0)
    retake = {"cells": [_cell("lab_anchor", 0, [1.0, 1.0]), _cell("x", 0, [2.0, 2.0])]}  # the state passed
    both = anchored_cells([sweep, retake], lambda c: True)["ort"][("x", "deploy")]
    assert not both["disturbed"] and both["t_rel"] == pytest.approx(2.0)
    # a sweep spent entirely in the slow state shows nothing by itself; the fit's quiet anchor tells it
    all_slow = {"cells": slow}
    assert not anchored_cells([all_slow], lambda c: True)["ort"][("x", "deploy")]["disturbed"]
    assert anchored_cells([all_slow], lambda c: True, quiet={"ort": 1.0})["ort"][("x", "deploy")]["disturbed"]
    # a reference above the sweep's own quiet latency changes nothing
    assert not anchored_cells([sweep], lambda c: True, quiet={"ort": 9.0})["ort"][("y", "deploy")]["disturbed"]


def test_the_check_leaves_disturbed_cells_out_of_the_anchor_relative_figures_only():
    doc = fit_document(_synthetic_sweep(0.0), "synthetic", {})
    fit_anchor = float(np.median([p["t_ms"] / p["t_rel"] for p in doc["points"]]))
    assert fit_quiet_anchor_ms(doc) == pytest.approx(fit_anchor, rel=0.05)
    predictor = Predictor(doc)
    rows = []
    for i, (kernels, io, truth) in enumerate(_unseen_models(10, seed=5)):
        p = predictor.predict(kernels, io)
        loud = i < 4  # four cells' anchor in its slow state: their ratio reads 1.5x too low, their ms is right
        anchor = fit_anchor * (1.5 if loud else 1.0)
        rows.append({"model": f"m{i}", "variant": "deploy", "family": "f", "flops": 1e9, "disturbed": loud,
                     "measured_rel": truth * fit_anchor / anchor, "measured_ms": truth * fit_anchor,
                     "anchor_ms": anchor, "by_kind": {"conv": 1.0},
                     **{k: p[k] for k in ("t_rel", "t_rel_low", "t_rel_high", "ms")}})
    ev = evaluation({"synthetic": rows}, {"synthetic": doc})
    s = ev["backends"]["synthetic"]
    assert s["n"] == 10 and s["n_disturbed"] == 4
    assert s["within_10pct_rel"] >= 0.9 and s["within_10pct_rel_all"] <= 0.7  # the quiet six, then all ten
    assert s["within_10pct_abs"] >= 0.9  # the absolute reading keeps every cell
    md = evaluation_markdown(ev)
    assert "| synthetic | 10 (4 disturbed) |" in md and "**Disturbed cells**: on synthetic, 4 of 10" in md
    assert md.count("(disturbed) |") == 4
