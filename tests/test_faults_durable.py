"""No lost work, with real faults: a full disk, a folder made read-only mid-sweep, SIGKILL then --resume,
a torn journal line, two runs at once, and ``claim --reference`` beside a folder it did not create.

How each fault is made:
- full disk: a 4 MiB tmpfs mounted in a user and mount namespace (``unshare -rm``), filled with ``dd`` once
  the first group is journaled: a real ENOSPC on the next append. Skipped where unshare cannot mount.
  A second test simulates ENOSPC in-process (the journal's write call, and results.json's dump), which
  runs everywhere and also covers a view that fails mid-write.
- read-only folder mid-sweep: as root, where chmod does not stop writes, ``chattr +i`` on the run folder
  and its journal (EPERM on the next append; needs ext4 or similar, else skipped); as another user, chmod
  a-w (the open journal keeps appending; results.json then fails with EACCES).
- SIGKILL: of the real CLI process, after two of four groups.

Every run uses the null backend on tests/data's millisecond models, one cell per group (``--lockstep off``)
where a test needs several groups quickly. Concurrent runs take a lock file of their own
(``BENCHBENCH_LOCK``), so they do not wait on other tests or on a real benchbench on this machine.
"""

import errno
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from _sweeping import groups_in, wait_for

from benchbench.cli import main
from benchbench.cli.reference import REFERENCE_MARKER, publish_reference
from benchbench.cli.run import run_dir as _run_dir
from benchbench.measure.machinelock import measuring
from benchbench.processes.manager import module_command
from benchbench.results import journal as journal_mod
from benchbench.results.journal import load_results, read_journal

DATA = Path(__file__).parent / "data"
MODELS = f"{DATA / 'tiny.py'}:tiny,{DATA / 'two_conv.py'}:two_conv"
FAST = ["--backend", "null", "--option", "latency_ms=1", "--quick", "--min-time", "0.05", "--max-time", "0.3",
        "--roofline", "off"]
FOUR_GROUPS = ["--model", MODELS, "--lockstep", "off", *FAST]  # 4 cells, each its own group


@pytest.fixture
def lock(tmp_path, monkeypatch):
    path = tmp_path / "measure.lock"
    monkeypatch.setenv("BENCHBENCH_LOCK", str(path))
    return path


def _env(cache_dir):
    return {**os.environ, "BENCHBENCH_CACHE": str(cache_dir)}


def _start(out, cache_dir, *extra):
    return subprocess.Popen(module_command("benchbench", "run", *FOUR_GROUPS, "--out", str(out), *extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(cache_dir))


def _error_line(stderr: str) -> str:
    errors = [ln for ln in stderr.splitlines() if ln.startswith("benchbench: error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-1500:]
    return errors[0]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, cache_dir):
    """One finished two-group run folder (tiny and two_conv, train vs deploy), to copy and break."""
    out = tmp_path_factory.mktemp("finished")
    env = {**_env(cache_dir), "BENCHBENCH_LOCK": str(out / "lock")}
    proc = subprocess.run(module_command("benchbench", "run", "--model", MODELS, *FAST, "--out", str(out / "runs")),
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-1500:]
    (folder,) = (out / "runs").iterdir()
    return folder


def _copy(folder: Path, tmp_path: Path) -> Path:
    dest = tmp_path / folder.name
    shutil.copytree(folder, dest)
    return dest


# --- the journal ---------------------------------------------------------------------------------------

def test_journal_and_views_agree(finished_run):
    lines = [json.loads(ln) for ln in (finished_run / "cells.jsonl").read_text().splitlines()]
    assert [ln["kind"] for ln in lines] == ["header", "cell", "cell", "group", "cell", "cell", "group"]
    from_journal = read_journal(finished_run / "cells.jsonl")
    doc = json.loads((finished_run / "results.json").read_text())
    assert [c.to_dict()["spec"] for c in from_journal.cells] == [c["spec"] for c in doc["cells"]]
    assert [c.samples_ns for c in from_journal.cells] == [c["samples_ns"] for c in doc["cells"]]
    assert [g["cells"] for g in from_journal.groups] == [g["cells"] for g in doc["groups"]] == [[0, 1], [2, 3]]


def test_report_keeps_the_profiles_and_meta_written_after_the_sweep(finished_run, tmp_path, capsys):
    """Profiles taken after the sweep (``profile_run``, for a resumed run's older cells) and the meta written after
    it are in results.json only, not in the journal: rebuilding the views from the journal keeps them, and never
    replaces a profile the journal holds. An unreadable results.json is left alone, with a notice."""
    from benchbench.results.load import load_run

    folder = _copy(finished_run, tmp_path)
    run = load_run(folder / "results.json")
    assert not any(c.metrics.get("profile") for c in run.cells)
    later = {"status": "ok", "source": "test", "ops": [], "timed": True}
    run.cells[1].metrics["profile"] = later
    run.meta["profile"] = {"cells": 1, "wall_s": 1.5}
    run.save()
    assert main(["report", str(folder)]) == 0
    kept = load_run(folder / "results.json")
    assert [bool(c.metrics.get("profile")) for c in kept.cells] == [False, True, False, False]
    assert kept.cells[1].metrics["profile"]["source"] == "test" and kept.meta["profile"]["wall_s"] == 1.5
    assert len(kept.cells) == len(read_journal(folder / "cells.jsonl").cells)  # the journal still sets the cells
    (folder / "results.json").write_text("not json")
    capsys.readouterr()
    assert main(["report", str(folder)]) == 0
    assert "nothing written after the sweep is carried over" in capsys.readouterr().err
    assert not any(c.metrics.get("profile") for c in load_run(folder / "results.json").cells)


def test_truncated_last_line_is_ignored_with_a_notice(finished_run, tmp_path, capsys):
    folder = _copy(finished_run, tmp_path)
    text = (folder / "cells.jsonl").read_text()
    (folder / "cells.jsonl").write_text(text[: len(text) - 200])  # the second group's line cut short
    notices = []
    run = read_journal(folder / "cells.jsonl", notice=notices.append)
    assert len(notices) == 1 and "cut short" in notices[0]
    assert len(run.cells) == 2 and [g["cells"] for g in run.groups] == [[0, 1]]  # the torn group is not half-kept
    # a damaged line mid-file loses only its own group: the other is read, with one notice naming the line
    lines = text.splitlines(True)
    (folder / "cells.jsonl").write_text("".join(lines[:2]) + lines[2][:50] + "\n" + "".join(lines[3:]))
    assert main(["report", str(folder)]) == 0
    err = capsys.readouterr().err
    assert "1 damaged line(s) skipped (line 3)" in err and "Traceback" not in err
    assert [c.spec.model.endswith("two_conv") for c in read_journal(folder / "cells.jsonl").cells] == [True, True]


def test_report_rebuilds_the_views_from_the_journal(finished_run, tmp_path, capsys):
    folder = _copy(finished_run, tmp_path)
    for name in ("results.json", "results.csv", "report.md"):
        (folder / name).unlink()
    assert main(["report", str(folder)]) == 0
    assert "tiny" in capsys.readouterr().out
    assert len(json.loads((folder / "results.json").read_text())["cells"]) == 4
    assert (folder / "results.csv").exists() and (folder / "report.md").exists()
    # without a journal, from results.json
    (folder / "cells.jsonl").unlink()
    (folder / "report.md").unlink()
    assert main(["report", str(folder)]) == 0 and (folder / "report.md").exists()
    # a folder with neither
    assert main(["report", str(tmp_path)]) == 2
    assert "holds neither cells.jsonl nor results.json" in _error_line(capsys.readouterr().err)


def test_resume_refuses_conflicting_options(finished_run, tmp_path, capsys):
    folder = _copy(finished_run, tmp_path)
    assert main(["run", "--resume", str(folder), "--threads", "1"]) == 2
    assert "--threads 1 conflicts with the run's" in _error_line(capsys.readouterr().err)
    assert main(["run", "--resume", str(tmp_path / "nothing")]) == 2
    assert "no such folder" in _error_line(capsys.readouterr().err)


def test_resume_of_a_finished_run_measures_nothing(finished_run, tmp_path, capsys, lock):
    folder = _copy(finished_run, tmp_path)
    (folder / "cells.jsonl").unlink()  # a run from before journals: resumed from its results.json
    before = json.loads((folder / "results.json").read_text())["cells"]
    assert main(["run", "--resume", str(folder), "--model", MODELS]) == 0
    assert "0 of 2 groups" in capsys.readouterr().err
    after = json.loads((folder / "results.json").read_text())["cells"]
    assert [c["samples_ns"] for c in after] == [c["samples_ns"] for c in before]
    assert len(read_journal(folder / "cells.jsonl").cells) == 4  # its groups start the new journal


# --- SIGKILL, then --resume ----------------------------------------------------------------------------

def test_sigkill_then_resume_loses_and_duplicates_nothing(cache_dir, tmp_path, lock):
    proc = _start(tmp_path, cache_dir)
    wait_for(lambda: groups_in(tmp_path) >= 2, proc)
    proc.kill()
    proc.wait(30)
    (folder,) = tmp_path.glob("*_null")
    kept = read_journal(folder / "cells.jsonl")
    assert 2 <= len(kept.cells) < 4 and not (folder / "results.json").exists()
    resumed = subprocess.run(module_command("benchbench", "run", "--resume", str(folder), "--model", MODELS),
                             capture_output=True, text=True, env=_env(cache_dir), timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-1500:]
    assert f"{4 - len(kept.cells)} of 4 groups" in resumed.stderr
    doc = json.loads((folder / "results.json").read_text())
    specs = [json.dumps(c["spec"], sort_keys=True) for c in doc["cells"]]
    assert len(specs) == len(set(specs)) == 4 and all(c["status"] == "ok" for c in doc["cells"])
    # the cells finished before the kill are the very same measurements, in their place
    for cell in kept.cells:
        (same,) = [c for c in doc["cells"] if c["spec"] == cell.spec.to_dict()]
        assert same["samples_ns"] == cell.samples_ns
    assert [c["spec"]["variant"] for c in doc["cells"]] == ["train", "deploy", "train", "deploy"]
    assert doc["meta"]["resumed"][0]["groups_finished"] == len(kept.cells)


# --- write failures ------------------------------------------------------------------------------------

def _check_write_failure(proc_rc, stderr, folder, cause, at_least):
    assert proc_rc == 3, stderr[-1500:]
    line = _error_line(stderr)
    assert f"cannot write {folder}" in line and cause in line, line
    assert f"{folder / 'cells.jsonl'}" in line and "--resume" in line
    kept = read_journal(folder / "cells.jsonl")
    assert len(kept.cells) >= at_least and f"{len(kept.cells)} finished cell" in line
    assert not list(folder.glob(".tmp-*"))


_TMPFS_SCRIPT = """
set -e
mount -t tmpfs -o size=4m tmpfs "$MNT"
"$@" > "$OUT/stdout" 2> "$OUT/stderr" &
pid=$!
until grep -qs '"kind":"group"' "$MNT"/*/cells.jsonl; do
  kill -0 $pid 2>/dev/null || break; sleep 0.05
done
dd if=/dev/zero of="$MNT/filler" bs=64k 2>/dev/null || true
set +e
wait $pid; echo $? > "$OUT/rc"
rm -f "$MNT/filler"
cp -r "$MNT"/*_null "$OUT/copy"
"""


def test_full_disk_mid_sweep_on_a_tmpfs(cache_dir, tmp_path, lock):
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode != 0:
        pytest.skip("cannot create a mount namespace here (unshare -rm) for a small tmpfs")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cmd = module_command("benchbench", "run", *FOUR_GROUPS, "--out", str(mnt))
    proc = subprocess.run(["unshare", "-rm", "bash", "-c", _TMPFS_SCRIPT, "tmpfs", *cmd], capture_output=True,
                          text=True, timeout=600, env={**_env(cache_dir), "MNT": str(mnt), "OUT": str(tmp_path)})
    if not (tmp_path / "rc").exists():
        pytest.skip(f"could not mount a tmpfs: {proc.stderr[-300:]}")
    stderr = (tmp_path / "stderr").read_text()
    folder = tmp_path / "copy"  # the run folder, copied out of the tmpfs
    line = _error_line(stderr)
    assert int((tmp_path / "rc").read_text()) == 3, stderr[-1500:]
    assert "No space left on device" in line and f"{mnt}/" in line and "cells.jsonl" in line
    assert len(read_journal(folder / "cells.jsonl").cells) >= 1  # finished cells stay readable
    assert f"{len(read_journal(folder / 'cells.jsonl').cells)} finished cell" in line
    assert not list(folder.glob(".tmp-*"))


def test_folder_made_read_only_mid_sweep(cache_dir, tmp_path, lock):
    proc = _start(tmp_path, cache_dir)
    wait_for(lambda: groups_in(tmp_path) >= 1, proc)
    (folder,) = tmp_path.glob("*_null")
    root = os.geteuid() == 0
    try:
        if root:  # chmod does not stop root: make the folder and its journal immutable instead
            made = subprocess.run(["chattr", "+i", str(folder / "cells.jsonl"), str(folder)], capture_output=True)
            if made.returncode != 0:
                proc.kill()
                pytest.skip(f"running as root, and chattr +i is not possible here: {made.stderr[-200:]}")
        else:
            os.chmod(folder / "cells.jsonl", 0o444)
            os.chmod(folder, 0o555)
        out, err = proc.communicate(timeout=600)
    finally:
        if root:
            subprocess.run(["chattr", "-i", str(folder), str(folder / "cells.jsonl")])
        else:
            os.chmod(folder, 0o755)
    # As root the next append fails (EPERM); otherwise the open journal goes on and results.json fails.
    _check_write_failure(proc.returncode, err, folder, "Operation not permitted" if root else "Permission denied",
                         at_least=1 if root else 4)


def test_simulated_full_disk_on_the_journal_and_on_results_json(cache_dir, tmp_path, lock, monkeypatch, capsys):
    """In-process, so it runs everywhere: the journal's write raises ENOSPC on the second group, and
    (second run) results.json's dump fails half-way, which must leave no .tmp-* file."""
    calls = []

    def write(fd, data):
        calls.append(len(data))
        if len(calls) == 3:  # header, group 1, then group 2: a full disk after a partial write
            os.write(fd, bytes(data[:100]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.write(fd, data)

    monkeypatch.setattr(journal_mod, "_write", write)
    assert main(["run", *FOUR_GROUPS, "--out", str(tmp_path / "a")]) == 3
    (folder,) = (tmp_path / "a").iterdir()
    _check_write_failure(3, capsys.readouterr().err, folder, "No space left on device", at_least=1)
    assert (folder / "cells.jsonl").read_text().endswith("\n")  # the partial append was taken back
    monkeypatch.undo()
    monkeypatch.setenv("BENCHBENCH_LOCK", str(lock))

    import benchbench.core.strictjson as sj

    real_dump = sj.dump

    def dump(obj, fh, **kw):
        fh.write("{" * 1000)
        fh.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(sj, "dump", dump)
    assert main(["run", "--model", f"{DATA / 'tiny.py'}:tiny", *FAST, "--out", str(tmp_path / "b")]) == 3
    (folder,) = (tmp_path / "b").iterdir()
    line = _error_line(capsys.readouterr().err)
    assert f"cannot write {folder / 'results.json'}: No space left on device; 2 finished cells are in" in line
    assert not list(folder.glob(".tmp-*")) and not (folder / "results.json").exists()
    monkeypatch.setattr(sj, "dump", real_dump)
    assert main(["report", str(folder)]) == 0  # the journal still rebuilds every view


# --- concurrent runs -----------------------------------------------------------------------------------

def test_run_folders_are_unique_when_created_at_once(tmp_path):
    made, barrier = [], threading.Barrier(8)

    def make():
        barrier.wait()
        made.append(_run_dir(tmp_path, "same"))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 8 and all(p.is_dir() for p in made)


def test_two_runs_in_one_out_get_their_own_folders_and_the_second_waits(cache_dir, tmp_path, lock):
    """The first run samples for a minute; once the second says it is waiting, the first is stopped
    (SIGTERM), and the second measures."""
    out = tmp_path / "out"
    err2 = tmp_path / "second.err"
    cmd = module_command("benchbench", "run", "--model", f"{DATA / 'tiny.py'}:tiny", *FAST, "--out", str(out))
    first = subprocess.Popen([*cmd, "--min-time", "60", "--max-time", "60"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, env=_env(cache_dir))
    wait_for(lambda: list(out.glob("*/cells.jsonl")) and lock.exists() and lock.read_text(), first)
    with open(err2, "w") as fh:
        second = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=fh, text=True, env=_env(cache_dir))
    wait_for(lambda: "waiting" in err2.read_text(), second)
    first.send_signal(signal.SIGTERM)
    assert first.wait(120) == 143
    assert second.wait(600) == 0, err2.read_text()[-800:]
    text = err2.read_text()
    assert f"another benchbench (pid {first.pid}: benchbench run --model" in text and "(use --no-wait" in text
    folders = sorted(out.iterdir())
    assert len(folders) == 2
    assert len(json.loads((folders[1] / "results.json").read_text())["cells"]) == 2


def test_no_wait_warns_and_records_the_other_run(cache_dir, tmp_path, lock, capsys):
    with measuring(argv=["benchbench", "run", "--model", "other"]):  # this process holds the lock
        code = main(["run", "--model", f"{DATA / 'tiny.py'}:tiny", *FAST, "--out", str(tmp_path), "--no-wait"])
    assert code == 0
    err = capsys.readouterr().err
    assert f"another benchbench (pid {os.getpid()}: benchbench run --model other) is measuring" in err
    assert "measuring anyway (--no-wait)" in err
    (folder,) = tmp_path.glob("*_null")
    run, _ = load_results(folder)
    assert run.meta["concurrent_run"] == {"pid": os.getpid(), "argv": ["benchbench", "run", "--model", "other"]}


# --- claim --reference ---------------------------------------------------------------------------------

def test_claim_reference_never_replaces_a_folder_it_did_not_create(tmp_path, capsys):
    foreign = tmp_path / "reference"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep me")
    assert main(["claim", "--reference", "--out", str(tmp_path / "runs")]) == 2  # refused before measuring
    assert f"{foreign} exists and was not published by benchbench" in _error_line(capsys.readouterr().err)
    assert (foreign / "mine.txt").read_text() == "keep me"
    # a folder an earlier publish created is replaced, and the new one is marked again
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "claim.md").write_text("new")
    (foreign / REFERENCE_MARKER).write_text("")
    publish_reference(run_dir, foreign)
    assert (foreign / "claim.md").read_text() == "new" and (foreign / REFERENCE_MARKER).is_file()
    assert not (foreign / "mine.txt").exists()


def test_the_committed_reference_folder_is_marked():
    assert (Path(__file__).parents[1] / "reports" / "reference" / REFERENCE_MARKER).is_file()


def test_sigterm_while_waiting_for_the_lock_exits_cleanly(cache_dir, tmp_path, lock):
    with measuring(argv=["benchbench", "holder"]):
        proc = _start(tmp_path, cache_dir)
        wait_for(lambda: list(tmp_path.glob("*/cells.jsonl")), proc)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "waiting" in err and "Traceback" not in err, err[-800:]
