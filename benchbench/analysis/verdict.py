"""The claim's verdict per backend: at equal FLOPs, do more executed operators cost latency?

The effect is the latency change from doubling a model's executed ops at equal FLOPs, estimated within
families: log latency on log FLOPs and log executed ops with one intercept per family (the within-family,
"fixed effects" estimator). Families, not cells, are the independent units, and there are about twenty of them,
so every interval is read at small-sample strength (``cluster_inference``):

* the verdict's interval is CR2 (Bell-McCaffrey) by family with Satterthwaite degrees of freedom, which fall
  below G - 1 when a few families carry the leverage; CR1 on G - 1 degrees of freedom is shown beside it;
* a wild cluster bootstrap (Webb weights, null imposed, seeded) tests the ops coefficient against zero;
* every family is left out in turn and the model refitted (``lofo``): the range of the effect, and which
  families change the reading when left out;
* measurement noise is propagated: each cell's log latency is redrawn within its measured 95% interval
  (normal, sd = interval width / 3.92) and the estimate refitted; the spread of those refits is added to the
  variance, and the share of redraws that keep the CR2 reading is reported;
* an equivalence band (``EQUIVALENCE``, two one-sided tests through the 90% interval) lets the verdict say
  "no practical difference" when the data show it, instead of only "inconclusive";
* the same model with log memory traffic added (``with_traffic``) is fitted beside it: ops and bytes moved
  grow together, and the verdict's sentence says what is left of the ops effect at equal traffic.

A plain *yes* (or *no, the opposite*, or *no practical difference*) needs the CR2 interval, every
leave-one-family-out fit and (for a sign) the wild bootstrap at 5% to agree; a reading that only CR1 gives,
or that one family's absence undoes, is reported as *leans* (``decide``).

A cell-level test would treat the train and deploy forms and the members of a family as independent and
overstate the evidence; the planted-truth tests in ``tests/test_claim_models.py`` and
``tests/test_verdict_inference.py`` check this one's coverage and false positives on clustered data.
"""

from __future__ import annotations

import math

import numpy as np

from .cluster_inference import WithinDesign
from .regression import log_sd_of_interval

__all__ = ["EQUIVALENCE", "NOISE_REPS", "BOOTSTRAP_REPS", "LEVEL", "ops_effect", "classify", "decide", "lofo",
           "family_error_test"]

# Doubling the executed ops at equal FLOPs changing latency by less than 5% counts as no practical difference:
# about three times the A/A half-width of a lockstep comparison on this machine (±1.7%).
EQUIVALENCE = 0.05
NOISE_REPS = 200
BOOTSTRAP_REPS = 9999  # wild bootstrap draws: a p-value near 0.05 is within ±0.004 of its limit (95%)
LEVEL = 0.05  # the two-sided level of every test and interval behind a verdict
LN2 = math.log(2)


def classify(beta: float, se: float, df: float, margin: float = EQUIVALENCE) -> str:
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


def _columns(rows, keys):
    y = np.log([r["median_ms"] for r in rows])
    x = np.column_stack([np.log([r[k] for r in rows]) for k in keys])
    return y, x, np.array([r["family"] for r in rows])


def _log_sd(r) -> float:
    lo, hi = r.get("ci_low_ms"), r.get("ci_high_ms")
    if lo and hi and 0 < lo <= r["median_ms"] <= hi:
        return log_sd_of_interval(lo, hi)
    return 0.0


def _interval(b: float, var: float, var_noise: float, df: float, margin: float) -> dict:
    """One reading of a per-doubling log effect ``b``: its intervals as relative changes, and its class."""
    from scipy.stats import t as student_t

    se = math.sqrt(max(var, 0.0) + var_noise) if math.isfinite(var) else math.inf
    out = {"se": se, "df": df, "code": classify(b, se, df, margin)}
    if df >= 1 and math.isfinite(se):
        for level, key in ((0.975, "ci95"), (0.95, "ci90")):
            q = student_t.ppf(level, df)
            out[key] = [math.exp(b - q * se) - 1, math.exp(b + q * se) - 1]
    else:
        out["ci95"] = out["ci90"] = [-1.0, math.inf]
    return out


def _readings(design: WithinDesign, y: np.ndarray, coef: int, var_noise: float, margin: float) -> dict:
    """The coefficient ``coef`` (per doubling, natural log) with its CR1 and CR2 readings."""
    beta, resid = design.fit(y)
    b = float(beta[coef]) * LN2
    return {"b": b, "effect": math.exp(b) - 1, "beta": beta,
            "cr1": _interval(b, float(design.variance(resid, coef, "cr1")) * LN2 ** 2, var_noise,
                             design.families - 1, margin),
            "cr2": _interval(b, float(design.variance(resid, coef, "cr2")) * LN2 ** 2, var_noise,
                             design.cr2_df(coef), margin)}


def _noise(design: WithinDesign, y, sd, coef, reps, margin, rng) -> tuple[float, list[str]]:
    """Refits with every cell's log latency redrawn within its interval: the sd of the refitted effect, and
    each redraw's CR2 reading (noise not added)."""
    if reps < 2:
        return 0.0, []
    # drawn redraw by redraw (reps x cells), as the verdict always drew them: the same seed, the same redraws
    ys = y[:, None] + rng.standard_normal((reps, len(y))).T * sd[:, None]
    beta, resid = design.fit(ys)
    b = beta[coef] * LN2
    se = np.sqrt(design.variance(resid, coef, "cr2")) * LN2
    df = design.cr2_df(coef)
    return float(np.std(b, ddof=1)), [classify(float(bi), float(si), df, margin) for bi, si in zip(b, se)]


def _summary(r: dict) -> dict:
    return {"effect": r["effect"], "cr1": {k: r["cr1"][k] for k in ("ci95", "df", "se", "code")},
            "cr2": {k: r["cr2"][k] for k in ("ci95", "ci90", "df", "se", "code")}}


def lofo(rows: list[dict], keys=("flops", "executed_ops"), coef: int = 1, var_noise: float = 0.0,
         margin: float = EQUIVALENCE) -> dict | None:
    """Leave one family out: the effect refitted without each family (of two or more cells), its CR2 interval
    (with the full fit's noise variance added) and CR1 reading; the range of the effect over those fits."""
    families = sorted({r["family"] for r in rows if sum(q["family"] == r["family"] for q in rows) > 1})
    fits = []
    for fam in families:
        y, x, groups = _columns([r for r in rows if r["family"] != fam], keys)
        design = WithinDesign(x, groups)
        if design.families < 3:
            continue
        r = _readings(design, y, coef, var_noise, margin)
        fits.append({"family": fam, "effect": r["effect"], "ci95": r["cr2"]["ci95"], "df": r["cr2"]["df"],
                     "code": r["cr2"]["code"], "cr1_code": r["cr1"]["code"]})
    if not fits:
        return None
    effects = [f["effect"] for f in fits]
    return {"fits": fits, "range": [min(effects), max(effects)]}


def decide(cr1_code: str, cr2_code: str, lofo_codes: list[str], boot_p: float | None, level: float = LEVEL) -> str:
    """The verdict code: a reading (``classify``) stands plain only when CR2 gives it, every leave-one-family-out
    fit gives it too, and, for a sign, the wild bootstrap rejects zero at ``level``; a reading that only CR1 gives,
    or that one of those checks does not confirm, is ``leans <reading>``; else inconclusive."""
    if cr2_code != "inconclusive":
        robust = bool(lofo_codes) and all(c == cr2_code for c in lofo_codes)
        if cr2_code in ("yes", "no-opposite"):
            robust = robust and boot_p is not None and boot_p < level
        return cr2_code if robust else f"leans {cr2_code}"
    return f"leans {cr1_code}" if cr1_code != "inconclusive" else "inconclusive"


def _usable(rows: list[dict], keys) -> list[dict]:
    return [r for r in rows if r.get("family") and all(isinstance(r.get(k), (int, float)) and not isinstance(r[k], bool)
                                                       and r[k] > 0 for k in ("median_ms",) + tuple(keys))]


def _fit_model(rows, keys, margin, noise_reps, bootstrap_reps, seed) -> dict | None:
    """One model (log latency on the log ``keys`` within families) read every way: CR1, CR2, the wild
    bootstrap, the noise redraws and the leave-one-family-out fits, for the executed-ops coefficient."""
    rows = _usable(rows, keys)
    if len({r["family"] for r in rows}) < 3:
        return None
    y, x, groups = _columns(rows, keys)
    design = WithinDesign(x, groups)
    if design.families < 3:
        return None
    coef = keys.index("executed_ops")
    sd = np.array([_log_sd(r) for r in rows])
    se_noise, redraws = _noise(design, y, sd, coef, noise_reps, margin, np.random.default_rng(seed))
    r = _readings(design, y, coef, se_noise ** 2, margin)
    boot_p = design.wild_bootstrap_p(y, coef, reps=bootstrap_reps, seed=seed) if bootstrap_reps else None
    loo = lofo(rows, keys, coef, se_noise ** 2, margin)
    return {"n": len(rows), "families": design.families, "keys": list(keys), "readings": r, "boot_p": boot_p,
            "se_noise": se_noise, "redraws": redraws, "lofo": loo}


def ops_effect(rows: list[dict], margin: float = EQUIVALENCE, noise_reps: int = NOISE_REPS,
               bootstrap_reps: int = BOOTSTRAP_REPS, seed: int = 0) -> dict | None:
    """The family-level effect of executed ops at equal FLOPs, read with CR1 and CR2 intervals, a wild cluster
    bootstrap, leave-one-family-out refits and measurement noise, and the same model with memory traffic added.

    ``rows``: one backend's zoo cells (``median_ms``, ``ci_low_ms``, ``ci_high_ms``, ``flops``,
    ``executed_ops``, ``family``, and ``mac_bytes`` for the traffic model). Effects are relative latency
    changes per doubling of executed ops; ``effect_ci95`` is the CR2 interval the verdict reads. Without
    bootstrap draws (``bootstrap_reps=0``) no sign is ever a plain verdict."""
    main = _fit_model(rows, ("flops", "executed_ops"), margin, noise_reps, bootstrap_reps, seed)
    if main is None:
        return None
    r, loo = main["readings"], main["lofo"]
    cr1, cr2 = r["cr1"], r["cr2"]
    lofo_codes = [f["code"] for f in loo["fits"]] if loo else []
    verdict = decide(cr1["code"], cr2["code"], lofo_codes, main["boot_p"], LEVEL)
    if loo:  # which families change the CR2 reading, the CR1 reading, or the sign, when left out
        loo["flips"] = [f["family"] for f in loo["fits"] if f["code"] != cr2["code"]]
        loo["cr1_flips"] = [f["family"] for f in loo["fits"] if f["cr1_code"] != cr1["code"]]
        loo["sign_flips"] = [f["family"] for f in loo["fits"] if (f["effect"] > 0) != (r["effect"] > 0)]
    traffic = _fit_model(rows, ("flops", "executed_ops", "mac_bytes"), margin, noise_reps, bootstrap_reps, seed)
    return {
        "n": main["n"], "families": main["families"], "df": cr2["df"], "margin": margin,
        "model": "log latency ~ log FLOPs + log executed ops + one intercept per family (within-family OLS); "
                 "CR2 (Bell-McCaffrey) by family with Satterthwaite df, CR1 on families - 1 df beside it; "
                 "wild cluster bootstrap (Webb weights, null imposed); measurement noise propagated",
        "effect": r["effect"],  # latency change per doubling of executed ops at equal FLOPs
        "effect_ci95": cr2["ci95"], "effect_ci90": cr2["ci90"],
        **{k: v for k, v in _summary(r).items() if k != "effect"},
        "wild_bootstrap": {"p": main["boot_p"], "reps": bootstrap_reps, "weights": "webb", "seed": seed},
        "lofo": loo,
        "flops_elasticity": float(r["beta"][0]),
        "se_cluster": math.sqrt(max(cr2["se"] ** 2 - main["se_noise"] ** 2, 0.0)), "se_noise": main["se_noise"],
        "verdict": verdict,
        # the share of noise redraws whose CR2 reading is the full data's
        "noise_stability": float(np.mean([v == cr2["code"] for v in main["redraws"]])) if main["redraws"] else None,
        "with_traffic": _traffic_summary(traffic),
    }


def _traffic_summary(t: dict | None) -> dict | None:
    """The model with log memory traffic added: the ops effect at equal FLOPs and traffic, read as the main one."""
    if t is None:
        return None
    r = t["readings"]
    return {"n": t["n"], "families": t["families"], **_summary(r), "wild_bootstrap_p": t["boot_p"],
            "traffic_elasticity": float(r["beta"][2]),
            "lofo_range": t["lofo"]["range"] if t["lofo"] else None}


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
