"""Latency models per backend, judged on model families they never saw.

Four forms, fitted to one backend's zoo cells (latency in ms, FLOPs in GFLOP, memory traffic in MB):

* ``flops``: latency = c + FLOPs / throughput. A FLOPs-proportional cost with a fixed cost per inference.
* ``additive``: latency = c + FLOPs / throughput + overhead x executed ops + traffic / bandwidth. A fixed cost
  per executed operator is what fragmentation is; a log-linear model cannot express it.
* ``loglinear``: log latency = a + b log FLOPs + c log executed ops + d log traffic (the earlier report's model).
* ``mixed``: the log-linear form with one random intercept per family (statsmodels ``MixedLM``). A held-out
  family's intercept is unknown, so it is predicted from the fixed effects alone.

The two linear forms are fitted with non-negative coefficients (``scipy.optimize.nnls``) to minimize the
squared *relative* error, since errors are judged relatively. Every form is judged leave-one-family-out
(each family predicted by a fit to all the others) and every interval resamples families, not cells: the
train and deploy forms and the members of a family are not independent observations.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .regression import Z95

__all__ = ["FORMS", "FORM_LABELS", "design_rows", "fit_additive", "loo_errors", "error_summary", "additive_fit",
           "family_bootstrap", "mixed_model"]

FORMS = ("flops", "additive", "loglinear", "mixed")
FORM_LABELS = {
    "flops": "FLOPs only: c + FLOPs/throughput",
    "additive": "additive: c + FLOPs/throughput + overhead x ops + traffic/bandwidth",
    "loglinear": "log-linear: log FLOPs, log ops, log traffic",
    "mixed": "mixed: log-linear + a random intercept per family",
}
FEATURES = ("flops", "executed_ops", "mac_bytes")
BOOTSTRAP = 1000  # family resamples per interval


def design_rows(rows: list[dict]) -> list[dict]:
    """The rows every form can use: a positive latency, FLOPs, executed ops and memory traffic, and a family."""
    def ok(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 and math.isfinite(v)

    return [r for r in rows if r.get("family") and ok(r.get("median_ms")) and all(ok(r.get(k)) for k in FEATURES)]


def _linear_columns(rows, form: str) -> np.ndarray:
    cols = [np.ones(len(rows)), [r["flops"] / 1e9 for r in rows]]
    if form == "additive":
        cols += [[r["executed_ops"] for r in rows], [r["mac_bytes"] / 1e6 for r in rows]]
    return np.column_stack(cols).astype(float)


def _log_columns(rows) -> np.ndarray:
    return np.column_stack([np.ones(len(rows))] + [np.log([r[k] for r in rows]) for k in FEATURES])


def fit_additive(rows: list[dict], form: str = "additive", latency: np.ndarray | None = None) -> np.ndarray:
    """Non-negative coefficients of a linear form (``flops`` or ``additive``) minimizing squared relative error.

    ``latency`` overrides the rows' medians (ms), for resampling. Returns [c ms, ms per GFLOP, ms per op,
    ms per MB] (the last two only for ``additive``)."""
    from scipy.optimize import nnls

    y = np.asarray([r["median_ms"] for r in rows], float) if latency is None else np.asarray(latency, float)
    x = _linear_columns(rows, form)
    coef, _ = nnls(x / y[:, None], np.ones(len(y)))
    return coef


def _predict(train: list[dict], test: list[dict], form: str) -> np.ndarray:
    if form in ("flops", "additive"):
        return _linear_columns(test, form) @ fit_additive(train, form)
    if form == "loglinear":
        coef, *_ = np.linalg.lstsq(_log_columns(train), np.log([r["median_ms"] for r in train]), rcond=None)
        return np.exp(_log_columns(test) @ coef)
    fit = _mixed_fit(train)
    if fit is None:
        return np.full(len(test), np.nan)
    return np.exp(_log_columns(test) @ np.asarray(fit.fe_params))


def loo_errors(rows: list[dict], forms=FORMS) -> dict[str, dict]:
    """Leave-one-family-out relative errors (prediction / measurement - 1) per form, cell by cell.

    Returns ``{form: {"family": [...], "error": [...]}}`` in the same cell order for every form; a form that
    cannot be fitted here (the mixed model without statsmodels) is left out."""
    rows = design_rows(rows)
    families = sorted({r["family"] for r in rows})
    out = {}
    for form in forms:
        if form == "mixed" and _statsmodels() is None:
            continue
        fams, errs = [], []
        for fam in families:
            test = [r for r in rows if r["family"] == fam]
            train = [r for r in rows if r["family"] != fam]
            if len({r["family"] for r in train}) < 3 or len(train) < 6:
                continue
            pred = _predict(train, test, form)
            errs += (pred / np.array([r["median_ms"] for r in test]) - 1).tolist()
            fams += [fam] * len(test)
        out[form] = {"family": fams, "error": errs}
    return out


def _resample_families(families: list[str], rng) -> np.ndarray:
    """Cell indices of one family bootstrap resample (families drawn with replacement, each with all its cells)."""
    index: dict[str, list[int]] = {}
    for i, f in enumerate(families):
        index.setdefault(f, []).append(i)
    names = list(index)
    draw = rng.integers(0, len(names), len(names))
    return np.concatenate([index[names[d]] for d in draw])


def error_summary(loo: dict, seed: int = 0) -> dict:
    """Per form: median absolute error and share within ±10%, each with a family bootstrap 95% interval."""
    rng = np.random.default_rng(seed)
    out = {}
    for form, rec in loo.items():
        err = np.abs(np.asarray(rec["error"], float))
        if not len(err) or not np.all(np.isfinite(err)):
            continue
        boot_med, boot_within = [], []
        for _ in range(BOOTSTRAP):
            idx = _resample_families(rec["family"], rng)
            boot_med.append(np.median(err[idx]))
            boot_within.append(np.mean(err[idx] <= 0.10))
        out[form] = {"n": len(err), "families": len(set(rec["family"])),
                     "median_ape": float(np.median(err)), "median_ape_ci": _pct(boot_med),
                     "within_10pct": float(np.mean(err <= 0.10)), "within_10pct_ci": _pct(boot_within)}
    return out


def _pct(values) -> list[float]:
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def _physical(coef: np.ndarray) -> dict:
    """Coefficients in physical units: per-inference cost (ms), throughput (GFLOP/s), per-op overhead (µs)
    and bandwidth (GB/s). A zero coefficient means an unbounded throughput or bandwidth (None)."""
    out = {"fixed_ms": float(coef[0]), "throughput_gflops": 1e3 / coef[1] if coef[1] > 0 else None}
    if len(coef) > 2:
        out["overhead_us_per_op"] = float(coef[2] * 1e3)
        out["bandwidth_gbs"] = 1.0 / coef[3] if coef[3] > 0 else None
    return out


def additive_fit(rows: list[dict], seed: int = 0) -> dict | None:
    """The additive model fitted to every cell, in physical units, with family bootstrap 95% intervals."""
    rows = design_rows(rows)
    families = [r["family"] for r in rows]
    if len(set(families)) < 3:
        return None
    coef = fit_additive(rows)
    boot = family_bootstrap(rows, lambda sub: fit_additive(sub), seed=seed)
    fitted = _physical(coef)
    intervals = {}
    for i, key in enumerate(("fixed_ms", "ms_per_gflop", "overhead_us_per_op", "ms_per_mb")):
        lo, hi = _pct(boot[:, i])
        intervals[key] = [lo * 1e3, hi * 1e3] if key == "overhead_us_per_op" else [lo, hi]
    # throughput and bandwidth are reciprocals: their interval is the reciprocal of the cost's, reversed
    intervals["throughput_gflops"] = [1e3 / x if x > 0 else None for x in intervals.pop("ms_per_gflop")[::-1]]
    intervals["bandwidth_gbs"] = [1.0 / x if x > 0 else None for x in intervals.pop("ms_per_mb")[::-1]]
    median_ops = float(np.median([r["executed_ops"] for r in rows]))
    share = [coef[2] * r["executed_ops"] / r["median_ms"] for r in rows]
    return {"n": len(rows), "families": len(set(families)), **fitted, "ci": intervals,
            "median_executed_ops": median_ops,
            # how much of a cell's measured latency the fitted per-op overhead accounts for
            "overhead_share_median": float(np.median(share))}


def family_bootstrap(rows: list[dict], estimate, seed: int = 0, reps: int = BOOTSTRAP) -> np.ndarray:
    """``estimate(rows)`` (a vector) over family bootstrap resamples: one row per resample."""
    rng = np.random.default_rng(seed)
    families = [r["family"] for r in rows]
    return np.array([estimate([rows[i] for i in _resample_families(families, rng)]) for _ in range(reps)])


def _statsmodels():
    try:
        import statsmodels.api as sm
    except ImportError:
        return None
    return sm


def _mixed_fit(rows: list[dict]):
    sm = _statsmodels()
    if sm is None or len({r["family"] for r in rows}) < 3:
        return None
    y = np.log([r["median_ms"] for r in rows])
    with warnings.catch_warnings():  # convergence chatter on small groups; the fit is checked below
        warnings.simplefilter("ignore")
        try:
            fit = sm.MixedLM(y, _log_columns(rows), groups=[r["family"] for r in rows]).fit(reml=True)
        except (ValueError, np.linalg.LinAlgError):
            return None
    return fit if np.all(np.isfinite(fit.fe_params)) else None


def mixed_model(rows: list[dict]) -> dict | None:
    """The mixed model on every cell: the executed-ops elasticity at equal FLOPs and traffic, with its Wald
    95% interval, as the latency change from doubling executed ops."""
    rows = design_rows(rows)
    fit = _mixed_fit(rows)
    if fit is None:
        return None if _statsmodels() is not None else {"unavailable": "needs statsmodels: pip install 'benchbench[analysis]'"}
    beta, se = float(fit.fe_params[2]), float(fit.bse_fe[2])
    lo, hi = beta - Z95 * se, beta + Z95 * se
    return {"n": len(rows), "families": len({r["family"] for r in rows}),
            "coef": {k: float(v) for k, v in zip(("intercept",) + FEATURES, fit.fe_params)},
            "family_sd": float(math.sqrt(max(float(fit.cov_re.iloc[0, 0]) if hasattr(fit.cov_re, "iloc")
                                             else float(np.asarray(fit.cov_re)[0, 0]), 0.0))),
            "ops_elasticity": beta, "ops_elasticity_ci": [lo, hi],
            "ops_doubling_effect": 2 ** beta - 1, "ops_doubling_effect_ci": [2 ** lo - 1, 2 ** hi - 1]}
