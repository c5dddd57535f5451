"""First contact with the command line: bad values, paths and files are one line and exit 2; names match
in any case; help shows defaults, backend options and an example; list titles every column."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from benchbench.runners import get_runner, list_runners

from benchbench.cli import main
from benchbench.cli.parser import _HelpFormatter, build_parser

DATA = Path(__file__).parent / "data"
TINY = f"{DATA / 'tiny.py'}:tiny"
V1 = str(DATA / "result_v1.json")


def _one_error(argv, capsys) -> str:
    """Run ``main``; it must exit 2 with exactly one ``benchbench: error:`` line on stderr."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("benchbench: error: "), err
    return lines[0]


@pytest.fixture
def sweeps(monkeypatch):
    """Stand-in for the sweep: records (cells, config, options) and measures nothing."""
    calls = []
    monkeypatch.setattr("benchbench.measure.sweep.run_sweep",
                        lambda cells, config, run, **kw: calls.append((cells, config, kw)) or run)
    return calls


BAD_RUN_VALUES = [
    (["--threads", "0"], "argument --threads: must be between 1 and 1024, got 0"),
    (["--threads", "1025"], "argument --threads: must be between 1 and 1024, got 1025"),
    (["--threads", "two"], "argument --threads: expected a whole number between 1 and 1024, got 'two'"),
    (["--batch", "0"], "argument --batch: must be between 1 and 4096, got 0"),
    (["--batch", "4097"], "argument --batch: must be between 1 and 4096"),
    (["--batch", "1.5"], "argument --batch: expected a whole number"),
    (["--input-size", "0"], "argument --input-size: each side must be between 1 and 8192, got '0'"),
    (["--input-size", "64x0"], "each side must be between 1 and 8192, got '64x0'"),
    (["--input-size", "8193"], "each side must be between 1 and 8192"),
    (["--input-size=-3"], "argument --input-size: expected N or HxW, got '-3'"),
    (["--min-time", "0"], "argument --min-time: must be above 0, got 0"),
    (["--min-time", "nan"], "argument --min-time: must be a finite number above 0, got nan"),
    (["--max-time", "inf"], "argument --max-time: must be a finite number above 0, got inf"),
    (["--max-time=-1"], "argument --max-time: must be above 0, got -1"),
    (["--cell-timeout", "0"], "argument --cell-timeout: must be above 0"),
    (["--cell-timeout", "1e400"], "argument --cell-timeout: must be a finite number"),
    (["--min-time", "5", "--max-time", "1"], "the minimum sampling time (5 s, --min-time) exceeds the maximum (1 s"),
    (["--min-time", "20"], "the minimum sampling time (20 s, --min-time) exceeds the maximum (10 s"),
    (["--quick", "--min-time", "3"], "exceeds the maximum (2 s, --max-time)"),
    (["--target-ci", "0"], "argument --target-ci: must be in (0, 1), got 0"),
    (["--target-ci", "1"], "argument --target-ci: must be in (0, 1), got 1"),
    (["--target-ci=-inf"], "argument --target-ci: must be a finite number in (0, 1)"),
    (["--seed=-1"], "argument --seed: must be between 0 and 4294967295, got -1"),
    (["--seed", str(2**32)], "argument --seed: must be between 0 and 4294967295, got 4294967296"),
    (["--rounds", "0"], "argument --rounds: must be at least 1, got 0"),
    (["--profile-runs", "0"], "argument --profile-runs: must be at least 1, got 0"),
    (["--model", ","], "argument --model/-m: expected one or more comma-separated names, got ','"),
    (["--model", " , "], "argument --model/-m: expected one or more comma-separated names"),
    (["--backend", ","], "argument --backend/-b: expected one or more comma-separated names"),
    (["--option", "=x"], "argument --option/-o: expected KEY=VALUE, got '=x'"),
]


@pytest.mark.parametrize("extra, message", BAD_RUN_VALUES, ids=[" ".join(a) for a, _ in BAD_RUN_VALUES])
def test_bad_run_values_are_one_line(extra, message, capsys, sweeps, tmp_path):
    line = _one_error(["run", "--model", TINY, "--backend", "null", "--out", str(tmp_path), *extra], capsys)
    assert message in line, line
    assert not sweeps and not list(tmp_path.iterdir())  # refused before anything ran or was written


def test_profile_and_claim_values_are_checked_too(capsys, tmp_path):
    assert "argument --top: must be at least 0, got -1" in _one_error(
        ["profile", "--model", TINY, "--backend", "null", "--top=-1"], capsys)
    assert "argument --threads: must be between 1 and 1024, got 0" in _one_error(
        ["claim", V1, "--threads", "0"], capsys)
    assert "argument --rounds: must be at least 1" in _one_error(["claim", "--rounds", "0"], capsys)
    assert "argument --model/-m: expected one or more comma-separated names" in _one_error(
        ["claim", "--model", ","], capsys)


def test_out_onto_a_file_is_one_line(capsys, tmp_path, sweeps):
    a_file = tmp_path / "file"
    a_file.write_text("")
    for command in (["run", "--model", TINY, "--backend", "null"], ["profile", "--model", TINY, "--backend", "null"],
                    ["claim", V1]):
        assert f"argument --out: '{a_file}' is a file, not a folder" in _one_error(
            [*command, "--out", str(a_file)], capsys)
    # Under a file: only creating the folder finds out.
    line = _one_error(["run", "--model", TINY, "--backend", "null", "--out", str(a_file / "sub")], capsys)
    assert f"cannot create a folder in {a_file / 'sub'}: Not a directory" in line
    assert not sweeps


def test_accepted_values_reach_the_cells(sweeps, tmp_path, capsys):
    argv = ["run", "--model", TINY, "--backend", "null", "--out", str(tmp_path), "--threads", "1024",
            "--batch", "4096", "--input-size", "8192x1", "--seed", str(2**32 - 1), "--min-time", "0.1",
            "--max-time", "0.1", "--target-ci", "0.5", "--cell-timeout", "5", "--rounds", "2"]
    assert main(argv) == 0
    (cells, config, kw) = sweeps[0]
    assert {(c.threads, c.batch, c.input_size, c.seed) for c in cells} == {(1024, 4096, (8192, 1), 2**32 - 1)}
    assert (config.min_s, config.max_s, config.target_ci, config.cell_timeout_s) == (0.1, 0.1, 0.5, 5.0)
    assert kw["rounds"] == 2


# --- compare and claim ---

def _copy_v1(tmp_path, name="a.json") -> str:
    path = tmp_path / name
    path.write_text(Path(V1).read_text())
    return str(path)


BAD_COMPARE_VALUES = [
    (["--alpha", "0"], "argument --alpha: must be in (0, 1), got 0"),
    (["--alpha", "1"], "argument --alpha: must be in (0, 1), got 1"),
    (["--alpha", "nan"], "argument --alpha: must be a finite number in (0, 1), got nan"),
    (["--threshold=-1"], "argument --threshold: must be at least 0, got -1"),
    (["--threshold", "inf"], "argument --threshold: must be a finite number at least 0, got inf"),
    (["--fail-above", "0%"], "argument --fail-above: must be above 0, got 0"),
    (["--fail-above=-5%"], "argument --fail-above: must be above 0, got -5"),
    (["--fail-above", "inf%"], "argument --fail-above: must be a finite number above 0"),
    (["--fail-above", "five"], "argument --fail-above: expected a number above 0, got 'five'"),
]


@pytest.mark.parametrize("extra, message", BAD_COMPARE_VALUES, ids=[" ".join(a) for a, _ in BAD_COMPARE_VALUES])
def test_bad_compare_values_are_one_line(extra, message, capsys, tmp_path):
    a = _copy_v1(tmp_path)
    assert message in _one_error(["compare", a, a, *extra], capsys)


def test_compare_output_that_cannot_be_written(capsys, tmp_path, monkeypatch):
    a = _copy_v1(tmp_path)
    missing = tmp_path / "no" / "t.md"
    assert f"cannot write {missing}: no folder {tmp_path / 'no'}" in _one_error(
        ["compare", a, a, "--output", str(missing)], capsys)
    assert f"cannot write {tmp_path}: it is a directory" in _one_error(
        ["compare", a, a, "--output", str(tmp_path)], capsys)

    def full(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("benchbench.cli.commands._write", full)  # what no check beforehand can foresee
    # a full disk is the machine's, not the request's: one line, exit 3
    assert main(["compare", a, a, "--output", str(tmp_path / "ok.md")]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"benchbench: error: cannot write {tmp_path / 'ok.md'}: No space left on device")
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_compare_output_into_a_read_only_folder(capsys, tmp_path):
    a = _copy_v1(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    assert "permission denied" in _one_error(["compare", a, a, "--output", str(ro / "t.md")], capsys)


def test_compare_output_written(capsys, tmp_path):
    a = _copy_v1(tmp_path)
    assert main(["compare", a, a, "--output", str(tmp_path / "t.md")]) == 0
    assert "Geometric mean of B/A over 2 matched cells" in (tmp_path / "t.md").read_text()


def test_compare_and_claim_refuse_bad_files(capsys, tmp_path):
    good = _copy_v1(tmp_path)
    doc = json.loads(Path(V1).read_text())
    doc["cells"][0]["samples_ns"][3] = -7
    (tmp_path / "neg.json").write_text(json.dumps(doc))
    (tmp_path / "nan.json").write_text(Path(V1).read_text().replace("279595", "NaN", 1))
    (tmp_path / "bin.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    for argv in (["compare", good], ["claim", "--out", str(tmp_path / "c")]):
        for name, message in (("neg.json", r"cells\[0\]\.samples_ns\[3\]: Input should be greater than 0 \(got -7\)"),
                              ("nan.json", r"samples_ns\[0\]: Input should be a finite number \(got nan\)"),
                              ("bin.json", r"is not JSON \(binary data"),
                              ("missing.json", "no such result file"),
                              ("", "is a directory, not a result file")):
            line = _one_error([*argv, str(tmp_path / name)], capsys)
            assert str(tmp_path / name) in line and re.search(message, line), line


def test_pivot_needs_something_to_compare(capsys, tmp_path):
    a = _copy_v1(tmp_path)  # one backend (null)
    assert "the file has one backend (null): nothing to compare it with" in _one_error(
        ["compare", a, "--pivot", "backend"], capsys)
    doc = json.loads(Path(V1).read_text())
    doc["cells"] = []
    (tmp_path / "empty.json").write_text(json.dumps(doc))
    assert "the file has no cells to compare" in _one_error(["compare", str(tmp_path / "empty.json"), "--pivot",
                                                             "backend"], capsys)


def test_claim_needs_model_metadata(capsys, tmp_path):
    doc = json.loads(Path(V1).read_text())
    del doc["cells"][1]["model"]["flops"]
    (tmp_path / "r.json").write_text(json.dumps(doc))
    line = _one_error(["claim", str(tmp_path / "r.json"), "--out", str(tmp_path)], capsys)
    assert f"{tmp_path / 'r.json'}: cells[1] (tests/data/tiny.py:tiny [deploy] on null) has no model flops" in line
    doc["cells"][0]["model"] = {}
    (tmp_path / "r.json").write_text(json.dumps(doc))
    assert "cells[0] (tests/data/tiny.py:tiny [train] on null) has no model family or flops" in _one_error(
        ["claim", str(tmp_path / "r.json"), "--out", str(tmp_path)], capsys)
    assert not list(tmp_path.glob("*_claim"))  # refused before a report folder was made


def test_claim_json_is_strict(tmp_path, capsys):
    assert main(["claim", V1, "--out", str(tmp_path)]) == 0
    (claim_json,) = tmp_path.glob("*/claim.json")
    json.loads(claim_json.read_text(), parse_constant=lambda t: pytest.fail(f"claim.json holds {t}"))


def test_a_newline_in_an_argument_stays_on_one_line(capsys):
    line = _one_error(["run", "--model", TINY, "--backend", "null", "--threads", "1\n2"], capsys)
    assert "got '1\\n2'" in line


# --- names in any case ---

def test_names_in_another_case_still_suggest_on_the_command_line(capsys):
    assert "unknown model 'VanilaNet_5'; did you mean" in _one_error(
        ["run", "--model", "VanilaNet_5", "--backend", "null"], capsys)
    assert "unknown backend 'ONNXRT'; did you mean ort?" in _one_error(
        ["run", "--model", TINY, "--backend", "ONNXRT"], capsys)


def test_run_with_names_in_another_case(sweeps, tmp_path, capsys):
    assert main(["run", "--model", "VanillaNet_5", "--backend", "NULL", "--variant", "deploy",
                 "--out", str(tmp_path)]) == 0
    (cells, _, _) = sweeps[0]
    assert [(c.model, c.backend) for c in cells] == [("vanillanet_5", "null")]
    (run_dir,) = tmp_path.iterdir()
    assert run_dir.name.endswith("_vanillanet_5_null")  # canonical names in the folder too


# --- help and list ---

def _subparsers():
    parser = build_parser()
    (action,) = [a for a in parser._actions if a.dest == "command"]
    return action.choices


def test_every_option_help_shows_its_default():
    for name, sub in _subparsers().items():
        formatter = _HelpFormatter(sub.prog)
        for action in sub._actions:
            if not action.option_strings or action.dest == "help":
                continue
            text = formatter._get_help_string(action)
            assert "(default" in text or action.required, f"{name} {action.option_strings}: {text}"
    assert "--batch BATCH         batch size, 1..4096 (default: 1)" in _subparsers()["run"].format_help()
    assert "(default: off)" in _subparsers()["run"].format_help()  # --profile, not False


def test_run_help_lists_backend_options_and_ends_with_an_example():
    text = _subparsers()["run"].format_help()
    for backend in list_runners():
        for key, values in get_runner(backend).OPTIONS.items():
            assert f"{key}={'|'.join(values)}" in text, (backend, key)
    assert "  tflite      layout=nchw|nhwc, delegate=xnnpack|none" in text
    example = text.index("benchbench run --model vanillanet --backend ort")
    assert example > text.index("backend options (--option KEY=VALUE):")
    assert text.rstrip().endswith("benchbench list")
    assert "null" not in text.split("backend options")[1]  # the hidden test backend stays hidden


def test_help_imports_no_runtime():
    code = ("import sys; from benchbench.cli import main; assert main(['run', '--help']) == 0; "
            "loaded = {'onnxruntime', 'openvino', 'ai_edge_litert', 'torch'} & set(sys.modules); "
            "assert not loaded, loaded")
    # -P: from a checkout's root, the source tree's benchbench/ (without runners/) would shadow the installed one
    proc = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "backend options" in proc.stdout


def test_list_titles_every_column(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    tables = [block for block in out.split("\n\n") if "---" in block]
    assert len(tables) == 2
    for table in tables:
        header, rule = table.strip("\n").splitlines()[:2]
        columns = re.findall(r"-+", rule)
        starts = [m.start() for m in re.finditer(r"-+", rule)]
        titles = [header[s:s + len(c)].strip() for s, c in zip(starts, columns)]
        assert all(titles), titles
    assert "family default" in tables[0]
