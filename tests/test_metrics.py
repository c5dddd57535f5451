"""Metrics (benchbench.metrics): every definition checked against numbers computed by hand.

The worked example of docs/metrics.md (tests/data/two_conv.py) is counted exactly; the DAG width is
checked against brute force; the roofline arithmetic and artifact sizes are unit tested; one sweep on
the real ort backend, with a real roofline calibration, shows every metric in every ok cell, in JSON,
CSV and Markdown.
"""

import itertools
import json
import random
from pathlib import Path

import pytest
import torch

from benchbench.build.export import artifact_bytes, build
from benchbench.core.spec import QUICK, CellSpec
from benchbench.measure.calibration import calibrate, calibrate_run
from benchbench.measure.sweep import run_sweep
from benchbench.metrics import (
    METRIC_KEYS,
    cell_metrics,
    count_model,
    graph_metrics,
    max_antichain,
    roofline_point,
)
from benchbench.processes.protocol import BuildJob
from benchbench.results.record import RunResult
from benchbench.results.views import markdown_report, rows

DATA = Path(__file__).parent / "data"
TWO_CONV = f"{DATA / 'two_conv.py'}:two_conv"
FAST = QUICK.replace(min_count=6, min_s=0.05, max_s=0.5, warmup_min_s=0.01, cell_timeout_s=300)

# The worked example, by hand (docs/metrics.md): input 1x3x32x32, width 8, float32.
HAND = {
    "train": {"params": 880, "macs": 876_544, "flops": 1_753_088, "element_ops": 32_768, "graph_ops": 7,
              "dag_width": 2, "joins": 1, "mac_bytes": 441_840},
    "deploy": {"params": 808, "macs": 811_008, "flops": 1_622_016, "element_ops": 24_576, "graph_ops": 5,
               "dag_width": 1, "joins": 0, "mac_bytes": 277_712},
}


@pytest.fixture(scope="module")
def two_conv_builds(cache_dir):
    """Both forms of the worked example through the real build step (ONNX export included)."""
    return {v: build(BuildJob(CellSpec(TWO_CONV, v, "ort"), [1, 3, 32, 32], ["onnx"], str(cache_dir / f"two_conv-{v}")))
            for v in HAND}


@pytest.mark.parametrize("variant", list(HAND))
def test_worked_example_matches_hand_counts(two_conv_builds, variant, cache_dir):
    manifest, hand = two_conv_builds[variant], HAND[variant]
    model, graph = manifest["model"], manifest["graph"]
    for key in ("params", "macs", "flops", "element_ops"):
        assert model[key] == hand[key], key
    for key in ("graph_ops", "dag_width", "joins", "mac_bytes"):
        assert graph[key] == hand[key], key
    assert graph["mac_unknown_tensors"] == 0
    assert model["element_ops_unknown"] == {}
    assert manifest["artifacts"]["onnx"]["bytes"] == artifact_bytes(cache_dir / f"two_conv-{variant}" / manifest["artifacts"]["onnx"]["file"])


def test_flops_are_flop_counter_mode_and_twice_the_macs():
    from benchbench.models import create_model
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = create_model("resnet18", "train", randomize=False)
        x = torch.zeros(1, 3, 224, 224)
    with FlopCounterMode(display=False) as ref, torch.no_grad():
        model(x)
    counts = count_model(model, x)
    assert counts["flops"] == ref.get_total_flops() == 2 * counts["macs"]
    assert counts["element_ops_by_category"]["normalization"] > 0  # the train form's BNs


def test_element_op_rules():
    """Elementwise: output elements; windowed pooling: output x window; reductions: input elements."""

    class M(torch.nn.Module):
        def forward(self, x):  # x: 1x2x8x8 = 128 elements
            a = torch.relu(x)  # 128
            p = torch.nn.functional.max_pool2d(a, 3, 2)  # out 1x2x3x3 = 18, x 9 = 162
            g = torch.nn.functional.adaptive_avg_pool2d(a, 1)  # input 128
            s = p.sum()  # input 18
            return torch.special.erfinv(torch.tanh(s + g.mean()))  # add 1 + mean 2 + tanh 1; erfinv unknown

    counts = count_model(M(), torch.zeros(1, 2, 8, 8))
    assert counts["element_ops_by_category"] == {"elementwise": 128 + 1 + 1, "normalization": 0, "pooling": 162,
                                                 "reduction": 128 + 18 + 2}
    assert counts["element_ops_unknown"] == {"erfinv": 1}


def _brute_width(n, edges):
    reach = {(u, v) for u, v in edges}
    changed = True
    while changed:  # transitive closure, the slow way
        new = {(a, d) for a, b in reach for c, d in reach if b == c} - reach
        reach |= new
        changed = bool(new)
    for k in range(n, 0, -1):
        for subset in itertools.combinations(range(n), k):
            if all((a, b) not in reach and (b, a) not in reach for a, b in itertools.combinations(subset, 2)):
                return k
    return 0


def test_dag_width_is_the_maximum_antichain():
    assert max_antichain(4, [(0, 1), (1, 2), (2, 3)]) == 1  # a chain
    assert max_antichain(5, [(0, i) for i in (1, 2, 3)] + [(i, 4) for i in (1, 2, 3)]) == 3  # 3 branches
    rng = random.Random(0)
    for _ in range(60):
        n = rng.randint(1, 9)
        edges = [(u, v) for u in range(n) for v in range(u + 1, n) if rng.random() < 0.3]
        assert max_antichain(n, edges) == _brute_width(n, edges), edges


def test_graph_metrics_on_a_handmade_graph(tmp_path):
    """Constants are no path (no join, no width); Reshape moves no data; bytes follow the dtype."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    inits = [numpy_helper.from_array(np.ones((1, 4), np.float32), "c"),
             numpy_helper.from_array(np.array([4], np.int64), "shape")]
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),  # 16 + 16
        helper.make_node("Add", ["r", "c"], ["a"]),  # 16 + 16 + 16; a constant operand: not a join
        helper.make_node("Sigmoid", ["x"], ["s"]),  # 16 + 16; parallel to Relu and Add
        helper.make_node("Mul", ["a", "s"], ["m"]),  # 16 + 16 + 16; a join
        helper.make_node("Reshape", ["m", "shape"], ["y"]),  # no data moved
    ]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 18)])
    path = tmp_path / "g.onnx"
    onnx.save(model, path)
    g = graph_metrics(path)
    assert (g["graph_ops"], g["joins"], g["dag_width"]) == (5, 1, 2)
    assert g["mac_bytes"] == 32 + 48 + 32 + 48
    assert g["graph_ops_by_type"]["Reshape"] == 1


def test_artifact_bytes_include_sidecars(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"x" * 10)
    (tmp_path / "model.onnx.data").write_bytes(b"x" * 1000)
    (tmp_path / "model.tflite").write_bytes(b"x" * 7)  # another artifact: not a sidecar
    (tmp_path / "model.xml").write_bytes(b"x" * 3)
    (tmp_path / "model.bin").write_bytes(b"x" * 300)
    assert artifact_bytes(tmp_path / "model.onnx") == 1010
    assert artifact_bytes(tmp_path / "model.tflite") == 7
    assert artifact_bytes(tmp_path / "model.xml") == 303


def test_roofline_point_arithmetic():
    entry = {"peak_gflops": 100.0, "bandwidth_gbs": 10.0}  # ridge at 10 FLOP/B
    p = roofline_point(flops=2e9, mac_bytes=1e8, median_ms=40.0, entry=entry)  # 20 FLOP/B, 50 GFLOP/s
    assert p == {"achieved_gflops": pytest.approx(50.0), "peak_share": pytest.approx(0.5),
                 "attainable_gflops": pytest.approx(100.0), "bound": "compute"}
    p = roofline_point(flops=2e9, mac_bytes=1e9, median_ms=400.0, entry=entry)  # 2 FLOP/B, 5 GFLOP/s
    assert p["bound"] == "memory" and p["attainable_gflops"] == pytest.approx(20.0)
    assert roofline_point(2e9, 1e9, 400.0, None) == {"achieved_gflops": pytest.approx(5.0), "peak_share": None,
                                                     "attainable_gflops": None, "bound": None}


def test_cell_metrics_has_every_key():
    out = cell_metrics({"flops": 10, "element_ops": 3}, {"mac_bytes": 5, "graph_ops": 2}, {}, {}, 1.0, None)
    assert tuple(out) == METRIC_KEYS
    assert out["arithmetic_intensity"] == 2.0 and out["executed_ops"] is None


@pytest.mark.slow
def test_ort_sweep_carries_every_metric(cache_dir, tmp_path):
    """A real ort sweep with a real roofline calibration: every metric in every ok cell, in every view;
    the calibration is then reused from the cache, not measured again."""
    run = RunResult(meta={"settings": FAST.__dict__}, path=tmp_path / "results.json")
    cells = [CellSpec(TWO_CONV, v, "ort", input_size=(32, 32), threads=1) for v in ("train", "deploy")]
    calibrate_run(cells, run, "cached")
    run_sweep(cells, FAST, run, progress=lambda msg: None)
    cal = run.meta["roofline"]["ort/1"]
    assert cal["peak_gflops"] > 0 and cal["bandwidth_gbs"] > 0
    assert cal["ridge_flop_per_byte"] == pytest.approx(cal["peak_gflops"] / cal["bandwidth_gbs"])
    assert {k: v["status"] for k, v in cal["kernels"].items()} == {"matmul": "ok", "conv": "ok"}
    again = calibrate([("ort", 1)], "cached")["ort/1"]
    assert again["cached"] and again["measured_at"] == cal["measured_at"]
    for cell in run.cells:
        assert cell.status == "ok", cell.reason
        missing = [k for k in METRIC_KEYS if cell.metrics.get(k) is None]
        assert not missing, missing
        hand = HAND[cell.spec.variant]
        assert cell.metrics["graph_ops"] == hand["graph_ops"] and cell.metrics["mac_bytes"] == hand["mac_bytes"]
        assert cell.metrics["artifact_bytes"] == cell.artifact["bytes"] > 0
        assert cell.metrics["executed_ops"] == cell.backend["executed_ops"]["count"]
        assert cell.memory["load_mib"] is not None and cell.memory["infer_peak_mib"] is not None
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["meta"]["roofline"]["ort/1"]["peak_gflops"] == cal["peak_gflops"]
    assert all(c["metrics"]["bound"] in ("compute", "memory") for c in saved["cells"])
    csv_row = rows(run)[0]
    assert all(f"metric_{k}" in csv_row for k in METRIC_KEYS)
    md = markdown_report(run)
    assert "## Metrics" in md and "Roofline calibration" in md
