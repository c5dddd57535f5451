"""lab.md: the lab fit per backend, its design's identification beside the zoo's, the transfer to the zoo,
the decomposition of the zoo's latency and the effect of doubling executed ops (``lab_analysis``'s output)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from .lab_design import MAX_ABS_CORR

__all__ = ["lab_markdown", "summary_rows", "SUMMARY_HEADERS"]


def _f(v, fmt="{:.3g}") -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt.format(v)


def _ci(pair, fmt="{:.3g}") -> str:
    return f"[{_f(pair[0], fmt)}, {_f(pair[1], fmt)}]" if pair else "—"


def lab_markdown(analysis: Mapping, level: int = 2) -> str:
    """The lab's section: per backend the fit with intervals, the design's identification beside the zoo's,
    transfer, decomposition and the per-doubling effects. ``level``: the section heading's (1 for lab.md itself,
    2 inside another report)."""
    intro = ("Designed nets (`kind=\"lab\"`) cross executed ops, traffic and FLOPs on each backend's executed graph; "
             "the fit is latency = Σ FLOPs / throughput(kind) + ops x per-op cost + Σ bytes / bandwidth(regime) + "
             f"fixed, with 95% bootstrap intervals over design points and rounds. Design bound: pairwise |r| <= "
             f"{analysis.get('bound_max_abs_corr', MAX_ABS_CORR)}.")
    lines = ["#" * level + " The fragmentation lab", "", intro, ""]
    b = analysis["backends"]
    if not b:
        return "\n".join(lines + ["(no backend has enough lab points to fit)"])
    lines += _summary_table(b)
    for name, r in b.items():
        lines += ["", "#" * (level + 1) + f" {name}", "", *_fit_lines(r), *_identification_lines(r), *_zoo_lines(r)]
    return "\n".join(lines) + "\n"


SUMMARY_HEADERS = ["backend", "points", "reading", "µs per op", "fixed µs", "design max abs r", "design cond.",
                   "zoo max abs r", "zoo cond.", "zoo within ±10% (additive / FLOPs only)", "zoo median error"]


def summary_rows(backends: Mapping) -> list[list[str]]:
    """One row per backend under ``SUMMARY_HEADERS``: the per-op cost, the design's and the zoo's
    identification, the transfer (lab.md, claim.md and claim.html share them)."""
    rows = []
    for name, r in backends.items():
        zi = r.get("zoo_identification") or {}
        rows.append([
            name, str(r["n_points"]), r["reading"].replace("_", "-"),
            f"{_f(r['per_op_us'])} {_ci([r['per_op_us_low'], r['per_op_us_high']])}", _f(r["fixed_us"]),
            _f(r["design_max_abs_corr"], "{:.2f}"), _f(r["design_condition_number"], "{:.2f}"),
            _f(zi.get("max_abs_corr"), "{:.2f}"), _f(zi.get("condition_number"), "{:.1f}"),
            f"{_f(r.get('zoo_within_10pct'), '{:.0%}')} / {_f(r.get('zoo_within_10pct_flops_only'), '{:.0%}')}",
            _f(r.get("zoo_median_ape"), "{:.0%}")])
    return rows


def _summary_table(backends: Mapping) -> list[str]:
    lines = ["| " + " | ".join(SUMMARY_HEADERS) + " |", "|---" * len(SUMMARY_HEADERS) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in summary_rows(backends)]


def _fit_lines(r: Mapping) -> list[str]:
    """A backend's fitted throughputs, bandwidths and per-op cost, each with its interval."""
    tp = ", ".join(f"{k} {_f(v)} {_ci(r['ci']['throughput_gflops'].get(k))}" for k, v in r["throughput_gflops"].items())
    bw = ", ".join(f"{g} {_f(v)} {_ci(r['ci']['bandwidth_gbs'].get(g))}" for g, v in r["bandwidth_gbs"].items())
    return [f"- throughput GFLOP/s: {tp or '—'}", f"- bandwidth GB/s: {bw or '—'}",
            f"- per-op cost {_f(r['per_op_us'])} µs {_ci([r['per_op_us_low'], r['per_op_us_high']])}"
            + (f" = {_f(100 * r['per_op_anchor_share'], '{:.2f}')}% of the anchor" if r.get("per_op_anchor_share") else "")
            + f"; the fit's median error on the lab points {_f(r['fit_median_ape'], '{:.1%}')} "
            f"(FLOPs only {_f(r['flops_only']['fit_median_ape'], '{:.1%}')})"]


def _identification_lines(r: Mapping) -> list[str]:
    """The design's log correlations and condition number, beside the zoo's."""
    lines = []
    d = r["design"]
    if d.get("corr"):
        lines.append("- design correlations (log): " + ", ".join(f"{k} {v:+.2f}" for k, v in d["corr"].items())
                     + f"; fit condition number {_f(d.get('fit_condition_number'), '{:.1f}')}")
    zi = r.get("zoo_identification")
    if zi and zi.get("corr"):
        extra = zi.get("within_family_ops_traffic_r_net_of_flops")
        lines.append("- zoo correlations (log): " + ", ".join(f"{k} {v:+.2f}" for k, v in zi["corr"].items())
                     + (f"; within families net of FLOPs, ops~traffic {extra:+.2f}" if extra is not None else "")
                     + f"; fit condition number {_f(zi.get('fit_condition_number'), '{:.1f}')}")
    return lines


def _zoo_lines(r: Mapping) -> list[str]:
    """What the lab fit says of the zoo: the transfer, the decomposition and the per-doubling effects."""
    lines = []
    for reading, t in (r.get("transfer") or {}).items():
        a, f = t["additive"], t["flops_only"]
        lines.append(f"- transfer to {a['n']} zoo cells ({reading.replace('_', '-')}): within ±10% "
                     f"{a['within_10pct']:.0%} {_ci(a['within_10pct_ci'], '{:.0%}')}, median error {a['median_ape']:.0%}; "
                     f"FLOPs only {f['within_10pct']:.0%}, {f['median_ape']:.0%}")
    dec = r.get("decomposition")
    if dec:
        vs = dec["variance_share"]
        lines.append("- zoo latency variance explained: " + ", ".join(f"{k} {_f(v, '{:.0%}')}" for k, v in vs.items())
                     + "; median share of a cell's predicted latency: "
                     + ", ".join(f"{k} {_f(v, '{:.0%}')}" for k, v in dec["median_share_of_prediction"].items()))
    od = r.get("ops_doubling") or {}
    parts = []
    for key, label in (("causal", "causal (lab additive, zoo cells)"), ("lab_loglinear", "lab log-linear"),
                       ("observational", "zoo observational (within families)")):
        e = od.get(key)
        if e:
            parts.append(f"{label} {e['effect']:+.1%} {_ci(e['ci95'], '{:+.1%}')}")
    if parts:
        lines.append("- latency per doubling of executed ops at fixed FLOPs and traffic: " + "; ".join(parts))
    return lines
