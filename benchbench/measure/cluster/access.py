"""Who may reach a Dask cluster, and how: the scheduler's address checked before any connection (``tls://``
with the coordinator's certificates, or plain ``tcp://`` on loopback only, unless ``insecure``), and every
step of connecting bounded in time and ended at once by Ctrl-C (each blocking Dask call runs in a helper
thread this one waits for: ``_within``).

Whoever reaches a Dask scheduler can run code on every worker: hence TLS between machines, with a
certificate on every member signed by a CA made for the cluster alone.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import ssl
import threading
import warnings
from dataclasses import dataclass, fields
from typing import ClassVar

from ..executor import ExecutorError

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
