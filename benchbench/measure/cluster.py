"""Scale-out on a Dask cluster (``benchbench run --scheduler tcp://HOST:8786``): one comparison group per
Dask task, measured on a worker that declares the resource ``measure=1``.

Why Dask: its workers are one light ``pip install`` on a board, and its resource model says what this
needs: a measuring task asks for ``measure=1``, so a worker (started ``--nthreads 1 --resources
measure=1``) never runs two measurements at once, and ``--device NAME`` adds ``device:NAME=1``, so the
task runs only where that target is. A comparison group is one task: it runs entirely on one host.

Builds (exports, conversions) run once per model, in parallel on the workers that declare ``build``
(e.g. ``--nthreads 4 --resources build=4``), or, when none does, here in this process. A worker may declare
both ``measure`` and ``build`` only with ``--nthreads 1``, so that it never builds while it measures.

Artifacts travel by content: every measuring task carries the build's manifest (sha256 and size of every
file) and the files its cells read. The worker writes them into its own cache, checks every hash on arrival, and keeps
them: a build already there with those hashes is not written again. A worker that lacks a backend records
``unavailable``, as a local run does.

Faults: when a worker dies mid-task the scheduler gives the task to another eligible worker; this module
lowers the scheduler's ``allowed-failures`` to 1, so a group is retried once, then its cells are recorded
``lost`` with the reason. A group whose only eligible workers are gone is ``lost`` after ``stranded_s``.
A scheduler that goes away stops the sweep with ``ExecutorError`` (exit 3); every group handed back
before is in the run's journal, and ``run --resume DIR --scheduler NEW`` measures the rest.

Dask is imported here only, and this module only by ``run --scheduler``: local runs never load it.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import time
import uuid

from benchbench.build import ship
from benchbench.build.builds import Builds, build_group
from benchbench.core.spec import CellSpec, MeasureConfig
from benchbench.core.status import Status
from benchbench.results.record import CellResult

from .executor import Executor, ExecutorError, GroupDone
from .group import measure_group

__all__ = ["DEVICE_PREFIX", "DaskExecutor", "connect", "device_resource", "worker_devices"]

DEVICE_PREFIX = "device:"  # dask worker --resources "measure=1,device:rpi4=1" (resource values are numbers)


def device_resource(name: str) -> str:
    return f"{DEVICE_PREFIX}{name}"


def worker_devices(resources: dict) -> list[str]:
    """The device names a worker declares in its resources."""
    return sorted(k[len(DEVICE_PREFIX):] for k, v in (resources or {}).items() if k.startswith(DEVICE_PREFIX) and v)


def _measuring_workers(client) -> dict[str, dict]:
    """Address -> resources of every worker that declares ``measure`` (at least 1)."""
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    return {addr: dict(w.get("resources") or {}) for addr, w in workers.items()
            if (w.get("resources") or {}).get("measure", 0) >= 1}


def connect(address: str, devices: list[str], wait_s: float = 10.0, progress=lambda msg: None) -> DaskExecutor:
    """A ``DaskExecutor`` on the scheduler at ``address``, once a measuring worker of every device in
    ``devices`` (or of any device, if none) has joined; else ``ExecutorError`` with exit code 2."""
    try:
        from distributed import Client
    except ImportError:
        raise ExecutorError("--scheduler needs Dask: pip install 'benchbench[cluster]'", 2) from None
    # Dask logs a lost connection as tracebacks on stderr; this process reports it in one line itself.
    for name in ["distributed", *logging.root.manager.loggerDict]:
        if name.split(".")[0] == "distributed":
            logging.getLogger(name).setLevel(logging.CRITICAL)
    _reachable(address, wait_s)
    try:
        client = Client(address, timeout=wait_s, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise ExecutorError(f"cannot reach the Dask scheduler at {address}: {exc or type(exc).__name__}", 2) from None
    try:
        deadline = time.monotonic() + wait_s
        while True:
            workers = _measuring_workers(client)
            everyone = client.scheduler_info(n_workers=-1).get("workers", {})
            known = sorted({d for r in workers.values() for d in worker_devices(r)})
            missing = [d for d in devices if d not in known]
            if workers and not missing:
                break
            if workers:  # the cluster is up: a device still missing is given a moment to join, not wait_s
                deadline = min(deadline, time.monotonic() + 3.0)
            if time.monotonic() > deadline:
                if not workers:
                    raise ExecutorError(f"no worker of the scheduler at {address} declares measure=1 (start one: "
                                        f"dask worker {address} --nthreads 1 --resources measure=1)", 2)
                raise ExecutorError(f"unknown --device {', '.join(missing)}: the measuring workers of {address} "
                                    f"have {', '.join(known) if known else 'no device resources'}", 2)
            time.sleep(0.2)
        both = [a for a, w in everyone.items() if a in workers and (w.get("resources") or {}).get("build", 0) > 0
                and w.get("nthreads", 1) > 1]
        if both:
            raise ExecutorError(f"worker {both[0]} declares both measure and build with more than one thread: it "
                                "could build beside a measurement; start it with --nthreads 1", 2)
        builders = sorted(a for a, w in everyone.items() if (w.get("resources") or {}).get("build", 0) > 0)
        # Retried once on another worker, then lost (the scheduler's default is 3 retries).
        try:
            client.run_on_scheduler(_allow_one_failure)
        except Exception as exc:  # a scheduler that refuses remote code keeps its own setting
            progress(f"note: could not set the scheduler's allowed-failures to 1 ({exc}); a group whose worker "
                     "dies is retried as the scheduler is configured")
    except BaseException:
        client.close()
        raise
    progress(f"benchbench: {len(workers)} measuring workers at {address}"
             + (f" (devices: {', '.join(known)})" if known else "")
             + (f"; builds on {len(builders)} building workers" if builders else "; builds here"))
    return DaskExecutor(client, address, builders=bool(builders))


def _reachable(address: str, wait_s: float) -> None:
    """Fail fast on a tcp:// address nothing listens at (Dask would retry it until its timeout)."""
    host, _, port = address.removeprefix("tcp://").rpartition(":")
    if not address.startswith("tcp://") or not port.isdigit():
        return  # another transport, or a form Dask will judge
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=wait_s).close()
    except OSError as exc:
        raise ExecutorError(f"cannot reach the Dask scheduler at {address}: {exc.strerror or exc}", 2) from None


def _allow_one_failure(dask_scheduler=None):
    dask_scheduler.allowed_failures = 1


class DaskExecutor(Executor):
    """Comparison groups as Dask tasks; each handed back (and so journaled) as soon as it finishes."""

    remote = True

    def __init__(self, client, address: str, grace_s: float = 10.0, stranded_s: float = 30.0,
                 builders: bool = False):
        self.client, self.address = client, address
        self.builders = builders  # build on the workers that declare ``build`` (else in this process)
        self.build_futures: dict = {}  # build group -> its build task
        self.grace_s = grace_s  # a scheduler out of reach this long has gone away
        self.stranded_s = stranded_s  # a group with no eligible worker this long is lost
        self.futures: dict = {}  # future -> (group index, specs, resources, submitted at)
        self._stranded_since: dict = {}  # future -> when its resources were last seen on no live worker

    def measure(self, items, config, builds):
        self.builds = builds
        for index, specs in items:
            payloads = {}  # build group -> the build's payload, or the build task that makes it
            for spec in specs:
                group = build_group(spec)
                formats = builds.formats.get(group, set())
                if self.builders and spec.source is None and group not in builds.records:
                    if group not in self.build_futures:
                        self.build_futures[group] = self.client.submit(
                            _build_remote, spec.to_dict(), sorted(formats), config.to_dict(),
                            resources={"build": 1}, pure=False, key=f"benchbench-build-{uuid.uuid4().hex}")
                    payloads[group] = self.build_futures[group]  # Dask hands the task its result
                    continue
                source = spec.source.path if spec.source is not None else None
                payloads[group] = ship.payload(builds.ensure(spec), formats, source)
            resources = {"measure": 1, **({device_resource(specs[0].device): 1} if specs[0].device else {})}
            future = self.client.submit(
                _measure_remote, [s.to_dict() for s in specs], config.to_dict(),
                {g: builds.formats.get(g, set()) for g in payloads}, payloads, resources=resources, pure=False,
                key=f"benchbench-group-{index}-{uuid.uuid4().hex[:8]}")
            self.futures[future] = (index, specs, resources, time.monotonic())
            yield from self._collect(block=False)  # stream back what finished while building
        while self.futures:
            yield from self._collect(block=True)

    def _collect(self, block: bool):
        from distributed import wait

        done = [f for f in self.futures if f.done()]
        gone_since = None
        while block and not done:
            try:
                wait(list(self.futures), timeout=1.0, return_when="FIRST_COMPLETED")
            except TimeoutError:
                pass
            except Exception:  # a client that closed under us
                pass
            done = [f for f in self.futures if f.done()]
            if done:
                break
            if self.client.status != "running":
                gone_since = gone_since or time.monotonic()
                if time.monotonic() - gone_since > self.grace_s:
                    raise ExecutorError(f"the Dask scheduler at {self.address} went away "
                                        f"({len(self.futures)} groups unfinished)", 3)
                continue
            gone_since = None
            done = self._stranded(self._stranded_since)
        for future in done:
            self._stranded_since.pop(future, None)
            yield self._handed_back(future, *self.futures.pop(future))

    def _stranded(self, since: dict) -> list:
        """Futures whose resources no live worker has had for ``stranded_s``; cancelled."""
        try:
            workers = _measuring_workers(self.client)
        except Exception:
            return []
        now, out = time.monotonic(), []
        for future, (_, _, resources, _) in self.futures.items():
            if any(all(r.get(k, 0) >= v for k, v in resources.items()) for r in workers.values()):
                since.pop(future, None)
            elif now - since.setdefault(future, now) > self.stranded_s:
                future.cancel()
                out.append(future)
        return out

    def _handed_back(self, future, index: int, specs: list[CellSpec], resources: dict, submitted: float):
        took = time.monotonic() - submitted
        if future.status == "finished":
            cells, record, host, took, built = future.result()
            for group, build in built.items():  # remote builds: their manifests, for the sweep's metrics
                self.builds.records.setdefault(group, build)
            return GroupDone(index, [CellResult.from_dict(c) for c in cells], record, took, [host] * len(cells))
        if future.status == "error":
            exc = future.exception()
            if type(exc).__name__ == "KilledWorker":
                status, reason = Status.LOST, f"its worker died twice (retried once on another): {exc}"
            else:
                status, reason = Status.ERROR, f"the cluster task failed: {type(exc).__name__}: {exc}"
        else:  # cancelled: no eligible worker left, or the scheduler forgot it
            if self.client.status != "running":
                raise ExecutorError(f"the Dask scheduler at {self.address} went away", 3)
            need = ", ".join(f"{k}={v:g}" for k, v in resources.items())
            status, reason = Status.LOST, f"no live worker with {need} for {self.stranded_s:g} s"
        return GroupDone(index, [CellResult(s, status, reason) for s in specs], {"rounds": 0}, took)

    def close(self) -> None:
        for future in [*self.futures, *self.build_futures.values()]:
            future.cancel()
        self.futures.clear()
        self.build_futures.clear()
        try:
            self.client.close(timeout=5)
        except Exception:  # a client whose scheduler is gone may fail to close cleanly: nothing to keep
            pass


def _build_remote(spec: dict, formats: list[str], config: dict) -> dict:
    """The build task, on a building worker: the build in its own verified cache, as a payload."""
    cell = CellSpec.from_dict(spec)
    build = Builds(MeasureConfig.from_dict(config), [cell]).ensure(cell)
    return {**ship.payload(build, set(formats)), **({"build_s": build["build_s"]} if "build_s" in build else {}),
            "cached": build.get("cached"), "built_on": socket.gethostname(), "remote": True}


@functools.cache
def _machine() -> tuple[dict, dict]:
    """This host's machine record and package versions (once per worker process)."""
    from benchbench.core.env import environment
    from benchbench.runners import tracked_packages

    env = environment(tracked_packages())
    packages = env.pop("packages", {})
    env.pop("time", None)
    return env, packages


def _measure_remote(specs: list[dict], config: dict, formats: dict, payloads: dict) -> tuple:
    """The task, on a measuring worker: install the shipped builds, take this host's measuring lock,
    measure the group; returns (cells as dicts, scheduler record, host record, seconds)."""
    from distributed import get_worker

    from .machinelock import measuring

    worker = get_worker()
    cell_specs = [CellSpec.from_dict(s) for s in specs]
    measure_config = MeasureConfig.from_dict(config)
    builds = Builds.installed(measure_config, {group: ship.install(payload) for group, payload in payloads.items()},
                              formats)
    machine, packages = _machine()
    devices = worker_devices(worker.state.total_resources)
    servers: dict = {}
    with measuring(wait=True, argv=[f"dask worker {worker.address}"], say=lambda msg: None):
        started = time.time()
        try:
            cells, record = measure_group(cell_specs, measure_config, builds, servers)
        finally:
            for server in servers.values():
                server.close()
        ended = time.time()
    host = {"name": socket.gethostname(), "worker": worker.address, "pid": os.getpid(),
            "device": cell_specs[0].device or (devices[0] if devices else None),
            "started_at": started, "ended_at": ended, "machine": machine, "packages": packages}
    built = {group: {k: v for k, v in payload.items() if k != "files"}
             for group, payload in payloads.items() if payload.get("remote")}
    return [c.to_dict() for c in cells], record, host, ended - started, built


def _doctor() -> dict:
    """On a worker: ``benchbench doctor`` (machine state and an A/A check) and which backends it can run."""
    import subprocess

    from benchbench.processes.manager import module_command
    from benchbench.runners import get_runner, list_runners

    proc = subprocess.run(module_command("benchbench", "doctor"), capture_output=True, text=True,
                          encoding="utf-8", errors="replace", timeout=900)
    backends = {name: get_runner(name).is_available() for name in list_runners()}
    return {"host": socket.gethostname(), "rc": proc.returncode, "text": (proc.stdout + proc.stderr).strip(),
            "backends": {k: ok for k, (ok, _) in backends.items()}}


def doctor(address: str, timeout_s: float = 900.0) -> int:
    """``benchbench doctor`` on every measuring worker of the cluster, each as a ``measure=1`` task pinned to
    its worker (so it never runs beside a measurement); prints each one's report; returns the worst exit code."""
    executor = connect(address, [])
    try:
        workers = _measuring_workers(executor.client)
        futures = {addr: executor.client.submit(_doctor, workers=[addr], allow_other_workers=False, pure=False,
                                                resources={"measure": 1}, key=f"benchbench-doctor-{uuid.uuid4().hex}")
                   for addr in sorted(workers)}
        worst = 0
        for addr, future in futures.items():
            report = future.result(timeout=timeout_s)
            devices = ", ".join(worker_devices(workers[addr])) or "no device resource"
            usable = ", ".join(b for b, ok in report["backends"].items() if ok)
            print(f"== {addr} on {report['host']} ({devices}); backends: {usable}; doctor exit {report['rc']}")
            print(report["text"] + "\n")
            worst = max(worst, report["rc"])
        return worst
    finally:
        executor.close()


if __name__ == "__main__":  # python -m benchbench.measure.cluster tcp://HOST:8786: is every measuring worker usable?
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python -m benchbench.measure.cluster tcp://HOST:8786")
    try:
        sys.exit(doctor(sys.argv[1]))
    except ExecutorError as exc:
        print(f"benchbench: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
