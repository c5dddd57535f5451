"""Real faults at the process level: SIGTERM, SIGHUP and SIGKILL of a running ``benchbench run``.

SIGTERM and SIGHUP end a sweep as Ctrl-C does: a message, exit 128 + signal, valid JSON/CSV/Markdown
with every finished cell, and no worker left. SIGKILL gives no chance to clean up: the workers and fork
servers must still die with their parent (PR_SET_PDEATHSIG), and the run's journal holds the groups
finished before it.
"""

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from _sweeping import default_signals

from benchbench.processes.manager import _remove_orphans, module_command
from benchbench.results.journal import read_journal

DATA = Path(__file__).parent / "data"
TINY = f"{DATA / 'tiny.py'}:tiny"
# Two comparison groups, one per model file; each cell samples for two seconds or more, so that the second
# group is still measuring, with a wide margin on a loaded CI machine, when the test sees the first journaled.
ARGS = ["--backend", "null", "--option", "latency_ms=2", "--min-time", "2", "--max-time", "3", "--roofline", "off"]


def _workers_of(pid: int) -> list[str]:
    """Command lines of benchbench workers and fork servers whose parent argument is ``pid``.

    Read from /proc, not ``ps``: ``ps`` cuts its lines to the terminal's width (``COLUMNS``), and a long
    checkout path pushes the parent argument past the cut.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:  # the process ended while we looked
            continue
        for module in ("benchbench.measure.worker", "benchbench.measure.forkserver"):
            if module in argv and str(pid) in argv[argv.index(module) + 1:]:
                found.append(" ".join(argv))
    return found


def _start(tmp_path, cache_dir):
    models = ",".join([TINY, f"{DATA / 'two_conv.py'}:two_conv"])
    proc = subprocess.Popen(module_command("benchbench", "run", "--model", models, "--out", str(tmp_path), *ARGS),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_signals,
                            env={**os.environ, "BENCHBENCH_CACHE": str(cache_dir)})
    return proc


def _wait_for_first_group(proc, tmp_path, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = list(tmp_path.glob("*/cells.jsonl"))
        if files and '"kind":"group"' in files[0].read_text() and _workers_of(proc.pid):
            return files[0].with_name("results.json")  # one group journaled, the next one measuring
        if proc.poll() is not None:
            pytest.fail(f"benchbench ended early: {proc.stderr.read()[-500:]}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail("no group finished in time")


def _gone(pid: int, timeout=15) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = _workers_of(pid)
        if not left:
            return []
        time.sleep(0.2)
    return _workers_of(pid)


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_end_like_ctrl_c(cache_dir, tmp_path, sig, code):
    proc = _start(tmp_path, cache_dir)
    results = _wait_for_first_group(proc, tmp_path)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-800:]
    assert "interrupted by SIG" in err and "Traceback" not in err
    doc = json.loads(results.read_text())
    assert [c["status"] for c in doc["cells"]][:2] == ["ok", "ok"]  # the finished group is on disk
    assert (results.parent / "results.csv").exists() and (results.parent / "report.md").exists()
    assert not list(results.parent.glob(".tmp-*"))
    assert _gone(proc.pid) == []


def test_sigkill_of_the_parent_leaves_no_worker(cache_dir, tmp_path):
    proc = _start(tmp_path, cache_dir)
    results = _wait_for_first_group(proc, tmp_path)
    assert _workers_of(proc.pid)  # a fork server and its workers are running now
    proc.kill()
    proc.wait(30)
    assert _gone(proc.pid) == [], "workers outlived a SIGKILLed benchbench"
    run = read_journal(results.with_name("cells.jsonl"))  # the groups finished before the kill
    assert run.cells and all(c.status == "ok" for c in run.cells)
    # the killed run could not remove its log folders; the next benchbench removes them (it calls this once)
    root = Path(tempfile.gettempdir())
    left = set(root.glob(f"bb-forkserver-{proc.pid}-*")) | set(root.glob(f"bb-worker-{proc.pid}-*"))
    assert left, "the killed run's log folders are named after its pid"
    assert left <= set(_remove_orphans(root)) and not any(f.exists() for f in left)


def test_only_the_folders_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    mine, orphan, other = (tmp_path / f"bb-worker-{os.getpid()}-a", tmp_path / f"bb-forkserver-{dead.pid}-b",
                           tmp_path / "bb-worker-x1y2")
    for folder in (mine, orphan, other):
        folder.mkdir()
        (folder / "worker.log").write_text("log")
    link = tmp_path / f"bb-worker-{dead.pid}-c"  # a dead pid's name on a link: never followed, never removed
    link.symlink_to(other)
    assert _remove_orphans(tmp_path) == [orphan]
    assert mine.exists() and other.exists() and (other / "worker.log").exists() and link.is_symlink()
    assert not orphan.exists()
