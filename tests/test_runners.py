"""The tflite, openvino and CUDA runners: names, availability, parity, executed ops, options.

Real backends run for real on millisecond-scale user models (tests/data) through the ordinary sweep;
a backend that is not installed skips its tests with the reason ``is_available()`` gives.
"""

import importlib.util
from pathlib import Path

import pytest
from _onnx_files import conv_transpose_conv
from _sweep import shared_sweep
from benchbench.runners import get_runner, resolve_backends

from benchbench.core.spec import QUICK, CellSpec
from benchbench.measure.sweep import run_sweep
from benchbench.results.record import RunResult

DATA = Path(__file__).parent / "data"
TINY = f"{DATA / 'tiny.py'}:tiny"
HEADS = f"{DATA / 'multi_output.py'}:heads"  # 12 outputs: a feature map, then 11 vectors
FAST = QUICK.replace(min_count=6, min_s=0.05, max_s=0.5, warmup_min_s=0.01, cell_timeout_s=300)
SIZE = (32, 32)


def _needs(backend):
    ok, why = get_runner(backend).is_available()
    if not ok:
        pytest.skip(why)


def _cell(model, backend, **options):
    return CellSpec(model, "deploy", backend, input_size=SIZE, threads=1, options=tuple(sorted(options.items())))


CELLS = {
    "ort": _cell(TINY, "ort"),
    "openvino": _cell(TINY, "openvino"),
    "openvino bf16": _cell(TINY, "openvino", precision="bf16"),
    "tflite": _cell(TINY, "tflite"),
    "tflite nhwc": _cell(TINY, "tflite", layout="nhwc"),
    "tflite no delegate": _cell(TINY, "tflite", delegate="none"),
    "heads torch": _cell(HEADS, "torch"),
    "heads ort": _cell(HEADS, "ort"),
    "heads openvino": _cell(HEADS, "openvino"),
    "heads tflite": _cell(HEADS, "tflite"),
    "heads tflite nhwc": _cell(HEADS, "tflite", layout="nhwc"),
}


@pytest.fixture(scope="module")
def cells(cache_dir, tmp_path_factory):
    """One sweep over every cell above (unavailable backends give unavailable cells), once per session."""
    run = shared_sweep(tmp_path_factory, "runners", list(CELLS.values()), FAST)
    return dict(zip(CELLS, run.cells))


def _ok(cells, key):
    _needs(CELLS[key].backend)
    cell = cells[key]
    assert cell.status == "ok", f"{key}: {cell.status}: {cell.reason}"
    return cell


def test_names_and_aliases():
    assert resolve_backends("torch,torch-cuda,ort,tflite,openvino") == ["torch", "torch-cuda", "ort", "tflite", "openvino"]
    assert resolve_backends("ov, litert,ov") == ["openvino", "tflite"]
    for name in ("tflite", "openvino", "torch-cuda", "ort-cuda"):
        assert get_runner(name).name == name


@pytest.mark.parametrize("key", [k for k in CELLS if not k.endswith("bf16")])
def test_cell_ok_with_parity_and_executed_ops(cells, key):
    cell = _ok(cells, key)
    assert cell.parity["checked"] and cell.parity["passed"], cell.parity
    ops = cell.backend["executed_ops"]
    assert ops["count"] > 0 and sum(ops["by_type"].values()) == ops["count"]
    assert cell.backend["threads"] == 1
    assert cell.stats["median_ms"] > 0


def test_multi_output_order_and_layout(cells):
    """12 outputs compared one by one: a reordering or an NHWC feature map would fail parity."""
    for key in ("heads tflite", "heads tflite nhwc", "heads openvino", "heads ort"):
        cell = _ok(cells, key)
        assert cell.parity["passed"], (key, cell.parity)


def test_tflite_layout_transposes_and_delegate(cells):
    nchw, nhwc = _ok(cells, "heads tflite"), _ok(cells, "heads tflite nhwc")
    # NCHW signature: the converter transposes the input in and the feature map out.
    assert nchw.backend["transposes"]["input"] == 1 and nchw.backend["transposes"]["output"] == 1
    # Channels-last I/O: the wrapper's permutes cancel the converter's boundary transposes. (The feature
    # map's transpose survives inside, feeding the NCHW-axes mean; the converter does not fold it.)
    assert nhwc.backend["transposes"]["input"] == 0 and nhwc.backend["transposes"]["output"] == 0
    assert nhwc.backend["executed_ops"]["count"] < nchw.backend["executed_ops"]["count"]
    assert nhwc.backend["layout"] == "nhwc"
    delegate = nchw.backend["executed_ops"]["delegate"]
    assert delegate["name"] == "XNNPACK" and delegate["partitions"] >= 1
    assert delegate["delegated_ops"] + delegate["cpu_kernel_ops"] == nchw.backend["executed_ops"]["count"]
    plain = _ok(cells, "tflite no delegate").backend["executed_ops"]["delegate"]
    assert plain["partitions"] == 0 and plain["delegated_ops"] == 0
    assert not cells["tflite"].backend.get("worker_imported_torch", False)


def test_openvino_precision_pinned_and_read_back(cells):
    f32 = _ok(cells, "openvino").backend
    assert f32["precision"] == "f32" and set(f32["runtime_precisions"]) == {"f32"}
    assert f32["num_streams"] == 1 and f32["inference_num_threads"] == 1
    bf16 = _ok(cells, "openvino bf16").backend
    assert bf16["requested_precision"] == "bf16"
    import openvino

    if "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        assert bf16["precision"] == "bf16" and "bf16" in bf16["runtime_precisions"]


def test_bad_option_is_a_recorded_error(cache_dir, tmp_path):
    _needs("openvino")
    run = RunResult(meta={}, path=tmp_path / "r.json")
    cell = run_sweep([_cell(TINY, "openvino", precision="int3")], FAST, run, progress=lambda m: None).cells[0]
    assert cell.status == "error" and "precision=int3" in cell.reason


def test_torch_cuda_unavailable_is_recorded_with_reason(cache_dir, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: torch-cuda is measured for real in test_torch_cuda_measures")
    ok, why = get_runner("torch-cuda").is_available()
    assert not ok and "CUDA" in why
    run = RunResult(meta={}, path=tmp_path / "r.json")
    cell = run_sweep([_cell(TINY, "torch-cuda")], FAST, run, progress=lambda m: None).cells[0]
    assert cell.status == "unavailable" and cell.reason == why


def test_torch_cuda_measures(cache_dir, tmp_path):
    _needs("torch-cuda")
    run = RunResult(meta={}, path=tmp_path / "r.json")
    cell = run_sweep([_cell(TINY, "torch-cuda")], FAST, run, progress=lambda m: None).cells[0]
    assert cell.status == "ok", cell.reason
    assert cell.parity["passed"] and cell.backend["precision"] == "f32"
    assert cell.memory["cuda_infer_peak_mib"] > 0


def test_ort_cuda_unavailable_without_cuda_provider():
    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("onnxruntime is not installed")
    import onnxruntime

    ok, why = get_runner("ort-cuda").is_available()
    assert ok == ("CUDAExecutionProvider" in onnxruntime.get_available_providers())
    if not ok:
        assert "onnxruntime-gpu" in why


def test_tflite_runtime_under_numpy2_is_reported_not_crashed(monkeypatch):
    """The legacy tflite_runtime 2.14 wheel raises SystemError under NumPy 2: say so instead."""
    from benchbench.runners import litert

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(litert.importlib.util, "find_spec",
                        lambda name, *a: None if name == "ai_edge_litert" else
                        (object() if name == "tflite_runtime" else real_find_spec(name, *a)))
    fake = {"tflite-runtime": "2.14.0", "numpy": "2.1.0"}
    monkeypatch.setattr(litert.metadata, "version", lambda name: fake[name])
    ok, why = litert.LiteRtRunner.is_available()
    assert not ok and "NumPy" in why and "ai-edge-litert" in why
    fake["numpy"] = "1.26.4"
    assert litert.LiteRtRunner.is_available() == (True, "")


def test_ort_measured_session_writes_no_optimized_graph(tmp_path, monkeypatch):
    """The measured session is created without ``optimized_model_filepath`` (its load time, init_ms, holds no file
    write of benchbench's own); the executed-op count still comes from the optimized graph, written by a second
    session into a temporary folder that is removed."""
    _needs("ort")
    import tempfile

    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], np.ones(4 * 27, np.float32).tolist())
    b = helper.make_tensor("b", TensorProto.FLOAT, [4], [0.0] * 4)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w", "b"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
        "conv_relu", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [w, b])
    path = tmp_path / "conv_relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)

    made = []
    real_mkdtemp = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *a, **k: made.append(real_mkdtemp(*a, **k)) or made[-1])
    runner = get_runner("ort")(1)
    runner.load_runtime()
    runner.prepare(path, np.zeros((1, 3, 8, 8), np.float32))
    runner.run()
    assert made == []  # nothing written for the measured session
    ops = runner.executed_ops()
    assert ops["source"] == "ORT optimized graph" and ops["count"] >= 1
    assert "Relu" not in ops["by_type"]  # fused into the conv: the count is the optimized graph's, not the file's
    assert len(made) == 1 and not Path(made[0]).exists()


def test_ort_reports_the_layout_reorders_it_inserts_around_what_its_blocked_layout_does_not_cover(tmp_path):
    """Two convolutions run in ORT's blocked (NCHWc) layout; a Transpose between them does not, so ORT reorders
    the first's output out of the layout and the Transpose's back in: two more reorders, each of the 32x16x16
    tensor. Other backends report none (None)."""
    _needs("ort")
    import numpy as np

    counts = {}
    for between in (None, "Transpose"):
        path = tmp_path / f"{between}.onnx"
        conv_transpose_conv(path, between)
        runner = get_runner("ort")(1)
        runner.load_runtime()
        runner.prepare(path, np.zeros((1, 32, 16, 16), np.float32))
        counts[between] = runner.layout_reorders()
        assert counts[between] and set(counts[between]) == {32 * 16 * 16}
    assert len(counts["Transpose"]) == len(counts[None]) + 2
    assert get_runner("null")(1).layout_reorders() is None
