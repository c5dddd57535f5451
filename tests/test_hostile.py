"""A hostile user's catalogue, each case with real files, real processes and real signals: nothing outside
the run folder and the cache's own entries is destroyed, no code runs from data, nothing printed drives the
terminal, no finished group is measured twice or lost, and no process outlives its cell.

Each test names the class of the issue it proves (docs/architecture.md has the rules; README "Safety").
"""

import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from _sweeping import groups_in, wait_for

from benchbench.build import cache
from benchbench.cli import main
from benchbench.processes.manager import module_command

DATA = Path(__file__).parent / "data"
TINY = f"{DATA / 'tiny.py'}:tiny"
MODELS = f"{DATA / 'tiny.py'}:tiny,{DATA / 'two_conv.py'}:two_conv"
FAST = ["--backend", "null", "--option", "latency_ms=1", "--quick", "--min-time", "0.05", "--max-time", "0.3",
        "--roofline", "off"]


def _error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("benchbench: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err[-1500:]
    return lines[0]


def _env(**extra) -> dict:
    return {**os.environ, **extra}


# --- destroys what is not its own ---------------------------------------------------------------------

def test_an_empty_xdg_cache_home_never_makes_the_cache_relative(monkeypatch, tmp_path):
    monkeypatch.delenv("BENCHBENCH_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    for value in ("", "relative/dir"):
        monkeypatch.setenv("XDG_CACHE_HOME", value)
        assert cache.cache_root() == tmp_path / ".cache" / "benchbench"
    monkeypatch.setenv("BENCHBENCH_CACHE", "rel")
    assert cache.cache_root().is_absolute()


def test_cache_clear_refuses_a_folder_that_is_not_a_benchbench_cache(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    (home / "analysis").mkdir(parents=True)
    (home / "analysis" / "claim.py").write_text("precious")
    (home / "notes.txt").write_text("precious")
    monkeypatch.setenv("BENCHBENCH_CACHE", str(home))
    assert main(["cache", "clear"]) == 2
    assert "is not a benchbench cache" in _error_line(capsys.readouterr().err)
    assert (home / "analysis" / "claim.py").read_text() == "precious" and (home / "notes.txt").exists()
    # nor does a run fill it
    assert main(["run", "--model", TINY, *FAST, "--out", str(tmp_path / "runs")]) == 2
    assert "holds files that are not benchbench's" in _error_line(capsys.readouterr().err)


def test_cache_clear_removes_only_entries_its_manifests_prove(tmp_path, monkeypatch, capsys):
    root = tmp_path / "cache"
    monkeypatch.setenv("BENCHBENCH_CACHE", str(root))
    assert main(["run", "--model", TINY, *FAST, "--out", str(tmp_path / "runs")]) == 0
    assert stat.S_IMODE(root.stat().st_mode) == 0o700 and (root / cache.MARKER).is_file()
    built = [p for p in root.iterdir() if (p / "build.json").exists()]
    assert built
    foreign = root / "mine"
    foreign.mkdir()
    (foreign / "data.txt").write_text("precious")
    extra = built[0] / "unlisted.txt"  # a file its manifest does not list: not provably the cache's
    extra.write_text("precious")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("precious")
    (root / "link").symlink_to(outside)
    capsys.readouterr()
    assert main(["cache", "clear"]) == 0
    out = capsys.readouterr().out
    assert (foreign / "data.txt").read_text() == "precious" and extra.read_text() == "precious"
    assert f"kept {built[0].name}: not removed: it holds 'unlisted.txt'" in out
    assert (outside / "keep.txt").exists() and not (root / "link").is_symlink()
    assert all(not p.exists() for p in built[1:])


def test_cache_clear_keeps_an_entry_a_benchbench_is_measuring_from(tmp_path, monkeypatch, capsys):
    root = tmp_path / "cache"
    monkeypatch.setenv("BENCHBENCH_CACHE", str(root))
    assert main(["run", "--model", TINY, *FAST, "--out", str(tmp_path / "runs")]) == 0
    key = next(p.name for p in root.iterdir() if (p / "build.json").exists())
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from benchbench.build import cache
        assert cache.hold(Path({str(root)!r}), {key!r})
        print("held", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        capsys.readouterr()
        assert main(["cache", "clear"]) == 0
        assert f"kept {key}: another benchbench is building it or measuring from it" in capsys.readouterr().out
        assert (root / key / "build.json").exists()
    finally:
        holder.kill()
        holder.wait()
    assert main(["cache", "clear", key]) == 0 and not (root / key).exists()


def test_report_never_writes_through_a_link_planted_in_the_run_folder(tmp_path, capsys):
    assert main(["run", "--model", TINY, *FAST, "--out", str(tmp_path / "runs")]) == 0
    (folder,) = (tmp_path / "runs").iterdir()
    victims = {}
    for name in ("results.csv", "report.md", "results.json"):
        victim = tmp_path / f"victim-{name}"
        victim.write_text("precious")
        (folder / name).unlink()
        (folder / name).symlink_to(victim)
        victims[name] = victim
    assert main(["report", str(folder)]) == 0
    for name, victim in victims.items():
        assert victim.read_text() == "precious", name
        assert not (folder / name).is_symlink() and (folder / name).stat().st_size > 0


def test_views_replace_a_planted_link_and_a_linked_subfolder(tmp_path):
    """The writer every view uses (results, reports, profiles, claims, plots, pages)."""
    from benchbench.core.atomic import own_subfolder, write_atomic

    folder, outside = tmp_path / "run", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    (outside / "victim.md").write_text("precious")
    (folder / "claim.md").symlink_to(outside / "victim.md")
    write_atomic(folder / "claim.md", "the claim")
    assert (outside / "victim.md").read_text() == "precious" and (folder / "claim.md").read_text() == "the claim"
    (folder / "plots").symlink_to(outside)
    plots = own_subfolder(folder, "plots")
    write_atomic(plots / "x.png", b"png")
    assert plots.is_dir() and not plots.is_symlink() and sorted(p.name for p in outside.iterdir()) == ["victim.md"]


def test_the_measuring_lock_is_private_and_never_follows_a_link(tmp_path, monkeypatch):
    from benchbench.measure import machinelock

    monkeypatch.delenv("BENCHBENCH_LOCK", raising=False)
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    victim = tmp_path / "victim"
    victim.write_text("precious")
    victim.chmod(0o600)
    (runtime / "benchbench").mkdir(mode=0o700)
    (runtime / "benchbench" / "measure.lock").symlink_to(victim)
    said = []
    with machinelock.measuring(say=said.append):
        pass
    assert victim.read_text() == "precious" and stat.S_IMODE(victim.stat().st_mode) == 0o600
    assert said and "cannot use the lock file" in said[0]
    # a lock folder others can write is refused, not used
    (runtime / "benchbench" / "measure.lock").unlink()
    (runtime / "benchbench").chmod(0o777)
    with pytest.raises(machinelock.LockError, match="private folder"):
        machinelock.lock_path()


# --- runs code from data --------------------------------------------------------------------------------

def _plugin(tmp_path: Path, marker: Path) -> Path:
    path = tmp_path / "plugin.py"
    path.write_text(textwrap.dedent(f"""
        from pathlib import Path
        Path({str(marker)!r}).write_text("imported")
        import torch.nn as nn
        def net():
            return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    """))
    return path


def test_resume_imports_no_python_named_in_a_run_folder(tmp_path, capsys):
    marker = tmp_path / "imported.txt"
    plugin = _plugin(tmp_path, marker)
    spec = f"{plugin}:net"
    assert main(["run", "--model", spec, *FAST, "--out", str(tmp_path / "runs")]) == 0
    (folder,) = (tmp_path / "runs").iterdir()
    marker.unlink()
    capsys.readouterr()
    # a folder received from someone else: resuming it alone must not run the plugin
    assert main(["run", "--resume", str(folder)]) == 2
    assert "a run folder does not run code by itself" in _error_line(capsys.readouterr().err)
    assert not marker.exists()
    # named again, it runs; changed since, it does not
    plugin.write_text(plugin.read_text() + "\n# edited\n")
    assert main(["run", "--resume", str(folder), "--model", spec]) == 2
    assert "has changed since the run measured it" in _error_line(capsys.readouterr().err)
    assert not marker.exists()


def test_a_tampered_cached_model_is_never_unpickled(tmp_path, monkeypatch, capsys):
    """Whoever can write the cache rewrites weights.pt as a pickle that runs code, and fixes build.json's
    hashes and checksum to match: the torch worker loads weights only, so no code runs."""
    pytest.importorskip("torch")
    root = tmp_path / "cache"
    monkeypatch.setenv("BENCHBENCH_CACHE", str(root))
    args = ["run", "--model", TINY, "--backend", "torch", "--variant", "deploy", "--quick", "--min-time", "0.05",
            "--max-time", "0.2", "--roofline", "off", "--out", str(tmp_path / "runs")]
    assert main(args) == 0
    (entry,) = [p for p in root.iterdir() if (p / "weights.pt").exists()]
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path(str(marker)).write_text, ("code ran",))

    import pickle

    (entry / "weights.pt").write_bytes(pickle.dumps(Payload()))
    manifest = json.loads((entry / "build.json").read_text())
    manifest["files"]["weights.pt"] = cache.file_record(entry / "weights.pt")
    cache.write_json(entry / "build.json", cache.seal(manifest))
    capsys.readouterr()
    main(args)
    assert not marker.exists()


# --- prints attacker-controlled bytes -------------------------------------------------------------------

def test_escape_sequences_in_a_result_file_never_reach_the_terminal(tmp_path, capsys):
    assert main(["run", "--model", TINY, *FAST, "--out", str(tmp_path / "runs")]) == 0
    (folder,) = (tmp_path / "runs").iterdir()
    doc = json.loads((folder / "results.json").read_text())
    for c in doc["cells"]:
        c["spec"]["model"] = "evil\x1b]0;owned\x07\x1b[2J\u202e"
    (folder / "cells.jsonl").unlink()
    (folder / "results.json").write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["report", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err and "\x07" not in out + err and "\u202e" not in out + err
    assert "evil\\x1b]0;owned" in out


def test_a_lock_holder_record_is_printed_escaped(tmp_path, monkeypatch):
    import fcntl

    from benchbench.measure import machinelock

    lock = tmp_path / "lock"
    monkeypatch.setenv("BENCHBENCH_LOCK", str(lock))
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    os.write(fd, json.dumps({"pid": 1, "argv": ["\x1b[2Jclear"]}).encode())
    fcntl.flock(fd, fcntl.LOCK_EX)
    said = []
    try:
        with machinelock.measuring(wait=False, say=said.append):
            pass
    finally:
        os.close(fd)
    assert said and "\x1b" not in said[0] and "\\x1b[2Jclear" in said[0]


# --- loses or duplicates work ---------------------------------------------------------------------------

def test_a_resume_of_a_run_still_measuring_is_refused(tmp_path):
    out = tmp_path / "runs"
    proc = subprocess.Popen(module_command("benchbench", "run", "--model", MODELS, "--lockstep", "off", *FAST,
                                           "--max-time", "3", "--min-time", "2", "--out", str(out)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: groups_in(out) >= 1, proc)
        (folder,) = out.iterdir()
        resumed = subprocess.run(module_command("benchbench", "run", "--resume", str(folder), "--model", MODELS),
                                 capture_output=True, text=True, timeout=120)
        assert resumed.returncode == 2 and "is still measuring" in _error_line(resumed.stderr)
    finally:
        proc.wait(300)
    assert proc.returncode == 0
    text = (folder / "cells.jsonl").read_text()
    assert text.count('"kind":"group"') == 4  # every group once


@pytest.mark.parametrize("damage", ["a bad byte", "a blank line"])
def test_a_damaged_journal_line_costs_only_its_group(tmp_path, capsys, damage):
    assert main(["run", "--model", MODELS, "--lockstep", "off", *FAST, "--out", str(tmp_path / "runs")]) == 0
    (folder,) = (tmp_path / "runs").iterdir()
    lines = (folder / "cells.jsonl").read_bytes().split(b"\n")
    cell_lines = [i for i, ln in enumerate(lines) if b'"kind":"cell"' in ln]
    hit = cell_lines[1]  # the second group's cell
    lines[hit] = lines[hit][:40] + b"\xff" + lines[hit][41:] if damage == "a bad byte" else b""
    (folder / "cells.jsonl").write_bytes(b"\n".join(lines))
    (folder / "results.json").unlink()
    capsys.readouterr()
    assert main(["report", str(folder)]) == 0
    err = capsys.readouterr().err
    assert "1 damaged line(s) skipped" in err or "damaged line(s) skipped" in err
    assert len(json.loads((folder / "results.json").read_text())["cells"]) == 3
    assert main(["run", "--resume", str(folder), "--model", MODELS]) == 0
    assert "1 of 4 groups (1 cells) to measure" in capsys.readouterr().err
    doc = json.loads((folder / "results.json").read_text())
    assert len(doc["cells"]) == 4 and all(c["status"] == "ok" for c in doc["cells"])


def test_a_record_holding_undecodable_name_bytes_reads_back(tmp_path, capsys):
    """A name decoded from bytes no UTF-8 holds (a lone surrogate, written as a \\udcff escape by strict JSON:
    an older journal, or a RunResult built through the API) is still a valid record: it loads, and prints
    escaped. (The command line refuses such names up front: tests/test_hostile_inputs.py.)"""
    assert main(["run", "--model", TINY, *FAST, "--out", str(tmp_path / "runs")]) == 0
    (folder,) = (tmp_path / "runs").iterdir()
    doc = json.loads((folder / "results.json").read_text())
    for c in doc["cells"]:
        c["spec"]["model"] = "net\udcff.py:tiny"
    (folder / "cells.jsonl").unlink()
    (folder / "results.json").write_text(json.dumps(doc))  # ensure_ascii: the surrogate as an escape
    capsys.readouterr()
    assert main(["report", str(folder)]) == 0
    assert "net\\udcff.py:tiny" in capsys.readouterr().out


# --- leaves processes behind ----------------------------------------------------------------------------

def _sleepers(tag: str) -> list[str]:
    # -ww: no cut at the terminal width (COLUMNS)
    out = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [ln for ln in out.splitlines() if f"sleep {tag}" in ln]


def test_no_process_a_model_starts_outlives_its_cell(tmp_path):
    pytest.importorskip("torch")
    tag = str(600 + os.getpid() % 300)
    plugin = tmp_path / "spawner.py"
    plugin.write_text(textwrap.dedent(f"""
        import subprocess
        import torch.nn as nn

        class Spawner(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 4, 3)
                self.started = False

            def forward(self, x):
                if not self.started and not torch_jit_tracing():
                    self.started = True
                    subprocess.Popen(["sleep", "{tag}"])  # a plain child
                    subprocess.Popen(["sleep", "{tag}"], start_new_session=True)  # one that leaves the group
                return self.conv(x)

        def torch_jit_tracing():
            import torch
            return torch.jit.is_tracing() or torch.compiler.is_compiling()

        def net():
            return Spawner()
    """))
    done = subprocess.run(module_command("benchbench", "run", "--model", f"{plugin}:net", "--backend", "torch",
                                         "--variant", "deploy", "--quick", "--min-time", "0.05", "--max-time", "0.2",
                                         "--roofline", "off", "--out", str(tmp_path / "runs")),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-1500:]
    deadline = time.monotonic() + 10
    while _sleepers(tag) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _sleepers(tag) == [], "processes a model started outlived their cell"


# --- fork after threads ---------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["null", "torch", "ort", "openvino", "tflite"])
def test_fork_servers_fork_with_one_thread_and_no_jax(backend):
    from benchbench.runners import get_runner

    from benchbench.processes.manager import ForkServer, Worker

    ok, why = get_runner(backend).is_available()
    if not ok:
        pytest.skip(why)
    server = ForkServer(backend, 2)
    try:
        with Worker(2, "probe", server=server):
            spawned = server.last_spawn
    finally:
        server.close()
    assert spawned.threads == 1 and not spawned.jax, spawned


# --- says when nothing was compared -----------------------------------------------------------------------

def test_nothing_compared_is_an_error_not_a_pass(tmp_path, capsys):
    assert main(["run", "--model", TINY, *FAST, "--out", str(tmp_path / "a")]) == 0
    assert main(["run", "--model", f"{DATA / 'two_conv.py'}:two_conv", *FAST, "--out", str(tmp_path / "b")]) == 0
    (a,), (b,) = (tmp_path / "a").iterdir(), (tmp_path / "b").iterdir()
    capsys.readouterr()
    assert main(["compare", str(a / "results.json"), str(b / "results.json"), "--fail-above", "5%"]) == 2
    assert "nothing was compared" in _error_line(capsys.readouterr().err)
    # two cells with one identity
    doc = json.loads((a / "results.json").read_text())
    doc["cells"].append(doc["cells"][0])
    dup = tmp_path / "dup.json"
    dup.write_text(json.dumps(doc))
    assert main(["compare", str(dup), str(a / "results.json")]) == 2
    assert "are the same cell" in _error_line(capsys.readouterr().err)
    # claim on a file with no ok cell
    doc = json.loads((a / "results.json").read_text())
    for c in doc["cells"]:
        c.update(status="unsupported", reason="planted", samples_ns=[], blocks=[])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    assert main(["claim", str(bad), "--out", str(tmp_path / "c")]) == 2
    assert "nothing to analyze" in _error_line(capsys.readouterr().err)
