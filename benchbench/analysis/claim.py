"""``benchbench claim``: turn result files into evidence for or against "fragmentation matters more
than FLOPs", per backend. Every verdict is computed from the data; nothing here assumes the answer.
"""

from __future__ import annotations

from benchbench.results.load import SchemaError, model_kind

from . import correlate, kernels, latency_models
from . import verdict as verdict_model
from .guidelines import guideline_results
from .pairs import aa_control, pair_records, within_pair_regression
from .verdict_text import verdict_sentence

__all__ = ["analyze", "check_claimable", "zoo_summary"]


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
        "zoo": zoo_summary(rows),
        "pairs": pairs,
        "time_share_cells": {b: v["cells"] for b, v in shares.items()},
        "per_backend": per_backend,
        "family_ratios": correlate.family_ratios(rows),
        "guidelines": guideline_results(_guideline_cells(runs)),
    }


def zoo_summary(rows: list[dict]) -> dict:
    """What the zoo's cells span, counted from them: models, families, and the range of MACs (largest over
    smallest) over deploy forms and over both forms."""
    zoo = [r for r in rows if r.get("zoo", True)]
    macs = {(r["model"], r["variant"]): r["macs"] for r in zoo if isinstance(r.get("macs"), (int, float)) and r["macs"] > 0}

    def span(values) -> float | None:
        values = list(values)
        return max(values) / min(values) if len(values) > 1 else None

    return {"models": len({r["model"] for r in zoo}), "families": len({r["family"] for r in zoo}),
            "backends": len({r["backend"] for r in zoo}), "variants": sorted({r["variant"] for r in zoo}),
            "macs_range_deploy": span(v for (_, variant), v in macs.items() if variant == "deploy"),
            "macs_range_both": span(macs.values())}


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
