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

Access: whoever reaches a Dask scheduler can run code on every worker. ``scheduler_address`` checks the
address before any connection: ``tls://`` with the coordinator's certificate (``TLSFiles``: a CA, a
certificate signed by it and its key; Dask's ``Security`` with ``require_encryption``), or plain ``tcp://``
on loopback only, unless ``insecure``. Every step of connecting is bounded by ``timeout_s`` (Dask's own
connect waits for the scheduler's handshake without a limit) and ends at once on Ctrl-C: each blocking Dask
call is made in a helper thread that this one waits for (``_within``).

Dask is imported here only, and this module only by ``run --scheduler``: local runs never load it.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import re
import socket
import ssl
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, fields
from typing import ClassVar

from benchbench.build import ship
from benchbench.build.builds import Builds, build_group
from benchbench.core.spec import CellSpec, MeasureConfig
from benchbench.core.status import Status
from benchbench.results.record import CellResult

from .executor import Executor, ExecutorError, GroupDone
from .group import measure_group

__all__ = ["CONNECT_TIMEOUT_S", "DEVICE_PREFIX", "DaskExecutor", "TLSFiles", "connect", "device_resource",
           "is_loopback", "scheduler_address", "worker_devices"]

DEVICE_PREFIX = "device:"  # dask worker --resources "measure=1,device:rpi4=1" (resource values are numbers)
DEFAULT_PORT = 8786  # Dask's scheduler port
CONNECT_TIMEOUT_S = 10.0  # each step of connecting: TCP, TLS and Dask's handshake, the client's registration


def device_resource(name: str) -> str:
    return f"{DEVICE_PREFIX}{name}"


def worker_devices(resources: dict) -> list[str]:
    """The device names a worker declares in its resources."""
    return sorted(k[len(DEVICE_PREFIX):] for k, v in (resources or {}).items() if k.startswith(DEVICE_PREFIX) and v)


def _measuring(workers: dict) -> dict[str, dict]:
    """Address -> resources of every worker (of ``scheduler_info()["workers"]``) that declares ``measure``."""
    return {addr: dict(w.get("resources") or {}) for addr, w in workers.items()
            if (w.get("resources") or {}).get("measure", 0) >= 1}


def _workers(client, timeout_s: float) -> dict[str, dict]:
    """The scheduler's workers (address -> their record), asked within ``timeout_s``."""
    return _within(timeout_s, lambda: client.scheduler_info(n_workers=-1)).get("workers", {})


# -- who may connect, and to what -------------------------------------------------------------------------------

@dataclass(frozen=True)
class TLSFiles:
    """The coordinator's side of a ``tls://`` cluster: the cluster's CA certificate, this machine's certificate
    (signed by that CA) and its private key, all PEM files; the scheduler and workers are started with Dask's
    own ``--tls-ca-file``, ``--tls-cert`` and ``--tls-key``."""

    ca_file: str | None = None
    cert: str | None = None
    key: str | None = None

    FLAGS: ClassVar[dict[str, str]] = {"ca_file": "--tls-ca-file", "cert": "--tls-cert", "key": "--tls-key"}

    def given(self) -> list[str]:
        return [self.FLAGS[f.name] for f in fields(self) if getattr(self, f.name)]

    def missing(self) -> list[str]:
        return [self.FLAGS[f.name] for f in fields(self) if not getattr(self, f.name)]


def is_loopback(host: str) -> bool:
    """``localhost`` or a literal address in 127.0.0.0/8 or ::1. Names are not resolved: a name that only
    resolves to loopback is treated as a remote host."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_port(rest: str, text: str) -> tuple[str, int]:
    bad = ExecutorError(f"--scheduler {text!r} is not an address: write tls://HOST:PORT (an IPv6 address in "
                        "brackets: tls://[ADDR]:PORT)", 2)
    if rest.startswith("["):
        host, closed, tail = rest[1:].partition("]")
        if not closed or (tail and not tail.startswith(":")):
            raise bad
        port = tail[1:]
    else:
        if rest.count(":") > 1:
            raise bad
        host, _, port = rest.partition(":")
    if not host or any(c in host for c in "/@?# ") or (port and not port.isdigit()):
        raise bad
    number = int(port) if port else DEFAULT_PORT
    if not 0 < number < 65536:
        raise bad
    return host, number


def scheduler_address(address: str | None, tls: TLSFiles = TLSFiles(), insecure: bool = False) -> tuple[str, str | None]:
    """The scheduler's address as Dask takes it (``tcp://`` when no protocol is written, port 8786 when none),
    checked before anything connects, and the warning to print (or None). Refused with ``ExecutorError``
    (exit 2): an empty address; a protocol other than tcp or tls; ``tls://`` without all three ``TLSFiles``,
    or with one that is unreadable or not PEM; ``TLSFiles`` with ``tcp://``; plain ``tcp://`` to anything but
    loopback unless ``insecure`` (then the warning says what that means)."""
    text = (address or "").strip()
    if not text:
        raise ExecutorError("--scheduler is empty (an unset shell variable?): give tls://HOST:PORT, or leave out "
                            "--scheduler to measure on this machine", 2)
    scheme, sep, rest = text.partition("://")
    scheme, rest = (scheme.lower(), rest) if sep else ("tcp", text)
    if scheme not in ("tcp", "tls"):
        raise ExecutorError(f"--scheduler {text!r}: benchbench connects over tls:// (or plain tcp:// on loopback), "
                            f"not {scheme}://", 2)
    host, port = _host_port(rest, text)
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if scheme == "tls":
        if missing := tls.missing():
            raise ExecutorError(f"a tls:// scheduler needs this machine's certificate: give {', '.join(missing)} "
                                "(see the README's Many machines)", 2)
        _check_tls_files(tls)
    elif given := tls.given():
        raise ExecutorError(f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to a tls:// "
                            f"scheduler, and {text} is plain tcp://: "
                            f"write tls://{where}", 2)
    warning = None
    if scheme == "tcp" and not is_loopback(host):
        if not insecure:
            raise ExecutorError(f"refusing plain tcp:// to {host}: whoever can reach that scheduler can run code on "
                                f"every measuring worker; use tls://{where} with --tls-ca-file, --tls-cert and "
                                "--tls-key, or --insecure on a network you trust", 2)
        warning = (f"warning: --insecure: plain tcp:// to {host}, unencrypted and unauthenticated: whoever can reach "
                   "the scheduler can run code on every measuring worker")
    return f"{scheme}://{where}", warning


def _check_tls_files(tls: TLSFiles) -> None:
    """Each file readable, the CA a certificate, the certificate and key a pair (PEM, the key unencrypted: Dask
    loads it without asking for a passphrase)."""
    for name, flag in TLSFiles.FLAGS.items():
        path = getattr(tls, name)
        try:
            with open(path, "rb") as f:
                head = f.read(1 << 20)
        except OSError as exc:
            raise ExecutorError(f"cannot read {flag} {path}: {exc.strerror or exc}", 2) from None
        if name == "key" and b"ENCRYPTED" in head:
            raise ExecutorError(f"--tls-key {path} is encrypted with a passphrase; Dask reads keys without one "
                                "(openssl ... -nodes, and keep the file readable by its owner only)", 2)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=tls.ca_file)
    except (ssl.SSLError, ValueError) as exc:
        raise ExecutorError(f"--tls-ca-file {tls.ca_file} holds no PEM certificate ({_ssl_reason(exc)})", 2) from None
    try:
        context.load_cert_chain(tls.cert, tls.key, password=lambda: b"")
    except (ssl.SSLError, ValueError) as exc:
        raise ExecutorError(f"--tls-cert {tls.cert} and --tls-key {tls.key} are not a PEM certificate and its "
                            f"private key ({_ssl_reason(exc)})", 2) from None


def _ssl_reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or exc).lower().replace("_", " ")


# -- connecting, bounded and interruptible ----------------------------------------------------------------------

def _within(seconds: float, call, abandoned=None):
    """``call()`` in a daemon thread, waited for at most ``seconds``; ``TimeoutError`` if it takes longer. The
    wait ends on Ctrl-C too (KeyboardInterrupt here), where a blocking Dask call would not return until its
    peer answers. A call given up on is left to finish in its thread; ``abandoned(result)`` then releases
    what it returns (a client connected too late)."""
    box: dict = {}
    done, lock = threading.Event(), threading.Lock()

    def target():
        try:
            box["value"] = call()
        except BaseException as exc:  # handed to the waiting thread
            box["error"] = exc
        with lock:
            done.set()
            late = box.get("gave_up") and "value" in box
        if late and abandoned is not None:
            abandoned(box["value"])

    threading.Thread(target=target, daemon=True, name="benchbench-dask-call").start()
    try:
        done.wait(seconds)
    finally:  # on Ctrl-C too: a result that comes later is the thread's to release
        with lock:
            finished = done.is_set()
            box["gave_up"] = not finished
    if not finished:
        raise TimeoutError(f"no answer within {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _quiet_dask() -> None:
    """Dask reports a lost or refused connection as log records and tracebacks on stderr; this process reports
    it in one line itself."""
    for name in ["distributed", "tornado", "asyncio", *logging.root.manager.loggerDict]:
        if name.split(".")[0] in ("distributed", "tornado", "asyncio"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def _handshake(address: str, connection_args: dict, timeout_s: float) -> None:
    """Connect, speak Dask's handshake (TLS first, for tls://) and ask the scheduler who it is, all within
    ``timeout_s``; ``ExecutorError`` (exit 2) with the reason in one line otherwise. Dask's own connect bounds
    the TCP connect but waits for the handshake without a limit: a server that accepts and never answers would
    hang the client."""
    import asyncio

    from distributed.comm import connect as comm_connect

    async def identity():
        comm = await comm_connect(address, timeout=timeout_s, **connection_args)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    try:
        reply = _within(timeout_s + 1, lambda: asyncio.run(asyncio.wait_for(identity(), timeout_s)))
    except TimeoutError:
        raise ExecutorError(f"the Dask scheduler at {address} accepted the connection but did not answer within "
                            f"{timeout_s:g} s (is it a Dask scheduler, and does it speak "
                            f"{address.partition('://')[0]}://?)", 2) from None
    except Exception as exc:
        raise ExecutorError(f"cannot connect to the Dask scheduler at {address}: {_why(exc, address)}", 2) from None
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        kind = reply.get("type") if isinstance(reply, dict) else None
        raise ExecutorError(f"{address} answered, but it is not a Dask scheduler"
                            + (f" (a {kind}: give the scheduler's address)" if kind else ""), 2)


def _why(exc: BaseException, address: str) -> str:
    """A failed connection's reason, in words: TLS verification either way, the wrong protocol, or Dask's."""
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    text = " ".join(str(e) for e in chain)
    verify = next((e for e in chain if isinstance(e, ssl.SSLCertVerificationError)), None)
    if verify is not None:
        return (f"its certificate does not verify against --tls-ca-file ({verify.verify_message}): is it the "
                "cluster's CA?")
    if alert := re.search(r"ALERT_([A-Z0-9_]+)", text):
        return (f"it refused this machine's certificate (TLS alert: {alert.group(1).lower().replace('_', ' ')}): "
                "--tls-cert must be signed by the cluster's CA")
    if address.startswith("tls://"):
        if re.search(r"WRONG_VERSION_NUMBER|not idle; cannot convert to SSL", text):
            return "it does not speak TLS (a plain tcp:// scheduler?)"
        if re.search(r"UNEXPECTED_EOF|EOF occurred", text):  # the alert lost in the race with the close
            return ("it closed the TLS connection without answering: most likely it refused this machine's "
                    "certificate (is --tls-cert signed by the cluster's CA?)")
    if address.startswith("tcp://") and any(isinstance(e, (ConnectionResetError, EOFError)) for e in chain):
        return "it closed the connection during Dask's handshake (a TLS scheduler? write tls:// and give --tls-*)"
    if type(exc).__name__ in ("CommClosedError", "FatalCommClosedError", "StreamClosedError"):
        return ("it closed the connection during Dask's handshake"
                + (" (a TLS scheduler? write tls:// and give --tls-*)" if address.startswith("tcp://") else ""))
    return str(exc) or type(exc).__name__


def _close_quietly(client, timeout_s: float = 5.0) -> None:
    """Close a client, waiting at most ``timeout_s`` (its scheduler may be gone or silent); a second Ctrl-C
    while closing gives up on the close, not on the rest of the shutdown."""
    try:
        _within(timeout_s + 1, lambda: client.close(timeout=timeout_s))
    except (Exception, KeyboardInterrupt):  # nothing to keep: a client whose scheduler is gone may not close cleanly
        pass


def _open_client(address: str, security, timeout_s: float, progress):
    """Dask's client, connected within ``timeout_s``; Dask's warnings (mismatched versions) as one line each."""
    from distributed import Client

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            client = _within(timeout_s + 5, lambda: Client(address, security=security, timeout=timeout_s,
                                                           set_as_default=False),
                             abandoned=lambda late: _close_quietly(late, timeout_s))
        except TimeoutError:
            raise ExecutorError(f"the Dask scheduler at {address} did not register this client within "
                                f"{timeout_s:g} s", 2) from None
        except Exception as exc:
            raise ExecutorError(f"cannot connect to the Dask scheduler at {address}: {_why(exc, address)}", 2) from None
    for message in dict.fromkeys(str(w.message).strip().splitlines()[0] for w in caught if str(w.message).strip()):
        progress(f"benchbench: note: Dask: {message}" + (" (install the same versions everywhere: pip install -c "
                                                         "constraints.txt)" if "version" in message.lower() else ""))
    return client


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


def _reachable(address: str, timeout_s: float) -> None:
    """Fail fast on an address nothing listens at (Dask would retry it until its timeout)."""
    host, _, port = address.partition("://")[2].rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except TimeoutError:
        raise ExecutorError(f"cannot reach the Dask scheduler at {address}: no answer within {timeout_s:g} s", 2) from None
    except OSError as exc:
        raise ExecutorError(f"cannot reach the Dask scheduler at {address}: {exc.strerror or exc}", 2) from None


def _allow_one_failure(dask_scheduler=None):
    dask_scheduler.allowed_failures = 1


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
            builds.close()
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


def doctor(address: str, timeout_s: float = 900.0, **access) -> int:
    """``benchbench doctor`` on every measuring worker of the cluster, each as a ``measure=1`` task pinned to
    its worker (so it never runs beside a measurement); prints each one's report; returns the worst exit code.
    ``access``: ``connect``'s ``tls``, ``insecure`` and ``timeout_s`` (as ``connect_timeout_s``)."""
    connect_timeout = access.pop("connect_timeout_s", CONNECT_TIMEOUT_S)
    executor = connect(address, [], timeout_s=connect_timeout, progress=_say, **access)
    try:
        workers = _measuring(_workers(executor.client, connect_timeout))
        futures = {addr: executor.client.submit(_doctor, workers=[addr], allow_other_workers=False, pure=False,
                                                resources={"measure": 1}, key=f"benchbench-doctor-{uuid.uuid4().hex}")
                   for addr in sorted(workers)}
        worst = 0
        for addr, future in futures.items():
            try:
                report = future.result(timeout=timeout_s)
            except Exception as exc:  # a worker that died, or one whose doctor hangs
                print(f"== {addr}: no report ({type(exc).__name__}: {exc or f'none within {timeout_s:g} s'})\n")
                worst = max(worst, 3)
                continue
            devices = ", ".join(worker_devices(workers[addr])) or "no device resource"
            usable = ", ".join(b for b, ok in report["backends"].items() if ok)
            print(f"== {addr} on {report['host']} ({devices}); backends: {usable}; doctor exit {report['rc']}")
            print(report["text"] + "\n")
            worst = max(worst, report["rc"])
        return worst
    finally:
        executor.close()


def _say(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m benchbench.measure.cluster tls://HOST:PORT --tls-ca-file ... --tls-cert ... --tls-key ...``:
    the onboarding check, with ``benchbench run --scheduler``'s access options. Exit codes: the worst worker's
    doctor exit code; 2 a mistake in what was asked (an address refused, a certificate file unreadable, a
    scheduler unreachable or silent); 3 a worker that gave no report; 130 on Ctrl-C."""
    import argparse
    import sys

    from benchbench.core.argtypes import bounded_float

    parser = argparse.ArgumentParser(prog="python -m benchbench.measure.cluster",
                                     description="Run benchbench doctor on every measuring worker of a Dask cluster "
                                                 "and list the backends each can run.")
    parser.add_argument("scheduler", metavar="tls://HOST:PORT", help="the scheduler's address")
    parser.add_argument("--tls-ca-file", metavar="FILE", help="the cluster's CA certificate (PEM)")
    parser.add_argument("--tls-cert", metavar="FILE", help="this machine's certificate, signed by that CA (PEM)")
    parser.add_argument("--tls-key", metavar="FILE", help="this machine's private key (PEM, no passphrase)")
    parser.add_argument("--insecure", action="store_true",
                        help="allow plain tcp:// to a scheduler beyond loopback (anyone who reaches it can run code "
                             "on every worker)")
    parser.add_argument("--connect-timeout", type=bounded_float(0), default=CONNECT_TIMEOUT_S, metavar="SECONDS",
                        help=f"the longest each step of connecting may take (default: {CONNECT_TIMEOUT_S:g})")
    args = parser.parse_args(argv)
    try:
        return doctor(args.scheduler, tls=TLSFiles(args.tls_ca_file, args.tls_cert, args.tls_key),
                      insecure=args.insecure, connect_timeout_s=args.connect_timeout)
    except ExecutorError as exc:
        print(f"benchbench: error: {_one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _one_line(text: str) -> str:
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


if __name__ == "__main__":
    import sys

    sys.exit(main())
