"""Worker memory figures (docs/metrics.md): they follow the weights and charge nothing else to the model.

Two user models with the same graph and 9.9x the weights (tests/data/weights.py) run through the real
harness on ort; the extra resident memory after load must match the extra weight bytes. On torch, a zoo
model's deploy form (fewer weights: its branches fused) must not load more than its train form. The torch
worker's heap keeps what it freed (runners/heap.py), so an inference does not fault its buffers in again.
"""

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from benchbench.core.spec import QUICK, CellSpec
from benchbench.measure.sweep import run_sweep
from benchbench.measure.worker import _peak_rss, _reset_peak_rss, _rss
from benchbench.results.record import RunResult

DATA = Path(__file__).parent / "data"
FAST = QUICK.replace(min_count=6, min_s=0.05, max_s=0.5, warmup_min_s=0.01, cell_timeout_s=300)
MIB = 2**20


def test_peak_reset_gives_each_phase_its_own_high_water_mark():
    if not _reset_peak_rss():
        pytest.skip("/proc/self/clear_refs is not writable here (not Linux, or restricted)")
    block = b"x" * (64 * MIB)  # written, so resident
    del block
    assert _peak_rss() - _rss() > 48 * MIB  # the peak remembers the freed block...
    assert _reset_peak_rss()
    assert _peak_rss() - _rss() < 8 * MIB  # ...until it is reset to the current RSS


@pytest.mark.slow
def test_load_memory_follows_the_weights_on_ort(cache_dir, tmp_path):
    pytest.importorskip("onnxruntime", reason="the memory test measures the real ort backend")
    cells = [CellSpec(f"{DATA / 'weights.py'}:{k}", "deploy", "ort", input_size=(32, 32), threads=1)
             for k in ("small", "large")]
    run = run_sweep(cells, FAST, RunResult(meta={}, path=tmp_path / "results.json"), progress=lambda m: None)
    small, large = run.cells
    assert small.ok and large.ok, (small.reason, large.reason)
    w_small, w_large = 4 * small.model["params"], 4 * large.model["params"]  # float32 weight bytes
    assert w_large / w_small == pytest.approx(9.9, rel=0.01)
    # Extra resident memory per extra byte of weights: ORT keeps one copy of each weight (1.0 here);
    # two copies (packed + original) would read 2.
    slope = (large.memory["load_mib"] - small.memory["load_mib"]) * MIB / (w_large - w_small)
    assert 0.8 < slope < 2.2, f"load memory grew {slope:.2f} bytes per weight byte"
    assert large.memory["load_mib"] > 3 * small.memory["load_mib"]
    for cell in (small, large):
        m = cell.memory
        assert m["baseline_mib"] > 0
        assert m["load_peak_mib"] >= m["load_mib"] - 1  # a peak is never below the level it ends at
        # Inference allocates a few KiB of activations here: anything more is charged wrongly (before
        # the fix, scipy's first import in the sampling loop added ~60 MiB to infer_peak_mib).
        assert m["infer_peak_mib"] - m["load_mib"] < 8, m


@pytest.mark.slow
def test_a_torch_deploy_form_is_charged_its_weights_not_torch_s_lazy_imports(cache_dir, tmp_path):
    """A deploy form is built on the meta device and reparameterized there; torch's first meta arithmetic
    imports ~70 MiB of modules. Before the fix that landed in the deploy form's load memory (and load time)
    alone: RepVGG's deploy form read far more than its train form, though it holds fewer weights."""
    pytest.importorskip("torch", reason="the test measures the real torch backend")
    cells = [CellSpec("repvgg_a0", v, "torch", input_size=(64, 64), threads=1) for v in ("train", "deploy")]
    run = run_sweep(cells, FAST, RunResult(meta={}, path=tmp_path / "results.json"), progress=lambda m: None)
    train, deploy = run.cells
    assert train.ok and deploy.ok, (train.reason, deploy.reason)
    assert deploy.model["params"] < train.model["params"]
    assert deploy.memory["load_mib"] < train.memory["load_mib"] + 8, (train.memory, deploy.memory)


_FAULTS = """
import resource, sys
import numpy as np
from benchbench.runners.heap import keep_freed_memory
held = keep_freed_memory() if sys.argv[1] == "policy" else None
np._core.multiarray._set_madvise_hugepage(False)  # 4 KiB pages, as PyTorch's blocks get
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    np.full(10 << 20, 1.0, dtype=np.float32)  # 40 MiB, written, freed
before = faults()
for _ in range(10):
    np.full(10 << 20, 1.0, dtype=np.float32)
print(held and held["policy"], (faults() - before) / 10)
"""


@pytest.mark.parametrize("arm", ["glibc", "policy", "opted-out"])
def test_the_heap_policy_keeps_a_freed_block_from_faulting_in_again(arm):
    """A 40 MiB block written and freed ten times: glibc maps and unmaps it every time (10,240 pages faulted
    in per block); under the policy the heap keeps it, unless ``BENCHBENCH_TORCH_MALLOC=default`` says not to."""
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("the policy is glibc's mallopt; this C library is not glibc")
    env = {"BENCHBENCH_TORCH_MALLOC": "default"} if arm == "opted-out" else {}
    # -P: the installed benchbench, not a source folder in the working directory (where runners/ is not inside it)
    done = subprocess.run([sys.executable, "-P", "-c", _FAULTS, "none" if arm == "glibc" else "policy"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    policy, faults = done.stdout.split()[0], float(done.stdout.split()[1])
    if arm == "policy":
        assert policy == "keep-freed" and faults < 100, (policy, faults)
    else:
        assert policy == ("default" if arm == "opted-out" else "None") and faults > 5000, (policy, faults)


@pytest.mark.slow
def test_a_torch_worker_keeps_its_freed_memory_and_counts_its_faults(cache_dir, tmp_path):
    """Through the real harness: a model that makes and frees a 40 MiB intermediate per inference
    (tests/data/scratch.py) runs without faulting it in again, and the cell records the policy and its faults
    per timed inference; an ORT cell counts its faults too."""
    pytest.importorskip("torch", reason="the test measures the real torch backend")
    pytest.importorskip("onnxruntime", reason="the test measures the real ort backend too")
    cells = [CellSpec(f"{DATA / 'scratch.py'}:wide", "deploy", b, input_size=(32, 32), threads=1)
             for b in ("torch", "ort")]
    run = run_sweep(cells, FAST, RunResult(meta={}, path=tmp_path / "results.json"), progress=lambda m: None)
    torch_cell, ort_cell = run.cells
    assert torch_cell.ok and ort_cell.ok, (torch_cell.reason, ort_cell.reason)
    assert torch_cell.backend["heap"]["policy"] == "keep-freed"
    assert torch_cell.stats["faults_per_inference"] < 500, torch_cell.stats  # glibc alone: 10,240
    assert all(b["minor_faults"] is not None for b in torch_cell.blocks)
    assert ort_cell.stats["faults_per_inference"] is not None and "heap" not in ort_cell.backend
