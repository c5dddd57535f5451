"""A Dask cluster on loopback for the cluster tests: a scheduler and workers started as processes (``python -m
dask``, so they import this checkout's benchbench), each with its own artifact cache and measuring lock, as a
separate host would have; optionally over TLS with certificates made here by ``openssl``."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

DASK = [sys.executable, "-P", "-m", "dask"]  # -P: this checkout's installed benchbench, not the cwd's tree
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Certs:
    """A CA and, per name, a certificate it signed and its key (PEM files in ``folder``)."""

    folder: Path
    ca: str

    def cert(self, name: str) -> str:
        return str(self.folder / f"{name}.pem")

    def key(self, name: str) -> str:
        return str(self.folder / f"{name}.key")

    def dask_flags(self, name: str) -> list[str]:
        """Dask's own flags (scheduler and worker) for the certificate ``name``."""
        return ["--tls-ca-file", self.ca, "--tls-cert", self.cert(name), "--tls-key", self.key(name)]

    def benchbench_flags(self, name: str, ca: str | None = None) -> list[str]:
        return ["--tls-ca-file", ca or self.ca, "--tls-cert", self.cert(name), "--tls-key", self.key(name)]


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run([OPENSSL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-1500:]


def make_certs(folder: Path, names: list[str], ca_name: str = "ca") -> Certs:
    """A CA ``ca_name`` and a certificate per name, each with 127.0.0.1 and localhost as subject alternative
    names, for both server and client use (as the README's commands make them)."""
    folder.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-days", "2", "-subj", f"/CN={ca_name}", "-keyout", f"{ca_name}.key",
             "-out", f"{ca_name}.pem", cwd=folder)
    for name in names:
        (folder / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                            "extendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n")
        _openssl("req", *ec, "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=folder)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca_name}.pem", "-CAkey", f"{ca_name}.key",
                 "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=folder)
    return Certs(folder, str(folder / f"{ca_name}.pem"))


class Cluster:
    """Scheduler and worker processes on 127.0.0.1, each in its own session; ``stop`` ends them all. With
    ``certs``, everything speaks TLS: the scheduler and the workers use the certificates ``scheduler`` and
    ``worker``."""

    def __init__(self, root: Path, certs: Certs | None = None):
        self.root, self.procs, self.address, self.certs = root, {}, None, certs

    def _start(self, name: str, args: list[str], env: dict | None = None):
        log = open(self.root / f"{name}.log", "w")
        self.procs[name] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                            env={**os.environ, **(env or {})})
        log.close()

    def scheduler(self) -> str:
        port = free_port()
        protocol = "tls" if self.certs else "tcp"
        self.address = f"{protocol}://127.0.0.1:{port}"
        tls = ["--protocol", "tls", *self.certs.dask_flags("scheduler")] if self.certs else []
        self._start(f"scheduler-{port}", [*DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                          "--no-dashboard", *tls])
        return self.address

    def worker(self, name: str, resources: str, nthreads: int = 1, env: dict | None = None):
        host = self.root / name
        host.mkdir(exist_ok=True)
        tls = self.certs.dask_flags("worker") if self.certs else []
        self._start(name, [*DASK, "worker", self.address, "--host", "127.0.0.1", "--nthreads", str(nthreads),
                           "--no-nanny", "--no-dashboard", "--resources", resources, "--name", name,
                           "--death-timeout", "60", *tls],
                    env={"BENCHBENCH_CACHE": str(host / "cache"), "BENCHBENCH_LOCK": str(host / "lock"), **(env or {})})

    def client(self, workers: int):
        """A client once ``workers`` workers have joined (bounded wait)."""
        import distributed

        security = None
        if self.certs:
            security = distributed.security.Security(tls_ca_file=self.certs.ca, tls_client_cert=self.certs.cert("client"),
                                                     tls_client_key=self.certs.key("client"), require_encryption=True)
        client = distributed.Client(self.address, timeout=30, set_as_default=False, security=security)
        client.wait_for_workers(workers, timeout=60)
        return client

    def kill(self, name: str) -> list[int]:
        """SIGKILL a process (and its session); returns the pids of its descendants at that moment."""
        proc = self.procs[name]
        children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        return children

    def stop(self):
        """Workers first, then schedulers (a worker whose scheduler is gone takes long to shut down)."""
        procs = sorted(self.procs.values(), key=lambda p: "scheduler" in str(p.args))
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
