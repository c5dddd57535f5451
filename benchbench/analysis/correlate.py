"""Does FLOPs or fragmentation explain latency? Rank correlations, partial correlations, and
leave-one-family-out latency models, per backend (scipy.stats and numpy least squares).

Every observation is one ``ok`` cell: a (model, variant) on a backend. Train and deploy forms are
different graphs of the same function, so both count.
"""

from __future__ import annotations

import math

import numpy as np

from benchbench.results.load import model_kind

from .regression import Z95

__all__ = ["PREDICTORS", "PREDICTOR_GRAPH", "target", "FRAGMENTATION", "BANDS", "observations", "correlations",
           "partial_correlations", "loo_family_models", "family_ratios", "band_correlations", "spearman_ci"]

# Predictor → (label, where to read it in a cell record).
PREDICTORS = {
    "flops": "FLOPs",
    "params": "params",
    "element_ops": "element-ops",
    "graph_ops": "graph ops",
    "executed_ops": "executed ops",
    "dag_width": "DAG width",
    "joins": "joins",
    "mac_bytes": "memory traffic",
}
# Which graph each predictor is counted on: the runtime's own, or the ONNX export (the same for every backend).
PREDICTOR_GRAPH = {
    "flops": "the PyTorch model (FlopCounterMode)",
    "params": "the PyTorch model",
    "element_ops": "the PyTorch model (elementwise, normalization, pooling ops)",
    "graph_ops": "the ONNX export",
    "executed_ops": "the runtime's own graph (ORT optimized graph, OpenVINO runtime model, TFLite interpreter "
                    "op list, torch dispatched aten ops)",
    "dag_width": "the ONNX export",
    "joins": "the ONNX export",
    "mac_bytes": "the ONNX export (bytes read and written per inference, ShuffleNetV2's MAC)",
}
# Iso-FLOPs bands in GMACs (deploy forms): efficient models, the ResNet-18 range, and the rest.
BANDS = ((0.0, 0.6, "≤ 0.6 GMACs"), (0.6, 2.0, "0.6–2 GMACs"), (2.0, math.inf, "> 2 GMACs"))
FRAGMENTATION = ("executed_ops", "graph_ops", "dag_width", "joins", "mac_bytes", "element_ops")
# The fragmentation latency model adds these to log FLOPs: the number of kernels the backend launches
# and the bytes they move are ShuffleNetV2's two named costs besides FLOPs.
MODEL_FEATURES = ("flops", "executed_ops", "mac_bytes")


def target_name(backend: str, variant: str | None = None, device: str | None = None) -> str:
    """What the analysis calls a backend: the backend, and the cluster device it ran on if any (``ort@pi4``), so
    that cells measured on different machines are never pooled; an int8 form's cells are their own target (``ort
    int8``), analysed beside the float ones and never pooled with them. The lab's fits use the same names."""
    name = f"{backend}@{device}" if device else backend
    return f"{name} int8" if variant == "int8" else name


def target(spec) -> str:
    """``target_name`` of a cell's ``CellSpec``."""
    return target_name(spec.backend, spec.variant, getattr(spec, "device", None))


def observations(runs, include_guidelines: bool = False) -> list[dict]:
    """Flat records of every ok cell: identity, median latency with CI, and every predictor."""
    rows = []
    for run in runs:
        for c in run.cells:
            if not c.ok or not c.median_ms:
                continue
            family = c.model.get("family", "")
            kind = model_kind(c.model)
            if kind in ("lab", "kernel") or (kind == "guideline" and not include_guidelines):  # the lab has its own analysis
                continue
            zoo = c.spec.source is None  # a user's model file is outside the zoo: used when it has the counts
            if not zoo and not c.model.get("flops"):
                continue
            rec = {
                "zoo": zoo,
                "model": c.spec.model, "family": family, "variant": c.spec.variant, "backend": target(c.spec),
                "threads": c.spec.threads, "median_ms": c.median_ms,
                "ci_low_ms": c.stats.get("ci_low_ms"), "ci_high_ms": c.stats.get("ci_high_ms"),
                "flops": c.model.get("flops"), "params": c.model.get("params"), "macs": c.model.get("macs"),
                "identical_forms": bool(c.model.get("identical_forms")),
            }
            for key in PREDICTORS:
                if key not in rec:
                    rec[key] = c.metrics.get(key)
            rows.append(rec)
    return rows


def _valid(rows, keys, positive: bool = False) -> list[dict]:
    """Rows where every key is a number (> 0 where a log is taken; zero joins are a real value)."""
    def ok(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and (v > 0 if positive else v >= 0)

    return [r for r in rows if all(ok(r.get(k)) for k in keys)]


def correlations(rows: list[dict]) -> list[dict]:
    """Spearman rho and Kendall tau (with p-values) of latency against each predictor."""
    from scipy.stats import kendalltau, spearmanr

    out = []
    for key, label in PREDICTORS.items():
        sub = _valid(rows, ("median_ms", key))
        if len(sub) < 5 or len({r[key] for r in sub}) < 2:
            continue
        lat = [r["median_ms"] for r in sub]
        x = [r[key] for r in sub]
        rho, p_rho = spearmanr(lat, x)
        tau, p_tau = kendalltau(lat, x)
        out.append({"predictor": key, "label": label, "n": len(sub), "spearman": float(rho),
                    "spearman_p": float(p_rho), "kendall": float(tau), "kendall_p": float(p_tau)})
    return out


def partial_correlations(rows: list[dict]) -> list[dict]:
    """Partial Spearman correlation of latency with each fragmentation metric, controlling for FLOPs.

    Ranks are residualized on the rank of FLOPs by least squares; the p-value is the t-test of a
    partial correlation with n - 3 degrees of freedom.
    """
    from scipy.stats import pearsonr, rankdata
    from scipy.stats import t as student_t

    out = []
    for key in FRAGMENTATION:
        sub = _valid(rows, ("median_ms", "flops", key))
        n = len(sub)
        if n < 6 or len({r[key] for r in sub}) < 2:
            continue
        lat, frag, flops = (rankdata([r[k] for r in sub]) for k in ("median_ms", key, "flops"))
        design = np.column_stack([np.ones(n), flops])

        def resid(y):
            coef, *_ = np.linalg.lstsq(design, y, rcond=None)
            return y - design @ coef

        r, _ = pearsonr(resid(lat), resid(frag))
        r = float(np.clip(r, -0.999999, 0.999999))
        t = r * math.sqrt((n - 3) / (1 - r * r))
        p = float(2 * student_t.sf(abs(t), n - 3))
        out.append({"predictor": key, "label": PREDICTORS[key], "n": n, "partial_spearman": r, "p": p})
    return out


def _fit_predict(train: list[dict], test: list[dict], keys: tuple[str, ...]) -> np.ndarray:
    def design(rs):
        return np.column_stack([np.ones(len(rs))] + [np.log([r[k] for r in rs]) for k in keys])

    y = np.log([r["median_ms"] for r in train])
    coef, *_ = np.linalg.lstsq(design(train), y, rcond=None)
    return np.exp(design(test) @ coef)


def loo_family_models(rows: list[dict]) -> dict | None:
    """Leave-one-family-out: a log-linear latency model on FLOPs alone vs FLOPs + fragmentation.

    Each family is predicted by models fitted on all other families, so a model cannot memorize a
    family's latency. Both models see the same observations (those with every feature). Returns the
    median absolute percentage error of each and the share predicted within ±10%.
    """
    sub = _valid(rows, ("median_ms",) + MODEL_FEATURES, positive=True)
    families = sorted({r["family"] for r in sub})
    if len(families) < 3 or len(sub) < len(MODEL_FEATURES) + 4:
        return None
    errors = {"flops_only": [], "fragmentation": []}
    for fam in families:
        test = [r for r in sub if r["family"] == fam]
        train = [r for r in sub if r["family"] != fam]
        if len(train) < len(MODEL_FEATURES) + 2:
            continue
        actual = np.array([r["median_ms"] for r in test])
        for name, keys in (("flops_only", ("flops",)), ("fragmentation", MODEL_FEATURES)):
            pred = _fit_predict(train, test, keys)
            errors[name].extend(np.abs(pred / actual - 1).tolist())
    out = {"n": len(errors["flops_only"]), "families": len(families), "features": list(MODEL_FEATURES)}
    for name, errs in errors.items():
        e = np.array(errs)
        out[name] = {"median_ape": float(np.median(e)), "within_10pct": float(np.mean(e <= 0.10))}
    # Paired test on the same held-out cells: is one model's error systematically smaller?
    from scipy.stats import wilcoxon

    diff = np.array(errors["fragmentation"]) - np.array(errors["flops_only"])
    out["wilcoxon_p"] = float(wilcoxon(diff).pvalue) if np.count_nonzero(diff) >= 6 else float("nan")
    return out


def family_ratios(rows: list[dict]) -> list[dict]:
    """Per family: median over members of deploy/train FLOPs ratio and deploy/train latency ratio."""
    by_key = {(r["model"], r["backend"], r["variant"]): r for r in rows}
    per_family: dict[str, dict[str, list]] = {}
    for (model, backend, variant), r in by_key.items():
        if variant != "deploy" or (model, backend, "train") not in by_key:
            continue
        t = by_key[(model, backend, "train")]
        if not (t.get("flops") and r.get("flops")):
            continue
        entry = per_family.setdefault((r["family"], backend), {"flops": [], "latency": [], "members": set()})
        entry["flops"].append(r["flops"] / t["flops"])
        entry["latency"].append(r["median_ms"] / t["median_ms"])
        entry["members"].add(model)
    return [{"family": fam, "backend": backend, "members": len(v["members"]),
             "flops_ratio": float(np.median(v["flops"])), "latency_ratio": float(np.median(v["latency"]))}
            for (fam, backend), v in sorted(per_family.items())]


def spearman_ci(rho: float, n: int) -> list[float] | None:
    """95% interval of a Spearman rho: Fisher z with the Bonett-Wright standard error sqrt((1 + rho²/2)/(n - 3))."""
    if n < 5 or not math.isfinite(rho):
        return None
    z = math.atanh(max(min(rho, 0.999999), -0.999999))
    se = math.sqrt((1 + rho * rho / 2) / (n - 3))
    return [math.tanh(z - Z95 * se), math.tanh(z + Z95 * se)]


def band_correlations(rows: list[dict], keys=("flops", "executed_ops", "mac_bytes")) -> list[dict]:
    """Spearman rho of latency with each predictor within iso-FLOPs bands (``BANDS``) and over the whole zoo,
    deploy forms only (one cell per model, so no model counts twice), each with n and a 95% interval."""
    from scipy.stats import spearmanr

    deploy = [r for r in rows if r["variant"] == "deploy" and r.get("macs")]
    out = []
    for lo, hi, label in ((0.0, math.inf, "whole zoo"),) + BANDS:
        sub = [r for r in deploy if lo < r["macs"] / 1e9 <= hi]
        entry = {"band": label, "n": len(sub), "rho": {}}
        for key in keys:
            pts = _valid(sub, ("median_ms", key))
            if len(pts) < 5 or len({r[key] for r in pts}) < 2:
                continue
            rho, p = spearmanr([r["median_ms"] for r in pts], [r[key] for r in pts])
            entry["rho"][key] = {"rho": float(rho), "ci": spearman_ci(float(rho), len(pts)), "p": float(p), "n": len(pts)}
        out.append(entry)
    return out
