"""Result objects built in memory with known truth, for the views, history and API tests: cells with timed
blocks and samples (as a sweep records them), train/deploy pairs in lockstep groups, and failed cells."""

from __future__ import annotations

import numpy as np

from benchbench.core.spec import CellSpec
from benchbench.results.record import CellResult, RunResult

# A failed cell's reason that would fetch an image, and break out of an attribute, if a page did not escape it.
HOSTILE_REASON = 'converter said <img src="http://example.invalid/x.png"> & "no" </script><script>alert(1)</script>'


def timed_cell(model: str, variant: str, backend: str, median_ms: float, *, rounds: int = 12, per_block: int = 5,
               jitter: float = 0.01, seed: int = 0, group: int | None = None, family: str = "fam",
               flops: float | None = 1e9, ops: int | None = 50, threads: int = 2) -> CellResult:
    """An ok cell of ``rounds`` blocks of ``per_block`` samples around ``median_ms`` (relative noise ``jitter``)."""
    rng = np.random.default_rng(seed)
    samples, blocks = [], []
    for r in range(rounds):
        samples += (median_ms * 1e6 * (1 + jitter * rng.standard_normal(per_block))).astype(int).tolist()
        blocks.append({"n": per_block, "round": r, "position": 0, "session": 1, "run_ns": 1000, "wait_ns": 0})
    model_info = {"family": family, "input_shape": [1, 3, 224, 224]}
    if flops is not None:
        model_info.update(flops=int(flops), macs=int(flops // 2), params=int(flops / 300))
    cell = CellResult(CellSpec(model, variant, backend, threads=threads), "ok", samples_ns=samples, blocks=blocks,
                      group=group, model=model_info,
                      backend={"executed_ops": {"count": ops}} if ops else {},
                      metrics={"executed_ops": ops} if ops else {})
    cell.recompute()
    return cell


def failed_cell(model: str, variant: str, backend: str, status: str = "unsupported",
                reason: str = HOSTILE_REASON) -> CellResult:
    return CellResult(CellSpec(model, variant, backend, threads=2), status, reason=reason,
                      model={"family": "fam", "input_shape": [1, 3, 224, 224]})


def small_run(time: str = "2026-01-01T00:00:00+00:00", slow: dict | None = None, seed: int = 0) -> RunResult:
    """Three models x train/deploy x two backends, each pair in a lockstep group, plus two failed cells.

    Latencies (ms) grow with FLOPs; deploy is 20% faster than train. ``slow`` maps a (model, variant, backend)
    key to a factor its latency is multiplied by (a planted change)."""
    slow = slow or {}
    models = [("alpha", "fa", 0.5e9, 40), ("beta", "fb", 2e9, 120), ("gamma", "fc", 8e9, 300)]
    cells, groups = [], []
    for backend, speed in (("ort", 1.0), ("torch", 1.6)):
        for i, (model, family, flops, ops) in enumerate(models):
            gid = len(groups)
            idx = []
            for variant, factor in (("train", 1.25), ("deploy", 1.0)):
                base = (0.2 + flops / 1e9 * 0.9) * speed * factor * slow.get((model, variant, backend), 1.0)
                idx.append(len(cells))
                cells.append(timed_cell(model, variant, backend, base, seed=seed * 1000 + len(cells), group=gid,
                                        family=family, flops=flops, ops=ops if variant == "train" else ops // 2))
            groups.append({"id": gid, "cells": idx, "rounds": []})
    cells.append(failed_cell("delta", "deploy", "ort"))
    cells.append(failed_cell("delta", "deploy", "torch", status="crashed", reason="worker died (exit code -9)"))
    meta = {"benchbench_version": "0.1.0", "argv": ["benchbench", "run", "--model", "alpha,beta,gamma,delta"],
            "environment": {"time": time, "os": "Linux", "python": "3.11.7",
                            "cpu": {"model": "Test CPU", "physical_cores": 2, "logical_cores": 2},
                            "memory_gib": 8, "packages": {"onnxruntime": "1.32.0"}, "git_commit": "abc123"}}
    return RunResult(meta=meta, cells=cells, groups=groups)
