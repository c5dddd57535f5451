"""Per-operator profiles: one table for every backend, measured apart from the timed samples.

A profiler slows the very kernels it times (ORT writes an event per node, OpenVINO's performance counters
need a separate compile, torch.profiler wraps every op), so no profile is ever taken while a sample is.
During a sweep the cell's own measuring worker takes it (``Finish.profile_runs``), once every timed block
of its comparison group is done and its memory has been read: the runtime and the model are loaded already,
which made the reference's profiling 2 s per cell cheaper than a worker of its own. A cell measured earlier
without one (a resumed run) is profiled afterwards in a worker of its own (a ``profile`` job:
:func:`profile_run`). Either way the latency samples never see a profiler.

A runner offers ``profile_ops(runs)``, returning its backend's raw view::

    {"source": "...", "ops": [{"name", "type", "time_ms" (median per inference, or None), ...}],
     "run_ms": [wall time of each profiled inference], "note": "..."}

:func:`summarize` turns it into the stored profile (``cell.metrics["profile"]``): each op's share of
the per-op sum, totals by op type, and the per-op sum against the cell's end-to-end median, so the
time no operator accounts for (framework overhead, copies, threads waking up) is visible.
``profile.md`` next to the run's ``results.json`` is the readable view of those records.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from pathlib import Path

from tabulate import tabulate

__all__ = ["PROFILE_RUNS", "summarize", "rebase", "profile_cell", "profile_run", "profile_table", "write_profiles"]

PROFILE_RUNS = 10  # profiled inferences per op; an op's time is its median over them


def summarize(raw: dict, e2e_median_ms: float | None) -> dict:
    """The stored profile: ops with shares, totals by type, and what the per-op sum leaves unaccounted.
    A failed profile (``raw`` with a ``status`` other than ok) is stored as its status and reason."""
    took = {"took_s": raw["took_s"]} if "took_s" in raw else {}  # profiled in the measuring worker: its seconds
    if raw.get("status", "ok") != "ok":
        return {"status": raw["status"], "reason": raw.get("reason"), **took}
    ops = [dict(o) for o in raw.get("ops", [])]
    timed = bool(ops) and all(o.get("time_ms") is not None for o in ops)
    op_sum = sum(o["time_ms"] for o in ops) if timed else None
    by_type: dict[str, dict] = {}
    for o in ops:
        entry = by_type.setdefault(o["type"], {"count": 0, "time_ms": 0.0 if timed else None})
        entry["count"] += 1
        if timed:
            o["share"] = o["time_ms"] / op_sum if op_sum else 0.0
            entry["time_ms"] += o["time_ms"]
    for entry in by_type.values():
        entry["share"] = entry["time_ms"] / op_sum if timed and op_sum else None
    order = (lambda kv: -kv[1]["time_ms"]) if timed else (lambda kv: -kv[1]["count"])
    run_ms = raw.get("run_ms") or []
    profiled = statistics.median(run_ms) if run_ms else None
    return {
        "status": "ok",
        "source": raw.get("source", ""),
        "runs": len(run_ms) or None,
        "timed": timed,
        "op_count": len(ops),
        "ops": ops,  # execution order
        "by_type": dict(sorted(by_type.items(), key=order)),
        "op_sum_ms": op_sum,
        **_accounting(e2e_median_ms, op_sum if timed else None),
        "profiled_run_median_ms": profiled,  # wall time of an inference with the profiler on
        # the same accounting inside the profiled runs, where the profiler's own cost is in both terms
        "profiled_unaccounted_ms": profiled - op_sum if timed and profiled else None,
        "note": raw.get("note", ""),
        **took,
    }


def _accounting(e2e_median_ms: float | None, op_sum: float | None) -> dict:
    """The end-to-end median (from the cell's own, unprofiled samples) and the time the per-op sum leaves
    unaccounted (None without per-op times or a median)."""
    known = op_sum is not None and bool(e2e_median_ms)
    return {"e2e_median_ms": e2e_median_ms,
            "unaccounted_ms": e2e_median_ms - op_sum if known else None,
            "unaccounted_share": (e2e_median_ms - op_sum) / e2e_median_ms if known else None}


def rebase(profile: dict, e2e_median_ms: float | None) -> dict:
    """A stored profile against the cell's current end-to-end median (it moves as later rounds come in)."""
    if profile.get("status") != "ok" or not e2e_median_ms:
        return profile
    return {**profile, **_accounting(e2e_median_ms, profile["op_sum_ms"] if profile.get("timed") else None)}


# -- parent side ---------------------------------------------------------------------------------


def profile_cell(cell, config, runs: int = PROFILE_RUNS) -> dict:
    """Profile one measured cell in a fresh worker; returns the record stored as ``metrics["profile"]``."""
    from benchbench.build.builds import Builds
    from benchbench.processes.manager import run_job
    from benchbench.processes.protocol import ProfileJob
    from benchbench.runners import get_runner

    spec = cell.spec
    builds = Builds(config, [spec])
    try:
        build = builds.ensure(spec)  # cached by the measuring sweep
        if build["status"] != "ok":
            return {"status": build["status"], "reason": build.get("reason")}
        artifact, _, unusable = builds.artifact_for(get_runner(spec.backend), spec)
        if unusable:
            return {"status": "unsupported", "reason": unusable}
        job = ProfileJob(spec, artifact, build["input_path"], runs, config.warmup_min_count)
        outcome, raw = run_job(job, config.cell_timeout_s, spec.threads)
    finally:
        builds.close()
    if outcome != "ok":
        return {"status": outcome, "reason": raw["reason"]}
    return summarize(raw, cell.median_ms)


# How often profiling writes results.json: a reference-sized file (600 cells with their samples) takes about 2 s
# to write here, and writing it after each of 300 profiled cells cost the reference about 10 of its 22 minutes
# of profiling. A kill loses at most this much profiling (never a latency: those are in the journal).
SAVE_EVERY_S = 30.0


def profile_run(run, config, runs: int = PROFILE_RUNS,
                progress: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True),
                select: Callable | None = None, save_every_s: float = SAVE_EVERY_S):
    """Profile every ok cell of ``run`` (after its sweep), or those whose spec ``select(spec)`` accepts, writing
    the run at most every ``save_every_s`` seconds and once at the end. A cell profiled ok already (a resumed run's)
    is not profiled again."""
    import time

    cells = [c for c in run.cells if c.ok and (select is None or select(c.spec))
             and (c.metrics.get("profile") or {}).get("status") != "ok"]
    last_save = time.monotonic()
    for i, cell in enumerate(cells, 1):
        cell.metrics["profile"] = profile_cell(cell, config, runs)
        if i == len(cells) or time.monotonic() - last_save >= save_every_s:
            run.save()
            last_save = time.monotonic()
        p = cell.metrics["profile"]
        if p["status"] != "ok":
            msg = f"{p['status']}: {p.get('reason')}"
        elif p["timed"]:
            msg = f"{p['op_count']} ops, per-op sum {p['op_sum_ms']:.3f} ms of {_ms(p['e2e_median_ms'])} end-to-end"
        else:
            msg = f"{p['op_count']} ops, no per-op times ({p['source']})"
        progress(f"[profile {i}/{len(cells)}] {cell.spec.label()}: {msg}")
    return run


# -- views ---------------------------------------------------------------------------------------


def _ms(v) -> str:
    return "—" if v is None else f"{v:.3f}"


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def profile_table(cell, top: int | None = 25, tablefmt: str = "simple") -> str:
    """The per-op table, the by-type table and the accounting for one cell's stored profile."""
    p = cell.metrics.get("profile")
    head = f"{cell.spec.label()}"
    if not p:
        return f"{head}: not profiled"
    if p["status"] != "ok":
        return f"{head}: profile {p['status']}: {p.get('reason')}"
    lines = [f"{head} — {p['source']}" + (f", median of {p['runs']} profiled runs" if p.get("runs") else "")]
    ops = p["ops"]
    shown = sorted(ops, key=lambda o: -o["time_ms"]) if p["timed"] else ops
    more = len(shown) - top if top and len(shown) > top else 0
    shown = shown[:top] if more else shown
    body = [[o["name"][-60:], o["type"], _ms(o.get("time_ms")), _pct(o.get("share"))] for o in shown]
    lines += ["", tabulate(body, ["op", "type", "ms", "share"], tablefmt=tablefmt, disable_numparse=True)]
    if more:
        lines.append(f"... {more} more ops (slowest {top} shown; all are in results.json)")
    by_type = [[t, v["count"], _ms(v["time_ms"]), _pct(v["share"])] for t, v in p["by_type"].items()]
    lines += ["", tabulate(by_type, ["type", "count", "ms", "share"], tablefmt=tablefmt, disable_numparse=True), ""]
    if p["timed"]:
        lines.append(f"per-op sum {_ms(p['op_sum_ms'])} ms ({p['op_count']} ops); end-to-end median "
                     f"{_ms(p['e2e_median_ms'])} ms (unprofiled samples); unaccounted {_ms(p['unaccounted_ms'])} ms "
                     f"({_pct(p['unaccounted_share'])})")
        if p.get("profiled_run_median_ms") is not None:
            lines.append(f"with the profiler on: an inference took {_ms(p['profiled_run_median_ms'])} ms, "
                         f"unaccounted {_ms(p.get('profiled_unaccounted_ms'))} ms")
    if p.get("note"):
        lines.append(f"note: {p['note']}")
    return "\n".join(lines)


def write_profiles(run, path: Path, top: int | None = None) -> Path:
    """profile.md: every profiled cell's tables (all ops), next to the run's results.json."""
    parts = ["# Per-operator profiles", "",
             "An op's time is its median per inference over the profiled runs, taken in the cell's worker after "
             "its timed blocks (or in a worker of its own afterwards). share = share of the per-op sum. "
             "unaccounted = end-to-end median (unprofiled) minus the per-op sum: framework overhead, copies, "
             "thread wake-ups, and profiler bias.", ""]
    for cell in run.cells:
        if cell.metrics.get("profile"):
            parts += [f"## {cell.spec.label()}", "", profile_table(cell, top=top, tablefmt="github"), ""]
    from benchbench.core.atomic import write_atomic

    return write_atomic(path, "\n".join(parts))
