"""The claim beside the lab: the zoo's observational effect of executed ops next to the lab's causal one.

``benchbench claim RESULTS --lab LAB`` reads a ``benchbench lab`` run's ``lab.json`` and sets, per backend,
the zoo verdict's effect per doubling of executed ops at equal FLOPs (without and with traffic in the model,
CR2 intervals) beside the lab's (per-op cost, and the effect at fixed FLOPs and traffic, from designed nets
whose ops, traffic and FLOPs are nearly uncorrelated), and says where they disagree. Pure data in, text out.
"""

from __future__ import annotations

from collections.abc import Mapping

from .lab_report import lab_markdown

__all__ = ["lab_comparison", "lab_section", "lab_rows", "LAB_HEADERS", "LAB_INTRO"]


def _interval_side(ci) -> str | None:
    """'above', 'below' or 'straddles' zero, for a [low, high] pair (None when missing)."""
    if not ci or ci[0] is None or ci[1] is None:
        return None
    return "above" if ci[0] > 0 else "below" if ci[1] < 0 else "straddles"


def _agreement(zoo: Mapping | None, lab: Mapping | None) -> str:
    """How the zoo's reading (with traffic held equal) and the lab's causal one relate."""
    z, c = _interval_side((zoo or {}).get("ci95")), _interval_side((lab or {}).get("ci95"))
    if z is None or c is None:
        return "not comparable (one of the two is missing)"
    if z == c == "straddles":
        return "neither resolves an effect"
    if z == c:
        return f"they agree: both {z} zero"
    if "straddles" in (z, c):
        which = "the lab" if c != "straddles" else "the zoo"
        return f"only {which} resolves an effect ({c if c != 'straddles' else z} zero)"
    return "they disagree in sign"


def lab_comparison(claim: Mapping, lab: Mapping) -> dict:
    """Per backend found in both: the zoo's effect per doubling of ops (CR2, without and with traffic) and the
    lab's (per-op cost with its interval, the causal effect on the zoo's cells, the lab's log-linear effect,
    the share of zoo cells the lab alone predicts within ±10%), and how they relate."""
    out = {}
    for backend, r in (lab.get("backends") or {}).items():
        effect = ((claim.get("per_backend") or {}).get(backend) or {}).get("effect") or {}
        traffic = effect.get("with_traffic") or {}
        od = r.get("ops_doubling") or {}
        zoo = {"effect": effect.get("effect"), "ci95": (effect.get("cr2") or {}).get("ci95")} if effect else None
        zoo_traffic = {"effect": traffic.get("effect"), "ci95": (traffic.get("cr2") or {}).get("ci95")} \
            if traffic else None
        causal = od.get("causal")
        out[backend] = {
            "zoo": zoo, "zoo_with_traffic": zoo_traffic,
            "lab_per_op_us": [r.get("per_op_us"), r.get("per_op_us_low"), r.get("per_op_us_high")],
            "lab_causal": causal, "lab_loglinear": od.get("lab_loglinear"),
            "lab_design_max_abs_corr": r.get("design_max_abs_corr"), "lab_points": r.get("n_points"),
            "lab_zoo_within_10pct": r.get("zoo_within_10pct"),
            "agreement": _agreement(zoo_traffic, causal),
        }
    return out


def _pct(e: Mapping | None) -> str:
    if not e or e.get("effect") is None:
        return "—"
    ci = e.get("ci95") or [None, None]
    inner = ", ".join("?" if v is None else f"{100 * v:+.1f}" for v in ci)
    return f"{100 * e['effect']:+.1f}% [{inner}]"


LAB_HEADERS = ["backend", "zoo, per doubling of ops", "zoo, traffic held equal", "lab µs per op",
               "lab effect on the zoo", "lab log-linear", "zoo within ±10% from the lab",
               "zoo (traffic held equal) vs lab"]
LAB_INTRO = ("The zoo's effect is observational: every architecture changes FLOPs, ops and traffic at once, so its "
             "intervals (CR2, families as units) are wide once traffic is in the model. The lab's is causal: designed "
             "nets whose log ops, log traffic and log FLOPs are nearly uncorrelated on the backend's executed graph, "
             "measured in anchored lockstep blocks. The lab's effect on the zoo is the latency change of each zoo "
             "cell, at fixed FLOPs and traffic, when its executed ops double, under the lab's additive fit (median "
             "over cells); the log-linear one is fitted on the designed nets themselves.")


def lab_rows(comparison: Mapping) -> list[list[str]]:
    """One row per backend under ``LAB_HEADERS``, for claim.md and claim.html alike."""
    rows = []
    for backend, c in comparison.items():
        cost = c["lab_per_op_us"]
        within = c["lab_zoo_within_10pct"]
        rows.append([backend, _pct(c["zoo"]), _pct(c["zoo_with_traffic"]),
                     f"{cost[0]:.3g} [{cost[1]:.3g}, {cost[2]:.3g}]" if None not in cost else "—",
                     _pct(c["lab_causal"]), _pct(c["lab_loglinear"]),
                     "—" if within is None else f"{within:.0%}", c["agreement"]])
    return rows


def lab_section(comparison: Mapping, lab: Mapping, source: str) -> list[str]:
    """claim.md's lab section: the comparison table, then the lab's own report one level down."""
    from tabulate import tabulate

    lines = ["## The fragmentation lab beside the zoo", "", f"From `{source}`. {LAB_INTRO}", "",
             tabulate(lab_rows(comparison), LAB_HEADERS, tablefmt="github", disable_numparse=True), ""]
    return lines + lab_markdown(lab, level=3).splitlines() + [""]
