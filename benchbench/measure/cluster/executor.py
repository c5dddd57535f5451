"""The Dask executor: one comparison group per Dask task, on a worker that declares ``measure=1``; builds
shipped by content; a group retried once on another worker, then ``lost``; ``connect`` to make one."""

from __future__ import annotations

import functools
import os
import socket
import time
import uuid

from benchbench.build import ship
from benchbench.build.builds import Builds, build_group
from benchbench.core.spec import CellSpec, MeasureConfig
from benchbench.core.status import Status
from benchbench.results.record import CellResult

from ..executor import Executor, ExecutorError, GroupDone
from ..group import measure_group
from .access import (
    CONNECT_TIMEOUT_S,
    TLSFiles,
    _allow_one_failure,
    _close_quietly,
    _handshake,
    _measuring,
    _open_client,
    _quiet_dask,
    _reachable,
    _within,
    _workers,
    device_resource,
    scheduler_address,
    worker_devices,
)


def connect(address: str, devices: list[str], *, tls: TLSFiles = TLSFiles(), insecure: bool = False,
            timeout_s: float = CONNECT_TIMEOUT_S, wait_s: float = 10.0, progress=lambda msg: None) -> DaskExecutor:
    """A ``DaskExecutor`` on the scheduler at ``address`` (checked by ``scheduler_address``), once a measuring
    worker of every device in ``devices`` (or of any device, if none) has joined within ``wait_s``; else
    ``ExecutorError`` with exit code 2. Each step of connecting answers within ``timeout_s``, or it is an
    ``ExecutorError`` too; Ctrl-C ends it at any moment (KeyboardInterrupt, nothing left connected)."""
    address, warning = scheduler_address(address, tls, insecure)
    if warning:
        progress(f"benchbench: {warning}")
    try:
        from distributed.security import Security
    except ImportError:
        raise ExecutorError("--scheduler needs Dask: pip install 'benchbench[cluster]'", 2) from None
    _quiet_dask()
    security = None
    if address.startswith("tls://"):
        security = Security(tls_ca_file=tls.ca_file, tls_client_cert=tls.cert, tls_client_key=tls.key,
                            require_encryption=True)
    _reachable(address, timeout_s)
    _handshake(address, security.get_connection_args("client") if security else {}, timeout_s)
    client = _open_client(address, security, timeout_s, progress)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                everyone = _workers(client, timeout_s)
            except TimeoutError:
                raise ExecutorError(f"the Dask scheduler at {address} stopped answering", 2) from None
            workers = _measuring(everyone)
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
            _within(timeout_s, lambda: client.run_on_scheduler(_allow_one_failure))
        except Exception as exc:  # a scheduler that refuses remote code keeps its own setting
            progress(f"note: could not set the scheduler's allowed-failures to 1 ({exc}); a group whose worker "
                     "dies is retried as the scheduler is configured")
    except BaseException:
        _close_quietly(client, timeout_s)
        raise
    progress(f"benchbench: {len(workers)} measuring workers at {address}"
             + (" over TLS" if security else "")
             + (f" (devices: {', '.join(known)})" if known else "")
             + (f"; builds on {len(builders)} building workers" if builders else "; builds here"))
    return DaskExecutor(client, address, builders=bool(builders), timeout_s=timeout_s)


class DaskExecutor(Executor):
    """Comparison groups as Dask tasks; each handed back (and so journaled) as soon as it finishes."""

    remote = True

    def __init__(self, client, address: str, grace_s: float = 10.0, stranded_s: float = 30.0,
                 builders: bool = False, timeout_s: float = CONNECT_TIMEOUT_S):
        self.client, self.address = client, address
        self.timeout_s = timeout_s  # the longest a call to the scheduler is waited for
        self.builders = builders  # build on the workers that declare ``build`` (else in this process)
        self.build_futures: dict = {}  # build group -> its build task
        self.grace_s = grace_s  # a scheduler out of reach this long has gone away
        self.stranded_s = stranded_s  # a group with no eligible worker this long is lost
        self.futures: dict = {}  # future -> (group index, specs, resources, submitted at)
        self._stranded_since: dict = {}  # future -> when its resources were last seen on no live worker

    def measure(self, items, config, builds, profile=None, repeats=(), configs=None):
        # ``repeats`` are measured in full: a remote group's closing records are cheap beside its transfer
        if profile is not None:  # run refuses --profile with --scheduler; a caller that asks anyway is a bug
            raise ValueError("per-op profiles are taken on this machine only, not on a cluster")
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
                _measure_remote, [s.to_dict() for s in specs], (configs or {}).get(index, config).to_dict(),
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
            workers = _measuring(_workers(self.client, self.timeout_s))
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
        """Cancel what is still queued and disconnect, waiting at most ``timeout_s`` for each (the scheduler
        may be gone). A group already measuring on a worker runs to its end there: Dask cannot stop a
        running task."""
        futures = [*self.futures, *self.build_futures.values()]
        self.futures.clear()
        self.build_futures.clear()
        if futures:
            try:
                _within(self.timeout_s, lambda: self.client.cancel(futures))
            except (Exception, KeyboardInterrupt):  # a scheduler gone or silent, or a second Ctrl-C: disconnect
                pass
        _close_quietly(self.client, min(self.timeout_s, 5.0))


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

    from ..machinelock import measuring

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
            builds.close()
        ended = time.time()
    host = {"name": socket.gethostname(), "worker": worker.address, "pid": os.getpid(),
            "device": cell_specs[0].device or (devices[0] if devices else None),
            "started_at": started, "ended_at": ended, "machine": machine, "packages": packages}
    built = {group: {k: v for k, v in payload.items() if k != "files"}
             for group, payload in payloads.items() if payload.get("remote")}
    return [c.to_dict() for c in cells], record, host, ended - started, built
