"""``python -m benchbench.measure.cluster tls://HOST:PORT ...``: ``benchbench doctor`` on every measuring worker
of a cluster (each as a measuring task, never beside a measurement), and the backends each can run."""

from __future__ import annotations

import socket
import uuid

from ..executor import ExecutorError
from .access import (
    CONNECT_TIMEOUT_S,
    TLSFiles,
    _measuring,
    _workers,
    worker_devices,
)
from .executor import connect


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
