"""The sweep survives every failure mode, keeps finished cells on disk, and caches exports.

Faulty cells come from the null runner's ``fail`` option and from deliberately broken user models in
tests/data/tiny.py; good cells run the real torch and ort backends on a millisecond-scale model.
"""

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from benchbench.core.spec import QUICK, CellSpec
from benchbench.measure.sweep import run_sweep
from benchbench.results.load import load_run
from benchbench.results.record import RunResult

DATA = Path(__file__).parent / "data"
TINY = f"{DATA / 'tiny.py'}:tiny"
FAST = QUICK.replace(min_count=6, min_s=0.05, max_s=0.5, warmup_min_s=0.01, cell_timeout_s=120)


def _sweep(tmp_path, cells, config=FAST):
    run = RunResult(meta={"settings": config.__dict__}, path=tmp_path / "results.json")
    return run_sweep(cells, config, run, progress=lambda msg: None)


def _null(fail=None, variant="deploy"):
    return CellSpec(TINY, variant, "null", options=(("fail", fail),) if fail else ())


def test_null_sweep_records_samples_and_stats(cache_dir, tmp_path):
    run = _sweep(tmp_path, [_null(variant="train"), _null()])
    assert [c.status for c in run.cells] == ["ok", "ok"]
    cell = run.cells[1]
    assert len(cell.samples_ns) == cell.stats["count"] >= 6
    assert cell.stats["ci_low_ms"] <= cell.stats["median_ms"] <= cell.stats["ci_high_ms"]
    assert cell.timing["init_ms"] >= 0 and cell.timing["first_ms"] > 0
    assert cell.model["params"] > 0 and cell.model["flops"] > 0
    # The run file on disk holds both cells and reloads to the same statistics.
    again = load_run(tmp_path / "results.json")
    assert again.cells[1].stats["median_ms"] == pytest.approx(cell.stats["median_ms"])


@pytest.mark.parametrize(
    "fail,status",
    [("crash", "crashed"), ("raise", "error"), ("unsupported", "unsupported")],
)
def test_failing_worker_is_recorded_and_sweep_goes_on(cache_dir, tmp_path, fail, status):
    run = _sweep(tmp_path, [_null(fail), _null()])
    assert [c.status for c in run.cells] == [status, "ok"]
    assert run.cells[0].reason
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert [c["status"] for c in on_disk["cells"]] == [status, "ok"]


def test_hanging_worker_times_out(cache_dir, tmp_path):
    t0 = time.perf_counter()
    run = _sweep(tmp_path, [_null("hang"), _null()], FAST.replace(cell_timeout_s=8))
    assert [c.status for c in run.cells] == ["timeout", "ok"]
    assert "exceeded" in run.cells[0].reason
    assert time.perf_counter() - t0 < 60


def test_export_failure_is_unsupported_with_the_exporters_reason(cache_dir, tmp_path):
    bad = CellSpec(f"{DATA / 'tiny.py'}:unexportable", "deploy", "ort")
    run = _sweep(tmp_path, [bad, CellSpec(TINY, "deploy", "ort")])
    assert run.cells[0].status == "unsupported"
    assert "eigvals" in run.cells[0].reason and "\x1b" not in run.cells[0].reason
    assert run.cells[1].status == "ok"


def test_model_that_cannot_run_in_eager_is_a_user_error(cache_dir, tmp_path):
    run = _sweep(tmp_path, [CellSpec(f"{DATA / 'tiny.py'}:broken", "deploy", "null")])
    assert run.cells[0].status == "error" and run.cells[0].fault == "user"
    assert run.cells[0].reason == "RuntimeError: this model is broken on purpose (in tiny.py:broken)"


def test_input_below_minimum_is_unsupported(cache_dir, tmp_path):
    run = _sweep(tmp_path, [CellSpec("vanillanet_5", "deploy", "null", input_size=(16, 16))])
    assert run.cells[0].status == "unsupported" and "minimum" in run.cells[0].reason


def test_real_backends_agree_and_ort_worker_stays_torch_free(cache_dir, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    cells = [CellSpec(TINY, v, b) for b in ("torch", "ort") for v in ("train", "deploy")]
    run = _sweep(tmp_path, cells)
    assert all(c.status == "ok" for c in run.cells), [(c.status, c.reason) for c in run.cells]
    for cell in run.cells:
        assert cell.parity["passed"], cell.parity
        assert cell.backend["executed_ops"]["count"] > 0
        assert cell.backend["worker_imported_torch"] == (cell.spec.backend == "torch")
    ort_train, ort_deploy = run.cells[2], run.cells[3]
    assert ort_deploy.model["params"] < ort_train.model["params"]  # BN folded away
    assert ort_deploy.artifact["format"] == "onnx" and ort_deploy.artifact["bytes"] > 0


def test_second_build_uses_the_cache(cache_dir, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    spec = CellSpec(TINY, "train", "ort", seed=7)
    first = _sweep(tmp_path / "a", [spec]).cells[0]
    onnx_path = Path(first.artifact["path"])
    mtime = onnx_path.stat().st_mtime_ns
    second = _sweep(tmp_path / "b", [spec]).cells[0]
    assert second.status == "ok" and second.artifact["cached"] is True
    assert onnx_path.stat().st_mtime_ns == mtime
    assert str(cache_dir) in str(onnx_path) and os.path.basename(onnx_path) == "model.onnx"


def test_workers_import_the_installed_package_not_the_working_directory(tmp_path, monkeypatch):
    """Run from a directory holding a stray benchbench/ (as a checkout's root does), a worker must
    still import the installed package."""
    import subprocess

    from benchbench.processes.manager import module_command

    (tmp_path / "benchbench").mkdir()
    (tmp_path / "benchbench" / "__init__.py").write_text("raise ImportError('shadowed by the cwd')\n")
    monkeypatch.chdir(tmp_path)
    proc = subprocess.run(module_command("benchbench", "--version"), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "benchbench" in proc.stdout, proc.stderr


def test_rounds_measure_groups_again_and_keep_every_block(cache_dir, tmp_path):
    specs = [_null(variant="train"), _null(), _null("unsupported")]
    order = []
    run = RunResult(meta={}, path=tmp_path / "results.json")
    run_sweep(specs, FAST, run, progress=order.append, rounds=lambda s: 1 if s.variant == "train" else 3)
    assert [c.status for c in run.cells] == ["ok", "ok", "unsupported"]
    train, deploy, broken = run.cells
    # train and deploy form one lockstep group, so the group takes the larger count: 3 rounds for both
    assert train.group == deploy.group == 0 and broken.group is None
    assert {b["session"] for b in deploy.blocks} == {1, 2, 3} == {b["session"] for b in train.blocks}
    assert len(run.groups[0]["rounds"]) == 3 and broken.rounds == []  # a failure is not retried
    medians = deploy.stats["round_medians_ms"]
    assert len(medians) == 3 and deploy.stats["blocks"] == len(deploy.blocks)
    assert deploy.stats["round_spread"] == pytest.approx(max(medians) / min(medians) - 1)
    assert sum(", round 2]" in line and "group took" in line for line in order) == 1
    again = load_run(tmp_path / "results.json")
    assert again.cells[1].stats["median_ms"] == pytest.approx(deploy.stats["median_ms"])
    assert run.meta["sweep"]["measurements"] == 7 and run.meta["sweep"]["cells"] == 3


def test_allocation_gives_later_rounds_only_to_groups_that_are_not_settled(cache_dir, tmp_path):
    """Sequential allocation: every group gets ``least`` rounds; past them, a group measured again only while
    ``settled`` says no. Planted: the settle rule refuses only groups whose baseline is the train form."""
    from benchbench.measure.sweep import Allocation

    seen = []

    def settled(cells):
        seen.append(len(cells[0].blocks) > 0)
        return cells[0].spec.variant != "train"

    import dataclasses

    seeded = [dataclasses.replace(s, seed=3) for s in (_null(variant="train"), _null())]
    specs = [_null(variant="train"), _null(), *seeded, dataclasses.replace(_null(), seed=5)]
    run = RunResult(meta={}, path=tmp_path / "results.json")
    run_sweep(specs, FAST, run, rounds=Allocation(4, 2, settled, note="planted"))
    sessions = {c.spec.seed: {b["session"] for b in c.blocks} for c in run.cells}
    assert sessions[3] == {1, 2, 3, 4} and sessions[5] == {1, 2}  # unsettled pairs ran to most; the lone cell stopped
    assert [len(g["rounds"]) for g in run.groups] == [4, 4, 2]
    assert seen and all(seen)  # settled() saw the measured cells, after the least rounds only
    assert len(seen) == 3 + 3  # rounds 3 and 4 ask every group not yet finished


def test_allocation_caps_the_sampling_of_the_groups_it_names(cache_dir, tmp_path):
    """A group whose answer needs less gets its own time cap (``Allocation.max_s``, the largest over its cells),
    recorded on each of its rounds; the other groups sample to the sweep's cap. Planted: a target no interval
    reaches, so every group samples to its cap."""
    import dataclasses

    from benchbench.measure.sweep import Allocation

    capped = [dataclasses.replace(s, seed=3) for s in (_null(variant="train"), _null())]
    run = RunResult(meta={}, path=tmp_path / "results.json")
    config = FAST.replace(min_s=0.05, max_s=0.8, target_ci=1e-9, min_blocks=3)
    run_sweep([_null(variant="train"), _null(), *capped], config, run,
              rounds=Allocation(2, 2, max_s=lambda spec: 0.2 if spec.seed == 3 else 10.0))
    by_seed = {run.cells[g["cells"][0]].spec.seed: g["rounds"] for g in run.groups}
    assert all(r["stop_reason"] == "max_time" for rounds in by_seed.values() for r in rounds)
    assert [r.get("max_s") for r in by_seed[3]] == [0.2, 0.2] and all("max_s" not in r for r in by_seed[0])
    # a group of 2 cells samples for about 2 x its cap: the capped group's rounds are a quarter as long
    assert all(0.4 <= r["sampling_s"] < 0.9 for r in by_seed[3])
    assert all(r["sampling_s"] >= 1.6 for r in by_seed[0])


def test_alternate_rounds_and_sessions_start_the_other_cell_first(cache_dir, tmp_path):
    """Whatever a worker gains by being started, or timed, first goes to each cell in turn (doctor's A/A read
    the worker started second 0.3% faster): a sweep's second round, and a group's second session, start their
    workers and their first lockstep round with the other cell; the cells stay in their own order."""
    run = RunResult(meta={}, path=tmp_path / "results.json")
    run_sweep([_null(variant="train"), _null()], FAST.replace(sessions=2, target_ci=1e-9), run, rounds=2)
    assert [c.spec.variant for c in run.cells] == ["train", "deploy"]
    first = {}  # (cell, session) -> the cell's position in that session's first lockstep round
    for i, cell in enumerate(run.cells):
        for session in sorted({b["session"] for b in cell.blocks}):
            blocks = [b for b in cell.blocks if b["session"] == session]
            first[i, session] = min(blocks, key=lambda b: b["round"])["position"]
    # round 1: sessions 1 and 2 (the second reversed); round 2, reversed: sessions 3 and 4
    assert [first[0, s] for s in (1, 2, 3, 4)] == [0, 1, 1, 0]
    assert [first[1, s] for s in (1, 2, 3, 4)] == [1, 0, 0, 1]


def test_sessions_measure_a_group_in_fresh_workers_and_stop_once_pinned(cache_dir, tmp_path):
    """--sessions N: up to N sets of fresh workers, each with 1/N of the time, blocks tagged by session; the
    cell records the between-process term it was measured with. A term too large to pin under the target
    uses every session; a negligible one lets the first session that pins the ratio end the group, or, of 4
    sessions or more, the fourth."""
    import dataclasses

    from benchbench.build.builds import Builds
    from benchbench.measure.group import measure_group

    specs = [_null(variant="train"), _null()]
    wide = dataclasses.replace(FAST, sessions=3, process_sd=0.05, min_s=0.15, max_s=0.6)
    builds = Builds(wide, specs)
    try:
        cells, record = measure_group(specs, wide, builds)
        assert record["sessions"] == 3 and record["stop_reason"] == "max_time"
        assert all({b["session"] for b in c.blocks} == {1, 2, 3} for c in cells)
        assert all(c.process_sd == 0.05 and c.timing["sessions"] == 3 for c in cells)
        # each session got its share: at most 0.2 s per arm, and at least 3 rounds
        per_session = [sum(1 for b in cells[0].blocks if b["session"] == s) for s in (1, 2, 3)]
        assert min(per_session) >= 3
        # the last session's workers report parity, memory and metadata; the first's, the start-up times
        assert all(c.parity and c.memory.get("load_mib") is not None and c.backend for c in cells)
        assert all(c.timing["init_ms"] > 0 and c.timing["first_ms"] > 0 for c in cells)
        # a sweep's later round keeps only blocks: workers (forked from servers) start side by side, report nothing
        servers = {}
        try:
            again, record = measure_group(specs, wide, builds, servers, blocks_only=True)
        finally:
            for server in servers.values():
                server.close()
        assert record["sessions"] == 3 and all(c.ok for c in again)
        assert all({b["session"] for b in c.blocks} == {1, 2, 3} for c in again)
        assert all(not c.parity and not c.memory and not c.backend for c in again)
        pinned = dataclasses.replace(wide, process_sd=0.0, target_ci=0.5)
        cells, record = measure_group(specs, pinned, builds)
        assert "sessions" not in record and record["stop_reason"] == "converged"
        assert {b["session"] for b in cells[0].blocks} == {1}
        # asked for 4 sessions or more, a group measures 4 before it may stop: the sessions' own spread bounds
        # the interval only from there (estimates.SESSION_SPREAD_MIN)
        cells, record = measure_group(specs, dataclasses.replace(pinned, sessions=6), builds)
        assert record["sessions"] == 4 and record["stop_reason"] == "converged"
        assert {b["session"] for b in cells[0].blocks} == {1, 2, 3, 4}
    finally:
        builds.close()


def test_groups_pair_train_with_deploy_and_guideline_rows():
    from benchbench.measure.sweep import comparison_groups

    cells = [CellSpec("resnet18", v, b) for b in ("ort", "tflite") for v in ("train", "deploy")]
    cells += [CellSpec(f"g1_ratio{r}_x{w}", "deploy", "ort") for w in (1, 2) for r in (1, 2, 6, 12)]
    assert comparison_groups(cells, "auto") == [[0, 1], [2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert comparison_groups(cells, "backend")[0] == [0, 1, 2, 3]
    assert comparison_groups(cells, "off") == [[i] for i in range(len(cells))]
    with pytest.raises(ValueError, match="lockstep mode"):
        comparison_groups(cells, "sideways")


def test_a_worker_crashing_mid_group_spares_the_other_arm(cache_dir, tmp_path):
    """The crash option fires in prepare; a block-time crash is the same path (WorkerLost)."""
    from benchbench.build.builds import Builds
    from benchbench.measure.group import measure_group

    a = _null()
    b = CellSpec(TINY, "deploy", "null", options=(("fail", "crash"),))
    cells, record = measure_group([a, b], FAST, Builds(FAST, [a, b]))
    assert [c.status for c in cells] == ["ok", "crashed"]
    assert record["rounds"] >= FAST.min_blocks and cells[0].stats["blocks"] == record["rounds"]


def test_a_worker_dying_mid_blocks_spares_its_partner(cache_dir, tmp_path):
    """The worker crashes between timed blocks, not in prepare: its cell is crashed with the reason, and its
    partner in the lockstep group goes on measuring alone."""
    from benchbench.build.builds import Builds
    from benchbench.measure.group import measure_group

    ok = CellSpec(TINY, "deploy", "null", options=(("latency_ms", "1"),))
    dies = CellSpec(TINY, "deploy", "null", options=(("fail", "crash_later"), ("latency_ms", "1")))
    cells, record = measure_group([ok, dies], FAST, Builds(FAST, [ok, dies]))
    assert [c.status for c in cells] == ["ok", "crashed"]
    assert "died" in cells[1].reason and "exit code 3" in cells[1].reason
    assert cells[0].stats["blocks"] >= FAST.min_blocks and record["stop_reason"] in ("converged", "max_time")


def test_the_doctor_caches_its_between_process_term_and_later_runs_add_it(cache_dir, monkeypatch, capsys):
    """``benchbench doctor`` reads the between-process term from its A/A sessions, caches it (sealed) for this
    host and thread count, and a later run's sampling policy carries it; a damaged cache is ignored."""
    import math

    import numpy as np

    from benchbench.cli import main
    from benchbench.cli.cells import config_from
    from benchbench.cli.parser import build_parser
    from benchbench.measure import doctor
    from benchbench.results.estimates import ratio
    from benchbench.results.record import CellResult

    rng = np.random.default_rng(7)
    cells = []
    for arm in range(2):  # 6 sessions of 10 rounds; each session's B worker is planted 1.5% off, at random
        blocks, samples = [], []
        for s in range(1, 7):
            shift = math.exp(rng.normal(0, 0.015)) if arm else 1.0
            for r in range(10):
                samples += (1e6 * shift * (1 + 0.002 * rng.standard_normal(5))).astype(int).tolist()
                blocks.append({"n": 5, "session": s, "round": r})
        cells.append(CellResult(_null(), "ok", samples_ns=samples, blocks=blocks))
    a, b = cells

    def fake_aa(spec, config):
        est = ratio(b.blocks, a.blocks, samples_b=b.samples_ns, samples_a=a.samples_ns)
        between = doctor.between_process_sd(b.blocks, a.blocks, b.samples_ns, a.samples_ns)
        return doctor.AAResult(spec, est, 1.0, 0.0, between=between, cells=(a, b))

    monkeypatch.setattr(doctor, "aa_check", fake_aa)
    assert main(["doctor", "--model", "resnet18", "--backend", "null", "--threads", "2", "--sessions", "6"]) == 0
    out = capsys.readouterr().out
    assert "between-process term: sd" in out and "cached in" in out
    cached = doctor.cached_process_sd(2)
    assert cached is not None and 0.005 < cached["sd"] < 0.04 and cached["sessions"] == 6
    args = build_parser().parse_args(["run", "--model", "resnet18", "--backend", "null", "--threads", "2"])
    assert config_from(args).process_sd == cached["upper80"] >= cached["sd"]  # the bound: a short measurement errs wide
    other = build_parser().parse_args(["run", "--model", "resnet18", "--backend", "null", "--threads", "1"])
    assert config_from(other).process_sd is None  # measured at 2 threads only
    path = doctor.process_sd_path(2)
    path.write_text(path.read_text().replace('"sessions": 6', '"sessions": 7'))
    assert doctor.cached_process_sd(2) is None and config_from(args).process_sd is None


def test_each_block_leads_in_with_an_inference_kept_apart_from_its_samples(cache_dir, tmp_path):
    """A null backend whose inference runs 2 ms slower after an idle gap (cold_ms), as a worker's first inference
    after another worker's block does. The lead-in of every block that follows another worker's takes that cost
    (lead_ns); the samples, all 1 ms, do not, so a block median does not depend on how many inferences the block
    holds. (The block that opens a round follows its own worker's, with no gap.)"""
    from benchbench.build.builds import Builds
    from benchbench.measure.group import measure_group

    cold = (("latency_ms", "1"), ("cold_ms", "2"))
    specs = [CellSpec(TINY, "train", "null", options=cold), CellSpec(TINY, "deploy", "null", options=cold)]
    builds = Builds(FAST, specs)
    try:
        cells, _ = measure_group(specs, FAST, builds)
    finally:
        builds.close()
    assert all(c.ok for c in cells)
    for cell in cells:
        assert len(cell.blocks) >= 6 and sum(b["n"] for b in cell.blocks) == len(cell.samples_ns)
        starts = np.cumsum([0] + [b["n"] for b in cell.blocks[:-1]])
        followers = [(b, cell.samples_ns[i]) for b, i in zip(cell.blocks, starts) if b["position"] == 1]
        assert len(followers) >= 3
        # medians over the followers, so one sleep that a busy machine stretched cannot decide the test
        assert np.median([b["lead_ns"] for b, _ in followers]) >= 2.5e6
        assert np.median([first for _, first in followers]) < 2.0e6  # before the lead-in: about 3 ms


def test_later_sessions_size_their_blocks_from_the_quiet_blocks_not_the_first_warm_up():
    """An arm whose warm-up read 50 ms (a burst of load) but whose blocks read 10 ms gets 10 ms blocks' sizing
    for its next session; a disturbed block does not count."""
    from benchbench.measure.group import _size_from_blocks
    from benchbench.measure.scheduler import Arm

    quiet = {"wait_share": 0.0, "steal_share": 0.0}
    arm = Arm(lambda count, settle: None, 50e6)
    arm.blocks = [{"samples_ns": [10_000_000 + i] * 3, "round": i, **quiet} for i in range(8)]
    arm.blocks.append({"samples_ns": [90_000_000] * 3, "round": 8, "wait_share": 0.6, "steal_share": 0.0})
    _size_from_blocks(arm)
    assert arm.estimate_ns == pytest.approx(10e6, rel=1e-3)
