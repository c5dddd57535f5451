"""Views of a run: the terminal table, the CSV and the Markdown report. They compute nothing new."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from tabulate import tabulate

from benchbench.core.atomic import write_atomic
from benchbench.core.text import one_line

from .estimates import SPEEDUP_PAIRS, RatioEstimate, cell_ratio
from .record import CellResult, RunResult

__all__ = ["rows", "terminal_table", "markdown_report", "write_csv", "write_reports", "speedups", "run_header",
           "ratio_text"]


def _fmt(value, spec: str = ".3f", empty: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return empty
    return format(value, spec)


_CANDIDATES = {b for _, b in SPEEDUP_PAIRS}
_INT8_NOTE = ("; for an int8 form, fidelity: SQNR in dB against the float deploy form (ok >= 15 dB), and its "
              "speedup = deploy / int8 latency (>1: int8 is faster)")


def speedups(run: RunResult) -> dict[tuple, RatioEstimate]:
    """Speedup per candidate cell's key (``spec.key()`` of the deploy, int8 or after cell): train / deploy
    latency (>1: deploy faster), deploy / int8, or before / after for a ``--vs`` pair of files, with its 95%
    interval: paired from the lockstep rounds when the two were measured together."""
    forms: dict[tuple, dict[str, CellResult]] = {}
    for c in run.cells:
        if c.ok:
            k = c.spec.key()
            forms.setdefault(k[:1] + k[2:], {})[c.spec.variant] = c
    out = {}
    for k, v in forms.items():
        for base, cand in SPEEDUP_PAIRS:
            if base in v and cand in v and (est := cell_ratio(v[base], v[cand])) is not None:
                out[v[cand].spec.key()] = est
    return out


def ratio_text(est: RatioEstimate | None, suffix: str = "x") -> str:
    """``1.65x [1.61, 1.70]``; ``(n.s.)`` when the interval holds 1, ``(unpaired)`` when measured apart."""
    if est is None:
        return ""
    text = f"{est.value:.2f}{suffix} [{est.low:.2f}, {est.high:.2f}]"
    if est.rule.startswith("unpaired"):
        text += " (unpaired)"
    elif est.excludes() == 0:
        text += " (n.s.)"
    return text


_MEMORY_COLUMNS = ("load_mib", "load_peak_mib", "infer_peak_mib")


def _parity_text(cell: CellResult) -> str:
    p = cell.parity
    if not p.get("checked"):
        return "n/a"
    if p.get("mode") == "fidelity" and "sqnr_db" in p:  # an int8 form: SQNR against the float deploy form
        return ("ok " if p["passed"] else "FAIL ") + f"{p['sqnr_db']:.1f} dB"
    if "max_rel_err" not in p:
        return "FAIL: " + p.get("reason", "")
    return ("ok " if p["passed"] else "FAIL ") + f"{p['max_rel_err']:.1e}"


def rows(run: RunResult, sp: dict[tuple, RatioEstimate] | None = None) -> list[dict]:
    """One flat dict per cell: the CSV's rows, and the tables' source (``sp``: ``speedups(run)``, if at hand)."""
    sp = speedups(run) if sp is None else sp
    out = []
    for c in run.cells:
        k = c.spec.key()
        s, m = c.stats, c.model
        ops = (c.backend.get("executed_ops") or {}) if c.backend else {}
        out.append({
            "model": c.spec.model,
            "family": m.get("family", ""),
            "variant": c.spec.variant,
            "backend": c.spec.backend,
            "batch": c.spec.batch,
            "input": "x".join(map(str, m.get("input_shape", [])[2:])) or "",
            "threads": c.spec.threads,
            "status": c.status,
            "reason": c.reason or "",
            "median_ms": s.get("median_ms"),
            "ci_low_ms": s.get("ci_low_ms"),
            "ci_high_ms": s.get("ci_high_ms"),
            "mean_ms": s.get("mean_ms"),
            "std_ms": s.get("std_ms"),
            "min_ms": s.get("min_ms"),
            "p90_ms": s.get("p90_ms"),
            "p99_ms": s.get("p99_ms"),
            "samples": s.get("count"),
            "noisy": s.get("noisy"),
            **_speedup_columns(sp.get(k) if c.spec.variant in _CANDIDATES and c.ok else None),
            "wait_share": s.get("wait_share"),
            "faults_per_inference": s.get("faults_per_inference"),
            "blocks": s.get("blocks"),
            "blocks_dropped": s.get("blocks_dropped"),
            "init_ms": c.timing.get("init_ms"),
            "first_ms": c.timing.get("first_ms"),
            "params": m.get("params"),
            "flops": m.get("flops"),
            "macs": m.get("macs"),
            "load_mib": c.memory.get("load_mib"),
            "load_peak_mib": c.memory.get("load_peak_mib"),
            "infer_peak_mib": c.memory.get("infer_peak_mib"),
            # Device memory and anything else a runner adds (e.g. torch-cuda's max allocated).
            **{f"memory_{k2}": v for k2, v in c.memory.items()
               if k2 not in _MEMORY_COLUMNS and isinstance(v, (int, float)) and not isinstance(v, bool)},
            "executed_ops": ops.get("count"),
            "artifact_bytes": c.artifact.get("bytes"),
            "parity_passed": c.parity.get("passed"),
            "parity_max_rel_err": c.parity.get("max_rel_err"),
            "parity_cosine": c.parity.get("cosine"),
            "fidelity_sqnr_db": c.parity.get("sqnr_db"),
            **{f"metric_{k2}": v for k2, v in sorted(c.metrics.items()) if not isinstance(v, (dict, list))},
        })
    return out


def _speedup_columns(est: RatioEstimate | None) -> dict:
    return {"speedup": est.value if est else None, "speedup_low": est.low if est else None,
            "speedup_high": est.high if est else None, "speedup_paired": (not est.rule.startswith("unpaired")) if est else None}


def _table(run: RunResult) -> tuple[list[str], list[list[str]]]:
    headers = ["model", "backend", "variant", "status", "median ms", "95% CI ms", "p90 ms", "waited",
               "speedup [95% CI]", "params M", "GFLOPs", "ops run", "parity"]
    sp = speedups(run)
    body = []
    for r, c in zip(rows(run, sp), run.cells):
        if c.ok:
            ci = f"{r['ci_low_ms']:.3f}–{r['ci_high_ms']:.3f}"
            median = _fmt(r["median_ms"]) + (" ~" if r["noisy"] else "")
            status = "ok !" if c.artifact.get("warnings") else "ok"
        else:
            ci, median, status = "", "", c.status
        k = c.spec.key()
        body.append([  # names come from files: control characters escaped, in the terminal and in report.md alike
            one_line(r["model"]), r["backend"], r["variant"], status, median, ci, _fmt(r["p90_ms"]),
            _fmt(100 * r["wait_share"] if r.get("wait_share") is not None else None, ".0f") + ("%" if r.get("wait_share") is not None else ""),
            ratio_text(sp.get(k)) if c.spec.variant in _CANDIDATES and c.ok else "",
            _fmt(r["params"] / 1e6 if r["params"] else None, ".2f"),
            _fmt(r["flops"] / 1e9 if r["flops"] else None, ".2f"),
            _fmt(r["executed_ops"], "d"),
            _parity_text(c) if c.ok else "",
        ])
    return headers, body


def _failures(run: RunResult) -> list[list[str]]:
    return [[one_line(c.spec.model), c.spec.backend, c.spec.variant, c.status, one_line(c.reason or "")]
            for c in run.cells if not c.ok]


def terminal_table(run: RunResult) -> str:
    headers, body = _table(run)
    text = tabulate(body, headers, tablefmt="simple", disable_numparse=True)
    notes = []
    bad = [c.spec.label() for c in run.cells if c.ok and c.outputs_failed]
    if bad:
        notes.append(f"PARITY FAILURES ({len(bad)}): {'; '.join(bad)}: outputs disagree with the reference (PyTorch "
                     "eager float32; for a model file, the first backend's outputs; for an int8 form, SQNR below "
                     "its fidelity threshold against the float form).")
    notes += _footer(run)
    if any(not c.ok for c in run.cells):
        notes.append("Reasons for non-ok cells are in the Markdown report and the JSON.")
    return text + "\n" + "\n".join(notes)


def _footer(run: RunResult) -> list[str]:
    """What the columns mean, and the run's conditions (threads, batch, input), for the table's reader."""
    notes = []
    ok = [c for c in run.cells if c.ok]
    if any(c.stats.get("noisy") for c in ok):
        notes.append("~ noisy: its threads waited for a CPU more than 10% of the time, or its interval is wider than "
                     "±5%; rerun on a quieter machine (benchbench doctor).")
    dropped = sum(c.stats.get("blocks_dropped") or 0 for c in ok)
    total = sum(c.stats.get("blocks") or 0 for c in ok)
    unfiltered = [c for c in ok if str(c.stats.get("filter", "")).startswith("filter not applied")]
    if total:
        notes.append(f"median and 95% CI over timed blocks; waited = share of the cell's runnable time spent waiting "
                     f"for a CPU (measured); {dropped} of {total} blocks left out as disturbed (> 10%)"
                     + (f"; in {len(unfiltered)} cells too few blocks were quiet to filter, so all were kept"
                        if unfiltered else "") + ".")
    specialised = [c.spec.label() for c in ok if c.artifact.get("warnings")]
    if specialised:
        notes.append(f"! the exporter specialised data-dependent control flow ({len(specialised)} cells: "
                     f"{'; '.join(specialised)}): the artifact computes the branch the seeded input took, and "
                     "parity checks only that input (artifact.warnings in the JSON).")
    notes.append("speedup = train / deploy latency (>1: the deploy form is faster)"
                 + ("; for a --vs pair of files, before / after latency (>1: the second file is faster)"
                    if any(c.spec.variant == "after" for c in ok) else "")
                 + ", with its 95% interval from the lockstep rounds; (n.s.): the interval holds 1, no direction is "
                   "claimed.")
    notes.append("ops run = operators the backend executes after its own fusions. parity = max |out - ref| / max |ref| "
                 "vs PyTorch eager float32 (ok <= 1e-3)" + (_INT8_NOTE if any(c.spec.variant == "int8" for c in ok) else "")
                 + ".")
    references = sorted({c.artifact.get("parity_reference") for c in ok if c.spec.source is not None} - {None})
    if references:
        notes.append("model files (no PyTorch model): parity is against the first backend in --backend order, on the "
                     f"same input (reference: {'; '.join(references)}); FLOPs/params are counted from the file's graph.")
    shapes = sorted({(c.spec.threads, c.spec.batch, "x".join(map(str, c.model.get("input_shape", [])[1:]))
                      if c.spec.source is None else ", ".join(f"{n}={'x'.join(map(str, d))}"
                                                              for n, d in c.spec.source.input_shapes))
                     for c in ok})
    if shapes:
        notes.append("threads / batch / input: " + "; ".join(f"{t} / {b} / {i}" for t, b, i in shapes))
    return notes


def run_header(meta: dict) -> list[str]:
    """Markdown bullets saying when, on what machine and with which versions and settings a run was measured."""
    env = meta.get("environment", {})
    cpu = env.get("cpu", {})
    lines = [
        f"- **When**: {env.get('time', '?')}, benchbench {meta.get('benchbench_version', '?')} "
        f"(commit {env.get('git_commit') or 'unknown'})",
        f"- **Machine**: {cpu.get('model', '?')}, {cpu.get('physical_cores', '?')} physical / "
        f"{cpu.get('logical_cores', '?')} logical cores, {env.get('memory_gib', '?')} GiB, {env.get('os', '?')}, "
        f"Python {env.get('python', '?')}",
        "- **Packages**: " + ", ".join(f"{k} {v}" for k, v in env.get("packages", {}).items()),
        f"- **Command**: `{' '.join(meta.get('argv', []))}`",
        f"- **Sampling**: {_settings_text(meta.get('settings', {}))}"
        + (f"; rounds: {meta['rounds']}" if meta.get("rounds") not in (None, 1) else ""),
    ]
    sweep = meta.get("sweep")
    if sweep:
        lines.append(f"- **Sweep time**: {sweep['wall_s'] / 60:.1f} min for {sweep['cells']} cells, of which "
                     f"{sweep['build_s'] / 60:.1f} min exporting ({sweep['builds_run']} builds not in the cache)")
    profile, claim = meta.get("profile"), meta.get("claim")
    if isinstance(profile, dict) and profile.get("wall_s") is not None:
        lines.append(f"- **Profiling time**: {profile['wall_s'] / 60:.1f} min for {profile.get('cells', '?')} cells")
    if isinstance(claim, dict) and claim.get("total_s") is not None:
        lines.append(f"- **Claim**: analysis {claim.get('analysis_s', 0) / 60:.1f} min; the whole command "
                     f"{claim['total_s'] / 60:.1f} min up to its analysis (calibration, sweep, profiling, views)")
    return lines


def markdown_report(run: RunResult, title: str = "benchbench run") -> str:
    headers, body = _table(run)
    lines = [f"# {title}", "", *run_header(run.meta), ""]
    bad_parity = [c for c in run.cells if c.ok and c.outputs_failed]
    float_bad = [c.spec.label() for c in bad_parity if c.parity.get("mode") != "fidelity"]
    int8_bad = [c.spec.label() for c in bad_parity if c.parity.get("mode") == "fidelity"]
    if float_bad:
        lines += ["> **PARITY FAILURES**: " + ", ".join(float_bad) + " disagree with PyTorch eager float32 (for a "
                  "model file, the first backend's outputs) beyond tolerance. Their latencies measure a computation "
                  "that is not the model's.", ""]
    if int8_bad:
        lines += ["> **FIDELITY FAILURES**: " + ", ".join(int8_bad) + ": the int8 form keeps less of the float "
                  "form's output than the fidelity threshold allows (SQNR against the float form, in the parity "
                  "column). Their latencies measure a model that no longer computes what the float one does.", ""]
    lines += ["## Results", "", tabulate(body, headers, tablefmt="github", disable_numparse=True), ""]
    lines += [*(f"- {note}" for note in _footer(run)),
              "- GFLOPs per inference from `FlopCounterMode` (conv/linear/matmul, FLOPs = 2 x MACs).", ""]
    failures = _failures(run)
    if failures:
        lines += ["## Cells that did not measure", "",
                  tabulate(failures, ["model", "backend", "variant", "status", "reason"], tablefmt="github"), ""]
    detail = []
    for r in rows(run):
        if r["status"] == "ok":
            detail.append([r["model"], r["backend"], r["variant"], _fmt(r["init_ms"], ".1f"), _fmt(r["first_ms"], ".2f"),
                           _fmt(r["load_mib"], ".1f"), _fmt(r["infer_peak_mib"], ".1f"),
                           _fmt(r["artifact_bytes"] / 2**20 if r["artifact_bytes"] else None, ".1f"),
                           r["samples"], _fmt(r["mean_ms"]), _fmt(r["std_ms"]), _fmt(r["p99_ms"])])
    lines += _metrics_section(run)
    if detail:
        lines += ["## Details", "", tabulate(detail, ["model", "backend", "variant", "init ms", "first ms",
                                                      "load MiB", "infer peak MiB", "artifact MiB", "n", "mean ms",
                                                      "std ms", "p99 ms"], tablefmt="github", disable_numparse=True),
                  "", "init = session/interpreter creation (for torch, loading the pickled eager model); first = first inference; "
                  "memory = resident memory of the worker over its baseline (runtime imported, input loaded): load = after "
                  "prepare and the first inference, infer peak = high-water mark while sampling (docs/metrics.md).", ""]
    return "\n".join(lines)


def _metrics_section(run: RunResult) -> list[str]:
    """Work, fragmentation and roofline per ok cell, with the run's calibration (docs/metrics.md)."""
    body = []
    for r, c in zip(rows(run), run.cells):
        if not c.ok:
            continue
        m = c.metrics

        def mib(v):
            return _fmt(v / 2**20 if v is not None else None, ".1f")

        body.append([r["model"], r["backend"], r["variant"], _fmt(r["params"] / 1e6 if r["params"] else None, ".2f"),
                     _fmt(r["flops"] / 1e9 if r["flops"] else None, ".3f"),
                     _fmt(m.get("element_ops") / 1e6 if m.get("element_ops") is not None else None, ".2f"),
                     _fmt(m.get("graph_ops"), "d"), _fmt(m.get("executed_ops"), "d"), _fmt(m.get("dag_width"), "d"),
                     _fmt(m.get("joins"), "d"), mib(m.get("mac_bytes")), _fmt(m.get("arithmetic_intensity"), ".1f"),
                     mib(m.get("artifact_bytes")), _fmt(r["load_mib"], ".1f"), _fmt(r["infer_peak_mib"], ".1f"),
                     _fmt(r["faults_per_inference"], ".0f"),
                     _fmt(m.get("achieved_gflops"), ".2f"),
                     _fmt(100 * m["peak_share"] if m.get("peak_share") is not None else None, ".0f"),
                     m.get("bound") or ""])
    if not body:
        return []
    headers = ["model", "backend", "variant", "params M", "GFLOPs", "M elem-ops", "graph ops", "ops run", "DAG width",
               "joins", "MAC MiB", "FLOP/B", "artifact MiB", "load MiB", "infer peak MiB", "faults/inf", "GFLOP/s",
               "% peak", "bound"]
    lines = ["## Metrics", "", tabulate(body, headers, tablefmt="github", disable_numparse=True), ""]
    lines += ["Per inference. GFLOPs: conv/linear/matmul, FLOPs = 2 x MACs; elem-ops: elementwise, normalization, "
              "pooling and reduction work counted apart; graph ops, DAG width (max antichain) and joins: the exported "
              "ONNX before backend fusions; ops run: after them; MAC: ShuffleNetV2 memory access cost (inputs + "
              "outputs + weights per op); FLOP/B = GFLOPs / MAC; faults/inf: page faults the process took per timed "
              "inference (memory the allocator gave back and took again); GFLOP/s = FLOPs / median latency; "
              "% peak and bound against the calibration below. Definitions: docs/metrics.md.", ""]
    cal = run.meta.get("roofline") or {}
    if cal:
        cal_rows = [[e.get("backend"), e.get("threads"), e.get("device"), _fmt(e.get("peak_gflops"), ".1f"),
                     ", ".join(f"{k} {_fmt(v.get('best_gflops'), '.1f')}" for k, v in e.get("kernels", {}).items()),
                     _fmt(e.get("bandwidth_gbs"), ".2f"), _fmt(e.get("ridge_flop_per_byte"), ".1f"),
                     _taken(e.get("measured_at")), _fmt(e.get("load_avg_1m"), ".1f"),
                     _share((e.get("machine") or {}).get("others_cpu_share")),
                     "cached" if e.get("cached") else "fresh"] for e in cal.values()]
        lines += ["Roofline calibration of this machine, with when it was taken and the machine's state then "
                  "(a cached one is reused for 24 h; `--roofline fresh` measures again):", "",
                  tabulate(cal_rows, ["backend", "threads", "device", "peak GFLOP/s", "kernels GFLOP/s",
                                      "bandwidth GB/s", "ridge FLOP/B", "taken (UTC)", "load avg then",
                                      "others' CPU then", "source"], tablefmt="github", disable_numparse=True),
                  ""]
    return lines


def _taken(ts) -> str:
    import datetime as dt

    if not isinstance(ts, (int, float)):
        return "?"
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


def _share(v) -> str:
    return f"{100 * v:.0f}%" if isinstance(v, (int, float)) else "?"


def _settings_text(s: dict) -> str:
    if not s:
        return "?"
    return (f"warm-up ≥ {s.get('warmup_min_count')} runs and ≥ {s.get('warmup_min_s')} s; blocks of "
            f"~{1000 * s.get('block_s', 0):.0f} ms in lockstep, ≥ {s.get('min_blocks')} rounds and ≥ {s.get('min_s')} s "
            f"per cell, until every 95% interval is within ±{100 * s.get('target_ci', 0):g}% or {s.get('max_s')} s "
            f"per cell")


def write_csv(run: RunResult, path: Path) -> Path:
    """results.csv, written by temp file and rename (``core.atomic``): never through a link planted there."""
    data = rows(run)
    fields = list(dict.fromkeys(k for r in data for k in r))
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(data)
    return write_atomic(path, buf.getvalue())


def write_reports(run: RunResult, directory: Path) -> dict[str, Path]:
    """results.csv and report.md next to the run's JSON (each written by temp file and rename)."""
    directory.mkdir(parents=True, exist_ok=True)
    csv_path = write_csv(run, directory / "results.csv")
    md_path = write_atomic(directory / "report.md", markdown_report(run))
    return {"csv": csv_path, "markdown": md_path}
