"""The rows of the claim's per-backend tables, as plain text cells: claim.md (``claim_report``) and claim.html
(``claim_html``) lay out the same rows, each in its own markup, so a number is formatted in one place."""

from __future__ import annotations

import math

from .latency_models import FORM_LABELS, FORMS
from .verdict_text import VERDICT_SHORT

__all__ = ["fmt_err", "fmt_ci", "fmt_rho", "fmt_rel", "fmt_pct", "fmt_df", "MODEL_HEADERS", "model_rows", "ADDITIVE_HEADERS",
           "additive_rows", "INFERENCE_HEADERS", "inference_rows", "LOFO_HEADERS", "lofo_rows", "zoo_sentence"]


def fmt_err(f: dict | None) -> tuple[str, str]:
    """A held-out error summary: median absolute error and share within ±10%, each with its interval."""
    if not f:
        return "—", "—"
    lo, hi = f["median_ape_ci"]
    wlo, whi = f["within_10pct_ci"]
    return (f"{100 * f['median_ape']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]",
            f"{100 * f['within_10pct']:.0f}% [{100 * wlo:.0f}, {100 * whi:.0f}]")


def fmt_ci(v, ci, fmt=".1f") -> str:
    """``v [lo, hi]``; an open end (None) is ∞."""
    if v is None:
        return "—"
    lo, hi = ci or (None, None)
    return f"{v:{fmt}} [{'∞' if lo is None else format(lo, fmt)}, {'∞' if hi is None else format(hi, fmt)}]"


def fmt_rho(entry) -> str:
    if not entry:
        return "—"
    lo, hi = entry["ci"] or (float("nan"), float("nan"))
    return f"{entry['rho']:.2f} [{lo:.2f}, {hi:.2f}]"


def fmt_rel(v) -> str:
    """A guideline row's relative speed ``(value, low, high)``."""
    return f"{v[0]:.2f} [{v[1]:.2f}, {v[2]:.2f}]" if v else "—"


def fmt_pct(v: float, digits: int = 1) -> str:
    """A relative change in percent with its sign; an unbounded one is ∞."""
    return f"{100 * v:+.{digits}f}%" if v is not None and math.isfinite(v) else "∞"


MODEL_HEADERS = ["model", "median abs. error [95%]", "within ±10% [95%]"]


def model_rows(a: dict) -> list[list[str]]:
    """The held-out latency models of one backend: every form, then the kernel sum and FLOPs only on the
    kernel sum's own cells."""
    forms = a.get("forms") or {}
    body = [[FORM_LABELS[f], *fmt_err(forms.get(f))] for f in FORMS if f in forms]
    ks = a.get("kernel_sum")
    if ks:
        body.append([f"kernel sum (profiled cells: {ks['n']})", *fmt_err(ks)])
        if ks.get("flops_same_cells"):
            body.append([f"FLOPs only, on the same {ks['n']} cells", *fmt_err(ks["flops_same_cells"])])
    return body


ADDITIVE_HEADERS = ["term", "fitted"]


def additive_rows(add: dict) -> list[list[str]]:
    """The additive model on every cell, in physical units, with family bootstrap intervals."""
    ci = add["ci"]
    return [["per executed op", fmt_ci(add["overhead_us_per_op"], ci["overhead_us_per_op"]) + " µs"],
            ["throughput", fmt_ci(add["throughput_gflops"], ci["throughput_gflops"], ".0f") + " GFLOP/s"],
            ["memory traffic", fmt_ci(add["bandwidth_gbs"], ci["bandwidth_gbs"], ".1f") + " GB/s"],
            ["fixed per inference", fmt_ci(add["fixed_ms"], ci["fixed_ms"], ".3f") + " ms"],
            ["per-op overhead's share of a cell's latency (median)", f"{100 * add['overhead_share_median']:.0f}%"]]


INFERENCE_HEADERS = ["model", "latency per doubling of ops", "CR1 95%", "CR2 95%", "wild bootstrap p",
                     "leave one family out", "traffic per doubling"]


def fmt_df(df: float) -> str:
    """Degrees of freedom: whole for CR1's G - 1, one decimal for a Satterthwaite approximation."""
    return f"{df:.0f} df" if float(df).is_integer() else f"{df:.1f} df"


def _reading(r: dict) -> str:
    lo, hi = r["ci95"]
    return f"[{fmt_pct(lo)}, {fmt_pct(hi)}] ({fmt_df(r['df'])}), {VERDICT_SHORT.get(r['code'], r['code'])}"


def inference_rows(e: dict) -> list[list[str]]:
    """The verdict's model and the same model with log memory traffic, side by side: the ops effect, its CR1 and
    CR2 intervals with their degrees of freedom and readings, the wild bootstrap p, the leave-one-family-out
    range, and (with traffic) the latency change per doubling of traffic."""
    def p(v):
        return "—" if v is None else f"{v:.2g}"

    def span(rng):
        return f"{fmt_pct(rng[0])} to {fmt_pct(rng[1])}" if rng else "—"

    rows = [["log FLOPs + log ops (the verdict's)", fmt_pct(e["effect"]), _reading(e["cr1"]), _reading(e["cr2"]),
             p((e.get("wild_bootstrap") or {}).get("p")), span((e.get("lofo") or {}).get("range")), "—"]]
    t = e.get("with_traffic")
    if t:
        rows.append(["log FLOPs + log ops + log traffic", fmt_pct(t["effect"]), _reading(t["cr1"]),
                     _reading(t["cr2"]), p(t.get("wild_bootstrap_p")), span(t.get("lofo_range")),
                     fmt_pct(2 ** t["traffic_elasticity"] - 1)])
    return rows


LOFO_HEADERS = ["left out", "latency per doubling of ops", "CR2 95%", "CR2 reading", "CR1 reading"]


def lofo_rows(e: dict) -> list[list[str]]:
    """One row per family whose absence changes a reading of the verdict's model (CR2, CR1 or the sign)."""
    lofo = e.get("lofo") or {}
    changed = set(lofo.get("flips", [])) | set(lofo.get("cr1_flips", [])) | set(lofo.get("sign_flips", []))
    return [[f["family"], fmt_pct(f["effect"]), f"[{fmt_pct(f['ci95'][0])}, {fmt_pct(f['ci95'][1])}] ({fmt_df(f['df'])})",
             VERDICT_SHORT.get(f["code"], f["code"]), VERDICT_SHORT.get(f["cr1_code"], f["cr1_code"])]
            for f in lofo.get("fits", []) if f["family"] in changed]


def zoo_sentence(zoo: dict) -> str:
    """What the zoo spans, counted from its cells: models, families, backends and the range of MACs."""
    variants = sorted(zoo.get("variants") or [], key=lambda v: ({"train": 0, "deploy": 1}.get(v, 2), v))
    forms = (f"each in its {' and '.join(variants)} form{'s' if len(variants) > 1 else ''}, " if variants else "")
    text = (f"The zoo here: {zoo['models']} models in {zoo['families']} families, {forms}on {zoo['backends']} "
            f"backend{'s' if zoo['backends'] != 1 else ''}")
    if zoo.get("macs_range_deploy"):
        text += f"; the deploy forms span {zoo['macs_range_deploy']:.0f}x in MACs"
        if zoo.get("macs_range_both"):
            text += f" ({zoo['macs_range_both']:.0f}x counting the train forms)"
    return text + "."
