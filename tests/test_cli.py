"""The command line as a user types it: one-line errors with exit 2, real runs, compare."""

import json
import subprocess
from pathlib import Path

import pytest
from benchbench.runners.base import Runner

from benchbench.cli import main
from benchbench.processes.manager import module_command

DATA = Path(__file__).parent / "data"
TINY = f"{DATA / 'tiny.py'}:tiny"
FAST = ["--quick", "--min-time", "0.05", "--max-time", "0.5"]


def _cli(*args):
    """Run the real entry point in a subprocess, as a user would."""
    return subprocess.run(module_command("benchbench", *args), capture_output=True, text=True, timeout=600)


def test_unknown_model_suggests_and_exits_2():
    proc = _cli("run", "--model", "vanilanet_5", "--backend", "null")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0, proc.stderr  # one line, no traceback
    assert "unknown model 'vanilanet_5'" in proc.stderr and "vanillanet_5" in proc.stderr


def test_unknown_backend_suggests_and_exits_2(capsys):
    assert main(["run", "--model", "vanillanet_5", "--backend", "onnxrt"]) == 2
    err = capsys.readouterr().err
    assert "unknown backend 'onnxrt'" in err and "ort" in err


def test_missing_model_file_exits_2(capsys):
    assert main(["run", "--model", "no/such/file.py:net", "--backend", "null"]) == 2
    assert "no/such/file.py" in capsys.readouterr().err


def test_missing_package_names_the_extra():
    class NeedsAbsent(Runner):
        name, artifact, packages, extra = "x", "onnx", ("surely_not_installed_pkg",), "ort"

    ok, why = NeedsAbsent.is_available()
    assert not ok and "surely_not_installed_pkg" in why and "pip install 'benchbench[ort]'" in why


def test_unavailable_backend_alone_exits_2(capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present, so torch-cuda is available")
    assert main(["run", "--model", TINY, "--backend", "torch-cuda"]) == 2
    assert "torch-cuda" in capsys.readouterr().err


def test_list_shows_models_and_backends(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "vanillanet_5" in out and "VanillaNet" in out
    assert "ort" in out and "installed" in out


def test_run_writes_json_csv_markdown_and_never_overwrites(cache_dir, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    args = ["run", "--model", TINY, "--backend", "torch,ort", "--out", str(tmp_path), *FAST]
    proc = _cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert "speedup" in proc.stdout and "x " in proc.stdout  # the deploy rows carry a speedup
    (run_dir,) = tmp_path.iterdir()
    doc = json.loads((run_dir / "results.json").read_text())
    assert [(c["spec"]["backend"], c["spec"]["variant"], c["status"]) for c in doc["cells"]] == [
        ("torch", "train", "ok"), ("torch", "deploy", "ok"), ("ort", "train", "ok"), ("ort", "deploy", "ok")]
    assert doc["meta"]["environment"]["cpu"]["physical_cores"] >= 1
    assert "median_ms" in (run_dir / "results.csv").read_text().splitlines()[0]
    assert "| model" in (run_dir / "report.md").read_text()
    assert _cli(*args).returncode == 0
    assert len(list(tmp_path.iterdir())) == 2  # a second run gets its own folder

    a, b = sorted(tmp_path.iterdir())
    cmp = _cli("compare", str(a / "results.json"), str(b / "results.json"))
    assert cmp.returncode == 0, cmp.stderr
    assert "Geometric mean of B/A over 4 matched cells" in cmp.stdout
    assert "p (U, blocks)" in cmp.stdout and "unpaired" in cmp.stdout  # two runs: measured apart


def test_compare_unreadable_file_exits_2(tmp_path, capsys):
    (tmp_path / "x.json").write_text("not json")
    assert main(["compare", str(tmp_path / "x.json"), str(tmp_path / "missing.json")]) == 2
    assert "not JSON" in capsys.readouterr().err


def test_unknown_or_invalid_backend_option_exits_2(capsys):
    assert main(["run", "--model", TINY, "--backend", "ort,tflite", "-o", "layot=nhwc"]) == 2
    err = capsys.readouterr().err
    assert "unknown option 'layot'" in err and "layout (tflite)" in err
    assert main(["run", "--model", TINY, "--backend", "openvino", "-o", "precision=int4"]) == 2
    assert "choose from f32" in capsys.readouterr().err
