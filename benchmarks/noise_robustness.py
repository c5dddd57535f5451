"""Noise robustness: the README's main command, 5 times, while a background load switches on and off.

1. On the quiet machine: ``benchbench run --model vanillanet --backend ort`` (vanillanet_5, train and
   deploy in lockstep) gives the reference speedup and its interval.
2. A load generator (one process per ``--load-procs``, each burning a CPU in random phases of
   0.2–2 s on, 0.2–2 s off; bounded by time and ended by this script) starts.
3. The same command runs ``--repeats`` times back to back, with lockstep (the default) and, for contrast,
   with ``--lockstep off`` (each form measured alone, one after the other).

Printed per run: the speedup with its 95% interval, and whether the interval holds the quiet speedup.
Goals: every lockstep speedup within ±5% of their median; every interval holds the quiet value.

    python benchmarks/noise_robustness.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchbench.processes.manager import module_command
from benchbench.results.load import load_run
from benchbench.results.views import speedups

LOAD = r"""
import random, sys, time
end = time.monotonic() + float(sys.argv[1])
rng = random.Random(int(sys.argv[2]))
while time.monotonic() < end:
    on = time.monotonic() + rng.uniform(0.2, 2.0)
    while time.monotonic() < on:
        pass
    time.sleep(rng.uniform(0.2, 2.0))
"""


def start_load(procs: int) -> list[subprocess.Popen]:
    """``procs`` background processes, each burning a CPU in random phases (LOAD); each ends by itself within
    an hour even if the caller is killed. End them with :func:`stop_load`."""
    return [subprocess.Popen([sys.executable, "-c", LOAD, str(60 * 60), str(random.randrange(1 << 30))],
                             start_new_session=True) for _ in range(procs)]


def stop_load(loads: list[subprocess.Popen]) -> None:
    for p in loads:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def run_once(args, out: Path, lockstep: str) -> dict:
    cmd = module_command("benchbench", "run", "--model", args.model, "--backend", args.backend, "--out", str(out),
                         "--roofline", "off", "--lockstep", lockstep, *args.extra)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"benchbench run failed ({proc.returncode}): {proc.stderr[-800:]}")
    run = load_run(sorted(out.glob("*/results.json"), key=lambda p: p.stat().st_mtime)[-1])
    est = next(iter(speedups(run).values()))
    waits = [c.stats.get("wait_share") or 0 for c in run.cells]
    return {"speedup": est.value, "low": est.low, "high": est.high, "rule": est.rule,
            "wait_share": max(waits), "seconds": time.perf_counter() - t0,
            "medians_ms": [c.median_ms for c in run.cells]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vanillanet")
    ap.add_argument("--backend", default="ort")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--load-procs", type=int, default=1, help="background processes burning a CPU on and off")
    ap.add_argument("--no-sequential", action="store_true", help="skip the --lockstep off contrast")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("extra", nargs="*", help="more `benchbench run` arguments (after --)")
    args = ap.parse_args(argv)
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="bb-noise-") as tmp:
        out = Path(tmp)
        quiet = run_once(args, out / "quiet", "auto")
        figures["quiet"] = quiet
        print(f"quiet machine: speedup {quiet['speedup']:.3f} [{quiet['low']:.3f}, {quiet['high']:.3f}], "
              f"waited {100 * quiet['wait_share']:.0f}%", flush=True)
        modes = ["auto"] + ([] if args.no_sequential else ["off"])
        loads = start_load(args.load_procs)
        try:
            for mode in modes:
                figures[mode] = []
                for i in range(args.repeats):
                    r = run_once(args, out / f"{mode}{i}", mode)
                    r["holds_quiet"] = r["low"] <= quiet["speedup"] <= r["high"]
                    figures[mode].append(r)
                    print(f"under load, lockstep {mode:4s} run {i + 1}: speedup {r['speedup']:.3f} "
                          f"[{r['low']:.3f}, {r['high']:.3f}] ({'holds' if r['holds_quiet'] else 'MISSES'} the quiet "
                          f"{quiet['speedup']:.3f}); waited up to {100 * r['wait_share']:.0f}%; {r['rule']}", flush=True)
        finally:
            stop_load(loads)
    for mode in modes:
        values = [r["speedup"] for r in figures[mode]]
        med = statistics.median(values)
        worst = max(abs(v / med - 1) for v in values)
        held = sum(r["holds_quiet"] for r in figures[mode])
        print(f"\nlockstep {mode}: speedups {', '.join(f'{v:.3f}' for v in values)}; median {med:.3f}; "
              f"max deviation from the median {100 * worst:.1f}% (goal <= 5%); intervals holding the quiet value: "
              f"{held}/{len(values)}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
