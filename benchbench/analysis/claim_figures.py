"""The claim page's interactive plots, as specs for ``assets/bbplot.js`` (``benchbench.results.html``): the
verdict's effect per backend, latency against FLOPs, the per-op overhead at fixed FLOPs and traffic, the
train/deploy pairs, and the guideline tables. Each spec only carries numbers of the analysis; nothing is fitted
here. The per-op overhead plot shows the additive model's own fit (its coefficients and their intervals): each
cell's latency less the fit's fixed, FLOPs and traffic terms, against its executed ops, beside the fitted
overhead per op.
"""

from __future__ import annotations

import math

from benchbench.results.html import PALETTE, VARIANT_COLOURS

from .claim_tables import fmt_ci
from .latency_models import design_rows
from .verdict import EQUIVALENCE
from .verdict_text import VERDICT_SHORT, pct_interval

__all__ = ["effect_plot", "latency_plot", "overhead_plot", "pairs_plot", "guideline_plot"]


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def effect_plot(per_backend: dict) -> dict | None:
    """The verdict's effect per backend, with its 95% interval, and the equivalence band."""
    backends = [(b, a["effect"]) for b, a in per_backend.items() if a.get("effect")]
    if not backends:
        return None
    points = []
    for i, (b, e) in enumerate(backends):
        lo, hi = e["effect_ci95"]
        boot = (e.get("wild_bootstrap") or {}).get("p")
        points.append({"x": 100 * e["effect"], "y": -i, "xlo": 100 * lo, "xhi": 100 * hi if _finite(hi) else None,
                       "g": "",
                       "t": [b, f"verdict: {VERDICT_SHORT.get(e['verdict'], e['verdict'])}",
                             f"doubling executed ops at equal FLOPs: {pct_interval(e['effect'], e['effect_ci95'], 1)} "
                             f"(CR2, {e['df']:.1f} df)",
                             (f"CR1: {pct_interval(e['effect'], e['cr1']['ci95'], 1)}" if "cr1" in e else "")
                             + ("" if boot is None else f"; wild bootstrap p = {boot:.2g}"),
                             f"{e['families']} families"]})
    return {"title": "Latency change per doubling of executed ops at equal FLOPs (CR2 95%, families as units)",
            "height": 70 + 46 * len(backends), "legend": False,
            "x": {"label": "latency change per doubling of executed ops (%)"},
            "y": {"min": 0.6 - len(backends), "max": 0.6, "ticks": [[-i, b] for i, (b, _) in enumerate(backends)]},
            "series": [{"name": "effect", "color": "#1d232b", "marker": "diamond", "size": 5, "points": points}],
            "bands": [{"axis": "x", "from": -100 * EQUIVALENCE, "to": 100 * EQUIVALENCE, "color": "#8c959f"}],
            "refs": [{"axis": "x", "value": 0.0}],
            "note": f"Grey band: ±{100 * EQUIVALENCE:.0f}%, the equivalence margin (no practical difference needs the "
                    "90% interval inside it)."}


def _obs_tip(r: dict) -> list[str]:
    ci = f" [{r['ci_low_ms']:.3f}, {r['ci_high_ms']:.3f}]" if _finite(r.get("ci_low_ms")) else ""
    return [r["model"], f"{r['family']} · {r['variant']} · {r['backend']}",
            f"median {r['median_ms']:.3f} ms{ci} (95%)",
            f"{r['flops'] / 1e9:.3g} GFLOPs · {r.get('executed_ops') or '?'} executed ops"]


def latency_plot(rows: list[dict], backend: str) -> dict | None:
    pts = [r for r in rows if r["backend"] == backend and _finite(r.get("flops")) and r["flops"] > 0
           and _finite(r.get("median_ms")) and r["median_ms"] > 0]
    if not pts:
        return None
    series = []
    for variant in dict.fromkeys(r["variant"] for r in pts):
        series.append({"name": variant, "marker": "square" if variant == "train" else "circle",
                       "color": VARIANT_COLOURS.get(variant, "#555"),
                       "points": [{"x": r["flops"] / 1e9, "y": r["median_ms"], "lo": r.get("ci_low_ms"),
                                   "hi": r.get("ci_high_ms"), "c": r.get("executed_ops"), "g": r["family"],
                                   "t": _obs_tip(r)} for r in pts if r["variant"] == variant]})
    return {"title": f"Latency against FLOPs on {backend} (colour: executed ops)",
            "x": {"label": "GFLOPs per inference", "log": True},
            "y": {"label": "median latency (ms), 95% interval", "log": True},
            "color": {"label": f"executed ops ({backend})", "log": True}, "series": series,
            "note": "Square: train form, circle: deploy form. Hover a point for its cell and interval; pick a family "
                    "above to highlight it in every plot."}


def overhead_plot(rows: list[dict], backend: str, add: dict | None) -> dict | None:
    """Latency left after the additive fit's fixed, FLOPs and traffic terms, against executed ops, with the
    fitted overhead per op and its interval: if fragmentation costs time, the points rise along the line."""
    if not add or not all(_finite(add.get(k)) and add[k] > 0 for k in ("throughput_gflops", "bandwidth_gbs")):
        return None
    sub = design_rows([r for r in rows if r["backend"] == backend])
    if not sub:
        return None
    fixed, ms_per_gflop, ms_per_mb = add["fixed_ms"], 1e3 / add["throughput_gflops"], 1.0 / add["bandwidth_gbs"]
    points = []
    for r in sub:
        rest = fixed + ms_per_gflop * r["flops"] / 1e9 + ms_per_mb * r["mac_bytes"] / 1e6

        def left(v, rest=rest):
            return v - rest if _finite(v) else None

        points.append({"x": r["executed_ops"], "y": left(r["median_ms"]), "lo": left(r.get("ci_low_ms")),
                       "hi": left(r.get("ci_high_ms")), "c": r["flops"] / 1e9, "g": r["family"],
                       "t": _obs_tip(r) + [f"left after FLOPs, traffic, fixed: {r['median_ms'] - rest:+.3f} ms; "
                                           f"the fit's ops term: {add['overhead_us_per_op'] * r['executed_ops'] / 1e3:.3f} ms"]})
    # The axis spans the bulk of the cells: a few large models whose latency the fit misses by tens of ms
    # would flatten every other point onto zero; those are drawn on the axis's edge (as triangles).
    ys = sorted(p["y"] for p in points)
    q_lo, q_hi = ys[int(0.03 * (len(ys) - 1))], ys[int(math.ceil(0.97 * (len(ys) - 1)))]
    pad = 0.25 * (q_hi - q_lo or 1.0)
    xs = [p["x"] for p in points]
    lo_x, hi_x = min(xs), max(xs)
    y_lo, y_hi = min(q_lo - pad, 0.0), max(q_hi + pad, add["overhead_us_per_op"] * hi_x / 1e3 * 1.2)
    beyond = sum(not y_lo <= p["y"] <= y_hi for p in points)
    grid = [lo_x * (hi_x / lo_x) ** (i / 40) for i in range(41)] if hi_x > lo_x else [lo_x, lo_x * 1.01]
    us, ci = add["overhead_us_per_op"], add["ci"].get("overhead_us_per_op") or [None, None]
    line = {"name": f"fitted overhead: {fmt_ci(us, ci)} µs per executed op", "color": "#cf222e", "width": 2,
            "pts": [[x, us * x / 1e3] for x in grid]}
    if all(_finite(v) for v in ci):
        line["band"] = [[x, ci[0] * x / 1e3, ci[1] * x / 1e3] for x in grid]
    return {"title": f"Per-op overhead on {backend}: latency beyond FLOPs and traffic against executed ops",
            "x": {"label": "executed ops", "log": True},
            "y": {"label": "latency − (fixed + FLOPs + traffic terms) (ms)", "min": y_lo, "max": y_hi, "clamp": True},
            "color": {"label": "GFLOPs", "log": True},
            "series": [{"name": "cells", "points": points}], "lines": [line], "refs": [{"axis": "y", "value": 0.0}],
            "legend": True,
            "note": "Each cell's measured latency less the additive model's fixed, FLOPs and traffic terms (the fit "
                    "to every cell of this backend), with its 95% interval; the red line is the fit's overhead per "
                    "executed op, the band its family-bootstrap 95% interval."
                    + (f" {beyond} cells lie beyond the vertical axis and are drawn on its edge as triangles (hover "
                       "for their values)." if beyond else "")}


def pairs_plot(pairs: list[dict], backend: str, aa: dict | None) -> dict | None:
    pts = [p for p in pairs if p["backend"] == backend and _finite(p.get("flops_ratio")) and p["flops_ratio"] > 0]
    if not pts:
        return None
    points = []
    for p in pts:
        lo, hi = p["latency_ratio_ci"]
        points.append({"x": p["flops_ratio"], "y": p["latency_ratio"], "lo": lo, "hi": hi, "c": p.get("ops_ratio"),
                       "g": p["family"],
                       "t": [p["model"], f"{p['family']} · {backend}" + (" · identical graphs" if p["identical"] else ""),
                             f"latency deploy/train {p['latency_ratio']:.3f} [{lo:.3f}, {hi:.3f}] "
                             f"({'paired' if p.get('paired') else 'unpaired'})",
                             f"FLOPs ratio {p['flops_ratio']:.3f} · executed-ops ratio "
                             + (f"{p['ops_ratio']:.3f}" if _finite(p.get("ops_ratio")) else "?")]})
    xs = [p["x"] for p in points] + [p["y"] for p in points]
    lo_d, hi_d = min(xs) * 0.95, max(xs) * 1.05
    spec = {"title": f"Train → deploy on {backend}: latency ratio against FLOPs ratio",
            "x": {"label": "FLOPs ratio deploy/train", "log": True},
            "y": {"label": "latency ratio deploy/train, 95% interval", "log": True},
            "color": {"label": "executed-ops ratio deploy/train", "log": True},
            "series": [{"name": "pairs", "points": points}],
            "lines": [{"name": "latency ratio = FLOPs ratio", "color": "#1d232b", "width": 1,
                       "pts": [[lo_d, lo_d], [hi_d, hi_d]]}], "legend": True}
    if aa and _finite(aa.get("max_deviation")):
        d = aa["max_deviation"]
        spec["bands"] = [{"axis": "y", "from": 1 / (1 + d), "to": 1 + d}]
        spec["note"] = (f"Green band: the A/A control, ±{100 * d:.1f}% (the largest deviation of the {aa['n']} pairs "
                        "whose two forms run the same graph here).")
    return spec


def guideline_plot(entries: list[dict]) -> dict:
    """One table: each row's speed relative to the first, per backend (colour) and width (marker), beside the
    paper's ARM and GPU speeds (hollow)."""
    labels = [row["row"] for row in entries[0]["rows"]]
    backends = list(dict.fromkeys(e["backend"] for e in entries))
    markers = {1: "circle", 2: "square", 4: "diamond"}
    slots = [(b, m) for b in backends for m in (1, 2, 4) if any(e["backend"] == b and e["multiplier"] == m
                                                                 for e in entries)]
    step = 0.7 / (len(slots) + 2)
    series = []
    for j, (b, m) in enumerate(slots):
        e = next(e for e in entries if e["backend"] == b and e["multiplier"] == m)
        pts = []
        for i, row in enumerate(e["rows"]):
            if row["ours"]:
                v, lo, hi = row["ours"]
                pts.append({"x": v, "y": 0.35 - i - step * (j + 1), "xlo": lo, "xhi": hi, "g": "",
                            "t": [f"{row['row']} ({row['model']})", f"{b} · channels x{m}",
                                  f"speed vs the first row {v:.2f} [{lo:.2f}, {hi:.2f}] "
                                  f"({'paired' if row.get('paired') else 'unpaired'})",
                                  f"paper: ARM {row['arm']:.2f}, GPU {row['gpu']:.2f}"]})
        series.append({"name": f"{b} x{m}", "color": PALETTE[backends.index(b) % len(PALETTE)], "marker": markers[m],
                       "points": pts})
    first = next((e for e in entries if e["multiplier"] == 1), entries[0])
    for name, key, colour in (("paper ARM", "arm", "#1d232b"), ("paper GPU", "gpu", "#cf222e")):
        series.append({"name": name, "color": colour, "hollow": True, "marker": "circle", "points": [
            {"x": row[key], "y": step / 2 - 0.35 - i, "g": "",
             "t": [row["row"], f"{name} (x{first['multiplier']} channels)", f"speed vs the first row {row[key]:.2f}"]}
            for i, row in enumerate(first["rows"])]})
    return {"height": 90 + 48 * len(labels),  # the section's heading is its title
            "x": {"label": "speed relative to the first row (>1: faster)", "log": True},
            "y": {"min": 0.5 - len(labels), "max": 0.5, "ticks": [[-i, label] for i, label in enumerate(labels)]},
            "series": series, "refs": [{"axis": "x", "value": 1.0}]}
