"""Within-pair contrasts: a zoo model's train and deploy forms compute the same function with different
fragmentation, so the latency ratio of the two is the cleanest natural experiment the zoo offers.

Across every pair on one backend, the log latency ratio (deploy / train) is regressed on the log FLOPs ratio
and the log executed-ops ratio. Each pair is weighted by the inverse of its lockstep ratio's variance plus the
between-pair variance the data show (a random-effects weight, so that a few very tight pairs do not decide
the fit alone); intervals are cluster-robust by family with t on families - 1 degrees of freedom. Pairs whose
two forms run the same graph on the backend (the exporter folded BatchNorm, say: equal FLOPs, ONNX ops, traffic
and executed ops) are the A/A control: their ratios should be 1 within noise.
"""

from __future__ import annotations

import math

import numpy as np

from benchbench.results.load import DESIGNED_KINDS, model_kind

from .regression import cluster_sandwich, log_sd_of_interval

__all__ = ["pair_records", "within_pair_regression", "aa_control"]


def pair_records(runs) -> list[dict]:
    """One record per (model, backend) with both forms ok: log ratios (deploy / train) of latency, FLOPs and
    executed ops, and the latency ratio's 95% interval from the lockstep rounds (or unpaired)."""
    from benchbench.results.estimates import cell_ratio

    from .correlate import target

    forms: dict[tuple, dict] = {}
    for run in runs:
        for c in run.cells:
            family = c.model.get("family", "")
            if c.ok and c.median_ms and family and model_kind(c.model) not in DESIGNED_KINDS:
                forms.setdefault((c.spec.model, target(c.spec), c.spec.threads), {})[c.spec.variant] = c
    out = []
    for (model, backend, _), v in sorted(forms.items()):
        if "train" not in v or "deploy" not in v:
            continue
        t, d = v["train"], v["deploy"]
        est = cell_ratio(d, t)  # deploy / train latency
        if est is None or not (est.value > 0 and est.low > 0 and est.high > 0):
            continue
        ops_t, ops_d = t.metrics.get("executed_ops"), d.metrics.get("executed_ops")
        flops_t, flops_d = t.model.get("flops"), d.model.get("flops")
        out.append({
            "model": model, "family": d.model.get("family"), "backend": backend,
            "identical": bool(d.model.get("identical_forms")) or _same_graph(t, d),
            "latency_ratio": est.value, "latency_ratio_ci": [est.low, est.high],
            "paired": not est.rule.startswith("unpaired"),
            "flops_ratio": flops_d / flops_t if flops_t and flops_d else None,
            "ops_ratio": ops_d / ops_t if ops_t and ops_d else None,
        })
    return out


def _same_graph(a, b) -> bool:
    """The two forms run the same graph on this backend: the exporter folded what differs (BN into convs), so
    FLOPs, the ONNX graph's op count and traffic, and the runtime's executed ops all agree."""
    keys = ("graph_ops", "mac_bytes", "executed_ops")
    return (a.model.get("flops") == b.model.get("flops") and all(a.metrics.get(k) is not None for k in keys)
            and all(a.metrics.get(k) == b.metrics.get(k) for k in keys))


def within_pair_regression(pairs: list[dict]) -> dict | None:
    """log latency ratio = a + b log FLOPs ratio + c log ops ratio, over one backend's non-identical pairs."""
    from scipy.stats import t as student_t

    pairs = [p for p in pairs if not p["identical"] and p["flops_ratio"] and p["ops_ratio"]]
    fams = sorted({p["family"] for p in pairs})
    if len(pairs) < 5 or len(fams) < 3:
        return None
    y = np.log([p["latency_ratio"] for p in pairs])
    x = np.column_stack([np.ones(len(pairs)), np.log([p["flops_ratio"] for p in pairs]),
                         np.log([p["ops_ratio"] for p in pairs])])
    var = np.array([log_sd_of_interval(*p["latency_ratio_ci"]) ** 2 for p in pairs])
    ols, *_ = np.linalg.lstsq(x, y, rcond=None)
    tau2 = max(0.0, float(np.mean((y - x @ ols) ** 2) - np.mean(var)))  # between-pair variance beyond noise
    w = 1.0 / (var + tau2 + 1e-12)
    xtwx_inv = np.linalg.pinv(x.T @ (x * w[:, None]))
    beta = xtwx_inv @ x.T @ (w * y)
    resid = y - x @ beta
    g = len(fams)
    cov = cluster_sandwich(x * w[:, None], resid, np.array([p["family"] for p in pairs]), xtwx_inv) * g / (g - 1)
    tq = student_t.ppf(0.975, g - 1)
    out = {"n": len(pairs), "families": g, "tau": math.sqrt(tau2)}
    for i, key in enumerate(("intercept", "flops", "ops")):
        se = math.sqrt(max(cov[i, i], 0.0))
        out[key] = {"coef": float(beta[i]), "ci": [float(beta[i] - tq * se), float(beta[i] + tq * se)]}
    # what the coefficients mean: at equal FLOPs, halving the ops changes latency by 2^-c - 1
    c, lo, hi = out["ops"]["coef"], *out["ops"]["ci"]
    out["halving_ops_effect"] = 2 ** -c - 1
    out["halving_ops_effect_ci"] = sorted([2 ** -lo - 1, 2 ** -hi - 1])
    return out


def aa_control(pairs: list[dict]) -> dict | None:
    """The identical-graph pairs: how far their ratios stray from 1, and how many intervals hold it."""
    same = [p for p in pairs if p["identical"]]
    if not same:
        return None
    dev = [abs(math.log(p["latency_ratio"])) for p in same]
    return {"n": len(same), "holds_one": sum(p["latency_ratio_ci"][0] <= 1 <= p["latency_ratio_ci"][1] for p in same),
            "max_deviation": math.exp(max(dev)) - 1, "median_deviation": math.exp(float(np.median(dev))) - 1}
