"""The executor seam and the cluster's Dask-free parts: the local executor's order, a cell's device and
host in the spec and the schema, artifacts verified on arrival, and compare --pivot device."""

import hashlib

import pytest

from benchbench.build.ship import install as _install
from benchbench.core.spec import CellSpec
from benchbench.measure import executor
from benchbench.measure.cluster import worker_devices
from benchbench.measure.executor import LocalExecutor
from benchbench.results.compare import pivot
from benchbench.results.record import CellResult, RunResult
from benchbench.results.schema import validate_document


def test_local_executor_measures_lazily_in_order_and_closes_its_servers(monkeypatch):
    calls = []

    def measure_group(specs, config, builds, servers, profile=None, blocks_only=False):
        calls.append([s.model for s in specs] + (["blocks only"] if blocks_only else []))
        servers[len(calls)] = type("S", (), {"close": lambda self: calls.append("closed")})()
        return [CellResult(s, "ok") for s in specs], {"rounds": len(calls)}

    monkeypatch.setattr(executor, "measure_group", measure_group)
    ex = LocalExecutor()
    units = ex.measure([(3, [CellSpec("a", "train", "null")]), (5, [CellSpec("b", "train", "null")])], None, None,
                       repeats={5})
    assert calls == []  # nothing measured before the sweep asks
    first = next(units)
    assert (first.index, calls) == (3, [["a"]])
    # a group measured again keeps only its blocks: the sweep's repeats reach measure_group
    assert [u.index for u in units] == [5] and calls == [["a"], ["b", "blocks only"]]
    ex.close()
    assert calls.count("closed") == 2


def test_a_device_is_part_of_a_cells_identity_and_absent_from_local_cells():
    local = CellSpec("m", "deploy", "ort")
    on_pi = CellSpec("m", "deploy", "ort", device="pi")
    assert "device" not in local.to_dict()  # local files stay as they were
    assert CellSpec.from_dict(on_pi.to_dict()) == on_pi and on_pi.to_dict()["device"] == "pi"
    assert local.key() != on_pi.key() != CellSpec("m", "deploy", "ort", device="ws").key()
    assert on_pi.label().endswith("@ pi")


def _doc(cell: dict) -> dict:
    return {"meta": {}, "cells": [{"spec": {"model": "m", "variant": "deploy", "backend": "null", "device": "pi"},
                                   **cell}]}


def test_schema_takes_a_host_and_lost_cells_and_checks_them():
    host = {"name": "pi", "worker": "tcp://10.0.0.2:4000", "device": "pi", "started_at": 10.0, "ended_at": 12.5,
            "machine": {"cpu": {}}, "packages": {"onnxruntime": "1.0"}}
    validate_document(_doc({"status": "lost", "reason": "its worker died twice", "host": host}))
    with pytest.raises(ValueError, match="before started_at"):
        validate_document(_doc({"status": "lost", "host": {**host, "ended_at": 9.0}}))
    with pytest.raises(ValueError, match="cells.0..host.worker"):
        validate_document(_doc({"status": "lost", "host": {k: v for k, v in host.items() if k != "worker"}}))
    with pytest.raises(ValueError, match="status"):
        validate_document(_doc({"status": "vanished"}))


def test_pivot_by_device_pairs_targets_and_refuses_local_cells():
    cells = [CellResult(CellSpec("m", v, "null", device=d), "ok") for d in ("ws", "pi") for v in ("train", "deploy")]
    ((label, a, b),) = pivot(RunResult(meta={}, cells=cells), "device", baseline="PI")
    assert label == "pi → ws"
    assert [c.spec.device for c in a.cells + b.cells] == ["*"] * 4
    assert [c.spec.key() for c in a.cells] == [c.spec.key() for c in b.cells]
    with pytest.raises(ValueError, match="without --device"):
        pivot(RunResult(meta={}, cells=[CellResult(CellSpec("m", "train", "null"), "ok")]), "device")


def test_worker_devices_reads_the_device_resources():
    assert worker_devices({"measure": 1, "device:pi": 1, "device:off": 0, "build": 2}) == ["pi"]


def _payload(data: bytes, claimed: bytes | None = None) -> dict:
    claimed = data if claimed is None else claimed
    manifest = {"files": {"input.npy": {"bytes": len(claimed), "sha256": hashlib.sha256(claimed).hexdigest()}},
                "artifacts": {}, "model": {}}
    return {"status": "ok", "key": "m-deploy-abc", "manifest": manifest, "files": {"input.npy": data}}


def test_shipped_builds_are_verified_on_arrival_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHBENCH_CACHE", str(tmp_path))
    first = _install(_payload(b"12345678"))
    assert first["status"] == "ok" and not first["cached"]
    assert (tmp_path / "m-deploy-abc" / "input.npy").read_bytes() == b"12345678"
    assert _install(_payload(b"12345678"))["cached"]  # already there with those hashes: not written again
    monkeypatch.setenv("BENCHBENCH_CACHE", str(tmp_path / "other"))
    bad = _install(_payload(b"12345679", claimed=b"12345678"))  # a byte changed on the way
    assert bad["status"] == "error" and "hash mismatch" in bad["reason"]
    assert _install({"status": "unsupported", "reason": "export: no"}) == {"status": "unsupported",
                                                                          "reason": "export: no"}
