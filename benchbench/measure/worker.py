"""The worker process (child side): ``python -P -m benchbench.measure.worker FD PARENT_PID [BACKEND]``.

Every cell runs in a process of its own that imports only its runtime, as on a real device. The
harness (``benchbench.processes.manager``) talks to it over the socket inherited as FD, with the typed records of
``benchbench.processes.protocol``; stdout and stderr go to a log file (runtimes write there). The first record
decides what the worker is:

* ``Prepare``: a *measuring* worker. It loads the runtime and the artifact, times init and the first
  inference, warms up, answers ``Ready``, and then times one block of inferences per ``Block`` record
  until ``Finish``, when it checks parity and reports memory and metadata;
* a job record (``benchbench.processes.protocol.JOBS``): ``BuildJob`` exports a model's artifacts into the
  cache (``benchbench.build.export.build``), ``FileBuildJob`` counts a user's model file and computes its
  reference outputs, ``ProfileJob`` prepares a cell and returns its backend's per-operator profile, and
  ``BandwidthJob`` times a large copy (the roofline's bandwidth).

With a BACKEND argument the process is a **fork server** instead: it imports that backend's runtime
(``Runner.preload_modules``) once, then forks one measuring worker per ``Spawn`` record, with the new
worker's socket passed over SCM_RIGHTS. A forked worker starts with its runtime imported and runs exactly
as a fresh one does from there (its own process group, log, memory baseline and high-water mark), so a
cell no longer pays for importing torch (about 3 s here) or ONNX Runtime.

The worker dies with its parent: it asks the kernel for SIGKILL when the parent dies (Linux
``PR_SET_PDEATHSIG``), and a closed socket ends it at the next record in any case.
"""

from __future__ import annotations

import dataclasses
import socket
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

from benchbench.core.status import Status
from benchbench.processes.children import become_subreaper, die_with_parent, end_descendants
from benchbench.processes.protocol import (
    BandwidthJob,
    Block,
    BlockDone,
    BuildJob,
    Failed,
    FileBuildJob,
    Finish,
    Finished,
    JobDone,
    Prepare,
    ProfileJob,
    ProtocolError,
    Ready,
    decode,
    encode,
)

__all__ = ["runner_session", "failure_record", "load_inputs", "main"]


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _peak_rss() -> int | None:
    """The kernel's high-water mark of resident memory (VmHWM), in bytes; Linux only."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so each phase gets its own peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="utf-8")
        return True
    except OSError:
        return False


@contextmanager
def runner_session(spec):
    """The cell's runner with its runtime loaded; torn down whatever happens inside."""
    from benchbench.runners import get_runner

    runner = get_runner(spec.backend)(spec.threads, dict(spec.options))
    try:
        runner.load_runtime()
        yield runner
    finally:
        try:
            runner.teardown()
        except Exception:
            pass


def load_inputs(path: str):
    """A cell's inputs: one array (``input.npy``, a zoo model's) or name → array (``input.npz``, a user's file)."""
    import numpy as np

    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    return np.load(path)


def failure_record(exc: Exception) -> Failed:
    """How a failure inside a worker is reported (call it in the ``except``): never raised, the sweep goes on."""
    from benchbench.build.export import short_reason
    from benchbench.runners.base import BackendUnavailable, UnsupportedModel

    if isinstance(exc, UnsupportedModel):
        return Failed(Status.UNSUPPORTED, short_reason(exc))
    if isinstance(exc, BackendUnavailable):
        return Failed(Status.UNAVAILABLE, str(exc))
    from benchbench.core.faults import env_fault

    if why := env_fault(exc):  # out of memory in a runtime is the machine's limit, not the model's fault
        return Failed(Status.ENV_ERROR, why, traceback.format_exc(limit=6))
    return Failed(Status.ERROR, short_reason(exc), traceback.format_exc(limit=6))


class Channel:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.reader = sock.makefile("rb")

    def recv(self):
        line = self.reader.readline()
        if not line:  # the parent is gone: nothing left to do
            raise SystemExit(0)
        return decode(line)

    def send(self, record) -> None:
        self.sock.sendall(encode(record))


def _settle(poll_s: float = 0.0005, max_s: float = 0.2) -> int:
    """Wait until this process's runtime threads stop running (their pools stop spinning), at most ``max_s``;
    returns the nanoseconds waited.

    Runtimes keep their pools spinning for a while after an inference (ONNX Runtime's intra-op threads
    spin about 30 ms here; OpenMP's wait policy does the same). That is part of a cell's own
    configuration, so it stays on; but in lockstep the next block is another worker's, and a spinning
    neighbour would take its CPUs. So before another worker's turn, a worker reports its block only once
    none of its other threads is running (``interference.others_running``) in two readings in a row,
    ``poll_s`` apart: a pool that sleeps on its futex is done, whatever it did before. Where the thread
    states cannot be read, it waits for two 5 ms windows in which those threads used under 0.5 ms of CPU
    (schedstat moves in ~4 ms ticks, so one short window can read 0 while a thread spins): at least 10 ms
    a block, where the states take about 1 ms for a pool that is asleep already (resnet18 on OpenVINO: 1.4
    ms against 15.9; on ONNX Runtime 32 against 47 ms, the spin itself). ``idle_cpu_ns`` of the next block
    measures what still leaks.
    """
    from .interference import others_running, runnable_ns

    start = time.perf_counter_ns()
    deadline = start + max_s * 1e9
    quiet = 0
    running = others_running()
    if running is not None:
        while True:
            quiet = quiet + 1 if running == 0 else 0
            if quiet == 2 or time.perf_counter_ns() >= deadline:
                return time.perf_counter_ns() - start
            time.sleep(poll_s)
            running = others_running()
    while quiet < 2 and time.perf_counter_ns() < deadline:
        before = runnable_ns()
        time.sleep(0.005)
        quiet = quiet + 1 if runnable_ns() - before < 500_000 else 0
    return time.perf_counter_ns() - start


def _measure(channel: Channel, prep: Prepare) -> None:
    """The measuring worker's life: prepare, warm up, Ready; then blocks until Finish."""
    from .timing import warm_up

    try:
        with runner_session(prep.spec) as runner:
            inputs = load_inputs(prep.input_path)
            memory = {"base_reset": _reset_peak_rss(), "base": _rss()}
            t0 = time.perf_counter_ns()
            runner.prepare(prep.artifact, inputs)
            t1 = time.perf_counter_ns()
            runner.run()
            t2 = time.perf_counter_ns()
            memory.update(loaded=_rss(), load_peak=_peak_rss())
            warm = warm_up(runner.time_once, prep.config)
            memory["peak_reset"] = _reset_peak_rss()
            channel.send(Ready((t1 - t0) / 1e6, (t2 - t1) / 1e6, warm.count, warm.seconds, warm.estimate_ns))
            finish = _blocks(channel, runner)
            if finish.report:
                memory["infer_peak"] = _peak_rss()
                result = _finished(runner, prep, memory)
                if finish.profile_runs:
                    result = dataclasses.replace(result, profile=_profile_here(runner, finish.profile_runs))
            else:  # an earlier session's worker: only its blocks are kept (measure.group)
                result = Finished({}, {}, {})
    except ProtocolError:
        raise
    except Exception as exc:
        result = failure_record(exc)
    channel.send(result)


def _blocks(channel: Channel, runner) -> Finish:
    """Time one block of inferences per ``Block`` record, each after a lead-in inference timed apart, until
    ``Finish`` (returned)."""
    from .interference import block_interference, snapshot

    idle_since = time.process_time_ns()
    while True:
        record = channel.recv()
        if isinstance(record, Finish):
            return record
        if not isinstance(record, Block):
            raise ProtocolError(f"a measuring worker takes Block or Finish, not {type(record).__name__}")
        idle_cpu = time.process_time_ns() - idle_since
        time_once = runner.time_once
        # The lead-in: one inference before the samples, kept apart. In lockstep a block mostly follows another
        # worker's, whose inferences took the caches and let this worker's thread pool fall asleep, so its first
        # inference is slow (resnet18 on ORT here: +17% on average, +60% at the 90th percentile, the later ones
        # within 1%). Counted as a sample, that cost would weigh on a block median by how few samples the block
        # holds: two arms with blocks of 1 and 5 inferences read 4-8% apart in A/A runs under load.
        lead_ns = time_once()
        before = snapshot()
        samples = [time_once() for _ in range(record.count)]
        after = snapshot()
        settle_ns = _settle() if record.settle else 0
        idle_since = time.process_time_ns()
        channel.send(BlockDone(samples, block_interference(before, after), idle_cpu, settle_ns, lead_ns))


def _check_outputs(runner, spec, reference: list) -> dict:
    """Parity of the outputs against the reference; an int8 form is held to fidelity against the float form
    instead (a zoo model's eager deploy form, or a user's float file on the reference backend)."""
    from .parity import FIDELITY_AGAINST, FIDELITY_AGAINST_FILE, fidelity, parity

    if not reference:
        return {"checked": False}
    if spec.variant == "int8":
        return fidelity(runner.outputs(), reference, against=FIDELITY_AGAINST_FILE if spec.source else FIDELITY_AGAINST)
    return parity(runner.outputs(), reference)


def _finished(runner, prep: Prepare, rss: dict) -> Finished:
    """Parity against the reference outputs, memory over the baseline, and the runner's metadata."""
    import numpy as np

    mib, base = 2**20, rss["base"]
    reference = []
    if prep.reference_path:
        with np.load(prep.reference_path) as ref:
            reference = [ref[k] for k in ref.files]
    memory = {
        "baseline_mib": base / mib,
        "load_mib": (rss["loaded"] - base) / mib,
        "load_peak_mib": (rss["load_peak"] - base) / mib if (rss["load_peak"] and rss["base_reset"]) else None,
        "infer_peak_mib": (rss["infer_peak"] - base) / mib if (rss["infer_peak"] and rss["peak_reset"]) else None,
        "source": "psutil RSS over the baseline (runtime and input loaded); peaks from "
                  "/proc/self/status VmHWM, reset per phase (docs/metrics.md)",
    }
    extra_memory = getattr(runner, "device_memory", None)
    if callable(extra_memory):
        memory.update(extra_memory())
    return Finished(
        memory=memory,
        parity=_check_outputs(runner, prep.spec, reference),
        backend={**runner.metadata(), "executed_ops": runner.executed_ops(),
                 # The isolation promise: a worker imports only its runtime (torch only for torch).
                 "worker_imported_torch": "torch" in sys.modules},
    )


def _build(job: BuildJob):
    """The build job. Its failures say whose they are (``benchbench.core.faults``): ``user-error`` (the model
    fails in PyTorch eager; the parent files it as status ``error``, fault ``user``), ``env-error`` (out of
    memory, a full disk, an unwritable cache) or ``error`` (anything else: a bug, with its traceback).
    A converter's refusal is no failure of the job: it is recorded per format in the manifest."""
    from benchbench.build.export import build, short_reason
    from benchbench.core.faults import UserModelError, env_fault

    try:
        return JobDone(build(job))
    except UserModelError as exc:
        return Failed("user-error", str(exc), traceback.format_exc(limit=6))
    except Exception as exc:
        if why := env_fault(exc):
            return Failed(Status.ENV_ERROR, why, traceback.format_exc(limit=6))
        return Failed(Status.ERROR, short_reason(exc), traceback.format_exc(limit=6))


def _profile_here(runner, runs: int) -> dict:
    """The measuring worker's own per-op profile, after its timed blocks and its memory readings
    (``Finish.profile_runs``): the runner's raw view, or {"status", "reason"} when it fails (the cell keeps
    its latency either way)."""
    profile_ops = getattr(runner, "profile_ops", None)
    if profile_ops is None:
        return {"source": "none", "ops": [], "note": f"benchbench has no per-op profiler for {runner.name}"}
    start = time.perf_counter()
    try:
        raw = profile_ops(runs)
    except Exception as exc:
        failed = failure_record(exc)
        raw = {"status": failed.status, "reason": failed.reason}
    return {**raw, "took_s": round(time.perf_counter() - start, 3)}  # the profiling's own cost, for meta.sweep


def _profile(job: ProfileJob):
    """Prepare the cell's backend, warm up, and ask it for its per-op view."""
    spec = job.spec
    try:
        with runner_session(spec) as runner:
            runner.prepare(job.artifact, load_inputs(job.input_path))
            for _ in range(job.warmup):
                runner.run()
            profile_ops = getattr(runner, "profile_ops", None)
            if profile_ops is None:
                return JobDone({"source": "none", "ops": [],
                                "note": f"benchbench has no per-op profiler for {spec.backend}"})
            return JobDone(profile_ops(job.runs))
    except Exception as exc:  # recorded, never raised: the other cells still get profiled
        return failure_record(exc)


def _file_build(job: FileBuildJob):
    """The build job of a user's model file (``benchbench.build.files.build``): counts, inputs, reference."""
    from benchbench.build.files import build

    try:
        return JobDone(build(job))
    except Exception as exc:
        return failure_record(exc)


def _bandwidth(job: BandwidthJob):
    """The memory bandwidth of the job's device with its thread count (``benchbench.measure._bandwidth``)."""
    from benchbench.measure._bandwidth import measure

    try:
        return JobDone(measure(job.device, job.threads))
    except Exception as exc:
        return failure_record(exc)


JOB_HANDLERS = {BuildJob: _build, ProfileJob: _profile, FileBuildJob: _file_build, BandwidthJob: _bandwidth}


def serve(channel: Channel) -> int:
    """A worker's life, from its first record; every process the model or runtime started ends with it."""
    become_subreaper()  # a descendant that setsid's or double-forks away still comes back to us
    try:
        first = channel.recv()
        if isinstance(first, Prepare):
            _measure(channel, first)
        elif type(first) in JOB_HANDLERS:
            channel.send(JOB_HANDLERS[type(first)](first))
        else:
            raise ProtocolError(f"a worker starts with Prepare or a job record, not {type(first).__name__}")
        return 0
    finally:
        end_descendants()


def no_telemetry() -> None:
    """Keep OpenVINO's telemetry out of every benchbench worker and fork server.

    Importing ``openvino`` imports its converter, which sends a usage event from a background thread
    (``openvino_telemetry``, on unless the user opted out): a network call inside a timed process, and
    a thread alive while a fork server forks. A child forked while that thread held a lock hung forever
    on a futex in the reference sweep. With the package hidden, OpenVINO uses its own telemetry stub.
    """
    sys.modules.setdefault("openvino_telemetry", None)


def main(argv: list[str] | None = None) -> int:
    """``python -P -m benchbench.measure.worker FD PARENT_PID``: one worker, talking over the socket FD."""
    args = (argv or sys.argv[1:])
    fd, parent_pid = int(args[0]), int(args[1])
    die_with_parent(parent_pid)
    no_telemetry()
    return serve(Channel(socket.socket(fileno=fd)))


if __name__ == "__main__":
    sys.exit(main())
