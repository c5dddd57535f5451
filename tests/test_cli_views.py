"""The views a user asks for by flag: report.html from run/report, claim.html, history across runs, the
Python API's run, and the progress a sweep shows on a terminal (with an ETA) or in a log."""

import json
import os
import pty
import select
import subprocess
import time
from pathlib import Path

import pytest

from benchbench.cli import main
from benchbench.processes.manager import module_command

DATA = Path(__file__).parent / "data"
TINY = f"{DATA / 'tiny.py'}:tiny"
FAST = ["--backend", "null", "--option", "latency_ms=1", "--quick", "--min-time", "0.05", "--max-time", "0.2",
        "--roofline", "off"]


def _folder(out: Path) -> Path:
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    return folder


def test_run_and_report_write_report_html_with_one_flag(tmp_path, capsys):
    assert main(["run", "--model", TINY, *FAST, "--out", str(tmp_path / "a")]) == 0
    folder = _folder(tmp_path / "a")
    assert not (folder / "report.html").exists()
    assert main(["report", str(folder), "--html"]) == 0
    page = (folder / "report.html").read_text()
    assert "<html" in page and "tiny" in page and "http" not in page.split("<body", 1)[1].split("</body>")[0][:0]
    assert main(["run", "--model", TINY, *FAST, "--out", str(tmp_path / "b"), "--html"]) == 0
    assert (_folder(tmp_path / "b") / "report.html").stat().st_size > 10_000
    assert "report.html" in capsys.readouterr().out


def test_claim_html_from_the_reference(tmp_path, capsys):
    assert main(["claim", "reports/reference/results.json", "--out", str(tmp_path), "--html"]) == 0
    folder = _folder(tmp_path)
    page = (folder / "claim.html").read_text()
    assert (folder / "claim.md").exists() and "openvino" in page and "application/json" in page
    assert len(page) > 100_000  # the verdicts, the guideline tables and the plots' data, inlined


def _runs(tmp_path, n: int) -> list[Path]:
    out = []
    for i in range(n):
        assert main(["run", "--model", TINY, *FAST, "--out", str(tmp_path / f"r{i}")]) == 0
        out.append(_folder(tmp_path / f"r{i}") / "results.json")
    return out


def test_history_flags_a_planted_regression_and_only_it(tmp_path, capsys):
    files = _runs(tmp_path, 3)
    doc = json.loads(files[-1].read_text())  # a fourth run: the deploy form 25% slower, the train form as it was
    doc["meta"]["environment"]["time"] = "2999-01-01T00:00:00+00:00"
    for c in doc["cells"]:
        if c["spec"]["variant"] == "deploy":
            c["samples_ns"] = [int(s * 1.25) for s in c["samples_ns"]]
    planted = tmp_path / "planted.json"
    planted.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["history", *map(str, files), str(planted), "--out", str(tmp_path / "h"), "--fail-on-change"]) == 1
    out = capsys.readouterr().out
    rows = [ln for ln in out.splitlines() if "tiny [" in ln]
    assert len(rows) == 2  # one line per cell
    (deploy,) = [r for r in rows if "[deploy]" in r]
    (train,) = [r for r in rows if "[train]" in r]
    assert "slower in planted" in deploy and train.rstrip().endswith("none")
    folder = _folder(tmp_path / "h")
    assert {p.name for p in folder.iterdir()} >= {"history.md", "history.png", "history.html"}
    assert main(["history", str(files[0])]) == 2  # one run is no history


def test_the_python_api_runs_a_sweep_with_the_cli_semantics(tmp_path):
    import benchbench

    res = benchbench.run(TINY, "null", quick=True, min_time=0.05, max_time=0.2, roofline="off",
                         option={"latency_ms": 1}, out=str(tmp_path), variant="deploy")
    assert res.exit_code == 0 and len(res) == 1 and res.cells[0].ok
    df = res.to_pandas()
    assert df.shape[0] == 1 and df["variant"].tolist() == ["deploy"]
    assert benchbench.load(res.path).cells[0].spec == res.cells[0].spec
    from benchbench.core.registry import UnknownNameError

    with pytest.raises(UnknownNameError, match="did you mean"):
        benchbench.run("resnet19", "null", out=str(tmp_path))


def test_progress_on_a_terminal_shows_an_eta_and_a_log_keeps_a_line_per_cell(tmp_path):
    args = ["run", "--model", f"{TINY},{DATA / 'two_conv.py'}:two_conv", *FAST, "--lockstep", "off",
            "--out", str(tmp_path / "tty")]
    main_fd, child_fd = pty.openpty()
    proc = subprocess.Popen(module_command("benchbench", *args), stdin=child_fd, stdout=child_fd, stderr=child_fd)
    os.close(child_fd)
    seen, deadline = b"", time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main_fd], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(main_fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    proc.wait(60)
    os.close(main_fd)
    text = seen.decode("utf-8", "replace")
    assert proc.returncode == 0, text[-1500:]
    assert "ETA" in text and "4/4 groups" in text and "\r" in text
    logged = subprocess.run(module_command("benchbench", *args[:-1], str(tmp_path / "log")), capture_output=True,
                            text=True, timeout=300)
    assert logged.returncode == 0
    cell_lines = [ln for ln in logged.stderr.splitlines() if "] /" in ln and " ms (" in ln]
    assert len(cell_lines) == 4 and "ETA" in logged.stderr and "\r" not in logged.stderr
