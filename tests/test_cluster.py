"""Scale-out on a real Dask cluster on loopback: a scheduler and two workers, started and stopped here
(tests/_cluster.py).

Each worker gets its own artifact cache and measuring lock, as a separate host would: builds really travel
(by content, verified on arrival), and the machine lock of one does not serialize the other. Workers run
``--no-nanny``, so killing one is a worker that dies, not one its nanny restarts.

Every run uses the null backend on tests/data's millisecond models, one cell per group (``--lockstep off``).
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from _cluster import Cluster
from _cluster import free_port as _free_port
from _sweeping import groups_in, wait_for

from benchbench.cli import main
from benchbench.processes.manager import module_command
from benchbench.results.load import load_run

distributed = pytest.importorskip("distributed", reason="the cluster extra (distributed) is not installed")

DATA = Path(__file__).parent / "data"
TWO_CONV = f"{DATA / 'two_conv.py'}:two_conv"
MODELS = f"{DATA / 'tiny.py'}:tiny,{DATA / 'two_conv.py'}:two_conv"  # 4 cells, each its own group
FAST = ["--backend", "null", "--option", "latency_ms=1", "--quick", "--min-time", "0.3", "--max-time", "0.6",
        "--roofline", "off", "--lockstep", "off", "--threads", "1"]
@pytest.fixture
def cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHBENCH_LOCK", str(tmp_path / "coordinator.lock"))
    c = Cluster(tmp_path)
    yield c
    c.stop()
    assert all(p.poll() is not None for p in c.procs.values())


def _gone(pids: list[int], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]:
            return True
        time.sleep(0.1)
    return False


def _cells(folder: Path) -> list[dict]:
    (doc,) = [json.loads(p.read_text()) for p in folder.glob("*/results.json")]
    return doc["cells"]


def _no_overlap(cells: list[dict]):
    """No two measurements overlapped on one worker (a group's cells share its start and end)."""
    by_worker: dict[str, set] = {}
    for c in cells:
        if c.get("host"):
            by_worker.setdefault(c["host"]["worker"], set()).add((c["host"]["started_at"], c["host"]["ended_at"]))
    for spans in by_worker.values():
        spans = sorted(spans)
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert start >= end, f"two measurements overlapped on one worker: {spans}"
    return by_worker


def test_cluster_run_matches_local_and_survives_a_dead_worker(cluster, cache_dir, tmp_path):
    local = subprocess.run(module_command("benchbench", "run", "--model", MODELS, *FAST,
                                          "--out", str(tmp_path / "local")), capture_output=True, text=True, timeout=300)
    assert local.returncode == 0, local.stderr[-1500:]
    address = cluster.scheduler()
    cluster.worker("w1", "measure=1")
    cluster.worker("w2", "measure=1")
    client = cluster.client(2)
    try:
        out = tmp_path / "cluster"
        proc = subprocess.Popen(module_command("benchbench", "run", "--model", MODELS, *FAST, "--out", str(out),
                                               "--scheduler", address),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: groups_in(out) >= 1, proc, timeout=120)
        before = {json.dumps(r["cell"]["spec"]): r["cell"] for r in
                  (json.loads(ln) for ln in next(out.glob("*/cells.jsonl")).read_text().splitlines())
                  if r.get("kind") == "cell"}
        # kill a worker while it measures: one whose task is in flight right now
        busy = {}
        wait_for(lambda: busy.update({w: ks for w, ks in client.processing().items() if ks}) or busy, proc,
                 timeout=120)
        victim_addr, keys = next(iter(busy.items()))
        workers = client.scheduler_info()["workers"]
        victim = workers[victim_addr]["name"]
        in_flight = int(keys[0].split("-")[2])  # benchbench-group-<index>-<id>
        killed_at = time.time()
        children = cluster.kill(victim)
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        client.close()
    assert proc.returncode == 1 or proc.returncode == 0, stderr[-1500:]
    assert "Traceback" not in stderr
    assert _gone(children), "the dead worker left measuring processes behind"

    cells, local_cells = _cells(out), _cells(tmp_path / "local")
    # the same schema and cell identities as a local run
    assert sorted(json.dumps(c["spec"]) for c in cells) == sorted(json.dumps(c["spec"]) for c in local_cells)
    local_keys = {k for c in local_cells for k in c}
    assert local_keys <= {k for c in cells for k in c} <= local_keys | {"host"}
    load_run(next(out.glob("*/results.json")))  # validates against the schema
    # no finished cell lost: what was journaled before the kill is in the results, unchanged
    final = {json.dumps(c["spec"]): c for c in cells}
    for key, cell in before.items():
        assert final[key]["samples_ns"] == cell["samples_ns"]
    # the group in flight on the dead worker was retried on the other one, or recorded lost
    doc = json.loads(next(out.glob("*/results.json")).read_text())
    status = [c["status"] for c in cells]
    assert set(status) <= {"ok", "lost"} and status.count("lost") <= 1
    retried = [cells[i] for g in doc["groups"] for i in g["cells"]
               if cells[i]["spec"] == local_cells[in_flight]["spec"]]
    assert len(retried) == 1
    if retried[0]["status"] == "ok":
        assert retried[0]["host"]["worker"] != victim_addr and retried[0]["host"]["ended_at"] > killed_at
    else:
        assert "died" in retried[0]["reason"]
    assert _no_overlap(cells)
    for c in cells:
        if c["status"] == "ok":
            assert c["host"]["packages"] and c["host"]["machine"]["cpu"]
            if c["host"]["worker"] == victim_addr:
                assert c["host"]["ended_at"] <= killed_at


def test_device_routing_pivot_and_bad_input(cluster, cache_dir, tmp_path, capsys):
    assert main(["run", "--model", f"{DATA / 'tiny.py'}:tiny", *FAST, "--scheduler", f"tcp://127.0.0.1:{_free_port()}",
                 "--out", str(tmp_path / "x")]) == 2
    assert "cannot reach the Dask scheduler" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())
    address = cluster.scheduler()
    cluster.worker("pi", "measure=1,device:pi=1")
    cluster.worker("ws", "measure=1,device:ws=1")
    cluster.worker("builder", "build=2", nthreads=2)  # builds run here, in parallel, never on a measuring host
    client = cluster.client(3)
    try:
        device_of = {addr: next(k.split(":", 1)[1] for k in w["resources"] if k.startswith("device:"))
                     for addr, w in client.scheduler_info()["workers"].items() if "measure" in w["resources"]}
    finally:
        client.close()
    assert main(["run", "--model", f"{DATA / 'tiny.py'}:tiny", *FAST, "--scheduler", address, "--device", "gpu",
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("benchbench: error: unknown --device gpu") and "pi, ws" in err[-1]
    out = tmp_path / "devices"
    rc = main(["run", "--model", f"{DATA / 'tiny.py'}:tiny", *FAST, "--variant", "deploy", "--scheduler", address,
               "--device", "ws,pi", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err[-1500:]
    cells = _cells(out)
    assert sorted(c["spec"]["device"] for c in cells) == ["pi", "ws"]
    for c in cells:
        assert c["status"] == "ok" and device_of[c["host"]["worker"]] == c["spec"]["device"] == c["host"]["device"]
    _no_overlap(cells)
    # built once, on the building worker, and shipped by content to both measuring hosts' own caches
    for host in ("builder", "pi", "ws"):
        assert [p.name for p in (tmp_path / host / "cache").glob("*tiny*deploy*")], host
    assert all(c["artifact"] == cells[0]["artifact"] for c in cells)
    capsys.readouterr()
    results = str(next(out.glob("*/results.json")))
    assert main(["compare", results, "--pivot", "device", "--baseline", "ws"]) == 0
    text = capsys.readouterr().out
    assert "## ws → pi" in text and "matched cells" in text and "@ *" in text
    assert main(["compare", results, "--pivot", "device", "--baseline", "tpu"]) == 2


def test_scheduler_gone_then_resume_on_a_new_cluster(cluster, cache_dir, tmp_path):
    cluster.scheduler()
    cluster.worker("a", "measure=1")
    out = tmp_path / "runs"
    proc = subprocess.Popen(module_command("benchbench", "run", "--model", MODELS, *FAST, "--out", str(out),
                                           "--scheduler", cluster.address),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: groups_in(out) >= 1, proc, timeout=120)
    cluster.kill(next(n for n in cluster.procs if n.startswith("scheduler")))
    _, stderr = proc.communicate(timeout=120)
    errors = [ln for ln in stderr.splitlines() if ln.startswith("benchbench: error:")]
    assert proc.returncode == 3 and len(errors) == 1 and "went away" in errors[0], stderr[-1500:]
    assert "Traceback" not in stderr and "--resume" in errors[0]
    (folder,) = out.iterdir()
    kept = groups_in(out)
    assert 1 <= kept < 4
    cluster.kill("a")
    address = cluster.scheduler()
    cluster.worker("b", "measure=1")
    done = subprocess.run(module_command("benchbench", "run", "--resume", str(folder), "--model", MODELS,
                                         "--scheduler", address),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-1500:]
    assert f"{4 - kept} of 4 groups" in done.stderr
    cells = _cells(out)
    assert len(cells) == 4 and all(c["status"] == "ok" for c in cells)


def test_local_runs_never_import_dask(cache_dir, tmp_path):
    code = ("import sys\nimport benchbench\nfrom benchbench.cli import main\n"
            f"rc = main(['run', '--model', {str(DATA / 'tiny.py') + ':tiny'!r}, *{FAST!r}, "
            f"'--out', {str(tmp_path)!r}])\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed'))\n"
            "print(rc, loaded)\n")
    proc = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "BENCHBENCH_LOCK": str(tmp_path / "lock")})
    assert proc.stdout.strip().splitlines()[-1] == "0 []", proc.stdout[-500:] + proc.stderr[-1500:]


def test_predict_fits_one_predictor_per_device_and_predicts_with_each(cluster, cache_dir, tmp_path, capsys):
    address = cluster.scheduler()
    cluster.worker("fast", "measure=1,device:fast=1")
    cluster.worker("slow", "measure=1,device:slow=1", env={"BENCHBENCH_NULL_SLOWDOWN": "3"})  # 3x the sleep
    cluster.client(2).close()
    null = ["--backend", "null", "--threads", "1"]
    rc = main(["predict", "--fit", "--quick", "--no-adapt", *null, "--sampling", "quick", "--scheduler", address,
               "--device", "fast,slow", "--out", str(tmp_path / "fit")])
    assert rc == 0, capsys.readouterr().err[-2000:]
    (folder,) = (tmp_path / "fit").glob("*_predict_null")
    docs = {d: json.loads(next(folder.glob(f"predictor_null@{d}-*.json")).read_text()) for d in ("fast", "slow")}
    for device, doc in docs.items():
        assert doc["device"] == doc["identity"]["device"] == device and doc["identity"]["host"]
        assert doc["identity"]["packages"] and len(doc["points"]) >= 30
    # each device's anchor is its own machine's: the slow worker sleeps three times as long
    assert docs["slow"]["anchor_ms"] > 1.8 * docs["fast"]["anchor_ms"]
    assert len(list((Path(cache_dir) / "predictors").glob("null-t1-device-*.json"))) == 2
    assert "## null on device slow" in (folder / "predictor.md").read_text()
    capsys.readouterr()

    # predicting needs no cluster: each device's stored predictor
    assert main(["predict", "--model", TWO_CONV, *null, "--device", "slow,fast", "--json"]) == 0
    predicted = {p["device"]: p["ms"] for p in json.loads(capsys.readouterr().out)}
    assert predicted["slow"] > 1.8 * predicted["fast"] > 0
    assert main(["predict", "--model", TWO_CONV, *null, "--device", "gpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no predictor for null with 1 threads on device gpu" in err[0] and "--device gpu" in err[0]
    assert main(["predict", "--model", TWO_CONV, *null, "--scheduler", address]) == 2  # measures nothing
    assert "--scheduler measures on a cluster" in capsys.readouterr().err
    # a device's predictor is not taken for this machine's
    assert main(["predict", "--model", TWO_CONV, *null, "--predictor", str(next(folder.glob("predictor_null@slow-*"))),
                 "--json"]) == 2
    assert "the predictor of null @ slow, not of null" in capsys.readouterr().err
