"""Int8 deploy forms (``--variant int8``): ONNX Runtime's static QDQ quantization built in the cache, measured in
lockstep beside the float forms, held to fidelity (SQNR against the float deploy form), with Q/DQ ops counted."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from benchbench.cli import main
from benchbench.measure.parity import FIDELITY_MIN_SQNR_DB, fidelity

TINY = f"{Path(__file__).parent / 'data' / 'tiny.py'}:tiny"


@pytest.mark.parametrize("sqnr_db", [30.0, 20.0, 10.0])
def test_fidelity_reads_a_planted_signal_to_noise_ratio(sqnr_db):
    rng = np.random.default_rng(1)
    ref = [rng.standard_normal((4, 1000)), rng.standard_normal(500)]
    power = sum(float(np.sum(r ** 2)) for r in ref)
    noise_sd = math.sqrt(power / sum(r.size for r in ref) / 10 ** (sqnr_db / 10))
    out = [r + rng.normal(0, noise_sd, r.shape) for r in ref]
    f = fidelity(out, ref)
    assert f["sqnr_db"] == pytest.approx(sqnr_db, abs=0.3)
    assert f["passed"] == (sqnr_db >= FIDELITY_MIN_SQNR_DB) and f["mode"] == "fidelity"
    assert not fidelity([np.full((4, 1000), np.nan), ref[1]], ref)["passed"]  # non-finite never passes
    assert not fidelity(out[:1], ref)["passed"]  # a missing output never passes


def _tiny_float_onnx(path: Path):
    """The tiny model's deploy form exported to float ONNX at ``path``; its seeded input and eager outputs."""
    torch = pytest.importorskip("torch")
    from benchbench.models import create_model

    model = create_model(TINY, "deploy", seed=0)
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
    with torch.no_grad():
        ref = [model(torch.from_numpy(x)).numpy()]
    torch.onnx.export(model, torch.from_numpy(x), str(path), opset_version=18, dynamo=False)
    return x, ref


def test_a_constant_calibration_is_caught_as_a_fidelity_failure(tmp_path):
    """A deliberately broken calibration (every input the constant 5) sets the activations' ranges from nothing
    like the data: the int8 model's outputs lose the signal, and fidelity says so, where the seeded calibration
    passes. (An all-zero calibration is not caught on this model: its output is mostly input-independent bias,
    which survives; docs/int8.md.)"""
    ort = pytest.importorskip("onnxruntime")
    from benchbench.build.quantize import calibration_inputs, qdq_counts, quantize_onnx

    x, ref = _tiny_float_onnx(tmp_path / "f.onnx")
    results = {}
    for name, calibration in (("seeded", calibration_inputs(x.shape, 0)), ("constant", [np.full_like(x, 5.0)] * 8)):
        info = quantize_onnx(tmp_path / "f.onnx", tmp_path / f"{name}.onnx", calibration)
        assert info["qdq_nodes"] > 0 and info["qdq_nodes"] == qdq_counts(tmp_path / f"{name}.onnx")["qdq_nodes"]
        session = ort.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        results[name] = fidelity(session.run(None, {session.get_inputs()[0].name: x}), ref)
    assert results["seeded"]["passed"] and results["seeded"]["sqnr_db"] > 30
    assert not results["constant"]["passed"] and results["constant"]["sqnr_db"] < FIDELITY_MIN_SQNR_DB


def test_int8_forms_measure_beside_the_float_ones(cache_dir, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    code = main(["run", "--model", TINY, "--backend", "ort,openvino,tflite,torch", "--variant", "all", "--sampling", "quick",
                 "--roofline", "off", "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err[-1500:]
    (folder,) = tmp_path.glob("*")
    doc = json.loads((folder / "results.json").read_text())
    cells = {(c["spec"]["backend"], c["spec"]["variant"]): c for c in doc["cells"]}
    int8 = cells[("ort", "int8")]
    assert int8["status"] == "ok" and int8["parity"]["mode"] == "fidelity" and int8["parity"]["passed"]
    assert int8["parity"]["sqnr_db"] >= FIDELITY_MIN_SQNR_DB and int8["parity"]["cosine"] > 0.99
    assert int8["artifact"]["format"] == "QDQ" and int8["artifact"]["calibration_count"] == 32
    assert int8["metrics"]["executed_qdq_ops"] == sum(
        n for t, n in int8["backend"]["executed_ops"]["by_type"].items() if t in ("QuantizeLinear", "DequantizeLinear"))
    # train, deploy and int8 of one model on one backend are one lockstep group
    assert int8["group"] == cells[("ort", "deploy")]["group"] == cells[("ort", "train")]["group"]
    # the int8 form is quantized in the deploy form's build, from its float export (no second export)
    assert Path(int8["artifact"]["path"]).parent == Path(cells[("ort", "deploy")]["artifact"]["path"]).parent \
        != Path(cells[("ort", "train")]["artifact"]["path"]).parent
    ov_int8 = cells[("openvino", "int8")]
    try:
        import nncf  # noqa: F401
    except ImportError:  # the int8 extra is absent: openvino's int8 form cannot be made, and says why
        assert ov_int8["status"] == "unsupported" and "nncf" in ov_int8["reason"]
    else:
        assert ov_int8["status"] == "ok" and ov_int8["artifact"]["tool"] == "nncf.quantize"
        assert ov_int8["parity"]["passed"] and ov_int8["group"] == cells[("openvino", "deploy")]["group"]
    tfl_int8 = cells[("tflite", "int8")]
    try:
        import ai_edge_quantizer  # noqa: F401
    except ImportError:  # no quantizer: tflite's int8 form cannot be made, and says why
        assert tfl_int8["status"] == "unsupported" and "ai_edge_quantizer" in tfl_int8["reason"]
    else:  # full-integer, float I/O: one QUANTIZE in, one DEQUANTIZE out
        assert tfl_int8["status"] == "ok" and tfl_int8["parity"]["passed"] and tfl_int8["artifact"]["qdq_nodes"] == 2
        assert tfl_int8["artifact"]["calibration_count"] == 32 and tfl_int8["metrics"]["executed_qdq_ops"] == 2
    torch_int8 = cells[("torch", "int8")]
    assert torch_int8["status"] == "unsupported" and "eager PyTorch is not an int8 deploy path" in torch_int8["reason"]
    rows = {(r.split(",")[2], r.split(",")[3]): r for r in (folder / "results.csv").read_text().splitlines()[1:]}
    assert rows and "dB" in (folder / "report.md").read_text()  # the fidelity column reads in dB
    csv_head = (folder / "results.csv").read_text().splitlines()[0].split(",")
    assert "fidelity_sqnr_db" in csv_head and "speedup" in csv_head


def test_openvino_int8_is_nncf_quantized_and_holds_fidelity(tmp_path):
    """openvino's int8 form is NNCF's own quantization (an IR with FakeQuantize nodes, folded into int8 kernels
    by the CPU plugin), from the same seeded calibration; a constant calibration is caught by fidelity."""
    ov = pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from benchbench.build.quantize import calibration_inputs, quantize_openvino

    x, ref = _tiny_float_onnx(tmp_path / "f.onnx")
    results = {}
    for name, calibration in (("seeded", calibration_inputs(x.shape, 0)), ("constant", [np.full_like(x, 5.0)] * 8)):
        xml = tmp_path / f"{name}.xml"
        info = quantize_openvino(tmp_path / "f.onnx", xml, calibration)
        assert info["tool"] == "nncf.quantize" and info["qdq_nodes"] > 0 and xml.with_suffix(".bin").exists()
        assert info["calibration_count"] == len(calibration)
        compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        out = compiled.create_infer_request().infer({0: x})
        results[name] = fidelity([out[compiled.outputs[0]]], ref)
    assert results["seeded"]["passed"] and results["seeded"]["sqnr_db"] > 30
    assert not results["constant"]["passed"] and results["constant"]["sqnr_db"] < FIDELITY_MIN_SQNR_DB


def test_a_users_float_onnx_is_quantized_by_each_backend_and_measured_beside_it(cache_dir, tmp_path, capsys):
    """``run --model FILE.onnx --quantize int8``: per backend the float file (deploy) and its int8 form, one
    lockstep group, the int8 form built in the cache by the backend's own quantizer and held to fidelity against
    the float file; ``--calibration-data`` calibrates it, and a constant calibration is caught."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("nncf")
    x, _ = _tiny_float_onnx(tmp_path / "f.onnx")
    import onnx

    name = onnx.load(str(tmp_path / "f.onnx")).graph.input[0].name
    np.savez(tmp_path / "calib.npz", **{name: np.random.default_rng(5).standard_normal((8, *x.shape), dtype=np.float32)})
    np.savez(tmp_path / "const.npz", **{name: np.full((8, *x.shape), 5.0, dtype=np.float32)})
    base = ["run", "--model", str(tmp_path / "f.onnx"), "--quantize", "int8", "--backend", "ort,openvino,tflite",
            "--sampling", "quick", "--roofline", "off"]

    def cells(out, *extra):
        code = main([*base, "--out", str(tmp_path / out), *extra])
        (folder,) = (tmp_path / out).glob("*")
        doc = json.loads((folder / "results.json").read_text())
        return code, {(c["spec"]["backend"], c["spec"]["variant"]): c for c in doc["cells"]}

    code, got = cells("seeded")
    assert code == 0, capsys.readouterr().err[-1500:]
    for backend, fmt, tool in (("ort", "onnx", "onnxruntime"), ("openvino", "openvino_ir", "nncf")):
        int8, float_ = got[(backend, "int8")], got[(backend, "deploy")]
        assert int8["status"] == float_["status"] == "ok" and int8["group"] == float_["group"]
        assert int8["parity"]["mode"] == "fidelity" and int8["parity"]["passed"] and "float file" in int8["parity"]["against"]
        art = int8["artifact"]
        assert art["format"] == fmt and art["quantization"]["tool"].startswith(tool) and art["sha256"] != float_["artifact"]["sha256"]
        assert art["quantization"]["calibration_count"] == 32 and art["quantization"]["qdq_nodes"] > 0
    assert got[("tflite", "int8")]["status"] == "unsupported" and "ort" in got[("tflite", "int8")]["reason"]
    code, got = cells("calibrated", "--calibration-data", str(tmp_path / "calib.npz"))
    assert code == 0 and got[("ort", "int8")]["artifact"]["quantization"]["calibration_count"] == 8
    assert got[("ort", "int8")]["artifact"]["path"] != got[("ort", "deploy")]["artifact"]["path"]
    code, got = cells("constant", "--calibration-data", str(tmp_path / "const.npz"), "--backend", "ort")
    assert code == 1 and got[("ort", "int8")]["parity"]["passed"] is False  # a broken calibration is caught
    assert got[("ort", "deploy")]["status"] == "ok"
    capsys.readouterr()
    np.savez(tmp_path / "flat.npz", **{name: np.zeros((8, 3, 224, 224), dtype=np.float32)})  # no batch axis
    assert main([*base, "--calibration-data", str(tmp_path / "flat.npz"), "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--calibration-data" in err[0] and "(N, 1, 3, 224, 224)" in err[0]
    assert not (tmp_path / "bad").exists() or not list((tmp_path / "bad").glob("*"))  # no sweep


def test_variant_all_quantizes_zoo_models_and_leaves_designed_nets_float():
    from benchbench.cli.cells import cells_from
    from benchbench.cli.parser import build_parser

    args = build_parser().parse_args(["run", "--model", "resnet18,g3_1frag_x1", "--variant", "all", "--backend", "ort"])
    cells, _ = cells_from(args)
    forms = {(c.model, c.variant) for c in cells}
    # a guideline net is one network (identical forms: measured once, as deploy), and stays float
    assert forms == {("resnet18", "train"), ("resnet18", "deploy"), ("resnet18", "int8"), ("g3_1frag_x1", "deploy")}


def test_the_report_names_an_int8_fidelity_failure_apart_from_a_parity_failure():
    from _synthetic import timed_cell

    from benchbench.results.record import RunResult
    from benchbench.results.views import markdown_report

    float_bad, int8_bad = timed_cell("m", "deploy", "ort", 2.0), timed_cell("m", "int8", "ort", 1.0, seed=1)
    float_bad.parity = {"checked": True, "passed": False, "max_rel_err": 0.5}
    int8_bad.parity = {"checked": True, "passed": False, "mode": "fidelity", "sqnr_db": 4.7, "min_sqnr_db": 15.0}
    text = markdown_report(RunResult(meta={}, cells=[float_bad, int8_bad]))
    parity_line = next(ln for ln in text.splitlines() if "PARITY FAILURES" in ln)
    fidelity_line = next(ln for ln in text.splitlines() if "FIDELITY FAILURES" in ln)
    assert "m [deploy]" in parity_line and "int8" not in parity_line
    assert "m [int8]" in fidelity_line and "SQNR" in fidelity_line


def test_an_int8_form_lives_in_its_deploy_build_and_a_quantizer_change_remakes_only_it(tmp_path, monkeypatch):
    """The deploy form is exported once for its float and int8 cells: an int8 cell's build is the deploy build,
    and a change of quantizer (its settings or versions) quantizes again without exporting the float file again."""
    pytest.importorskip("onnxruntime")
    from benchbench.build import export, quantize
    from benchbench.build.builds import build_group, input_shape
    from benchbench.core.spec import CellSpec
    from benchbench.processes.protocol import BuildJob

    int8, deploy = CellSpec(TINY, "int8", "ort"), CellSpec(TINY, "deploy", "ort")
    shape = input_shape(deploy)
    assert build_group(int8) == build_group(deploy) != build_group(CellSpec(TINY, "train", "ort"))
    assert export.build_key(TINY, "int8", shape, 0) == export.build_key(TINY, "deploy", shape, 0)
    job = BuildJob(deploy, shape, ["onnx", "onnx_int8"], str(tmp_path / "build"))
    first = export.build(job)
    assert first["variant"] == "deploy" and first["artifacts"]["onnx_int8"]["status"] == "ok"
    assert export.missing_formats(first, {"onnx", "onnx_int8"}) == set()
    float_file, int8_file = tmp_path / "build" / "model.onnx", tmp_path / "build" / "model_int8.onnx"
    float_stat, int8_stat = float_file.stat(), int8_file.stat()

    monkeypatch.setitem(quantize.INT8_SETTINGS, "planted", "another quantizer setting")
    assert export.missing_formats(first, {"onnx", "onnx_int8"}) == {"onnx_int8"}
    second = export.build(job)
    assert second["artifacts"]["onnx"] == first["artifacts"]["onnx"]  # not exported again
    assert (float_file.stat().st_ino, float_file.stat().st_mtime_ns) == (float_stat.st_ino, float_stat.st_mtime_ns)
    assert int8_file.stat().st_ino != int8_stat.st_ino  # written again, atomically
    assert second["artifacts"]["onnx_int8"]["identity"] == export.artifact_identity("onnx_int8") \
        != first["artifacts"]["onnx_int8"]["identity"]
    assert export.missing_formats(second, {"onnx", "onnx_int8"}) == set()
