"""The verdict in words: one sentence per backend that states the reading, how firm it is, and what the other
model forms and the model with memory traffic say. Every number comes from ``verdict.ops_effect``; the
wording only follows the verdict code (``verdict.decide``), so it cannot lean further than the data."""

from __future__ import annotations

import math

from .verdict import EQUIVALENCE, LEVEL

__all__ = ["VERDICT_TEXT", "VERDICT_SHORT", "VERDICT_METHOD", "pct_interval", "verdict_sentence", "fragility"]

VERDICT_TEXT = {
    "yes": "yes, more executed ops cost latency at equal FLOPs (fragmentation matters beyond FLOPs)",
    "equivalent": f"no, executed ops make no practical difference at equal FLOPs (equivalent within "
                  f"±{100 * EQUIVALENCE:.0f}% per doubling)",
    "no-opposite": "no, the opposite: more executed ops go with lower latency at equal FLOPs",
    "inconclusive": "inconclusive, the family-level interval holds both no effect and a practical one",
    # a reading that CR1 alone gives, or that a check undoes (verdict.decide): the sentence then says which
    "leans yes": "leans yes, not firmly: more executed ops seem to cost latency at equal FLOPs",
    "leans equivalent": f"leans no practical difference, not firmly (within ±{100 * EQUIVALENCE:.0f}% per doubling)",
    "leans no-opposite": "leans the opposite, not firmly: more executed ops seem to go with lower latency",
}
# The short labels of badges and table cells.
VERDICT_SHORT = {"yes": "yes", "equivalent": "no practical difference", "no-opposite": "no, the opposite",
                 "inconclusive": "inconclusive", "not enough data": "not enough data", "leans yes": "leans yes",
                 "leans equivalent": "leans no practical difference", "leans no-opposite": "leans the opposite"}

# How the verdict is reached, in Markdown (claim.md; claim.html renders it inline).
VERDICT_METHOD = (
    "The verdict asks one question of the zoo's cells: at equal FLOPs, does a model that executes more operators "
    "take longer? It is decided at family level: log latency on log FLOPs and log executed ops with one intercept "
    "per family, so that the evidence comes from differences inside families (train vs deploy forms, members of one "
    "design), with families, not cells, as the independent units and each cell's measurement noise propagated by "
    "redrawing it within its interval. With about twenty families, some far more influential than others, the "
    "interval is the small-sample CR2 (Bell-McCaffrey) one with Satterthwaite degrees of freedom; the usual CR1 "
    "interval, a wild cluster bootstrap test (Webb weights, null imposed) and a refit with each family left out "
    f"are shown beside it. *yes* and *no, the opposite* need the CR2 95% interval clear of zero, the bootstrap p "
    f"below {LEVEL:g} and every leave-one-family-out interval clear of zero on the same side; *no practical "
    f"difference* needs the CR2 90% interval, and every leave-one-family-out one, inside ±{100 * EQUIVALENCE:.0f}% "
    "(two one-sided tests). A reading that only CR1 gives, or that one of these checks does not confirm, is "
    "*leans …*, and the sentence says which check fails; anything else is *inconclusive*. The same model with log "
    "memory traffic added is fitted beside it, since more ops also move more bytes. The other model forms "
    "(additive, mixed, the held-out comparison) are shown beside it and the sentence says whether they agree.")


def pct_interval(v, ci, digits=0) -> str:
    """A relative change with its interval, in percent: ``+7.9% [+3.9, +12.1]``."""
    return f"{100 * v:+.{digits}f}% [{100 * ci[0]:+.{digits}f}, {_pct(ci[1], digits)}]"


def _pct(v, digits=1) -> str:
    # an unbounded end (df below 1) is inf in memory and null once read back from claim.json
    return f"{100 * v:+.{digits}f}" if v is not None and math.isfinite(v) else "∞"


def _ci(reading: dict) -> str:
    lo, hi = reading["ci95"]
    return f"[{_pct(lo)}, {_pct(hi)}]"


def _families(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _left_out(lofo: dict, key: str, label: str) -> list[str]:
    """'leaving out a or b makes the CR2 reading inconclusive', grouped by the reading each left-out fit gives."""
    flipped: dict[str, list[str]] = {}
    for f in lofo["fits"]:
        if f["family"] in lofo[key + "s"]:
            flipped.setdefault(f[key.replace("flip", "code")], []).append(f["family"])
    return [f"leaving out {_families(fams)} makes the {label} reading {VERDICT_SHORT.get(code, code)}"
            for code, fams in flipped.items()]


def fragility(e: dict) -> list[str]:
    """What keeps a reading from being plain: CR1 against CR2, the wild bootstrap, and the families whose
    absence changes it. Empty for a plain verdict whose every check agrees."""
    code, cr1, cr2, lofo = e["verdict"], e["cr1"], e["cr2"], e.get("lofo")
    boot = (e.get("wild_bootstrap") or {}).get("p")
    reading = code.removeprefix("leans ")
    out = []
    if cr2["code"] != reading and cr1["code"] == reading:
        what = "the 90% interval lies inside the band" if reading == "equivalent" else "the interval clears zero"
        out.append(f"{what} under CR1 but not under CR2")
    if reading in ("yes", "no-opposite") and boot is not None and boot >= LEVEL:
        out.append(f"the wild cluster bootstrap does not reject zero at {LEVEL:g}")
    if lofo:
        out += _left_out(lofo, "flip", "CR2")
        if cr2["code"] != reading:  # the reading is CR1's: which families undo even that
            out += _left_out(lofo, "cr1_flip", "CR1")
    return out


def _traffic(t: dict | None, reading: str) -> str:
    """The ops effect once memory traffic is held equal too; when it no longer clears zero under a reading of
    yes, the sentence says that ops and bytes cannot be told apart here."""
    if not t:
        return ""
    text = (f"With log memory traffic added to the model, doubling the executed ops at equal FLOPs and traffic "
            f"changes latency by {_pct(t['effect'])}% {_ci(t['cr2'])} (CR2, {t['cr2']['df']:.1f} df; "
            f"{VERDICT_SHORT.get(t['cr2']['code'], t['cr2']['code'])})")
    if reading == "yes" and t["cr2"]["code"] != "yes":
        text += ": more ops also move more bytes in this zoo, and with traffic held equal the ops effect is not resolved"
    return text


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
    reading = e["verdict"].removeprefix("leans ")
    if reading == "yes":
        agree = ("agree" if all(above) else "point the same way without all clearing zero"
                 if not any(below) else "disagree")
    elif reading == "no-opposite":
        agree = "agree" if all(below) else "disagree" if any(above) else "point the same way without all clearing zero"
    else:
        agree = "agree (no interval clear of zero)" if not any(above) and not any(below) else \
            "disagree: " + ("some find a cost per op" if any(above) else "some find the opposite")
    return f"The other model forms {agree}: " + "; ".join(parts)


def verdict_sentence(backend: str, a: dict) -> str:
    """The family-level verdict with its effect size under CR2 and CR1, the wild bootstrap, how fragile it is,
    the model with memory traffic, and whether the other model forms agree."""
    e = a.get("effect")
    if not e:
        return f"{backend}: not enough families to tell."
    cr1, cr2, boot = e["cr1"], e["cr2"], (e.get("wild_bootstrap") or {}).get("p")
    stability = e.get("noise_stability")
    text = (f"{backend}: {VERDICT_TEXT[e['verdict']]}: doubling the executed ops at equal FLOPs changes latency by "
            f"{_pct(e['effect'])}%, 95% interval {_ci(cr2)} under CR2 ({cr2['df']:.1f} df) and {_ci(cr1)} under "
            f"CR1 ({cr1['df']:.0f} df)" + (f", wild cluster bootstrap p = {boot:.2g}" if boot is not None else "")
            + f" ({e['families']} families as the units, measurement noise propagated"
            + (f"; {100 * stability:.0f}% of noise redraws give the same CR2 reading)" if stability is not None
               else ")"))
    lofo = e.get("lofo")
    if lofo:
        lo, hi = lofo["range"]
        text += f". Leaving out one family at a time, the effect ranges from {_pct(lo)}% to {_pct(hi)}%"
    fragile = fragility(e)
    if fragile:
        text += ("; " if lofo else ". ") + "; ".join(fragile)
    elif lofo:
        text += ", and every such fit keeps the reading"
    traffic = _traffic(e.get("with_traffic"), e["verdict"].removeprefix("leans "))
    if traffic:
        text += ". " + traffic
    corr = {c["predictor"]: c for c in a.get("correlations", [])}
    if "flops" in corr and "executed_ops" in corr:
        text += (f". Across the zoo, Spearman ρ of latency with FLOPs is {corr['flops']['spearman']:.2f} and with "
                 f"executed ops {corr['executed_ops']['spearman']:.2f}")
    agreement = _agreement(a)
    return text + (". " + agreement if agreement else "") + "."
