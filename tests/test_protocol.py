"""The parent-worker protocol: typed records with a version; a mismatch or an unknown type is an error."""

import json

import pytest

from benchbench.core.spec import CellSpec, MeasureConfig
from benchbench.processes.manager import Worker, WorkerLost, run_job
from benchbench.processes.protocol import (
    PROTOCOL_VERSION,
    BandwidthJob,
    Block,
    BlockDone,
    BuildJob,
    Failed,
    Finish,
    Prepare,
    ProtocolError,
    Ready,
    decode,
    encode,
)


def test_round_trip_of_every_field():
    rec = BlockDone([1, 2, 3], {"wall_ns": 10, "wait_share": 0.1}, 5, 7, 11)
    line = encode(rec)
    assert line.endswith(b"\n") and json.loads(line)["v"] == PROTOCOL_VERSION
    assert decode(line) == rec
    assert decode(encode(Ready(1.0, 2.0, 5, 0.5, 1000))).estimate_ns == 1000


def test_version_mismatch_is_refused():
    doc = json.loads(encode(Block(3)))
    doc["v"] = PROTOCOL_VERSION + 1
    with pytest.raises(ProtocolError, match="different benchbench versions"):
        decode(json.dumps(doc))
    del doc["v"]
    with pytest.raises(ProtocolError, match="protocol version None"):
        decode(json.dumps(doc))


@pytest.mark.parametrize("line,match", [
    ('{"v": %d, "type": "Launch"}' % PROTOCOL_VERSION, "unknown record type"),
    ('{"v": %d, "type": "Block", "count": 3, "extra": 1}' % PROTOCOL_VERSION, "no field"),
    ('{"v": %d, "type": "Block"}' % PROTOCOL_VERSION, "Block"),
    ("[1, 2]", "not a protocol record"),
    ("{not json", "not a protocol line"),
])
def test_malformed_records_are_refused(line, match):
    with pytest.raises(ProtocolError, match=match):
        decode(line)


def test_encode_refuses_a_non_record():
    with pytest.raises(ProtocolError):
        encode({"type": "Block"})


def test_run_job_takes_only_job_records():
    with pytest.raises(TypeError, match="not a job record"):
        run_job(Block(3), timeout_s=60, threads=1)


def test_records_carry_typed_specs_and_configs():
    spec = CellSpec("resnet18", "deploy", "ort", threads=2, options=(("k", "v"),))
    prep = decode(encode(Prepare(spec, MeasureConfig(max_s=3.0), "/a/model.onnx", "/a/input.npy")))
    assert prep.spec == spec and isinstance(prep.config, MeasureConfig) and prep.config.max_s == 3.0
    job = decode(encode(BuildJob(spec, [1, 3, 224, 224], ["onnx"], "/cache/x")))
    assert job.spec == spec and job.formats == ["onnx"]
    with pytest.raises(ProtocolError, match="Prepare"):  # a spec that is not a CellSpec's dict
        decode('{"v": %d, "type": "Prepare", "spec": {"nope": 1}, "config": {}, "artifact": null, '
               '"input_path": "x"}' % PROTOCOL_VERSION)


def test_a_worker_that_gets_the_wrong_first_record_dies_and_is_reported():
    with Worker(1, "test worker") as worker:
        worker.send(Block(3))  # a measuring worker must be prepared first
        with pytest.raises(WorkerLost) as lost:
            worker.recv(60)
    assert lost.value.outcome == "crashed" and "Prepare or a job record" in lost.value.reason


def test_failed_record_carries_status_and_reason():
    assert decode(encode(Failed("unsupported", "no such op"))).status == "unsupported"
    assert decode(encode(BandwidthJob("cpu", 2))) == BandwidthJob("cpu", 2)


def test_fork_server_workers_report_exits_and_die_with_their_server():
    import os

    from benchbench.processes.manager import ForkServer

    server = ForkServer("null", 1)
    try:
        with Worker(1, "forked worker", server=server) as worker:
            worker.send(Finish())  # the wrong first record: the forked worker dies, and says why
            with pytest.raises(WorkerLost) as lost:
                worker.recv(60)
            assert lost.value.outcome == "crashed" and "Prepare or a job record" in lost.value.reason
            assert worker.proc.wait(30) == 1  # the worker's own exit code, reaped by the server
        with Worker(1, "forked worker", server=server) as worker:
            worker.send(Block(3))
            with pytest.raises(WorkerLost) as lost:
                worker.recv(60)
            assert lost.value.outcome == "crashed" and "Prepare or a job record" in lost.value.reason
        idle = Worker(1, "idle forked worker", server=server)  # waits for its first record
        pid = idle.proc.pid
        os.kill(pid, 0)  # alive
    finally:
        server.close()
    # The server's death takes its children with it (PR_SET_PDEATHSIG), so nothing outlives a sweep.
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"forked worker {pid} outlived its fork server")
    idle.sock.close()
    idle._tmp.cleanup()


def test_workers_import_openvino_without_its_telemetry_thread():
    """OpenVINO's import sends a telemetry event from a background thread; a fork server that forked
    while it held a lock produced a worker hung on a futex. Workers and fork servers hide the package."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("openvino") is None:
        pytest.skip("openvino is not installed (pip install 'benchbench[openvino]')")
    code = ("from benchbench.measure.worker import no_telemetry; no_telemetry(); import openvino, threading, sys; "
            "print(threading.active_count(), 'openvino_telemetry' in sys.modules and sys.modules['openvino_telemetry'] is not None)")
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.split() == ["1", "False"], out.stdout + out.stderr


def test_a_worker_that_cannot_be_started_is_an_environment_error_not_a_traceback(monkeypatch):
    """The interpreter cannot be executed (a removed venv, no permission): one reason, status env-error."""
    import benchbench.processes.manager as manager

    monkeypatch.setattr(manager, "module_command", lambda *args: ["/nonexistent/python", "-m", *args])
    outcome, result = run_job(BandwidthJob("cpu", 1), 10.0, threads=1)
    assert outcome == "env-error" and "cannot start a worker process" in result["reason"]
    with pytest.raises(WorkerLost, match="cannot start a fork server") as lost:
        manager.ForkServer("null", 1)
    assert lost.value.outcome == "env-error"
