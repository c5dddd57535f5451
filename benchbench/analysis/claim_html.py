"""``claim.html`` and the reference's ``index.html``: the claim analysis as pages that open offline.

The page kit is ``benchbench.results.html`` (inlined styles, scripts and data; no request). Every number
comes from the analysis dict of ``claim.analyze``, formatted as claim.md formats it: the verdicts per backend
with their intervals, the guideline tables with their paired intervals, and interactive versions of the key
plots. The per-op overhead plot shows the additive model's own fit (its coefficients and their intervals):
each cell's latency less the fit's fixed, FLOPs and traffic terms, against its executed ops, beside the fitted
overhead per op; nothing is fitted here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from benchbench.results.html import PALETTE, VARIANT_COLOURS, esc, md_inline, page, table, write_page
from benchbench.results.views import run_header

from .claim import VERDICT_TEXT, pct_interval
from .claim_report import THREATS, _ci, _err, _fmt_rel, _rho
from .latency_models import FORM_LABELS, FORMS, design_rows
from .verdict import EQUIVALENCE

__all__ = ["claim_html", "write_claim_html", "index_html", "write_index_html", "CLAIM_HTML", "INDEX_HTML"]

CLAIM_HTML = "claim.html"
INDEX_HTML = "index.html"
TITLE = "Does fragmentation predict latency beyond FLOPs?"
_VERDICT_SHORT = {"yes": "yes", "equivalent": "no practical difference", "no-opposite": "no, the opposite",
                  "inconclusive": "inconclusive", "not enough data": "not enough data"}


def _badge(code: str) -> str:
    return f'<span class="badge v-{esc(code.replace(" ", "-"))}">{esc(_VERDICT_SHORT.get(code, code))}</span>'


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# ---- plots (specs for assets/bbplot.js) ----------------------------------------------------------------

def _effect_plot(per_backend: dict) -> dict | None:
    """The verdict's effect per backend, with its 95% interval, and the equivalence band."""
    backends = [(b, a["effect"]) for b, a in per_backend.items() if a.get("effect")]
    if not backends:
        return None
    points = []
    for i, (b, e) in enumerate(backends):
        lo, hi = e["effect_ci95"]
        points.append({"x": 100 * e["effect"], "y": -i, "xlo": 100 * lo, "xhi": 100 * hi, "g": "",
                       "t": [b, f"verdict: {_VERDICT_SHORT.get(e['verdict'], e['verdict'])}",
                             f"doubling executed ops at equal FLOPs: {pct_interval(e['effect'], e['effect_ci95'], 1)}",
                             f"{e['families']} families; {100 * e['noise_stability']:.0f}% of noise redraws keep it"]})
    return {"title": "Latency change per doubling of executed ops at equal FLOPs (95%, families as units)",
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


def _latency_plot(rows: list[dict], backend: str) -> dict | None:
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


def _overhead_plot(rows: list[dict], backend: str, add: dict | None) -> dict | None:
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
    line = {"name": f"fitted overhead: {_ci(us, ci)} µs per executed op", "color": "#cf222e", "width": 2,
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


def _pairs_plot(pairs: list[dict], backend: str, aa: dict | None) -> dict | None:
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


def _guideline_plot(entries: list[dict]) -> dict:
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


# ---- sections ------------------------------------------------------------------------------------------

def _verdict_table(per_backend: dict) -> str:
    headers = ["backend", "verdict", ("latency per doubling of executed ops at equal FLOPs (95%)", "num"),
               ("families", "num"), ("noise redraws keeping it", "num"), ("µs per executed op", "num"),
               ("GFLOP/s", "num"), "held out, within ±10%: FLOPs / additive / log-linear / mixed", "kernel sum"]
    body = []
    for backend, a in per_backend.items():
        e, add, forms, ks = a.get("effect"), a.get("additive"), a.get("forms") or {}, a.get("kernel_sum")
        within = " / ".join(f"{100 * forms[f]['within_10pct']:.0f}%" if f in forms else "—" for f in FORMS)
        body.append([
            backend, (_badge(a.get("verdict_code", "not enough data")), a.get("verdict_code")),
            (esc(pct_interval(e["effect"], e["effect_ci95"], 1)), e["effect"]) if e else ("—", None),
            (str(e["families"]), e["families"]) if e else ("—", None),
            (f"{100 * e['noise_stability']:.0f}%", e["noise_stability"]) if e else ("—", None),
            (esc(_ci(add["overhead_us_per_op"], add["ci"]["overhead_us_per_op"])), add["overhead_us_per_op"])
            if add else ("—", None),
            (esc(_ci(add["throughput_gflops"], add["ci"]["throughput_gflops"], ".0f")), add["throughput_gflops"])
            if add else ("—", None),
            within, f"{100 * ks['within_10pct']:.0f}% of {ks['n']}" if ks else "no op times",
        ])
    return table("verdicts", headers, body)


def _backend_tables(a: dict) -> list[str]:
    out = []
    forms = a.get("forms") or {}
    if forms:
        body = [[FORM_LABELS[f], *_err(forms.get(f))] for f in FORMS if f in forms]
        ks = a.get("kernel_sum")
        if ks:
            body.append([f"kernel sum (profiled cells: {ks['n']})", *_err(ks)])
            if ks.get("flops_same_cells"):
                body.append([f"FLOPs only, on the same {ks['n']} cells", *_err(ks["flops_same_cells"])])
        out += ["<h3>Latency models, each family predicted by a fit to the others</h3>",
                table(None, ["model", "median abs. error [95%]", "within ±10% [95%]"], body, sortable=False)]
    add = a.get("additive")
    if add:
        ci = add["ci"]
        out += ["<h3>Additive model on every cell (family bootstrap 95% intervals)</h3>", table(None, ["term", "fitted"], [
            ["per executed op", _ci(add["overhead_us_per_op"], ci["overhead_us_per_op"]) + " µs"],
            ["throughput", _ci(add["throughput_gflops"], ci["throughput_gflops"], ".0f") + " GFLOP/s"],
            ["memory traffic", _ci(add["bandwidth_gbs"], ci["bandwidth_gbs"], ".1f") + " GB/s"],
            ["fixed per inference", _ci(add["fixed_ms"], ci["fixed_ms"], ".3f") + " ms"],
            ["per-op overhead's share of a cell's latency (median)", f"{100 * add['overhead_share_median']:.0f}%"],
        ], sortable=False)]
    mixed = a.get("mixed")
    if mixed and "ops_doubling_effect" in mixed:
        out.append(f"<p>Mixed model (a random intercept per family): doubling the executed ops at equal FLOPs and "
                   f"traffic changes latency by {esc(pct_interval(mixed['ops_doubling_effect'], mixed['ops_doubling_effect_ci'], 1))}; "
                   f"family intercepts vary with sd {mixed['family_sd']:.2f} (log scale).</p>")
    p, aa = a.get("pairs"), a.get("aa")
    if p:
        out += [f"<h3>Within-pair contrasts ({p['n']} train/deploy pairs of {p['families']} families whose graphs "
                "differ)</h3>",
                table(None, ["term", "coefficient", "95% interval"],
                      [[k, f"{p[k]['coef']:.3f}", f"[{p[k]['ci'][0]:.3f}, {p[k]['ci'][1]:.3f}]"]
                       for k in ("intercept", "flops", "ops")], sortable=False),
                f"<p>At equal FLOPs, halving the executed ops changes latency by "
                f"{esc(pct_interval(p['halving_ops_effect'], p['halving_ops_effect_ci'], 1))}.</p>"]
    if aa:
        out.append(f"<p>A/A control: {aa['n']} pairs whose two forms run the same graph here; {aa['holds_one']} of "
                   f"{aa['n']} ratio intervals hold 1, median deviation {100 * aa['median_deviation']:.1f}%, largest "
                   f"{100 * aa['max_deviation']:.1f}%.</p>")
    bands = a.get("bands") or []
    if bands:
        out += ["<h3>Iso-FLOPs bands: Spearman ρ of latency, 95% intervals</h3>",
                table(None, ["band", ("n", "num"), "ρ FLOPs", "ρ executed ops", "ρ memory traffic"],
                      [[b["band"], (str(b["n"]), b["n"]), _rho(b["rho"].get("flops")),
                        _rho(b["rho"].get("executed_ops")), _rho(b["rho"].get("mac_bytes"))] for b in bands])]
    if a.get("correlations"):
        out += ["<h3>Rank correlations over the whole zoo, both forms</h3>",
                table(None, ["latency vs", ("n", "num"), ("Spearman ρ", "num"), ("p", "num"), ("Kendall τ", "num"),
                             ("p", "num")],
                      [[c["label"], (str(c["n"]), c["n"]), (f"{c['spearman']:.2f}", c["spearman"]),
                        (f"{c['spearman_p']:.1g}", c["spearman_p"]), (f"{c['kendall']:.2f}", c["kendall"]),
                        (f"{c['kendall_p']:.1g}", c["kendall_p"])] for c in a["correlations"]])]
    return out


def _guideline_section(results: list[dict], plots: dict) -> list[str]:
    out = ["<h2>ShuffleNetV2 guideline tables</h2>",
           "<p>The paper's speeds (ARM: Snapdragon 810 single thread, GPU: GTX 1080Ti) and ours, each relative to the "
           "table's first row, with the 95% interval from the lockstep rounds (rows measured together, one ratio "
           "per round; <i>unpaired</i> if measured apart).</p>"]
    for key in ("G1", "G2", "G3", "G4"):
        entries = [r for r in results if r["table"] == key]
        if not entries:
            continue
        out.append(f"<h3>{esc(entries[0]['title'])}</h3>")
        plots[f"g-{key}"] = _guideline_plot(entries)
        out.append(f'<div data-plot="g-{key}"></div>')
        for mult in (1, 2, 4):
            ents = [e for e in entries if e["multiplier"] == mult]
            if not ents:
                continue
            headers = ["row", ("paper ARM", "num"), ("paper GPU", "num")] + [(f"ours {e['backend']}", "num") for e in ents]
            body = []
            for i, row in enumerate(ents[0]["rows"]):
                ours = []
                for e in ents:
                    r = e["rows"][i]
                    text = _fmt_rel(r["ours"]) + ("" if not r["ours"] or r.get("paired") else " unpaired")
                    ours.append((esc(text), r["ours"][0] if r["ours"] else None))
                body.append([row["row"], (f"{row['arm']:.2f}", row["arm"]), (f"{row['gpu']:.2f}", row["gpu"]), *ours])
            verdicts = "; ".join(f"{esc(e['backend'])}: {_badge(e['verdict'])}" for e in ents)
            out += [f"<p class='small'>Channels x{mult}. Verdict ({esc(ents[0]['best'])} faster than "
                    f"{esc(ents[0]['worst'])}?): {verdicts}</p>", table(f"g-{key}-{mult}", headers, body)]
    return out


def claim_html(analysis: dict, runs=(), title: str = TITLE) -> str:
    """The claim as one page: the verdict per backend with its interval (a table and a forest plot), per
    backend the interactive plots (latency against FLOPs, the per-op overhead at fixed FLOPs and traffic, the
    train/deploy pairs) and the model tables, the guideline tables with their paired intervals, the threats to
    validity and the machines. ``analysis`` is ``claim.analyze(runs)``; ``runs`` only add their headers (and
    the observations, when ``analysis`` came from a claim.json that omits them)."""
    runs = list(runs)
    per_backend = analysis.get("per_backend") or {}
    rows = analysis.get("observations")
    if rows is None and runs:
        from .correlate import observations

        rows = observations(runs)
    rows = rows or []
    plots: dict = {}
    parts = [f"<h1>{esc(title)}</h1>",
             f"<p class='muted'>{len(rows)} cells in the zoo analysis, {len(analysis.get('pairs') or [])} train/deploy pairs, "
             f"{len(per_backend)} backends. Every number here is from the claim analysis (claim.json); claim.md "
             "says the same in Markdown.</p>",
             "<h2>Verdict per backend</h2>"]
    if per_backend:
        parts.append(_verdict_table(per_backend))
        effect = _effect_plot(per_backend)
        if effect:
            plots["effect"] = effect
            parts.append('<div data-plot="effect"></div>')
        parts += [f'<p class="verdict">{esc(a["verdict"])}</p>' for a in per_backend.values()]
        parts.append(f"<p class='note'>The verdict asks one question of the zoo's cells: at equal FLOPs, does a model "
                     "that executes more operators take longer? It is decided at family level (log latency on log FLOPs "
                     "and log executed ops with one intercept per family, families as the independent units, each "
                     "cell's measurement noise propagated). <i>yes</i> and <i>no, the opposite</i> need the 95% "
                     f"interval clear of zero; <i>no practical difference</i> needs the 90% interval inside "
                     f"±{100 * EQUIVALENCE:.0f}%; anything else is <i>inconclusive</i>.</p>")
    else:
        parts.append("<p>No zoo measurements: the guideline nets only fill their tables.</p>")

    if per_backend:
        families = sorted({r["family"] for r in rows})
        parts += ["<h2>Per backend</h2>", '<div class="controls"><label>highlight a family '
                  '<select data-highlight="" aria-label="highlight a family"><option value="">all families</option>'
                  + "".join(f'<option value="{esc(f)}">{esc(f)}</option>' for f in families) + "</select></label></div>",
                  '<div class="tabs" data-tabs="backends">']
        parts += [f'<button data-tab="b{i}">{esc(b)} {_badge(a.get("verdict_code", ""))}</button>'
                  for i, (b, a) in enumerate(per_backend.items())]
        parts += ["</div>", '<div id="backends">']
        for i, (backend, a) in enumerate(per_backend.items()):
            parts += [f'<section data-tab-panel="b{i}" hidden>',
                      f"<h3>{esc(backend)} ({a['n']} cells, {a['families']} families)</h3>"]
            for key, spec in ((f"lat-{i}", _latency_plot(rows, backend)),
                              (f"ovh-{i}", _overhead_plot(rows, backend, a.get("additive"))),
                              (f"pairs-{i}", _pairs_plot(analysis.get("pairs") or [], backend, a.get("aa")))):
                if spec:
                    plots[key] = spec
                    parts.append(f'<div data-plot="{key}"></div>')
            parts += _backend_tables(a)
            parts.append("</section>")
        parts.append("</div>")
    if analysis.get("guidelines"):
        parts += _guideline_section(analysis["guidelines"], plots)
    if analysis.get("family_ratios"):
        parts += ["<h2>Train → deploy per family</h2>",
                  "<p class='note'>Median over members of deploy/train ratios (&lt; 1: deploy smaller or faster).</p>",
                  table("family-ratios", ["family", "backend", ("members", "num"), ("FLOPs ratio", "num"),
                                          ("latency ratio", "num")],
                        [[r["family"], r["backend"], (str(r["members"]), r["members"]),
                          (f"{r['flops_ratio']:.2f}", r["flops_ratio"]), (f"{r['latency_ratio']:.2f}", r["latency_ratio"])]
                         for r in analysis["family_ratios"]])]
    parts += ["<h2>Threats to validity</h2>", "<ul>"]
    parts += [f"<li>{md_inline(t[2:])}</li>" for t in THREATS]
    parts.append("</ul>")
    for run in runs:
        name = run.path.parent.name if run.path else "run"
        parts += [f"<h2>Measured on ({esc(name)}, {len(run.cells)} cells)</h2>", '<ul class="meta">']
        parts += [f"<li>{md_inline(line[2:])}</li>" for line in run_header(run.meta)]
        parts.append("</ul>")
    return page(title, "\n".join(parts), {"plots": plots})


def write_claim_html(analysis: dict, runs, folder: str | Path) -> Path:
    """``claim.html`` in ``folder``, written whole (``results.html.write_page``)."""
    return write_page(folder, CLAIM_HTML, claim_html(analysis, runs))


# ---- index.html ----------------------------------------------------------------------------------------

_FILES = (("report.html", "the run: every cell, sortable and filterable, with plots"),
          ("claim.html", "the claim: verdicts with intervals, guideline tables, interactive plots"),
          ("claim.md", "the claim in Markdown, with its PNG plots"),
          ("report.md", "the run in Markdown"),
          ("profile.md", "per-operator profiles"),
          ("results.csv", "one row per cell"),
          ("results.json", "the run's results document (schema in docs/results.md)"),
          ("cells.jsonl", "the run's journal"),
          ("claim.json", "the claim analysis as data"))


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


def _folder_meta(folder: Path) -> dict:
    """The run's meta without loading its cells: from the journal, its last header or meta line and the sweep
    of its last group line (as ``journal.read_journal`` assembles it); else results.json's meta."""
    journal = folder / "cells.jsonl"
    if journal.is_file():
        meta, sweep = {}, None
        with open(journal, "rb") as fh:
            for line in fh:
                head = line[:40].replace(b" ", b"")
                try:
                    if head.startswith((b'{"kind":"header"', b'{"kind":"meta"')):
                        meta = json.loads(line).get("meta") or meta
                    elif head.startswith(b'{"kind":"group"'):
                        sweep = line
                except ValueError:  # a torn last line: the journal's reader ignores it too
                    continue
        try:
            sweep = json.loads(sweep).get("sweep") if sweep else None
        except ValueError:
            sweep = None
        return {**meta, "sweep": sweep} if sweep else meta
    if (folder / "results.json").is_file():
        from benchbench.results.load import load_run

        return load_run(folder / "results.json").meta
    return {}


def index_html(folder: str | Path, *, analysis: dict | None = None, meta: dict | None = None,
               title: str = "benchbench reference report") -> str:
    """The front page of a published folder (``reports/reference``): the headline (each backend's verdict with
    its interval, the guideline verdicts), when and where it was measured, and links to the pages and files the
    folder holds. ``analysis`` defaults to the folder's claim.json, ``meta`` to its run's meta."""
    folder = Path(folder)
    if analysis is None and (folder / "claim.json").is_file():
        analysis = json.loads((folder / "claim.json").read_text(encoding="utf-8"))
    meta = _folder_meta(folder) if meta is None else meta
    parts = [f"<h1>{esc(title)}</h1>"]
    if meta:
        parts += ['<ul class="meta">', *[f"<li>{md_inline(line[2:])}</li>" for line in run_header(meta)], "</ul>"]
    per_backend = (analysis or {}).get("per_backend") or {}
    if per_backend:
        parts += [f"<h2>{esc(TITLE)}</h2>", "<p>At equal FLOPs, do more executed ops cost latency? The family-level "
                  "verdict per backend, with the latency change per doubling of executed ops and its 95% interval:</p>",
                  '<div class="cards">']
        for backend, a in per_backend.items():
            e = a.get("effect")
            parts.append(f'<div class="card">{esc(backend)}<b>{_badge(a.get("verdict_code", "not enough data"))}</b>'
                         + (f"{esc(pct_interval(e['effect'], e['effect_ci95'], 1))}<br>"
                            f"<span class='muted small'>{e['families']} families</span>" if e else "") + "</div>")
        parts.append("</div>")
        parts += [f"<p class='small'>{esc(VERDICT_TEXT[a['verdict_code']])} ({esc(b)})</p>"
                  for b, a in per_backend.items() if a.get("verdict_code") in VERDICT_TEXT]
    guidelines = (analysis or {}).get("guidelines") or []
    if guidelines:
        body = []
        for key in ("G1", "G2", "G3", "G4"):
            ents = [g for g in guidelines if g["table"] == key and g["multiplier"] == 1]
            if ents:
                body.append([ents[0]["title"], *[(_badge(e["verdict"]), e["verdict"]) for e in ents]])
        heads = [g["backend"] for g in guidelines if g["table"] == "G1" and g["multiplier"] == 1] or \
            list(dict.fromkeys(g["backend"] for g in guidelines))
        parts += ["<h3>ShuffleNetV2 guidelines (channels x1): does the paper's best row run faster than its worst?</h3>",
                  table(None, ["guideline", *heads], body, sortable=False)]
    parts += ["<h2>Pages and files</h2>", '<ul class="links">']
    for name, what in _FILES:
        path = folder / name
        if path.is_file():
            parts.append(f'<li><a href="{esc(name)}">{esc(name)}</a> <span class="muted">({_size(path.stat().st_size)})'
                         f"</span>: {esc(what)}</li>")
    plots = sorted((folder / "plots").glob("*.png")) if (folder / "plots").is_dir() else []
    if plots:
        parts.append("<li>plots: " + ", ".join(f'<a href="plots/{esc(p.name)}">{esc(p.stem)}</a>' for p in plots)
                     + "</li>")
    parts.append("</ul>")
    return page(title, "\n".join(parts), {})


def write_index_html(folder: str | Path, **kwargs) -> Path:
    """``index.html`` in ``folder`` (``index_html``), written whole."""
    return write_page(folder, INDEX_HTML, index_html(folder, **kwargs))
