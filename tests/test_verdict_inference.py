"""Planted truths for the verdict's small-sample inference: CR2 intervals cover a planted ops effect at close to
their nominal rate with few families, CR1 over-rejects a planted null where CR2 and the wild cluster bootstrap
hold their level better, leave-one-family-out finds a single influential family, and ops and traffic that move
together give a wide interval when both are in the model."""

import math

import numpy as np
import pytest
from scipy.stats import t as student_t

from benchbench.analysis.cluster_inference import WithinDesign
from benchbench.analysis.verdict import decide, ops_effect
from benchbench.analysis.verdict_text import verdict_sentence


def _clustered(rng, clusters, effect=0.1, slope_sd=0.15, noise=0.05):
    """log latency = family intercept + log FLOPs + effect x log ops + a family's own ops slope + noise.

    Families differ in how much their ops vary inside them (a few vary a lot, as a zoo's re-parameterized
    families do), and each has its own random ops slope: the within-family errors are correlated with the ops,
    which is what a cluster-robust interval has to absorb, and the high-variation families carry the leverage."""
    y, x, groups = [], [], []
    for g in range(clusters):
        spread = 1.5 if g < 2 else 0.2  # two families carry most of the within-family variation in ops
        slope = slope_sd * rng.standard_normal()
        intercept = rng.standard_normal()
        for _ in range(int(rng.integers(3, 7))):
            flops = rng.uniform(19, 23)
            ops = 4 + spread * rng.standard_normal()
            y.append(intercept + flops + (effect + slope) * ops + noise * rng.standard_normal())
            x.append((flops, ops))
            groups.append(f"f{g}")
    return np.array(y), np.array(x), np.array(groups)


def _t_interval(beta, var, df):
    q = student_t.ppf(0.975, df)
    return beta - q * math.sqrt(var), beta + q * math.sqrt(var)


def _covers(y, x, groups, truth):
    """Whether the CR1 and CR2 95% intervals of the ops coefficient hold ``truth``."""
    d = WithinDesign(x, groups)
    beta, resid = d.fit(y)
    lo1, hi1 = _t_interval(beta[1], d.variance(resid, 1, "cr1"), d.families - 1)
    lo2, hi2 = _t_interval(beta[1], d.variance(resid, 1, "cr2"), d.cr2_df(1))
    return lo1 <= truth <= hi1, lo2 <= truth <= hi2


def test_cr2_intervals_cover_a_planted_effect_at_close_to_the_nominal_rate():
    rng = np.random.default_rng(11)
    cr1, cr2, reps = 0, 0, 200
    for i in range(reps):
        c1, c2 = _covers(*_clustered(rng, clusters=8 + i % 13), truth=0.1)  # 8 to 20 families
        cr1 += c1
        cr2 += c2
    assert cr2 / reps >= 0.88  # nominal 95%; binomial sd 1.5% at 200 replicates
    assert cr2 > cr1  # the leverage of two families is what CR1 misses


def test_cr1_over_rejects_a_planted_null_where_cr2_and_the_wild_bootstrap_hold_their_level_better():
    rng = np.random.default_rng(12)
    rejected = {"cr1": 0, "cr2": 0, "wild": 0}
    reps = 200
    for i in range(reps):
        y, x, groups = _clustered(rng, clusters=8 + i % 5, effect=0.0)  # 8 to 12 families
        c1, c2 = _covers(y, x, groups, truth=0.0)
        rejected["cr1"] += not c1
        rejected["cr2"] += not c2
        rejected["wild"] += WithinDesign(x, groups).wild_bootstrap_p(y, 1, reps=399, seed=i) < 0.05
    rate = {k: v / reps for k, v in rejected.items()}
    assert rate["cr1"] > 0.10, rate  # the usual interval, nominally 5%, is fooled at least twice as often
    assert rate["cr2"] < rate["cr1"] and rate["wild"] < rate["cr1"], rate
    assert rate["cr2"] <= 0.09 and rate["wild"] <= 0.10, rate


def test_cr2_on_the_within_design_equals_cr2_with_every_family_intercept_as_a_column():
    """Absorbing the intercepts by demeaning loses nothing: the Bell-McCaffrey adjustment computed on the full
    dummy-variable design (with a pseudo-inverse square root) gives the same variance."""
    y, x, groups = _clustered(np.random.default_rng(13), clusters=6)
    d = WithinDesign(x, groups)
    _, resid = d.fit(y)
    names = np.unique(groups)
    full = np.column_stack([x] + [(groups == g).astype(float) for g in names])
    bread = np.linalg.pinv(full.T @ full)
    e = y - full @ (bread @ full.T @ y)
    meat = np.zeros((full.shape[1],) * 2)
    for g in names:
        m = groups == g
        h = np.eye(m.sum()) - full[m] @ bread @ full[m].T
        vals, vecs = np.linalg.eigh(h)
        a = (vecs * np.where(vals > 1e-10, 1 / np.sqrt(np.clip(vals, 1e-10, None)), 0.0)) @ vecs.T
        s = full[m].T @ (a @ e[m])
        meat += np.outer(s, s)
    brute = (bread @ meat @ bread)[1, 1]
    assert d.variance(resid, 1, "cr2") == pytest.approx(brute, rel=1e-8)
    assert np.allclose(resid, e)


def test_the_degrees_of_freedom_fall_when_a_few_families_carry_the_leverage():
    rng = np.random.default_rng(14)
    y, x, groups = _clustered(rng, clusters=20)
    skewed = WithinDesign(x, groups).cr2_df(1)
    x_even = x.copy()
    x_even[:, 1] = 4 + 0.5 * rng.standard_normal(len(x))  # every family varies alike
    even = WithinDesign(x_even, groups).cr2_df(1)
    assert skewed < 8 < even <= 19  # G - 1 = 19 is the ceiling


def _rows(rng, families=12, effect=0.0, influential=None, traffic_from_ops=False):
    """Zoo cells for ``ops_effect``: a planted ops effect per doubling (log2 scale), one family with a strong
    effect of its own (``influential``), and memory traffic that follows the ops (``traffic_from_ops``)."""
    rows = []
    for f in range(families):
        big = f == influential
        for m in range(4):
            flops = 10 ** rng.uniform(8.5, 10)
            ops = 2 ** (6 + (2.5 if big else 0.4) * rng.standard_normal())
            mac = ops * 1e5 * math.exp(0.05 * rng.standard_normal()) if traffic_from_ops else 10 ** rng.uniform(6.5, 8)
            b = 0.6 if big else effect
            lat = flops / 1e8 * 2 ** (b * math.log2(ops)) * math.exp(0.05 * rng.standard_normal() + f / 7)
            rows.append({"model": f"f{f}m{m}", "family": f"f{f}", "variant": "deploy", "median_ms": lat,
                         "ci_low_ms": lat * 0.99, "ci_high_ms": lat * 1.01, "flops": flops, "executed_ops": ops,
                         "mac_bytes": mac})
    return rows


def test_leave_one_family_out_flags_a_single_influential_family_and_the_verdict_says_so():
    e = ops_effect(_rows(np.random.default_rng(15), influential=3), noise_reps=0, bootstrap_reps=999)
    loo = e["lofo"]
    without = next(f for f in loo["fits"] if f["family"] == "f3")
    others = [f["effect"] for f in loo["fits"] if f["family"] != "f3"]
    assert abs(without["effect"]) < 0.05 < min(others)  # only leaving out f3 removes the effect
    assert loo["range"][0] == pytest.approx(without["effect"])
    assert "f3" in loo["flips"] + loo["cr1_flips"]
    assert e["verdict"] != "yes"  # one family's absence undoes it: never a plain yes
    text = verdict_sentence("ort", {"effect": e})
    assert "leaving out f3 makes the" in text


def test_a_planted_effect_carried_by_every_family_is_a_plain_yes():
    e = ops_effect(_rows(np.random.default_rng(16), effect=0.2), noise_reps=20, bootstrap_reps=999)
    assert e["verdict"] == "yes" and not e["lofo"]["flips"]
    assert e["cr2"]["ci95"][0] <= 2 ** 0.2 - 1 <= e["cr2"]["ci95"][1]
    assert e["wild_bootstrap"]["p"] < 0.01
    assert "every such fit keeps the reading" in verdict_sentence("ort", {"effect": e})


def test_collinear_ops_and_traffic_give_a_wide_interval_when_both_are_in_the_model():
    e = ops_effect(_rows(np.random.default_rng(17), effect=0.2, traffic_from_ops=True), noise_reps=0,
                   bootstrap_reps=0)
    t = e["with_traffic"]
    width, width_t = (r["cr2"]["ci95"][1] - r["cr2"]["ci95"][0] for r in (e, t))
    assert e["cr2"]["code"] == "yes"
    assert width_t > 4 * width  # the bytes follow the ops: the model cannot tell which costs the time
    assert t["cr2"]["ci95"][0] <= 2 ** 0.2 - 1 <= t["cr2"]["ci95"][1]  # wide, and still honest


def test_decide_needs_cr2_every_left_out_family_and_the_bootstrap_for_a_plain_reading():
    assert decide("yes", "yes", ["yes"] * 5, 0.01) == "yes"
    assert decide("yes", "inconclusive", ["yes"] * 5, 0.01) == "leans yes"  # CR1 alone
    assert decide("yes", "yes", ["yes", "inconclusive"], 0.01) == "leans yes"  # one family undoes it
    assert decide("yes", "yes", ["yes"] * 5, 0.07) == "leans yes"  # the bootstrap does not reject
    assert decide("yes", "yes", ["yes"] * 5, None) == "leans yes"  # no bootstrap, no plain sign
    assert decide("no-opposite", "no-opposite", ["no-opposite"], 0.01) == "no-opposite"  # the same rule both ways
    assert decide("no-opposite", "inconclusive", ["no-opposite"], 0.01) == "leans no-opposite"
    assert decide("equivalent", "equivalent", ["equivalent", "equivalent"], 0.6) == "equivalent"
    assert decide("equivalent", "equivalent", ["equivalent", "inconclusive"], 0.6) == "leans equivalent"
    assert decide("inconclusive", "inconclusive", ["yes"], 0.01) == "inconclusive"


def test_the_wild_bootstrap_takes_rademacher_weights_too_and_refuses_others():
    y, x, groups = _clustered(np.random.default_rng(18), clusters=12, effect=0.5, slope_sd=0.02)
    d = WithinDesign(x, groups)
    assert d.wild_bootstrap_p(y, 1, reps=999, weights="rademacher") < 0.01  # a large planted effect
    assert d.wild_bootstrap_p(y, 1, reps=999, seed=3) == d.wild_bootstrap_p(y, 1, reps=999, seed=3)  # seeded
    with pytest.raises(ValueError, match="rademacher"):
        d.wild_bootstrap_p(y, 1, weights="mammen")
