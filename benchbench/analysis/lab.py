"""The lab fit: latency from designed nets, per backend, and what it says about the zoo.

Input: plain records, one per measured cell and round (``benchbench.analysis.lab_records`` makes them from
result files; ``benchbench.analysis.lab_report`` writes lab.md). A lab record::

    {"backend", "name", "anchor": bool, "group", "round", "latency_ms",
     "flops_by_kind": {"conv3x3": FLOPs, ...}, "executed_ops": n, "bytes_by_regime": {"L2": bytes, ...},
     "anchor_ms": the anchor's latency in the same group and round (optional: looked up from anchor records)}

A zoo record has the same counts and ``latency_ms``, plus ``family``; no round, no anchor.

**The fit**, per backend: latency = Σ_kind FLOPs / throughput(kind) + executed ops x per-op cost
+ Σ_regime bytes / bandwidth(regime) + a fixed cost. Coefficients are non-negative and minimize the squared
*relative* error (``scipy.optimize.nnls`` on rows divided by the latency), as ``latency_models.fit_additive``.
Each design point enters once, with the median over its rounds. Intervals: 95% percentile bootstrap (``BOOTSTRAP``
replicates) over design points (drawn with replacement) and, within each drawn point, over its rounds.

Two readings: **absolute** (the measured medians) and **anchor-relative**: each round's latency divided by the
anchor's in the same lockstep group and round, times the anchor's median over the whole run. Machine drift
between rounds and groups multiplies the anchor and the points alike, so the ratio removes it; the fit is then in
the anchor's typical milliseconds. The headline numbers come from the anchor-relative fit when anchors exist.

**Identification**: pairwise correlations of log executed ops, log traffic and log FLOPs and the condition
number of their correlation matrix (``lab_design.identification``), and the condition number of the fit's own
design matrix (columns scaled to unit length, rows weighted as fitted), for the lab and for the zoo.

**Transfer**: every zoo cell predicted from the lab fit alone: the share within ±10% and the median absolute
error, beside a FLOPs-only fit (fixed cost + FLOPs / throughput) on the same lab data. Absolute, and
anchor-relative when the zoo run measured the anchor too (predictions scaled by the zoo run's anchor over the
lab run's).

**Decomposition**: each zoo cell's predicted latency split into compute, per-op, traffic and fixed parts; per
backend the share of the zoo's latency variance each part explains (cov(part, latency) / var(latency); the parts'
shares sum to the fit's explained share), and each part's median share of a cell's latency.

**Per doubling of executed ops**: causal, from the lab fit (a zoo cell's latency change when its executed ops
double at fixed FLOPs and traffic: per-op cost x ops / predicted latency, median over the zoo's cells) and from
the lab's log-linear fit (log latency on log FLOPs, log ops and log traffic over the designed points, where the
three are nearly orthogonal), beside the zoo's observational estimate (the same log-linear model within
families, CR2 cluster-robust by family).

Pure numpy/scipy; nothing is measured here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from .lab_design import FACTORS, MAX_ABS_CORR, identification

__all__ = [
    "BOOTSTRAP",
    "KINDS",
    "REGIME_ORDER",
    "fit_condition_number",
    "fit_lab",
    "lab_analysis",
    "observational_ops_effect",
]

BOOTSTRAP = 1000
KINDS = ("conv3x3", "conv1x1", "dw3x3")  # FLOP-bearing kinds: a dense kxk conv counts as conv3x3, GEMMs as conv1x1
REGIME_ORDER = ("L1", "L2", "LLC", "DRAM")
WITHIN = 0.10


# -- records ----------------------------------------------------------------------------------------------


def _pos(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 and math.isfinite(v)


def _totals(r: Mapping) -> dict:
    """A record's three factors: executed ops, traffic (all regimes), FLOPs (all kinds)."""
    return {"executed_ops": r["executed_ops"], "traffic": sum(r["bytes_by_regime"].values()),
            "flops": sum(r["flops_by_kind"].values())}


def _columns(records: list[Mapping], kinds: list[str], regimes: list[str], form: str = "additive") -> np.ndarray:
    """Design matrix: [1, GFLOP per kind..., executed ops, MB per regime...] (``flops``: [1, GFLOP total])."""
    n = len(records)
    if form == "flops":
        return np.column_stack([np.ones(n), [sum(r["flops_by_kind"].values()) / 1e9 for r in records]])
    cols = [np.ones(n)]
    cols += [[r["flops_by_kind"].get(k, 0.0) / 1e9 for r in records] for k in kinds]
    cols.append([float(r["executed_ops"]) for r in records])
    cols += [[r["bytes_by_regime"].get(g, 0.0) / 1e6 for r in records] for g in regimes]
    return np.column_stack(cols).astype(float)


def _nnls_rel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls

    coef, _ = nnls(x / y[:, None], np.ones(len(y)))
    return coef


def fit_condition_number(x: np.ndarray, y: np.ndarray | None = None) -> float:
    """Condition number of a design matrix with columns scaled to unit length (Belsley), rows weighted by 1/y as
    the relative-error fit weighs them. Columns that are all zero are left out."""
    w = x / y[:, None] if y is not None else x
    w = w[:, np.any(w != 0, axis=0)]
    w = w / np.linalg.norm(w, axis=0)
    s = np.linalg.svd(w, compute_uv=False)
    return float(s[0] / s[-1]) if s[-1] > 0 else math.inf


# -- the fit ----------------------------------------------------------------------------------------------


def _anchor_lookup(records: list[Mapping]) -> dict:
    """(backend, group, round) → the anchor's latency there; and (backend, "any", round) → the anchor's median
    over the groups of that round, for points measured in a group without the anchor (a sweep whose groups do
    not bracket lab nets: the same round is the nearest reading in time)."""
    out, per_round = {}, {}
    for r in records:
        if r.get("anchor"):
            out[(r["backend"], r.get("group"), r.get("round"))] = r["latency_ms"]
            per_round.setdefault((r["backend"], "any", r.get("round")), []).append(r["latency_ms"])
    out.update({k: float(np.median(v)) for k, v in per_round.items()})
    return out


def _points(records: list[Mapping], reading: str) -> tuple[list[dict], float | None]:
    """Design points of one backend: each point's counts and its latency per round, in the reading asked for.

    Anchor-relative: a round's latency over the anchor's in the same group and round, times the anchor's median
    over all rounds (returned). A round without its anchor is left out of that reading."""
    anchors = _anchor_lookup(records)
    anchor_all = [r["latency_ms"] for r in records if r.get("anchor")]
    ref = float(np.median(anchor_all)) if anchor_all else None
    by_name: dict[str, dict] = {}
    for r in records:
        if r.get("anchor") or not _pos(r.get("latency_ms")):
            continue
        if reading == "anchor_relative":
            a = (r.get("anchor_ms") or anchors.get((r["backend"], r.get("group"), r.get("round")))
                 or anchors.get((r["backend"], "any", r.get("round"))))
            if not _pos(a) or ref is None:
                continue
            value = r["latency_ms"] / a * ref
        else:
            value = r["latency_ms"]
        p = by_name.setdefault(r["name"], {"name": r["name"], "flops_by_kind": r["flops_by_kind"],
                                           "executed_ops": r["executed_ops"], "bytes_by_regime": r["bytes_by_regime"],
                                           "rounds": []})
        p["rounds"].append(value)
    return list(by_name.values()), ref


def _physical(coef: np.ndarray, kinds: list[str], regimes: list[str]) -> dict:
    i = 1
    out = {"fixed_us": float(coef[0] * 1e3), "throughput_gflops": {}, "bandwidth_gbs": {}}
    for k in kinds:
        out["throughput_gflops"][k] = 1e3 / coef[i] if coef[i] > 0 else None  # ms per GFLOP → GFLOP/s
        i += 1
    out["per_op_us"] = float(coef[i] * 1e3)
    i += 1
    for g in regimes:
        out["bandwidth_gbs"][g] = 1.0 / coef[i] if coef[i] > 0 else None  # ms per MB → GB/s
        i += 1
    return out


def _pct(values, q) -> float:
    return float(np.percentile(values, q))


def fit_lab(records: list[Mapping], reading: str = "absolute", reps: int = BOOTSTRAP, seed: int = 0) -> dict | None:
    """The additive fit on one backend's lab records, with bootstrap intervals over points and rounds, beside a
    FLOPs-only fit on the same points. Returns coefficients in physical units and the replicates (for transfer
    intervals), or None with fewer points than coefficients."""
    points, ref = _points(records, reading)
    kinds = [k for k in KINDS if any(p["flops_by_kind"].get(k, 0) > 0 for p in points)]
    kinds += sorted({k for p in points for k, v in p["flops_by_kind"].items() if v > 0 and k not in KINDS})
    regimes = [g for g in REGIME_ORDER if any(p["bytes_by_regime"].get(g, 0) > 0 for p in points)]
    ncoef = 2 + len(kinds) + len(regimes)
    if len(points) < ncoef + 2:
        return None
    x = _columns(points, kinds, regimes)
    xf = _columns(points, kinds, regimes, "flops")
    y = np.array([np.median(p["rounds"]) for p in points])
    coef, coef_f = _nnls_rel(x, y), _nnls_rel(xf, y)
    rng = np.random.default_rng(seed)
    boot, boot_f = np.empty((reps, x.shape[1])), np.empty((reps, 2))
    for b in range(reps):
        idx = rng.integers(0, len(points), len(points))
        yb = np.array([np.median(rng.choice(points[i]["rounds"], len(points[i]["rounds"]))) for i in idx])
        boot[b], boot_f[b] = _nnls_rel(x[idx], yb), _nnls_rel(xf[idx], yb)
    phys = _physical(coef, kinds, regimes)
    per_op = boot[:, 1 + len(kinds)] * 1e3
    fixed = boot[:, 0] * 1e3

    def recip(col, scale):
        lo, hi = _pct(col, 2.5), _pct(col, 97.5)
        return [scale / hi if hi > 0 else None, scale / lo if lo > 0 else None]

    ci = {"per_op_us": [_pct(per_op, 2.5), _pct(per_op, 97.5)], "fixed_us": [_pct(fixed, 2.5), _pct(fixed, 97.5)],
          "throughput_gflops": {k: recip(boot[:, 1 + i], 1e3) for i, k in enumerate(kinds)},
          "bandwidth_gbs": {g: recip(boot[:, 2 + len(kinds) + i], 1.0) for i, g in enumerate(regimes)}}
    pred = x @ coef
    rows = [{**_totals(p), "name": p["name"]} for p in points]
    return {"reading": reading, "n_points": len(points), "rounds": int(np.median([len(p["rounds"]) for p in points])),
            "anchor_ms": ref, "kinds": kinds, "regimes": regimes, **phys, "ci": ci,
            "per_op_anchor_share": phys["per_op_us"] / (ref * 1e3) if ref else None,
            "fit_median_ape": float(np.median(np.abs(pred / y - 1))),
            "flops_only": {"fixed_us": float(coef_f[0] * 1e3),
                           "throughput_gflops": 1e3 / coef_f[1] if coef_f[1] > 0 else None,
                           "fit_median_ape": float(np.median(np.abs(xf @ coef_f / y - 1)))},
            "identification": {**identification(rows), "fit_condition_number": fit_condition_number(x, y)},
            "_coef": coef, "_coef_flops": coef_f, "_boot": boot, "_boot_flops": boot_f, "_points": points,
            "_y": y}


# -- zoo transfer, decomposition, per-doubling effects ---------------------------------------------------------


def _predict(fit: Mapping, records: list[Mapping], form: str = "additive", coef=None) -> np.ndarray:
    """Predictions for zoo records. A regime the lab never reached takes the bandwidth of the nearest slower
    regime it did reach (else the nearest faster); a FLOPs kind it never ran takes conv3x3's throughput."""
    kinds, regimes = fit["kinds"], fit["regimes"]
    if form == "flops":
        c = fit["_coef_flops"] if coef is None else coef
        return _columns(records, kinds, regimes, "flops") @ c
    mapped = [_map_record(r, kinds, regimes) for r in records]
    return _columns(mapped, kinds, regimes) @ (fit["_coef"] if coef is None else coef)


def _map_record(r: Mapping, kinds: list[str], regimes: list[str]) -> dict:
    fk: dict[str, float] = {}
    for k, v in r["flops_by_kind"].items():
        key = k if k in kinds else ("conv3x3" if "conv3x3" in kinds else kinds[0])
        fk[key] = fk.get(key, 0.0) + v
    br: dict[str, float] = {}
    for g, v in r["bytes_by_regime"].items():
        if g in regimes:
            key = g
        else:
            order = list(REGIME_ORDER)
            slower = [h for h in regimes if order.index(h) > order.index(g)]
            faster = [h for h in regimes if order.index(h) < order.index(g)]
            key = slower[0] if slower else faster[-1]
        br[key] = br.get(key, 0.0) + v
    return {**r, "flops_by_kind": fk, "bytes_by_regime": br}


def _errors(pred: np.ndarray, y: np.ndarray) -> dict:
    err = np.abs(pred / y - 1)
    return {"n": len(y), "median_ape": float(np.median(err)), "within_10pct": float(np.mean(err <= WITHIN))}


def _transfer(fit: Mapping, zoo: list[Mapping], scale: float = 1.0) -> dict:
    y = np.array([r["latency_ms"] for r in zoo])
    add, flo = _predict(fit, zoo) * scale, _predict(fit, zoo, "flops") * scale
    boot_within = [np.mean(np.abs(_predict(fit, zoo, coef=c) * scale / y - 1) <= WITHIN) for c in fit["_boot"][:200]]
    out = {"additive": _errors(add, y), "flops_only": _errors(flo, y)}
    out["additive"]["within_10pct_ci"] = [_pct(boot_within, 2.5), _pct(boot_within, 97.5)]
    return out


def _decomposition(fit: Mapping, zoo: list[Mapping]) -> dict:
    kinds, regimes = fit["kinds"], fit["regimes"]
    mapped = [_map_record(r, kinds, regimes) for r in zoo]
    x = _columns(mapped, kinds, regimes)
    c = fit["_coef"]
    nk = len(kinds)
    parts = {"compute": x[:, 1:1 + nk] @ c[1:1 + nk], "per_op": x[:, 1 + nk] * c[1 + nk],
             "traffic": x[:, 2 + nk:] @ c[2 + nk:], "fixed": np.full(len(zoo), c[0])}
    y = np.array([r["latency_ms"] for r in zoo])
    pred = sum(parts.values())
    var = float(np.var(y))
    shares = {k: float(np.cov(v, y, bias=True)[0, 1] / var) if var > 0 else None for k, v in parts.items()}
    shares["unexplained"] = 1.0 - sum(v for v in shares.values() if v is not None)
    cells = [{"name": r.get("name"), "latency_ms": float(y[i]), "predicted_ms": float(pred[i]),
              **{f"{k}_ms": float(v[i]) for k, v in parts.items()}} for i, r in enumerate(zoo)]
    return {"variance_share": shares,
            "median_share_of_prediction": {k: float(np.median(v / pred)) for k, v in parts.items()},
            "cells": cells}


def _causal(fit: Mapping, zoo: list[Mapping]) -> dict:
    """Latency change per doubling of executed ops at fixed FLOPs and traffic, median over zoo cells."""
    kinds, regimes = fit["kinds"], fit["regimes"]
    x = _columns([_map_record(r, kinds, regimes) for r in zoo], kinds, regimes)
    j = 1 + len(kinds)

    def effect(c):
        pred = x @ c
        ok = pred > 0
        return float(np.median(x[ok, j] * c[j] / pred[ok])) if ok.any() else math.nan

    boot = [effect(c) for c in fit["_boot"]]
    return {"effect": effect(fit["_coef"]), "ci95": [_pct(boot, 2.5), _pct(boot, 97.5)],
            "model": "lab additive fit: per-op cost x executed ops / predicted latency, median over zoo cells"}


def _lab_loglinear(fit: Mapping, reps: int = BOOTSTRAP, seed: int = 1) -> dict:
    """log latency = a + b log FLOPs + c log ops + d log traffic over the lab points: 2^c - 1 per doubling."""
    pts = fit["_points"]
    x = np.column_stack([np.ones(len(pts))] + [np.log([_totals(p)[f] for p in pts]) for f in ("flops", "executed_ops", "traffic")])
    y = np.log(fit["_y"])
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(reps):
        idx = rng.integers(0, len(pts), len(pts))
        yb = np.log([np.median(rng.choice(pts[i]["rounds"], len(pts[i]["rounds"]))) for i in idx])
        boot.append(np.linalg.lstsq(x[idx], yb, rcond=None)[0][2])
    ln2 = math.log(2)
    return {"effect": 2 ** beta[2] - 1, "ci95": [2 ** _pct(boot, 2.5) - 1, 2 ** _pct(boot, 97.5) - 1],
            "elasticity": float(beta[2]),
            "model": "lab log-linear: log latency ~ log FLOPs + log executed ops + log traffic, bootstrap over points and rounds",
            "per_doubling_log": float(beta[2] * ln2)}


def observational_ops_effect(zoo: list[Mapping]) -> dict | None:
    """The zoo's observational estimate: log latency ~ log FLOPs + log executed ops + log traffic within families
    (one intercept per family), CR2 (Bell-McCaffrey) cluster-robust by family with Satterthwaite degrees of
    freedom, as the claim's verdict reads the zoo. Per doubling of ops."""
    from scipy.stats import t as student_t

    from .cluster_inference import WithinDesign

    rows = [r for r in zoo if r.get("family") and _pos(r.get("latency_ms")) and all(_pos(v) for v in _totals(r).values())]
    groups = np.array([r["family"] for r in rows])
    if len(set(groups)) < 3:
        return None
    y = np.log([r["latency_ms"] for r in rows])
    x = np.log([[_totals(r)[f] for f in ("flops", "executed_ops", "traffic")] for r in rows])
    design = WithinDesign(x, groups)
    if design.families < 3:
        return None
    beta, resid = design.fit(y)
    se = math.sqrt(max(float(design.variance(resid, 1, "cr2")), 0.0))
    df = design.cr2_df(1)
    if not (se > 0 and df > 0):
        return None
    t95 = student_t.ppf(0.975, df)
    return {"effect": 2 ** beta[1] - 1, "ci95": [2 ** (beta[1] - t95 * se) - 1, 2 ** (beta[1] + t95 * se) - 1],
            "families": design.families, "n": design.n, "df": round(df, 2),
            "model": "zoo within-family OLS: log latency ~ log FLOPs + log executed ops + log traffic, "
                     "CR2 by family, Satterthwaite df"}


def _zoo_identification(zoo: list[Mapping]) -> dict:
    rows = [_totals(r) for r in zoo]
    out = identification(rows)
    # within families and net of log FLOPs: the confound the lab exists to break
    fams = [r.get("family") for r in zoo]
    if all(fams) and len(set(fams)) >= 3:
        lx = np.log([[r[f] for f in FACTORS] for r in rows])
        g = np.array(fams)
        for fam in np.unique(g):
            m = g == fam
            lx[m] -= lx[m].mean(axis=0)
        f = lx[:, 2:3]
        res = lx[:, :2] - f @ np.linalg.lstsq(f, lx[:, :2], rcond=None)[0]
        out["within_family_ops_traffic_r_net_of_flops"] = float(np.corrcoef(res.T)[0, 1])
    return out


def lab_analysis(lab: list[Mapping], zoo: list[Mapping] = (), zoo_anchor_ms: Mapping[str, float] | None = None,
                 reps: int = BOOTSTRAP, seed: int = 0) -> dict:
    """Everything lab.json holds, per backend. ``zoo_anchor_ms``: backend → the anchor's median in the zoo run
    (for the anchor-relative transfer), when that run measured it."""
    out: dict = {"method": __doc__.split("\n\n")[0], "bound_max_abs_corr": MAX_ABS_CORR, "backends": {}}
    for backend in sorted({r["backend"] for r in lab}):
        recs = [r for r in lab if r["backend"] == backend]
        fits = {}
        for reading in ("absolute", "anchor_relative"):
            f = fit_lab(recs, reading, reps=reps, seed=seed)
            if f is not None:
                fits[reading] = f
        if not fits:
            continue
        head = fits.get("anchor_relative") or fits["absolute"]
        ident = head["identification"]
        res = {"reading": head["reading"], "n_points": head["n_points"], "rounds": head["rounds"],
               "anchor_ms": head["anchor_ms"],
               "per_op_us": head["per_op_us"], "per_op_us_low": head["ci"]["per_op_us"][0],
               "per_op_us_high": head["ci"]["per_op_us"][1],
               "throughput_gflops": head["throughput_gflops"], "bandwidth_gbs": head["bandwidth_gbs"],
               "fixed_us": head["fixed_us"], "ci": head["ci"], "per_op_anchor_share": head["per_op_anchor_share"],
               "fit_median_ape": head["fit_median_ape"], "flops_only": head["flops_only"],
               "design": ident, "design_max_abs_corr": ident.get("max_abs_corr"),
               "design_condition_number": ident.get("condition_number"),
               "design_meets_bound": ident.get("max_abs_corr") is not None and ident["max_abs_corr"] <= MAX_ABS_CORR,
               "fits": {k: _public(v) for k, v in fits.items()}}
        res["ops_doubling"] = {"lab_loglinear": _lab_loglinear(head, reps=reps)}
        zrecs = [r for r in zoo if r["backend"] == backend and _pos(r.get("latency_ms"))]
        if zrecs:
            zx = _columns([_map_record(r, head["kinds"], head["regimes"]) for r in zrecs], head["kinds"], head["regimes"])
            zy = np.array([r["latency_ms"] for r in zrecs])
            res["zoo_identification"] = {**_zoo_identification(zrecs), "fit_condition_number": fit_condition_number(zx, zy)}
            res["transfer"] = {"absolute": _transfer(fits.get("absolute", head), zrecs)}
            if "anchor_relative" in fits and zoo_anchor_ms and _pos(zoo_anchor_ms.get(backend)):
                ar = fits["anchor_relative"]
                res["transfer"]["anchor_relative"] = _transfer(ar, zrecs, scale=zoo_anchor_ms[backend] / ar["anchor_ms"])
            best = res["transfer"].get("anchor_relative") or res["transfer"]["absolute"]
            res["zoo_within_10pct"] = best["additive"]["within_10pct"]
            res["zoo_median_ape"] = best["additive"]["median_ape"]
            res["zoo_within_10pct_flops_only"] = best["flops_only"]["within_10pct"]
            res["decomposition"] = _decomposition(head, zrecs)
            res["ops_doubling"]["causal"] = _causal(head, zrecs)
            res["ops_doubling"]["observational"] = observational_ops_effect(zrecs)
        out["backends"][backend] = res
    return out


def _public(fit: Mapping) -> dict:
    return {k: v for k, v in fit.items() if not k.startswith("_")}
