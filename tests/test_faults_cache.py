"""Real faults against the verified cache, the plugin contract and the exit codes (issue 12).

Each test breaks something for real: it truncates or flips bits in cached files, writes an old-layout
manifest, races two builders, fills a disk (a tmpfs where the machine lets us mount one, else a write that
fails with ENOSPC), and runs user model files that raise, return None, fail in forward or do not parse.
Models are written into tmp_path and are tiny (32x32 inputs), so builds take a second or two.
"""

import errno
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from benchbench.build import cache, cache_admin
from benchbench.core.spec import QUICK, CellSpec
from benchbench.processes.manager import module_command

FAST = ["--quick", "--input-size", "32", "--min-time", "0.05", "--max-time", "0.3"]
CONFIG = QUICK.replace(cell_timeout_s=120)

MODELS = '''
import time
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)

    def forward(self, x):
        return self.conv(x).mean((2, 3))


def net(variant="train", **kw):   # **kw must not receive input_size: Net() does not take it
    return Net(**kw)


def only_variant(variant):
    return Net()


def sized(input_size, variant="train"):
    assert tuple(input_size) == (32, 32)
    return Net()


def slow():
    time.sleep(1.5)  # long enough for a second builder to arrive while the first holds the lock
    return Net(5)


def raises():
    raise ValueError("width must be positive")


def returns_none():
    return None


class _BadForward(nn.Module):
    def forward(self, x):
        raise RuntimeError("shapes do not match, on purpose")


def bad_forward():
    return _BadForward()


class _Counting(nn.Module):
    """Adds how often it ran: the exported graph bakes in a later count than eager's first forward."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.conv(x) + float(self.calls)


def wrong_parity():
    return _Counting()


class _Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        if y.sum() > 0:  # data-dependent: an export keeps one branch
            return y * 2
        return y - 1


def branchy():
    return _Branchy()
'''


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    path = tmp_path_factory.mktemp("user") / "my_models.py"
    path.write_text(MODELS)
    return path


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """A cache of the test's own, so corrupting it touches no other test."""
    root = tmp_path / "cache"
    monkeypatch.setenv("BENCHBENCH_CACHE", str(root))
    return root


def _cli(*args, cache_dir=None):
    env = {**os.environ, **({"BENCHBENCH_CACHE": str(cache_dir)} if cache_dir else {})}
    return subprocess.run(module_command("benchbench", *args), capture_output=True, text=True, timeout=300, env=env)


def _build(models, factory, capfd, formats=("onnx",), variant="deploy"):
    from benchbench.build.builds import ensure_build

    build = ensure_build(CellSpec(f"{models}:{factory}", variant, "ort", input_size=(32, 32)), set(formats), CONFIG)
    return build, capfd.readouterr().err


def _flip(path: Path, at: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x10
    path.write_bytes(bytes(data))


# --- the verified cache ---------------------------------------------------------------------------------------

def test_corrupt_cached_files_are_rebuilt_once_with_a_notice(models, fresh_cache, capfd):
    pytest.importorskip("onnxruntime")
    first, err = _build(models, "net", capfd)
    assert first["status"] == "ok" and not first["cached"] and "corrupt" not in err
    d = Path(first["dir"])
    manifest = json.loads((d / "build.json").read_text())
    assert manifest["artifacts"]["onnx"]["file"] == "model.onnx"  # relative: a moved cache still works
    assert str(fresh_cache) not in (d / "build.json").read_text()
    assert manifest["files"]["model.onnx"]["sha256"] and not list(d.glob(".tmp-*"))

    cache._VERIFIED.clear()
    again, err = _build(models, "net", capfd)
    assert again["cached"] and err == ""

    _corrupt_and_rebuild(models, d, capfd, ("onnx",), [
        ("model.onnx: 40 bytes, build.json says", lambda: os.truncate(d / "model.onnx", 40)),
        ("model.onnx: hash mismatch", lambda: _flip(d / "model.onnx")),
    ])


def test_corrupt_manifest_or_input_is_rebuilt(models, fresh_cache, capfd):
    """The same without an ONNX export (a build's base files only), so each rebuild takes a second."""
    first, _ = _build(models, "net", capfd, formats=())
    d = Path(first["dir"])
    _corrupt_and_rebuild(models, d, capfd, (), [
        ("input.npy: hash mismatch", lambda: _flip(d / "input.npy", 0.9)),
        ("build.json: unreadable", lambda: os.truncate(d / "build.json", 30)),
        # a flipped digit in a number still parses: the manifest's own checksum catches it
        ("build.json: checksum mismatch",
         lambda: (d / "build.json").write_text((d / "build.json").read_text().replace('"params": 112', '"params": 113'))),
    ])


def _corrupt_and_rebuild(models, d, capfd, formats, faults):
    for expected, fault in faults:
        cache._VERIFIED.clear()  # a new process: hashes are checked once per process
        fault()
        rebuilt, err = _build(models, "net", capfd, formats=formats)
        assert rebuilt["status"] == "ok" and not rebuilt["cached"], (expected, rebuilt)
        assert f"note: cached build of {models}:net (deploy) was corrupt ({expected}" in err, err
        assert err.count("\n") == 1  # one line
        cache._VERIFIED.clear()
        assert _build(models, "net", capfd, formats=formats)[0]["cached"]  # and it stays good


def _as_layout_1(first: dict, folder: Path) -> dict:
    """The manifest an earlier benchbench wrote for this build: absolute paths (into ``folder``), no hashes, and
    the pickled module it kept then (``model.pt``; builds now keep a state dict, ``weights.pt``)."""
    Path(first["dir"], "model.pt").write_bytes(b"a pickled module, as layout 1 kept it")
    m = first["manifest"]
    artifacts = {fmt: {**{k: v for k, v in e.items() if k not in ("file", "files")}, "path": str(folder / e["file"])}
                 for fmt, e in m["artifacts"].items()}
    return {"model": m["model"], "artifacts": artifacts, "torch_ops": m.get("torch_ops"), "graph": m.get("graph"),
            "torch_module": {"status": "ok", "path": str(folder / "model.pt"), "bytes": 1}}


def test_layout_1_entry_is_upgraded_in_place_not_rebuilt(models, fresh_cache, capfd):
    """A cache from an earlier benchbench (absolute paths, no hashes) is hours of exports: its entries are
    upgraded where they lie (relative paths, files hashed now), with one line, and not rebuilt."""
    pytest.importorskip("onnxruntime")
    first, _ = _build(models, "net", capfd)
    d = Path(first["dir"])
    (d / "build.json").write_text(json.dumps(_as_layout_1(first, d)))
    cache._VERIFIED.clear()
    again, err = _build(models, "net", capfd)
    assert again["status"] == "ok" and again["cached"], again
    assert err.count("\n") == 1 and f"cached build {d.name} upgraded to cache layout 2" in err
    upgraded = json.loads((d / "build.json").read_text())
    assert upgraded["layout"] == 2 and upgraded["artifacts"]["onnx"]["file"] == "model.onnx"
    assert str(fresh_cache) not in (d / "build.json").read_text() and cache.sealed(upgraded)
    cache._VERIFIED.clear()
    assert _build(models, "net", capfd) == (again | {"manifest": upgraded}, "")  # quiet from now on


def test_layout_1_entry_of_a_moved_cache_is_rebuilt(models, fresh_cache, capfd):
    """Layout-1 paths that point outside the entry (the cache was moved) cannot be upgraded: rebuilt once."""
    first, _ = _build(models, "net", capfd, formats=())
    d = Path(first["dir"])
    (d / "build.json").write_text(json.dumps(_as_layout_1(first, Path("/somewhere/else"))))
    again, err = _build(models, "net", capfd, formats=())
    assert again["status"] == "ok" and not again["cached"]
    assert "was corrupt (build.json (layout 1): model.pt is not in this entry's folder)" in err


def test_two_concurrent_builders_build_once(models, fresh_cache):
    script = textwrap.dedent(f"""
        import json
        from benchbench.build.builds import ensure_build
        from benchbench.core.spec import QUICK, CellSpec
        b = ensure_build(CellSpec({str(models) + ':slow'!r}, "deploy", "null", input_size=(32, 32)), set(),
                         QUICK.replace(cell_timeout_s=120))
        print(json.dumps({{"status": b["status"], "cached": b.get("cached")}}))
    """)
    procs = [subprocess.Popen([sys.executable, "-P", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert all(r["status"] == "ok" for r in results), outs
    assert sorted(r["cached"] for r in results) == [False, True], outs  # one built, the other reused
    assert "another benchbench is building" in "".join(err for _, err in outs)
    (entry,) = [p for p in fresh_cache.iterdir() if not p.name.startswith(".")]
    assert not list(entry.glob(".tmp-*"))


def test_builds_side_by_side_are_forked_by_the_build_server_and_outlive_each_others_threads(models, fresh_cache):
    """``Builds.make_all`` with two jobs: three builds, each exported in a worker forked by the build server
    (one thread alive at the fork), all whole, though the thread that finishes first ends while the other
    still builds (the server, started in the main thread, lives on: a server started by a build thread
    would die with it, and take the other build down). A second sweep finds all three in the cache."""
    from benchbench.build.builds import Builds, build_group

    specs = [CellSpec(f"{models}:{name}", variant, "ort", input_size=(32, 32))
             for name, variant in (("slow", "deploy"), ("net", "deploy"), ("net", "train"))]
    lines = []
    builds = Builds(CONFIG, specs)
    try:
        wall = builds.make_all(specs, jobs=2, progress=lines.append)
        records = [builds.records[build_group(s)] for s in specs]
        assert [r["status"] for r in records] == ["ok"] * 3, records
        assert not any(r["cached"] for r in records)
        assert all(r["manifest"]["artifacts"]["onnx"]["status"] == "ok" for r in records)
        (server,) = builds.servers._servers.values()
        assert server.last_spawn.threads == 1, server.last_spawn
        assert sum(line.startswith("build ") for line in lines) == 3 and "3 at a time" not in lines[-1]
        assert 0 < wall < sum(r["build_s"] for r in records)  # side by side: less than their sum
    finally:
        builds.close()
    again = Builds(CONFIG, specs)
    try:
        lines.clear()
        again.make_all(specs, jobs=2, progress=lines.append)
        assert all(again.records[build_group(s)]["cached"] for s in specs) and lines == []
        # a build thread never starts a server (it would die with that thread): its build runs fresh
        started = []
        thread = threading.Thread(target=lambda: started.append(again.servers.start(1)))
        thread.start()
        thread.join(60)
        assert started == [None] and not again.servers._servers
    finally:
        again.close()


def test_cache_show_and_clear_by_pattern(models, fresh_cache, capsys, tmp_path):
    from benchbench.cli import main

    _build(models, "net", capsys, formats=())
    _build(models, "only_variant", capsys, formats=())
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not the cache's")
    (fresh_cache / "link").symlink_to(outside)

    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert str(fresh_cache) in out and "3 entries" in out and "only_variant" in out and "deploy" in out

    assert main(["cache", "clear", "*only_variant*"]) == 0
    out = capsys.readouterr().out
    assert "removed" in out and "only_variant" in out and "removed 1 entries" in out
    left = cache_admin.entries(fresh_cache)
    assert [e.model for e in left if "net" in e.model] == [f"{models}:net"]

    for bad in ("../x", "", "a/b"):
        assert main(["cache", "clear", bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("benchbench: error:") and err.count("\n") == 1

    assert main(["cache", "clear"]) == 0
    assert "removed 2 entries" in capsys.readouterr().out
    assert (outside / "keep.txt").exists()  # the link went, not what it pointed to
    assert cache_admin.entries(fresh_cache) == []


def test_corrupt_roofline_cache_is_ignored_and_auto_never_calibrates(fresh_cache, monkeypatch):
    from benchbench.measure import calibration

    monkeypatch.setattr(calibration, "_calibrate_one", lambda *a: pytest.fail("auto must not calibrate"))
    key = calibration.calibration_key("null", 1)
    path = fresh_cache / "roofline" / f"{key}.json"
    assert calibration.calibrate([("null", 1)], "auto") == {}  # none cached: no roofline, no minute spent

    entry = {"backend": "null", "threads": 1, "peak_gflops": 10.0, "bandwidth_gbs": 5.0, "kernels": {},
             "measured_at": time.time() - 3600, "load_avg_1m": 0.5, "machine": {"others_cpu_share": 0.02}}
    path.parent.mkdir(parents=True)
    cache.write_json(path, cache.seal(dict(entry)))
    got = calibration.calibrate([("null", 1)], "auto")["null/1"]
    assert got["cached"] and got["peak_gflops"] == 10.0 and got["machine"]["others_cpu_share"] == 0.02

    good = path.read_text()
    for fault, why in ((lambda: path.write_text(good[: len(good) // 2]), "unreadable"),
                       (lambda: path.write_text(good.replace('"peak_gflops": 10.0', '"peak_gflops": 90.0')),
                        "checksum mismatch")):
        fault()
        notes = []
        assert calibration.calibrate([("null", 1)], "auto", progress=notes.append) == {}
        assert any(f"was corrupt ({why})" in n for n in notes), notes


# --- honest statuses and exit codes ---------------------------------------------------------------------------

def test_broken_user_models_are_user_errors_exit_2(models, cache_dir, tmp_path):
    spec = ",".join(f"{models}:{f}" for f in ("raises", "returns_none", "bad_forward"))
    proc = _cli("run", "-m", spec, "-b", "null", "--variant", "deploy", "--out", str(tmp_path), *FAST)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("benchbench: model error:")]
    assert lines == ["benchbench: model error: ValueError: width must be positive (in my_models.py:raises)",
                     "benchbench: model error: TypeError: the factory returned NoneType, not a torch.nn.Module "
                     "(in my_models.py:returns_none)",
                     "benchbench: model error: RuntimeError: shapes do not match, on purpose (in my_models.py:bad_forward)"]
    (run_dir,) = tmp_path.iterdir()
    cells = json.loads((run_dir / "results.json").read_text())["cells"]
    assert [(c["status"], c.get("fault")) for c in cells] == [("error", "user")] * 3


def test_factory_contract_variant_only_and_declared_input_size(models):
    from benchbench.models import create_model

    for factory in ("only_variant", "net", "sized"):  # net's **kw must not get input_size
        model = create_model(f"{models}:{factory}", "deploy", input_size=(32, 32))
        assert model.conv.out_channels == 4


def test_parity_failure_exits_1_unless_allowed(models, cache_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    args = ["run", "-m", f"{models}:wrong_parity", "-b", "ort", "--variant", "deploy", *FAST]
    proc = _cli(*args, "--out", str(tmp_path / "a"))
    assert proc.returncode == 1, proc.stderr
    assert "FAIL" in proc.stdout and "--allow-parity-fail" in proc.stderr
    proc = _cli(*args, "--out", str(tmp_path / "b"), "--allow-parity-fail")
    assert proc.returncode == 0, proc.stderr
    assert "PARITY FAILURES" in proc.stdout


def test_specialised_export_is_reported(models, fresh_cache, capfd):
    pytest.importorskip("onnxruntime")
    from benchbench.results.record import CellResult, RunResult
    from benchbench.results.views import terminal_table

    build, _ = _build(models, "branchy", capfd)
    warnings = build["manifest"]["artifacts"]["onnx"]["warnings"]
    assert any("TracerWarning" in w for w in warnings), warnings
    cell = CellResult(CellSpec("b", "deploy", "ort"), "ok", samples_ns=[1000] * 8,
                      artifact={"format": "onnx", "warnings": warnings})
    cell.recompute()
    text = terminal_table(RunResult(meta={}, cells=[cell]))
    assert "ok !" in text and "specialised data-dependent control flow" in text


@pytest.mark.parametrize("source,what", [("def net(:\n    pass\n", "SyntaxError"),
                                         ("import no_such_module_here\n", "ModuleNotFoundError")])
def test_user_file_that_does_not_load_is_one_line_exit_2(tmp_path, source, what):
    bad = tmp_path / "bad_model.py"
    bad.write_text(source)
    proc = _cli("run", "-m", f"{bad}:net", "-b", "null", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("benchbench: error: cannot load bad_model.py: " + what), proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


# --- environment errors ---------------------------------------------------------------------------------------

def test_enospc_writing_an_artifact_is_env_error(models, fresh_cache, monkeypatch):
    """In process: the ONNX file hits a full disk (as torch.onnx's writer sees it) mid-write."""
    pytest.importorskip("onnxruntime")
    from benchbench.build import export
    from benchbench.core.spec import CellSpec
    from benchbench.measure import worker as _worker
    from benchbench.processes.protocol import BuildJob

    def full_disk(model, x, path):
        Path(path).write_bytes(b"\0" * 100)  # a partial file, as a real short write leaves
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setitem(export._EXPORTERS, "onnx", full_disk)
    job = BuildJob(CellSpec(f"{models}:net", "deploy", "ort"), [1, 3, 32, 32], ["onnx"], str(fresh_cache / "k"))
    reply = _worker._build(job)
    assert reply.status == "env-error" and "cannot write model.onnx" in reply.reason
    assert "No space left on device" in reply.reason
    manifest = json.loads((fresh_cache / "k" / "build.json").read_text())
    assert "onnx" not in manifest["artifacts"]  # not cached as unsupported: the next run tries again
    assert not (fresh_cache / "k" / "model.onnx").exists() and not list((fresh_cache / "k").glob(".tmp-*"))


@pytest.fixture
def tiny_tmpfs(tmp_path):
    mnt = tmp_path / "full"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root (the in-process ENOSPC test covers the logic)")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


def test_full_disk_cache_exits_3_with_env_error(models, tiny_tmpfs, tmp_path):
    # the model's own 224x224 input (600 KB) cannot fit in 64 KB
    proc = _cli("run", "-m", f"{models}:net", "-b", "null", "--variant", "deploy", "--out", str(tmp_path / "out"),
                "--quick", cache_dir=tiny_tmpfs)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("benchbench: environment error:")]
    assert "no space left on device" in line.lower()
    (run_dir,) = (tmp_path / "out").iterdir()
    (cell,) = json.loads((run_dir / "results.json").read_text())["cells"]
    assert cell["status"] == "env-error"
    assert not [p for p in tiny_tmpfs.rglob(".tmp-*")]
