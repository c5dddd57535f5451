"""``benchbench claim``: turn result files into evidence for or against "fragmentation matters more
than FLOPs", per backend. Every verdict is computed from the data; nothing here assumes the answer.
"""

from __future__ import annotations

from benchbench.results.load import SchemaError, model_kind

from . import correlate, kernels, latency_models
from . import verdict as verdict_model
from .guidelines import guideline_results
from .pairs import aa_control, pair_records, within_pair_regression

__all__ = ["analyze", "check_claimable", "verdict_sentence", "pct_interval", "VERDICT_TEXT"]



def check_claimable(run) -> None:
    """Refuse a run the analysis cannot use: every measured cell needs its model's family and FLOPs.

    A result file may lack them (compare does not need them), but here a missing family or FLOPs would
    silently drop cells from the correlations, or put a zoo model among the guideline nets.
    """
    if not any(c.ok for c in run.cells):
        raise SchemaError(f"{run.path}: no cell measured ok; claim has nothing to analyze")
    for i, c in enumerate(run.cells):
        missing = [k for k in ("family", "flops") if c.model.get(k) in (None, "")]
        if c.ok and missing and c.spec.source is None:  # a model file without counts is left out, not refused
            raise SchemaError(f"{run.path}: cells[{i}] ({c.spec.label()}) has no model {' or '.join(missing)}; "
                              "claim needs the model metadata of every measured cell")


def _guideline_cells(runs) -> dict:
    cells = {}
    for run in runs:
        for c in run.cells:
            if c.ok and model_kind(c.model) == "guideline":
                # Train and deploy are the same network here: either measurement stands for the row.
                cells.setdefault((c.spec.model, correlate.target(c.spec)), c)
    return cells


def analyze(runs) -> dict:
    """Everything the claim report shows, as plain data (JSON-serializable)."""
    rows = correlate.observations(runs)
    pairs = pair_records(runs)
    profiled = kernels.profiled_cells(runs)
    shares = kernels.time_shares(profiled)
    kernel_loo = kernels.kernel_sum_loo(profiled)
    per_backend = {}
    for backend in sorted({r["backend"] for r in rows}):
        sub = [r for r in rows if r["backend"] == backend]
        loo = latency_models.loo_errors(sub)
        a = {
            "n": len(sub),
            "families": len({r["family"] for r in sub}),
            "correlations": correlate.correlations(sub),
            "partial": correlate.partial_correlations(sub),
            "forms": latency_models.error_summary(loo),
            "family_test": verdict_model.family_error_test(loo),
            "additive": latency_models.additive_fit(sub),
            "mixed": latency_models.mixed_model(sub),
            "effect": verdict_model.ops_effect(sub),
            "pairs": within_pair_regression([p for p in pairs if p["backend"] == backend]),
            "aa": aa_control([p for p in pairs if p["backend"] == backend]),
            "bands": correlate.band_correlations(sub),
            "time_shares": {k: v for k, v in shares.get(backend, {}).items() if k != "cells"} or None,
            "kernel_sum": _kernel_sum_summary(kernel_loo.get(backend), sub),
            # every held-out error, for the residual plot
            "held_out": {**loo, **({"kernel_sum": {k: kernel_loo[backend][k] for k in ("family", "error")}}
                                   if backend in kernel_loo else {})},
        }
        a["verdict_code"] = (a["effect"] or {}).get("verdict", "not enough data")
        a["verdict"] = verdict_sentence(backend, a)
        per_backend[backend] = a
    return {
        "observations": rows,
        "pairs": pairs,
        "time_share_cells": {b: v["cells"] for b, v in shares.items()},
        "per_backend": per_backend,
        "family_ratios": correlate.family_ratios(rows),
        "guidelines": guideline_results(_guideline_cells(runs)),
    }


def _kernel_sum_summary(loo: dict | None, rows: list[dict]) -> dict | None:
    """The kernel-sum predictor's held-out errors beside FLOPs only on the same cells (the profiled ones)."""
    if not loo or not loo["error"]:
        return None
    summary = latency_models.error_summary({"kernel_sum": loo})["kernel_sum"]
    out = {**summary, "sources": loo["sources"]}
    cells = {tuple(c) for c in loo["cells"]}
    same = [r for r in rows if (r["model"], r["variant"]) in cells]
    if same:
        flops = latency_models.error_summary(latency_models.loo_errors(same, forms=("flops",)))
        out["flops_same_cells"] = flops.get("flops")
    return out


VERDICT_TEXT = {
    "yes": "yes, more executed ops cost latency at equal FLOPs (fragmentation matters beyond FLOPs)",
    "equivalent": f"no, executed ops make no practical difference at equal FLOPs (equivalent within "
                  f"±{100 * verdict_model.EQUIVALENCE:.0f}% per doubling)",
    "no-opposite": "no, the opposite: more executed ops go with lower latency at equal FLOPs",
    "inconclusive": "inconclusive, the family-level interval holds both no effect and a practical one",
}


def pct_interval(v, ci, digits=0) -> str:
    """A relative change with its interval, in percent: ``+7.9% [+3.9, +12.1]``."""
    return f"{100 * v:+.{digits}f}% [{100 * ci[0]:+.{digits}f}, {100 * ci[1]:+.{digits}f}]"


def _agreement(a: dict) -> str:
    """Whether the other model forms point the same way as the verdict, each with its interval."""
    e, add, mixed, ft = a["effect"], a.get("additive"), a.get("mixed"), a.get("family_test")
    parts, intervals = [], []
    if add and add["ci"].get("overhead_us_per_op"):
        lo, hi = add["ci"]["overhead_us_per_op"]
        parts.append(f"additive model {add['overhead_us_per_op']:.1f} µs per executed op [{lo:.1f}, {hi:.1f}]")
        intervals.append((lo, hi))
    if mixed and "ops_doubling_effect" in mixed:
        parts.append("mixed model " + pct_interval(mixed["ops_doubling_effect"], mixed["ops_doubling_effect_ci"])
                     + " per doubling")
        intervals.append(tuple(mixed["ops_doubling_effect_ci"]))
    if ft and ft.get("p") is not None:
        parts.append(f"the additive model's held-out error beats FLOPs only in {ft['better']} of {ft['families']} "
                     f"families (Wilcoxon over families p = {ft['p']:.2g})")
    if not parts:
        return ""
    above = [lo > 0 for lo, _ in intervals]
    below = [hi < 0 for _, hi in intervals]
    if e["verdict"] == "yes":
        agree = ("agree" if all(above) else "point the same way without all clearing zero"
                 if not any(below) else "disagree")
    elif e["verdict"] == "no-opposite":
        agree = "agree" if all(below) else "disagree" if any(above) else "point the same way without all clearing zero"
    else:
        agree = "agree (no interval clear of zero)" if not any(above) and not any(below) else \
            "disagree: " + ("some find a cost per op" if any(above) else "some find the opposite")
    return f"The other model forms {agree}: " + "; ".join(parts)


def verdict_sentence(backend: str, a: dict) -> str:
    """The family-level verdict with its effect size, and whether the other model forms agree."""
    e = a.get("effect")
    if not e:
        return f"{backend}: not enough families to tell."
    text = (f"{backend}: {VERDICT_TEXT[e['verdict']]}: doubling the executed ops at equal FLOPs changes latency by "
            f"{pct_interval(e['effect'], e['effect_ci95'], 1)} (95%, {e['families']} families as the units, measurement "
            f"noise propagated; {100 * e['noise_stability']:.0f}% of noise redraws keep this verdict)")
    corr = {c["predictor"]: c for c in a.get("correlations", [])}
    if "flops" in corr and "executed_ops" in corr:
        text += (f". Across the zoo, Spearman ρ of latency with FLOPs is {corr['flops']['spearman']:.2f} and with "
                 f"executed ops {corr['executed_ops']['spearman']:.2f}")
    agreement = _agreement(a)
    return text + (". " + agreement if agreement else "") + "."
