"""What a Dask cluster costs per cell: the same 24-cell sweep, locally and on a loopback cluster of two workers.

    python benchmarks/cluster_overhead.py            # needs benchbench[cluster]

The sweep is the ShuffleNet V2 guideline nets G1 and G2 (24 models, one form each; six lockstep groups of
four rows) on the null backend, so the figure is the harness's and the cluster's own cost, not a runtime's.
A first, untimed local run fills a fresh artifact cache; then both timed runs start from it. The cluster is
a scheduler and two workers on 127.0.0.1 (``--nthreads 1 --resources measure=1``), each with an empty cache
of its own, so the cluster's time includes shipping every build to its worker and verifying it there.

On a 2-core machine the two workers share the cores the local run had to itself: the cluster is not
expected to be faster. The per-cell difference is its overhead (connecting, task round trips, shipping).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchbench.processes.manager import module_command

ARGS = ["--model", "g1_*,g2_*", "--backend", "null", "--quick", "--max-time", "0.5", "--roofline", "off"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(out: Path, env: dict, *extra: str) -> tuple[float, list[dict]]:
    t0 = time.perf_counter()
    proc = subprocess.run(module_command("benchbench", "run", *ARGS, "--out", str(out), *extra), env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"benchbench run failed ({proc.returncode}): {proc.stderr[-800:]}")
    newest = max(out.iterdir(), key=lambda p: p.stat().st_mtime)
    return took, json.loads((newest / "results.json").read_text())["cells"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="print the temporary folder and keep it")
    args = parser.parse_args()
    dask = str(Path(sys.executable).parent / "dask")
    tmp = Path(tempfile.mkdtemp(prefix="bb-cluster-"))
    env = {**os.environ, "BENCHBENCH_CACHE": str(tmp / "cache"), "BENCHBENCH_LOCK": str(tmp / "lock")}
    _run(tmp / "warm", env)  # fills the coordinator's cache: builds are not what is timed
    local_s, local_cells = _run(tmp / "local", env)

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        for i in (1, 2):
            host = {"BENCHBENCH_CACHE": str(tmp / f"worker{i}" / "cache"), "BENCHBENCH_LOCK": str(tmp / f"lock{i}")}
            procs.append(subprocess.Popen(
                [dask, "worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny", "--no-dashboard",
                 "--resources", "measure=1"], env={**os.environ, **host},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        from distributed import Client

        with Client(address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=120)
        cluster_s, cluster_cells = _run(tmp / "cluster", env, "--scheduler", address)
    finally:
        for proc in reversed(procs):  # workers first
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    n = len(local_cells)
    assert len(cluster_cells) == n, (len(cluster_cells), n)
    ok = sum(c["status"] == "ok" for c in cluster_cells)
    workers = len({c["host"]["worker"] for c in cluster_cells if c.get("host")})
    busy = sum(c["host"]["ended_at"] - c["host"]["started_at"]
               for c in {c["host"]["started_at"]: c for c in cluster_cells if c.get("host")}.values())
    print(f"{n} cells, null backend, --quick --max-time 0.5, warm coordinator cache, {os.cpu_count()} CPUs")
    print(f"local:                  {local_s:7.1f} s  ({local_s / n:.2f} s per cell)")
    print(f"loopback cluster (2 w): {cluster_s:7.1f} s  ({cluster_s / n:.2f} s per cell; {ok} ok, measured on "
          f"{workers} workers, {busy:.1f} s of measuring groups in all)")
    print(f"cluster - local:        {cluster_s - local_s:+7.1f} s  ({(cluster_s - local_s) / n:+.2f} s per cell)")
    if args.keep:
        print(f"kept {tmp}")
    else:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
