"""Views of a run: the terminal table, the CSV and the Markdown report. They compute nothing new."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from tabulate import tabulate

from .result import CellResult, RunResult

__all__ = ["rows", "terminal_table", "markdown_report", "write_csv", "write_reports", "speedups"]


def _fmt(value, spec: str = ".3f", empty: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return empty
    return format(value, spec)


def speedups(run: RunResult) -> dict[tuple, float]:
    """Deploy speedup per cell key without the variant: train median / deploy median (>1: deploy faster)."""
    medians: dict[tuple, dict[str, float]] = {}
    for c in run.cells:
        if c.ok:
            k = c.spec.key()
            medians.setdefault(k[:1] + k[2:], {})[c.spec.variant] = c.median_ms
    return {k: v["train"] / v["deploy"] for k, v in medians.items() if "train" in v and "deploy" in v}


def _parity_text(cell: CellResult) -> str:
    p = cell.parity
    if not p.get("checked"):
        return "n/a"
    if "max_rel_err" not in p:
        return "FAIL: " + p.get("reason", "")
    return ("ok " if p["passed"] else "FAIL ") + f"{p['max_rel_err']:.1e}"


def rows(run: RunResult) -> list[dict]:
    """One flat dict per cell: the CSV's rows, and the tables' source."""
    sp = speedups(run)
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
            "speedup": sp.get(k[:1] + k[2:]) if c.spec.variant == "deploy" and c.ok else None,
            "init_ms": c.timing.get("init_ms"),
            "first_ms": c.timing.get("first_ms"),
            "params": m.get("params"),
            "flops": m.get("flops"),
            "macs": m.get("macs"),
            "load_mib": c.memory.get("load_mib"),
            "load_peak_mib": c.memory.get("load_peak_mib"),
            "infer_peak_mib": c.memory.get("infer_peak_mib"),
            "executed_ops": ops.get("count"),
            "artifact_bytes": c.artifact.get("bytes"),
            "parity_passed": c.parity.get("passed"),
            "parity_max_rel_err": c.parity.get("max_rel_err"),
            "parity_cosine": c.parity.get("cosine"),
            **{f"metric_{k2}": v for k2, v in sorted(c.metrics.items()) if not isinstance(v, (dict, list))},
        })
    return out


def _table(run: RunResult) -> tuple[list[str], list[list[str]]]:
    headers = ["model", "backend", "variant", "status", "median ms", "95% CI ms", "p90 ms", "speedup",
               "params M", "GFLOPs", "ops run", "parity"]
    body = []
    for r, c in zip(rows(run), run.cells):
        if c.ok:
            ci = f"{r['ci_low_ms']:.3f}–{r['ci_high_ms']:.3f}"
            median = _fmt(r["median_ms"]) + (" ~" if r["noisy"] else "")
            status = "ok"
        else:
            ci, median, status = "", "", c.status
        body.append([
            r["model"], r["backend"], r["variant"], status, median, ci, _fmt(r["p90_ms"]),
            _fmt(r["speedup"], ".2f") + ("x" if r["speedup"] else ""),
            _fmt(r["params"] / 1e6 if r["params"] else None, ".2f"),
            _fmt(r["flops"] / 1e9 if r["flops"] else None, ".2f"),
            _fmt(r["executed_ops"], "d"),
            _parity_text(c) if c.ok else "",
        ])
    return headers, body


def _failures(run: RunResult) -> list[list[str]]:
    return [[c.spec.model, c.spec.backend, c.spec.variant, c.status, c.reason or ""] for c in run.cells if not c.ok]


def terminal_table(run: RunResult) -> str:
    headers, body = _table(run)
    text = tabulate(body, headers, tablefmt="simple", disable_numparse=True)
    notes = []
    if any(c.stats.get("noisy") for c in run.cells if c.ok):
        notes.append("~ noisy: the median's CI or the spread is wide; rerun on a quieter machine.")
    if any(r[3] != "ok" for r in body):
        notes.append("Reasons for non-ok cells are in the Markdown report and the JSON.")
    notes.append("speedup = train median / deploy median (>1: the deploy form is faster).")
    return text + "\n" + "\n".join(notes)


def markdown_report(run: RunResult, title: str = "benchbench run") -> str:
    meta = run.meta
    env = meta.get("environment", {})
    cpu = env.get("cpu", {})
    headers, body = _table(run)
    lines = [f"# {title}", ""]
    lines += [
        f"- **When**: {env.get('time', '?')}, benchbench {meta.get('benchbench_version', '?')} "
        f"(commit {env.get('git_commit') or 'unknown'})",
        f"- **Machine**: {cpu.get('model', '?')}, {cpu.get('physical_cores', '?')} physical / "
        f"{cpu.get('logical_cores', '?')} logical cores, {env.get('memory_gib', '?')} GiB, {env.get('os', '?')}, "
        f"Python {env.get('python', '?')}",
        "- **Packages**: " + ", ".join(f"{k} {v}" for k, v in env.get("packages", {}).items()),
        f"- **Command**: `{' '.join(meta.get('argv', []))}`",
        f"- **Sampling**: {_settings_text(meta.get('settings', {}))}",
        "",
    ]
    bad_parity = [c for c in run.cells if c.ok and c.parity.get("checked") and not c.parity.get("passed")]
    if bad_parity:
        lines += ["> **PARITY FAILURES**: " + ", ".join(c.spec.label() for c in bad_parity)
                  + " disagree with PyTorch eager float32 beyond tolerance. Their latencies measure a "
                  "computation that is not the model's.", ""]
    lines += ["## Results", "", tabulate(body, headers, tablefmt="github", disable_numparse=True), ""]
    lines += ["Median latency per inference (ms) with its 95% confidence interval; `~` marks a noisy cell. "
              "speedup = train median / deploy median. GFLOPs per inference from `FlopCounterMode` "
              "(conv/linear/matmul, FLOPs = 2 x MACs). *ops run* = operators the backend executes after "
              "its own fusions. parity = max |out - ref| / max |ref| vs PyTorch eager float32.", ""]
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
    if detail:
        lines += ["## Details", "", tabulate(detail, ["model", "backend", "variant", "init ms", "first ms",
                                                      "load MiB", "infer peak MiB", "artifact MiB", "n", "mean ms",
                                                      "std ms", "p99 ms"], tablefmt="github", disable_numparse=True),
                  "", "init = session/interpreter creation (or model build for torch); first = first inference; "
                  "memory = resident memory of the worker over its baseline after importing the runtime.", ""]
    return "\n".join(lines)


def _settings_text(s: dict) -> str:
    if not s:
        return "?"
    return (f"warm-up ≥ {s.get('warmup_min_count')} runs and ≥ {s.get('warmup_min_s')} s; samples ≥ "
            f"{s.get('min_count')} and ≥ {s.get('min_s')} s, until the median's 95% CI is within "
            f"±{100 * s.get('target_ci', 0):.0f}% or {s.get('max_s')} s")


def write_csv(run: RunResult, path: Path) -> Path:
    data = rows(run)
    fields = list(dict.fromkeys(k for r in data for k in r))
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(data)
    return path


def write_reports(run: RunResult, directory: Path) -> dict[str, Path]:
    """results.csv and report.md next to the run's JSON."""
    directory.mkdir(parents=True, exist_ok=True)
    csv_path = write_csv(run, directory / "results.csv")
    md_path = directory / "report.md"
    md_path.write_text(markdown_report(run))
    return {"csv": csv_path, "markdown": md_path}
