"""``benchbench predict``: the kernel sweep in anchored blocks, a predictor stored per machine and backend, a
prediction without measuring, the check against measured models, and one-line errors. The predictor's
accuracy has planted-truth tests in test_predictor.py."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from _sweeping import groups_in, wait_for

from benchbench.cli.cells import predict_cells
from benchbench.cli.parser import build_parser
from benchbench.core.labpoints import ANCHOR_NAME
from benchbench.measure.sweep import comparison_groups
from benchbench.processes.manager import module_command
from benchbench.results.journal import read_journal

TWO_CONV = str(Path(__file__).parent / "data" / "two_conv.py") + ":two_conv"


def _run(cache_dir, *argv, timeout=900):
    env = {**os.environ, "BENCHBENCH_CACHE": str(cache_dir)}
    return subprocess.run(module_command("benchbench", *argv), capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_the_sweep_and_the_check_measure_in_blocks_led_by_the_anchor():
    args = build_parser().parse_args(["predict", "--fit", "--backend", "null"])
    args.sweep_names = [f"kern_relu_c8o8_s{s}_k1_st1_g1" for s in range(1, 10)]
    cells, names = predict_cells(args)
    groups = comparison_groups(cells)
    assert len(groups) == 3 and names[0] == ANCHOR_NAME
    for g in groups:
        assert cells[g[0]].model == ANCHOR_NAME and sum(cells[i].model == ANCHOR_NAME for i in g) == 1
    args = build_parser().parse_args(["predict", "--evaluate", "--backend", "null", "--variant", "both"])
    args.sweep_names = ["resnet18", "vanillanet_5", "repvgg_a0"]
    cells, _ = predict_cells(args)
    assert {(c.model, c.variant) for c in cells if c.model == "resnet18"} == {("resnet18", "train"),
                                                                               ("resnet18", "deploy")}
    assert len(comparison_groups(cells)) == 2  # two models (both forms) per block


def test_predict_without_a_predictor_says_how_to_fit_one(cache_dir):
    r = _run(cache_dir, "predict", "--model", "resnet18", "--backend", "null")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "benchbench predict --fit --backend null" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = _run(cache_dir, "predict", "--model", "resnt18", "--backend", "ort")
    assert r.returncode == 2 and "resnet18" in r.stderr and "Traceback" not in r.stderr
    r = _run(cache_dir, "predict", "--fit", "--evaluate")
    assert r.returncode == 2 and "two steps" in r.stderr


@pytest.mark.slow
def test_fit_stores_a_predictor_that_predicts_and_checks_models(cache_dir, tmp_path):
    r = _run(cache_dir, "predict", "--fit", "--quick", "--no-adapt", "--backend", "null", "--sampling", "quick",
             "--out", str(tmp_path / "fit"))
    assert r.returncode == 0, r.stderr[-2000:]
    (folder,) = (tmp_path / "fit").glob("*_predict_null")
    doc = json.loads((folder / "predictor_null.json").read_text())
    assert doc["schema"] == "benchbench.predictor/1" and doc["anchor_ms"] > 0
    assert len(doc["points"]) >= 30 and doc["identity"]["backend"] == "null"
    stored = list((Path(cache_dir) / "predictors").glob("null-t*.json"))
    assert len(stored) == 1 and json.loads(stored[0].read_text())["checksum"] == doc["checksum"]
    assert "## null" in (folder / "predictor.md").read_text()

    r = _run(cache_dir, "predict", "--model", TWO_CONV, "--backend", "null", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    (pred,) = json.loads(r.stdout)
    assert pred["ms"] > 0 and pred["ms_low"] <= pred["ms"] <= pred["ms_high"]
    assert [k["op"] for k in pred["kernels"]].count("conv") + [k["op"] for k in pred["kernels"]].count(
        "conv-relu") == 2

    r = _run(cache_dir, "predict", "--evaluate", "--model", TWO_CONV, "--backend", "null", "--sampling", "quick",
             "--out", str(tmp_path / "eval"))
    assert r.returncode == 0, r.stderr[-2000:]
    (ev,) = (tmp_path / "eval").glob("*_predict_eval_null")
    result = json.loads((ev / "predictor_eval.json").read_text())
    cells = result["backends"]["null"]["cells"]
    assert len(cells) == 1 and cells[0]["measured_rel"] > 0 and "within ±10%" in (ev / "predictor_eval.md").read_text()

    # a damaged stored predictor is refused in one line, not trusted
    stored[0].write_text(stored[0].read_text().replace('"anchor_ms": ', '"anchor_ms": 1'))
    r = _run(cache_dir, "predict", "--model", TWO_CONV, "--backend", "null")
    assert r.returncode == 2 and "checksum" in r.stderr and "Traceback" not in r.stderr


def _quick_fit_cells() -> int:
    """The cells of ``predict --fit --quick``'s first sweep on the null backend: its nets in anchored blocks, as
    the sweep lays them out (``cli.cells.predict_cells``)."""
    from benchbench.cli.cells import predict_cells
    from benchbench.cli.parser import build_parser
    from benchbench.cli.predict import first_sweep

    args = build_parser().parse_args(["predict", "--fit", "--quick", "--backend", "null"])
    args.sweep_names = first_sweep(quick=True, seed=0)
    return len(predict_cells(args)[0])


def test_a_killed_fit_resumes_its_sweep_and_stores_the_predictor(cache_dir, tmp_path):
    # the quick sweep on the null backend: a dozen anchored groups in one sweep folder; killed after 3 are journaled
    env = {**os.environ, "BENCHBENCH_CACHE": str(cache_dir)}
    fit = ["predict", "--fit", "--quick", "--no-adapt", "--backend", "null", "--sampling", "quick"]
    proc = subprocess.Popen(module_command("benchbench", *fit, "--out", str(tmp_path)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    wait_for(lambda: sum(groups_in(f) for f in tmp_path.iterdir()) >= 3, proc)  # groups in the sweep folder
    proc.kill()
    proc.wait(30)
    (folder,) = tmp_path.glob("*_predict_null")
    (sweep,) = [p for p in folder.iterdir() if p.is_dir()]
    kept = read_journal(sweep / "cells.jsonl")
    total = _quick_fit_cells()
    if len(kept.cells) == total or (folder / "predictor_null.json").exists():
        pytest.fail("the fit finished before the kill: nothing left to resume")

    r = _run(cache_dir, "predict", "--resume", str(folder), "--backend", "tflite")
    assert r.returncode == 2 and "--backend tflite conflicts with the run's (null)" in r.stderr
    r = _run(cache_dir, "predict", "--resume", str(tmp_path))  # a folder with no sweep in it
    assert r.returncode == 2 and "holds no sweep of benchbench predict" in r.stderr and "Traceback" not in r.stderr

    r = _run(cache_dir, "predict", "--resume", str(folder))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resuming" in r.stderr and sorted(p for p in folder.iterdir() if p.is_dir())[0] == sweep
    doc = json.loads((sweep / "results.json").read_text())
    assert len(doc["cells"]) == total and all(c["status"] == "ok" for c in doc["cells"])
    for cell in kept.cells:  # the cells measured before the kill are kept, not measured again
        (same,) = [c for c in doc["cells"] if c["spec"] == cell.spec.to_dict()]
        assert same["samples_ns"] == cell.samples_ns
    predictor = json.loads((folder / "predictor_null.json").read_text())
    assert len(predictor["points"]) >= 30 and list((Path(cache_dir) / "predictors").glob("null-t*.json"))


def test_a_predictor_file_from_another_machine_is_noted(capsys):
    """A user's --predictor file fitted on another CPU or host gets one line on stderr (its milliseconds are that
    machine's); one fitted here gets none."""
    from benchbench.cli.predictors import _note_other_machine
    from benchbench.core.env import host_identity

    _note_other_machine("p.json", {"identity": {**host_identity(), "backend": "ort"}})
    assert capsys.readouterr().err == ""
    _note_other_machine("p.json", {"identity": {"host": "elsewhere", "cpu": "Some Other CPU", "backend": "ort"}})
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "p.json was fitted on Some Other CPU (host elsewhere)" in err
    assert host_identity()["cpu"] in err
    # a hostile file: an escape sequence in its CPU name is shown escaped; an identity that is no record is unknown
    _note_other_machine("p.json", {"identity": {"host": "h", "cpu": "X\x1b]0;owned\x07"}})
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\\x1b]0;owned\\x07" in err
    _note_other_machine("p.json", {"identity": ["not", "a", "record"]})
    assert "fitted on an unknown CPU" in capsys.readouterr().err


def test_a_models_kernels_hold_the_layout_reorders_its_backend_inserts(tmp_path):
    """On ORT the model's kernels include the NCHWc reorders ORT inserts around a Transpose between two
    convolutions (kernels the ONNX graph does not hold); TFLite inserts none, and gets none."""
    pytest.importorskip("onnxruntime", reason="the ort extra is not installed")
    from _onnx_files import conv_transpose_conv

    from benchbench.analysis.kernel_graph import LAYOUT
    from benchbench.cli.predict import model_kernels
    from benchbench.core.spec import PROFILES

    counts = {}
    for between in (None, "Transpose"):
        path = tmp_path / f"{between}.onnx"
        conv_transpose_conv(path, between)
        for backend in ("ort", "tflite"):
            kernels, _ = model_kernels(str(path), "deploy", backend, {}, PROFILES["default"])
            layout = [k for k in kernels if k["kind"] == LAYOUT]
            assert all(k["in_elems"] == 32 * 16 * 16 for k in layout)
            counts[between, backend] = len(layout)
    assert counts[None, "tflite"] == counts["Transpose", "tflite"] == 0
    assert counts["Transpose", "ort"] == counts[None, "ort"] + 2


def test_model_kernels_hold_the_layout_transposes_litert_leaves_around_a_channel_shuffle():
    """LiteRT runs convolutions channels-last; around a channel shuffle (in the model's NCHW order) its converter
    leaves a TRANSPOSE out of that layout and one back in: two more layout kernels of the 16 x 224 x 224 feature map,
    which the ONNX graph does not hold. (Both forms keep one before the mean over the NCHW axes, which the
    converter does not fold; the NCHW input's transpose is every net's base, not a layout kernel.)"""
    from benchbench.runners import get_runner

    ok, why = get_runner("tflite").is_available()
    if not ok:
        pytest.skip(why)
    from benchbench.analysis.kernel_graph import LAYOUT
    from benchbench.cli.predict import model_kernels
    from benchbench.core.spec import PROFILES

    data = Path(__file__).parent / "data" / "shuffle.py"
    layout = {}
    for factory in ("plain", "shuffled"):
        kernels, _ = model_kernels(f"{data}:{factory}", "deploy", "tflite", {}, PROFILES["default"])
        layout[factory] = [k["in_elems"] for k in kernels if k["kind"] == LAYOUT]
    assert set(layout["plain"]) <= {16 * 224 * 224}
    assert sorted(layout["shuffled"]) == sorted(layout["plain"] + [16 * 224 * 224] * 2)
