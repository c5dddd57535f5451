"""The claim's verdict per backend: at equal FLOPs, do more executed operators cost latency?

The effect is the latency change from doubling a model's executed ops at equal FLOPs, estimated within
families: log latency on log FLOPs and log executed ops with one intercept per family (the within-family,
"fixed effects" estimator). Families, not cells, are the independent units:

* its 95% interval uses the cluster-robust (CR1) variance by family with a t distribution on G - 1 degrees of
  freedom, G the families that contribute (two or more cells);
* measurement noise is propagated: each cell's log latency is redrawn within its measured 95% interval
  (normal, sd = interval width / 3.92) and the estimate refitted; the spread of those refits is added to the
  variance, and the share of redraws that keep the verdict is reported;
* an equivalence band (``EQUIVALENCE``, two one-sided tests through the 90% interval) lets the verdict say
  "no practical difference" when the data show it, instead of only "inconclusive".

A cell-level test would treat the train and deploy forms and the members of a family as independent and
overstate the evidence; the planted-truth tests in ``tests/test_claim_models.py`` check this one's rate of
false positives on clustered data.
"""

from __future__ import annotations

import math

import numpy as np

from .regression import cluster_sandwich, log_sd_of_interval

__all__ = ["EQUIVALENCE", "NOISE_REPS", "ops_effect", "classify", "family_error_test"]

# Doubling the executed ops at equal FLOPs changing latency by less than 5% counts as no practical difference:
# about three times the A/A half-width of a lockstep comparison on this machine (±1.7%).
EQUIVALENCE = 0.05
NOISE_REPS = 200


def _within(y: np.ndarray, x: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """y and x with each family's mean removed."""
    y, x = y.copy(), x.copy()
    for g in np.unique(groups):
        m = groups == g
        y[m] -= y[m].mean()
        x[m] -= x[m].mean(axis=0)
    return y, x


def _fit(y, x, groups) -> tuple[np.ndarray, np.ndarray, int]:
    """Within-family OLS coefficients, their CR1 covariance by family, and the number of contributing families."""
    yw, xw = _within(y, x, groups)
    xtx_inv = np.linalg.pinv(xw.T @ xw)
    beta = xtx_inv @ xw.T @ yw
    resid = yw - xw @ beta
    # a family of one cell is all zeros once demeaned: it adds nothing, and is not counted
    gcount = sum(1 for g in np.unique(groups) if np.sum(groups == g) > 1)
    n, k = len(y), x.shape[1]
    # CR1 small-sample factor, as Stata's xtreg, fe (absorbed intercepts not counted in k)
    scale = gcount / (gcount - 1) * (n - 1) / max(n - k, 1) if gcount > 1 else math.inf
    return beta, cluster_sandwich(xw, resid, groups, xtx_inv) * scale, gcount


def classify(beta: float, se: float, df: int, margin: float = EQUIVALENCE) -> str:
    """'yes' (more ops cost latency), 'no-opposite' (they save it), 'equivalent' or 'inconclusive'.

    ``beta`` is the change in natural-log latency per doubling of ops; ``margin`` a relative change."""
    from scipy.stats import t as student_t

    if not (se > 0 and math.isfinite(se) and df >= 1):
        return "inconclusive"
    bound = math.log(1 + margin)
    t95, t90 = student_t.ppf(0.975, df), student_t.ppf(0.95, df)
    if -bound < beta - t90 * se and beta + t90 * se < bound:
        return "equivalent"
    if beta - t95 * se > 0:
        return "yes"
    if beta + t95 * se < 0:
        return "no-opposite"
    return "inconclusive"


def _columns(rows):
    y = np.log([r["median_ms"] for r in rows])
    x = np.column_stack([np.log([r["flops"] for r in rows]), np.log([r["executed_ops"] for r in rows])])
    return y, x, np.array([r["family"] for r in rows])


def _log_sd(r) -> float:
    lo, hi = r.get("ci_low_ms"), r.get("ci_high_ms")
    if lo and hi and 0 < lo <= r["median_ms"] <= hi:
        return log_sd_of_interval(lo, hi)
    return 0.0


def ops_effect(rows: list[dict], margin: float = EQUIVALENCE, noise_reps: int = NOISE_REPS, seed: int = 0) -> dict | None:
    """The family-level effect of executed ops at equal FLOPs, with intervals, equivalence and noise.

    ``rows``: one backend's zoo cells (``median_ms``, ``ci_low_ms``, ``ci_high_ms``, ``flops``,
    ``executed_ops``, ``family``). Effects are relative latency changes per doubling of executed ops."""
    rows = [r for r in rows if r.get("family") and all(isinstance(r.get(k), (int, float)) and r[k] > 0
                                                        for k in ("median_ms", "flops", "executed_ops"))]
    if len({r["family"] for r in rows}) < 3:
        return None
    y, x, groups = _columns(rows)
    beta, cov, gcount = _fit(y, x, groups)
    if gcount < 3:
        return None
    df = gcount - 1
    ln2 = math.log(2)
    b_ops, se_cluster = beta[1] * ln2, math.sqrt(max(cov[1, 1], 0.0)) * ln2  # per doubling, natural log
    rng = np.random.default_rng(seed)
    sd = np.array([_log_sd(r) for r in rows])
    replicate_b, replicate_verdicts = [], []
    for _ in range(noise_reps):
        yr = y + rng.standard_normal(len(y)) * sd
        br, covr, _ = _fit(yr, x, groups)
        replicate_b.append(br[1] * ln2)
        replicate_verdicts.append(classify(br[1] * ln2, math.sqrt(max(covr[1, 1], 0.0)) * ln2, df, margin))
    se_noise = float(np.std(replicate_b, ddof=1)) if noise_reps > 1 else 0.0
    se = math.sqrt(se_cluster ** 2 + se_noise ** 2)
    verdict = classify(b_ops, se, df, margin)
    from scipy.stats import t as student_t

    t95, t90 = student_t.ppf(0.975, df), student_t.ppf(0.95, df)
    return {
        "n": len(rows), "families": gcount, "df": df, "margin": margin,
        "model": "log latency ~ log FLOPs + log executed ops + one intercept per family (within-family OLS), "
                 "CR1 cluster-robust by family, t on families - 1 df, measurement noise propagated",
        "effect": math.exp(b_ops) - 1,  # latency change per doubling of executed ops at equal FLOPs
        "effect_ci95": [math.exp(b_ops - t95 * se) - 1, math.exp(b_ops + t95 * se) - 1],
        "effect_ci90": [math.exp(b_ops - t90 * se) - 1, math.exp(b_ops + t90 * se) - 1],
        "flops_elasticity": float(beta[0]),
        "se_cluster": se_cluster, "se_noise": se_noise,
        "verdict": verdict,
        "noise_stability": float(np.mean([v == verdict for v in replicate_verdicts])) if noise_reps else None,
    }


def family_error_test(loo: dict, a: str = "flops", b: str = "additive") -> dict | None:
    """Family-level comparison of two forms' held-out errors: per family the mean absolute log error of each,
    then a Wilcoxon signed-rank test over families. Returns the median per-family improvement of ``b`` over
    ``a`` (in absolute log error) and the p-value."""
    from scipy.stats import wilcoxon

    if a not in loo or b not in loo:
        return None
    fams = loo[a]["family"]
    ea, eb = (np.abs(np.log1p(np.asarray(loo[k]["error"], float))) for k in (a, b))
    per: dict[str, list] = {}
    for f, x1, x2 in zip(fams, ea, eb):
        per.setdefault(f, []).append((x1, x2))
    diff = np.array([np.mean([p[0] for p in v]) - np.mean([p[1] for p in v]) for v in per.values()])
    if np.count_nonzero(diff) < 6:
        return {"families": len(diff), "median_improvement": float(np.median(diff)) if len(diff) else None, "p": None}
    return {"families": len(diff), "median_improvement": float(np.median(diff)),
            "better": int(np.sum(diff > 0)), "p": float(wilcoxon(diff).pvalue)}
