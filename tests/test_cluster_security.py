"""Who may use a cluster, and how long connecting may take: ``run --scheduler`` over TLS with certificates made
here by openssl, refused without them; plain tcp:// beyond loopback refused; a scheduler that accepts and never
answers, and Ctrl-C while connecting or while waiting for groups; a model file measured on a TLS worker.

Everything listens on 127.0.0.1 only. The checks of an address and its certificate files run without Dask; the
rest starts a TLS scheduler and one measuring worker (tests/_cluster.py) once for the module, killed at its end.
"""

import hashlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from _cluster import OPENSSL, Cluster, make_certs
from _sweeping import wait_for

from benchbench.cli import main
from benchbench.measure.cluster import TLSFiles, is_loopback, scheduler_address
from benchbench.measure.executor import ExecutorError
from benchbench.processes.manager import module_command

DATA = Path(__file__).parent / "data"
TINY = f"{DATA / 'tiny.py'}:tiny"
NULL = ["--backend", "null", "--option", "latency_ms=1", "--roofline", "off", "--lockstep", "off", "--threads", "1",
        "--variant", "deploy"]
FAST = [*NULL, "--quick", "--min-time", "0.3", "--max-time", "0.6"]
# benchbench in a subprocess, with Ctrl-C its default even where this test's shell ignores SIGINT (a background
# job): a child inherits an ignored SIGINT, and Python then installs no KeyboardInterrupt for it.
INTERRUPTIBLE = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                 "from benchbench.cli import main; sys.exit(main(sys.argv[1:]))")

needs_openssl = pytest.mark.skipif(not Path(OPENSSL).exists(), reason=f"openssl is not installed ({OPENSSL}): "
                                   "the TLS tests make their certificates with it")


def _errors(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("benchbench: error:")]


def _benchbench(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-P", "-c", INTERRUPTIBLE, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


# -- the address and the certificate files, before anything connects --------------------------------------

def test_addresses_loopback_and_insecure():
    assert scheduler_address("127.0.0.1:8786") == ("tcp://127.0.0.1:8786", None)
    assert scheduler_address("tcp://localhost") == ("tcp://localhost:8786", None)
    assert scheduler_address("TCP://[::1]:9000") == ("tcp://[::1]:9000", None)
    assert scheduler_address(" tcp://127.3.4.5:1 ") == ("tcp://127.3.4.5:1", None)
    for host in ("127.0.0.1", "127.255.0.9", "::1", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("192.168.1.10", "10.0.0.1", "0.0.0.0", "::", "sched.lan", "localhost.evil.example", "::ffff:8.8.8.8"):
        assert not is_loopback(host), host
    for address in ("tcp://192.168.1.10:8786", "10.0.0.1", "tcp://[fe80::1]:8786", "tcp://pi.local:8786"):
        with pytest.raises(ExecutorError, match="refusing plain tcp://") as info:
            scheduler_address(address)
        assert info.value.exit_code == 2 and "tls://" in str(info.value)
    address, warning = scheduler_address("tcp://192.168.1.10:8786", insecure=True)
    assert address == "tcp://192.168.1.10:8786" and warning.startswith("warning: --insecure")
    for bad, words in [("", "is empty"), ("   ", "is empty"), ("ucx://10.0.0.1:1", "not ucx://"),
                       ("tcp://::1:8786", "brackets"), ("tcp://[::1", "not an address"), ("tls://h:99999", "not an address"),
                       ("tcp://127.0.0.1:x", "not an address"), ("tcp://:8786", "not an address")]:
        with pytest.raises(ExecutorError, match=words) as info:
            scheduler_address(bad)
        assert info.value.exit_code == 2


@needs_openssl
def test_certificate_files_are_checked_before_connecting(tmp_path):
    certs = make_certs(tmp_path / "pki", ["client", "other"])
    good = TLSFiles(certs.ca, certs.cert("client"), certs.key("client"))
    assert scheduler_address("tls://192.168.1.10:8786", good) == ("tls://192.168.1.10:8786", None)
    with pytest.raises(ExecutorError, match="needs this machine's certificate: give --tls-cert, --tls-key"):
        scheduler_address("tls://127.0.0.1:8786", TLSFiles(certs.ca))
    with pytest.raises(ExecutorError, match="--tls-ca-file applies to a tls:// scheduler"):
        scheduler_address("tcp://127.0.0.1:8786", TLSFiles(certs.ca))
    encrypted = tmp_path / "encrypted.key"
    subprocess.run([OPENSSL, "pkey", "-in", certs.key("client"), "-aes256", "-passout", "pass:x", "-out",
                    str(encrypted)], check=True, capture_output=True, timeout=60)
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("hello\n")
    for files, words in [(TLSFiles(str(tmp_path / "nope.pem"), good.cert, good.key), "cannot read --tls-ca-file"),
                         (TLSFiles(certs.ca, str(tmp_path), good.key), "cannot read --tls-cert"),
                         (TLSFiles(str(not_pem), good.cert, good.key), "--tls-ca-file .* holds no PEM certificate"),
                         (TLSFiles(certs.ca, good.cert, certs.key("other")), "are not a PEM certificate and its"),
                         (TLSFiles(certs.ca, good.cert, str(not_pem)), "are not a PEM certificate and its"),
                         (TLSFiles(certs.ca, good.cert, str(encrypted)), "encrypted with a passphrase")]:
        with pytest.raises(ExecutorError, match=words) as info:
            scheduler_address("tls://127.0.0.1:8786", files)
        assert info.value.exit_code == 2 and "\n" not in str(info.value)


def test_cli_refusals_are_one_line_and_connect_nowhere(tmp_path, monkeypatch, capsys):
    """An empty --scheduler (an unset shell variable), plain tcp:// beyond loopback, certificates without a
    scheduler: one line, exit 2, no run folder, and no connection attempted (this test forbids any)."""
    def no_network(*args, **kwargs):
        raise AssertionError(f"a connection was attempted: {args}")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    out = tmp_path / "runs"
    for extra, words in [(["--scheduler", ""], "--scheduler is empty"),
                         (["--scheduler", " "], "--scheduler is empty"),
                         (["--scheduler", "tcp://192.168.1.10:8786"], "refusing plain tcp:// to 192.168.1.10"),
                         (["--scheduler", "tls://192.168.1.10:8786"], "needs this machine's certificate"),
                         (["--tls-ca-file", "ca.pem"], "--tls-ca-file applies to --scheduler"),
                         (["--insecure"], "--insecure applies to --scheduler"),
                         (["--scheduler", "", "--profile"], "--scheduler is empty")]:
        assert main(["run", "--model", TINY, *FAST, "--out", str(out), *extra]) == 2, extra
        err = capsys.readouterr().err
        assert len(_errors(err)) == 1 and words in _errors(err)[0], (extra, err)
        assert "Traceback" not in err
        assert not out.exists() or not any(out.iterdir())


# -- a scheduler that accepts and never answers ----------------------------------------------------------------

class SilentServer:
    """A TCP server on 127.0.0.1 that accepts every connection and never sends a byte."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[float] = []
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.accepted.append(time.monotonic())

    def close(self):
        for c in [*self.conns, self.sock]:
            c.close()


@pytest.fixture
def silent():
    server = SilentServer()
    yield server
    server.close()


def test_a_silent_scheduler_is_one_line_within_the_timeout(silent, tmp_path):
    started = time.monotonic()
    proc = _benchbench("run", "--model", TINY, *FAST, "--out", str(tmp_path), "--scheduler",
                       f"tcp://127.0.0.1:{silent.port}")
    _, err = proc.communicate(timeout=60)
    ended = time.monotonic()
    assert proc.returncode == 2, err[-1500:]
    assert _errors(err) == [f"benchbench: error: the Dask scheduler at tcp://127.0.0.1:{silent.port} accepted the "
                            "connection but did not answer within 10 s (is it a Dask scheduler, and does it speak "
                            "tcp://?)"], err[-1500:]
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err[-1500:]
    # within the 10 s timeout of the first connection (and ~15 s of starting, less the interpreter's start-up)
    assert silent.accepted and ended - silent.accepted[0] < 12.5, ended - silent.accepted[0]
    assert ended - started < 25
    assert not any(tmp_path.iterdir())


def test_ctrl_c_while_connecting_ends_at_once(silent, tmp_path):
    proc = _benchbench("run", "--model", TINY, *FAST, "--out", str(tmp_path), "--scheduler",
                       f"tcp://127.0.0.1:{silent.port}", "--connect-timeout", "60")
    wait_for(lambda: silent.accepted, proc, timeout=60)
    time.sleep(0.5)  # inside Dask's handshake, which has no timeout of its own
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 5, time.monotonic() - sent
    assert proc.returncode == 130, err[-1500:]
    assert "Traceback" not in err and "interrupted while connecting" in err, err[-1500:]
    assert not any(tmp_path.iterdir())


# -- a TLS cluster -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """Certificates of the cluster's CA (scheduler, worker, client) and of another CA (rogue), a TLS scheduler
    and one measuring worker with its own empty cache, all on 127.0.0.1."""
    if not Path(OPENSSL).exists():
        pytest.skip(f"openssl is not installed ({OPENSSL}): the TLS tests make their certificates with it")
    pytest.importorskip("distributed", reason="the cluster extra (distributed) is not installed")
    root = tmp_path_factory.mktemp("tls")
    certs = make_certs(root / "pki", ["scheduler", "worker", "client"])
    rogue = make_certs(root / "rogue-pki", ["rogue"], ca_name="rogue-ca")
    cluster = Cluster(root, certs)
    cluster.scheduler()
    cluster.worker("w", "measure=1")
    client = cluster.client(1)  # joined (the client itself holds the cluster's certificate)
    client.close()
    yield cluster, certs, rogue
    cluster.stop()
    assert all(p.poll() is not None for p in cluster.procs.values())


@pytest.fixture
def coordinator(tmp_path, monkeypatch, cache_dir):
    monkeypatch.setenv("BENCHBENCH_LOCK", str(tmp_path / "coordinator.lock"))
    return tmp_path


def _cells(folder: Path) -> list[dict]:
    (doc,) = [json.loads(p.read_text()) for p in folder.glob("*/results.json")]
    return doc["cells"]


def test_tls_run_measures_with_the_certificate_and_is_refused_without(tls, coordinator, capsys):
    cluster, certs, rogue = tls
    address = cluster.address
    assert address.startswith("tls://127.0.0.1:")
    out = coordinator / "ok"
    rc = main(["run", "--model", TINY, *FAST, "--out", str(out), "--scheduler", address,
               *certs.benchbench_flags("client")])
    err = capsys.readouterr().err
    assert rc == 0, err[-1500:]
    assert f"1 measuring workers at {address} over TLS" in err
    (cell,) = _cells(out)
    assert cell["status"] == "ok" and cell["host"]["worker"].startswith("tls://127.0.0.1:")

    plain = address.replace("tls://", "tcp://")
    refused = [([address], "needs this machine's certificate: give --tls-ca-file, --tls-cert, --tls-key"),
               ([plain], "closed the connection during Dask's handshake (a TLS scheduler?"),
               ([address, *rogue.benchbench_flags("rogue")], "its certificate does not verify against --tls-ca-file"),
               ([address, *rogue.benchbench_flags("rogue", ca=certs.ca)],
                "refused this machine's certificate")]  # with the server's alert, or without: it may lose the race
    for (where, *flags), words in refused:
        folder = coordinator / f"refused-{len(flags)}-{where[:3]}"
        started = time.monotonic()
        rc = main(["run", "--model", TINY, *FAST, "--out", str(folder), "--scheduler", where, *flags])
        err = capsys.readouterr().err
        assert rc == 2, (where, flags, err[-1500:])
        assert len(_errors(err)) == 1 and words in _errors(err)[0], (where, flags, err[-1500:])
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err[-1500:]
        assert time.monotonic() - started < 10
        assert not folder.exists() or not any(folder.iterdir())  # nothing measured, no run folder


def test_the_doctor_takes_the_same_tls_options(tls, capsys):
    """``python -m benchbench.measure.cluster``: refused without the certificate, and over TLS runs
    ``benchbench doctor`` on the measuring worker."""
    from benchbench.measure.cluster import main as cluster_main

    cluster, certs, _ = tls
    assert cluster_main([cluster.address]) == 2
    assert _errors(capsys.readouterr().err)[0].endswith("give --tls-ca-file, --tls-cert, --tls-key (see the "
                                                         "README's Many machines)")
    proc = subprocess.run(module_command("benchbench.measure.cluster", cluster.address,
                                         *certs.benchbench_flags("client")), capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr[-1500:]  # 1: the A/A interval on this busy machine excluded 1.00
    assert "over TLS" in proc.stderr and f"== {next(iter(_worker_addresses(cluster, certs)))} on " in proc.stdout


def _worker_addresses(cluster, certs) -> list[str]:
    client = cluster.client(1)
    try:
        return sorted(client.scheduler_info(n_workers=-1)["workers"])
    finally:
        client.close()


def test_a_model_file_measures_on_a_tls_worker_with_its_own_cache(tls, coordinator, tmp_path):
    """A user's .onnx file, made here by torch.onnx.export, travels with its build to a worker whose cache has
    never seen it, is checked there by its hash and measured."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx", reason="onnx is not installed")
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    cluster, certs, _ = tls

    class Small(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            return torch.relu(self.conv(x)).mean((2, 3))

    torch.manual_seed(0)
    path = tmp_path / "small.onnx"
    torch.onnx.export(Small().eval(), (torch.zeros(1, 3, 8, 8),), str(path), dynamo=False, input_names=["image"],
                      output_names=["out"], opset_version=17)
    worker_cache = cluster.root / "w" / "cache"
    assert not list(worker_cache.glob("file-small-*"))
    out = tmp_path / "runs"
    proc = subprocess.run(module_command("benchbench", "run", "--model", str(path), "--backend", "ort",
                           "--quick", "--min-time", "0.05", "--max-time", "0.3", "--roofline", "off", "--threads",
                           "1", "--out", str(out), "--scheduler", cluster.address, *certs.benchbench_flags("client")),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (cell,) = _cells(out)
    assert cell["status"] == "ok" and cell["host"]["worker"].startswith("tls://"), cell.get("reason")
    (build,) = worker_cache.glob("file-small-*")
    shipped = build / "source" / "small.onnx"
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()


def test_ctrl_c_while_waiting_for_groups_ends_promptly(tls, coordinator):
    """Last in this module: the group it interrupts goes on measuring on the worker to its end."""
    cluster, certs, _ = tls
    out = coordinator / "runs"
    proc = _benchbench("run", "--model", TINY, *NULL, "--min-time", "4", "--max-time", "6", "--out", str(out),
                       "--scheduler", cluster.address, *certs.benchbench_flags("client"))
    client = cluster.client(1)
    try:
        wait_for(lambda: any(client.processing().values()), proc, timeout=120)  # the group is on the worker
    finally:
        client.close()
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - sent < 10, time.monotonic() - sent
    assert proc.returncode == 130, err[-1500:]
    assert "Traceback" not in err and not _errors(err), err[-1500:]
    assert "interrupted: the cells finished so far are saved" in err
    (folder,) = out.iterdir()
    assert (folder / "results.json").exists()
