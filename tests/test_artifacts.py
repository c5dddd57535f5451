"""A user's own model file (``--model model.onnx``, ``.tflite``, OpenVINO ``.xml``): the files are built in the
test (a tiny torch model exported to a temporary folder, and one ONNX graph written with ``onnx.helper``), then
run through ``run``, ``compare`` and ``--vs``; FLOPs are checked against hand counts and against PyTorch's own
counter, parity across backends, and every user mistake ends in one line with exit 2."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchbench.cli import main
from benchbench.processes.manager import module_command

onnx = pytest.importorskip("onnx", reason="onnx is not installed")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

FAST = ["--quick", "--min-time", "0.05", "--max-time", "0.3", "--roofline", "off", "--threads", "1"]


@pytest.fixture(autouse=True)
def _own_lock(tmp_path, monkeypatch, cache_dir):
    """No waiting on another benchbench measuring on this machine; the session's own artifact cache."""
    monkeypatch.setenv("BENCHBENCH_LOCK", str(tmp_path / "measure.lock"))


def _two_input_graph(path: Path) -> Path:
    """x float [batch, 3, height, width] and ids int64 [batch, 5]; two outputs (a conv feature map, a projection
    of the embedded ids). Hand count at x=1x3x16x16, ids=1x5: Conv 8*16*16 outputs x 3*3*3 = 55296 MACs,
    Gemm-free MatMul 1*5*8 outputs x 8 = 320 MACs."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal((10, 8)).astype(np.float32), "E"),
             numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "P")]
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["feat"]),
             helper.make_node("Gather", ["E", "ids"], ["emb"]),
             helper.make_node("MatMul", ["emb", "P"], ["proj"])]
    graph = helper.make_graph(
        nodes, "two_inputs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "height", "width"]),
         helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 5])],
        [helper.make_tensor_value_info("feat", TensorProto.FLOAT, ["batch", 8, "height", "width"]),
         helper.make_tensor_value_info("proj", TensorProto.FLOAT, ["batch", 5, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _tiny_torch():
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.up = torch.nn.ConvTranspose2d(8, 4, 2, stride=2)
            self.fc = torch.nn.Linear(4, 6)

        def forward(self, x):
            y = self.up(torch.relu(self.conv(x)))  # N,4,2H,2W
            return self.fc(y.mean((2, 3)))

    torch.manual_seed(0)
    return Tiny().eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("files")
    return {"graph": _two_input_graph(folder / "two_inputs.onnx"), "folder": folder}


@pytest.fixture(scope="module")
def torch_onnx(tmp_path_factory):
    """The tiny torch model exported with a dynamic batch and spatial dims."""
    import torch

    path = tmp_path_factory.mktemp("torch") / "tiny.onnx"
    torch.onnx.export(_tiny_torch(), (torch.zeros(1, 3, 8, 8),), str(path), dynamo=False, input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}}, opset_version=17)
    return path


def _cli(*args):
    return subprocess.run(module_command("benchbench", *args), capture_output=True, text=True, timeout=600)


def _run(tmp_path, *args) -> dict:
    code = main(["run", *args, "--out", str(tmp_path), *FAST])
    assert code == 0
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir() and (p / "results.json").exists()][-1:]
    return json.loads((folder / "results.json").read_text()), folder


# -- counting ----------------------------------------------------------------------------------------

def test_graph_counts_match_a_hand_count(files):
    from benchbench.formats import format_for

    fmt = format_for(files["graph"])
    counts, graph = fmt.metrics(files["graph"], {"x": (2, 3, 16, 16), "ids": (2, 5)})
    conv, matmul = 2 * 8 * 16 * 16 * 27, 2 * 5 * 8 * 8
    assert counts["macs"] == conv + matmul and counts["flops"] == 2 * (conv + matmul)
    assert counts["params"] == 8 * 27 + 10 * 8 + 8 * 8
    assert graph["graph_ops"] == 4 and graph["dag_width"] == 2 and graph["joins"] == 0


def test_onnx_flops_agree_with_torch_flop_counter(torch_onnx):
    """Conv, ConvTranspose and Gemm counted from the graph equal FlopCounterMode on the same model and input."""
    import torch

    from benchbench.formats import format_for
    from benchbench.metrics import count_model

    expected = count_model(_tiny_torch(), torch.zeros(2, 3, 12, 20))
    counts, _ = format_for(torch_onnx).metrics(torch_onnx, {"image": (2, 3, 12, 20)})
    assert counts["flops"] == expected["flops"] and counts["flops"] > 0
    assert counts["params"] == expected["params"]
    assert set(counts["flops_by_type"]) == {"Conv", "ConvTranspose", "Gemm"}


def test_einsum_and_gemm_counts(tmp_path):
    from benchbench.metrics import count_onnx

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [4, 6])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [2, 6, 7])
    nodes = [helper.make_node("Gemm", ["a", "G"], ["g"], transB=1),  # [4,6] x [5,6]^T: 4*5*6
             helper.make_node("Einsum", ["a", "b"], ["e"], equation="ik,bkj->bij")]  # b,i,j,k: 2*4*7*6
    graph = helper.make_graph(nodes, "g", [a, b], [helper.make_tensor_value_info("g", TensorProto.FLOAT, None),
                                                   helper.make_tensor_value_info("e", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.ones((5, 6), np.float32), "G")])
    model = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    counts = count_onnx(model)
    assert counts["macs"] == 4 * 5 * 6 + 2 * 4 * 7 * 6
    assert counts["flops_by_type"] == {"Gemm": 240, "Einsum": 672} and not counts["flops_unknown_ops"]


# -- running ---------------------------------------------------------------------------------------

def test_two_input_graph_runs_with_cross_backend_parity(files, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    doc, folder = _run(tmp_path, "--model", str(files["graph"]), "--backend", "ort,openvino,tflite",
                       "--input-shape", "x=1x3x16x16")
    cells = {c["spec"]["backend"]: c for c in doc["cells"]}
    assert [c["status"] for c in cells.values()] == ["ok", "ok", "unsupported"]
    assert "onnx" in cells["tflite"]["reason"] and "ort" in cells["tflite"]["reason"]
    sha = hashlib.sha256(files["graph"].read_bytes()).hexdigest()
    for c in (cells["ort"], cells["openvino"]):
        source = c["spec"]["source"]
        assert source["sha256"] == sha == c["artifact"]["sha256"]
        assert c["artifact"]["bytes"] == files["graph"].stat().st_size
        assert source["input_shapes"] == {"x": [1, 3, 16, 16], "ids": [1, 5]}  # batch filled from --batch
        assert [i["dtype"] for i in c["model"]["inputs"]] == ["float32", "int64"]
        assert c["model"]["flops"] == 2 * (8 * 16 * 16 * 27 + 5 * 8 * 8)
        assert c["parity"]["checked"] and c["parity"]["passed"], c["parity"]
        assert c["artifact"]["parity_reference"].startswith("ort")
        assert c["metrics"]["graph_ops"] == 4 and c["metrics"]["executed_ops"] >= 1
    assert cells["openvino"]["parity"]["max_rel_err"] < 1e-4
    assert "first backend in --backend order" in (folder / "report.md").read_text()
    from benchbench.results.load import load_run

    load_run(folder / "results.json")  # validates against the schema


def test_compare_matches_a_file_by_its_hash_not_its_path(files, tmp_path):
    pytest.importorskip("onnxruntime")
    copy = files["folder"] / "renamed.onnx"
    copy.write_bytes(files["graph"].read_bytes())
    a, fa = _run(tmp_path / "a", "--model", str(files["graph"]), "--backend", "ort", "--input-size", "8")
    b, fb = _run(tmp_path / "b", "--model", str(copy), "--backend", "ort", "--input-size", "8")
    assert a["cells"][0]["spec"]["source"]["path"] != b["cells"][0]["spec"]["source"]["path"]
    cmp = _cli("compare", str(fa / "results.json"), str(fb / "results.json"))
    assert cmp.returncode == 0, cmp.stderr
    assert "over 1 matched cells" in cmp.stdout


def test_vs_measures_two_files_in_lockstep_with_a_speedup(torch_onnx, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnx as onnx_mod

    # the same model with its graph changed (an Identity appended): another file, the same inputs
    model = onnx_mod.load(str(torch_onnx))
    out = model.graph.output[0].name
    model.graph.node.append(helper.make_node("Identity", [out], [out + "_id"]))
    model.graph.output[0].name = out + "_id"
    after = tmp_path / "after.onnx"
    onnx_mod.save(model, str(after))
    doc, folder = _run(tmp_path / "runs", "--model", str(torch_onnx), "--vs", str(after), "--backend", "ort",
                       "--input-size", "16")
    before_cell, after_cell = doc["cells"]
    assert (before_cell["spec"]["variant"], after_cell["spec"]["variant"]) == ("before", "after")
    assert before_cell["group"] == after_cell["group"] is not None  # one lockstep group
    assert before_cell["spec"]["source"]["sha256"] != after_cell["spec"]["source"]["sha256"]
    csv = (folder / "results.csv").read_text().splitlines()
    header = csv[0].split(",")
    speedup = csv[2].split(",")[header.index("speedup")]
    assert float(speedup) > 0
    cmp = _cli("compare", "--pivot", "variant", str(folder / "results.json"))
    assert cmp.returncode == 0 and "before → after" in cmp.stdout and "paired" in cmp.stdout


def test_vs_with_other_inputs_is_an_error(files, torch_onnx, capsys):
    assert main(["run", "--model", str(torch_onnx), "--vs", str(files["graph"]), "--backend", "ort",
                 "--input-size", "8", *FAST]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--vs" in err


def test_tflite_file_runs_on_tflite(tmp_path):
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("litert_torch")

    path = tmp_path / "tiny.tflite"
    # Converted in a process of its own: litert-torch imports JAX, whose threads would make every later fork
    # in this test process unsafe (Python warns "os.fork() was called ... JAX is multithreaded").
    code = ("import sys, torch, litert_torch; sys.path.insert(0, sys.argv[2]); from test_artifacts import _tiny_torch; "
            "litert_torch.convert(_tiny_torch(), (torch.zeros(1, 3, 8, 8),)).export(sys.argv[1])")
    subprocess.run([sys.executable, "-c", code, str(path), str(Path(__file__).parent)], check=True, timeout=600,
                   capture_output=True)
    doc, _ = _run(tmp_path / "runs", "--model", str(path), "--backend", "tflite,ort")
    tfl, ort_cell = doc["cells"]
    assert tfl["status"] == "ok" and tfl["parity"]["passed"]
    assert ort_cell["status"] == "unsupported" and "tflite" in ort_cell["reason"]
    assert tfl["spec"]["source"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert tfl["model"]["flops"] == count_flops_torch((1, 3, 8, 8))
    assert tfl["metrics"]["graph_ops"] >= 3


def count_flops_torch(shape):
    import torch

    from benchbench.metrics import count_model

    return count_model(_tiny_torch(), torch.zeros(*shape))["flops"]


def test_openvino_ir_runs_on_openvino(torch_onnx, tmp_path):
    ov = pytest.importorskip("openvino")
    xml = tmp_path / "tiny.xml"
    ov.save_model(ov.convert_model(str(torch_onnx)), str(xml))
    doc, _ = _run(tmp_path / "runs", "--model", str(xml), "--backend", "openvino,ort", "--input-size", "12")
    ov_cell, ort_cell = doc["cells"]
    assert ov_cell["status"] == "ok" and ov_cell["parity"]["passed"]
    assert ov_cell["artifact"]["bytes"] == xml.stat().st_size + xml.with_suffix(".bin").stat().st_size
    assert ov_cell["model"]["flops"] == count_flops_torch((1, 3, 12, 12))
    assert ort_cell["status"] == "unsupported" and "openvino_ir" in ort_cell["reason"]


# -- user mistakes: one line, exit 2 -------------------------------------------------------------------

def _one_line_error(capsys, *args) -> str:
    assert main(["run", *args, *FAST]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("benchbench: error: ") and "Traceback" not in err, err
    return err


def test_truncated_onnx(files, tmp_path, capsys):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(files["graph"].read_bytes()[:700])
    assert "cut.onnx" in _one_line_error(capsys, "--model", str(cut), "--backend", "ort", "--input-size", "8")


def test_xml_without_its_bin(tmp_path, torch_onnx, capsys):
    ov = pytest.importorskip("openvino")
    xml = tmp_path / "m.xml"
    ov.save_model(ov.convert_model(str(torch_onnx)), str(xml))
    xml.with_suffix(".bin").unlink()
    assert "m.bin" in _one_line_error(capsys, "--model", str(xml), "--backend", "openvino")


def test_tflite_given_to_ort(tmp_path, capsys):
    path = tmp_path / "m.tflite"
    path.write_bytes(b"\0" * 64)
    err = _one_line_error(capsys, "--model", str(path), "--backend", "ort")
    assert "ort cannot run" in err and "tflite" in err


def test_unknown_input_name_suggests(files, capsys):
    err = _one_line_error(capsys, "--model", str(files["graph"]), "--backend", "ort", "--input-shape", "xx=1x3x8x8")
    assert "no input 'xx'" in err and "did you mean x" in err


def test_wrong_rank(files, capsys):
    err = _one_line_error(capsys, "--model", str(files["graph"]), "--backend", "ort", "--input-shape", "x=1x3x8")
    assert "rank 3" in err and "rank 4" in err


def test_missing_dynamic_dims_name_them(files, capsys):
    err = _one_line_error(capsys, "--model", str(files["graph"]), "--backend", "ort")
    assert "height, width" in err and "--input-shape x=" in err


def test_input_data_file_is_used(files, tmp_path):
    pytest.importorskip("onnxruntime")
    data = tmp_path / "in.npz"
    np.savez(data, x=np.ones((1, 3, 4, 4), np.float32), ids=np.array([[0, 1, 2, 3, 9]], np.int64))
    doc, _ = _run(tmp_path / "runs", "--model", str(files["graph"]), "--backend", "ort", "--input-data", str(data))
    (cell,) = doc["cells"]
    assert cell["status"] == "ok" and cell["spec"]["source"]["input_shapes"] == {"x": [1, 3, 4, 4], "ids": [1, 5]}
    assert cell["spec"]["source"]["input_data_sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
