"""``claim.html``: the claim analysis as one page that opens offline.

The page kit is ``benchbench.results.html`` (inlined styles, scripts and data; no request). Every number
comes from the analysis dict of ``claim.analyze``, formatted as claim.md formats it (the shared rows are in
``claim_tables``): the verdicts per backend with their intervals, the verdict's model read every way beside the
model with memory traffic, the guideline tables with their paired intervals, and interactive versions of the key
plots (``claim_figures``). The published folder's front page is ``index_page``.
"""

from __future__ import annotations

import re
from pathlib import Path

from benchbench.results.html import esc, md_inline, page, table, write_page
from benchbench.results.views import run_header

from .claim_figures import effect_plot, guideline_plot, latency_plot, overhead_plot, pairs_plot
from .claim_report import THREATS
from .claim_tables import (
    ADDITIVE_HEADERS,
    INFERENCE_HEADERS,
    LOFO_HEADERS,
    MODEL_HEADERS,
    additive_rows,
    fmt_ci,
    fmt_df,
    fmt_rel,
    fmt_rho,
    inference_rows,
    lofo_rows,
    model_rows,
    zoo_sentence,
)
from .latency_models import FORMS
from .verdict_text import VERDICT_METHOD, VERDICT_SHORT, pct_interval

__all__ = ["claim_html", "write_claim_html", "badge", "CLAIM_HTML", "TITLE"]

CLAIM_HTML = "claim.html"
TITLE = "Does fragmentation predict latency beyond FLOPs?"


def badge(code: str) -> str:
    """A verdict code as a coloured label (its class ``v-<code>`` in the page's style sheet)."""
    return f'<span class="badge v-{esc(code.replace(" ", "-"))}">{esc(VERDICT_SHORT.get(code, code))}</span>'


def _verdict_table(per_backend: dict) -> str:
    headers = ["backend", "verdict", ("latency per doubling of executed ops at equal FLOPs, CR2 95%", "num"),
               ("CR1 95%", "num"), ("wild bootstrap p", "num"), ("families", "num"),
               ("noise redraws keeping the CR2 reading", "num"), ("µs per executed op", "num"),
               ("GFLOP/s", "num"), "held out, within ±10%: FLOPs / additive / log-linear / mixed", "kernel sum"]
    body = []
    for backend, a in per_backend.items():
        e, add, forms, ks = a.get("effect"), a.get("additive"), a.get("forms") or {}, a.get("kernel_sum")
        within = " / ".join(f"{100 * forms[f]['within_10pct']:.0f}%" if f in forms else "—" for f in FORMS)
        boot = ((e or {}).get("wild_bootstrap") or {}).get("p")
        body.append([
            backend, (badge(a.get("verdict_code", "not enough data")), a.get("verdict_code")),
            (esc(pct_interval(e["effect"], e["effect_ci95"], 1) + f" ({fmt_df(e['df'])})"), e["effect"])
            if e else ("—", None),
            (esc(pct_interval(e["effect"], e["cr1"]["ci95"], 1)), e["effect"]) if e and "cr1" in e else ("—", None),
            ("—", None) if boot is None else (f"{boot:.2g}", boot),
            (str(e["families"]), e["families"]) if e else ("—", None),
            (f"{100 * e['noise_stability']:.0f}%", e["noise_stability"]) if e and e.get("noise_stability") is not None
            else ("—", None),
            (esc(fmt_ci(add["overhead_us_per_op"], add["ci"]["overhead_us_per_op"])), add["overhead_us_per_op"])
            if add else ("—", None),
            (esc(fmt_ci(add["throughput_gflops"], add["ci"]["throughput_gflops"], ".0f")), add["throughput_gflops"])
            if add else ("—", None),
            within, f"{100 * ks['within_10pct']:.0f}% of {ks['n']}" if ks else "no op times",
        ])
    return table("verdicts", headers, body)


def _inference_tables(a: dict) -> list[str]:
    """The verdict's model read every way beside the model with memory traffic, and the influential families."""
    e = a.get("effect")
    if not e or "cr2" not in e:  # a claim.json written before CR2 (benchbench < 0.2) has the effect alone
        return []
    out = ["<h3>The verdict's model read every way, and with memory traffic added</h3>",
           table(None, INFERENCE_HEADERS, inference_rows(e), sortable=False)]
    changed = lofo_rows(e)
    if changed:
        out += ["<h3>Families whose absence changes a reading</h3>", table(None, LOFO_HEADERS, changed, sortable=False)]
    return out


def _backend_tables(a: dict) -> list[str]:
    """One backend's tables: inference, held-out models, the additive and mixed fits, pairs, bands, correlations."""
    out = _inference_tables(a)
    if a.get("forms"):
        out += ["<h3>Latency models, each family predicted by a fit to the others</h3>",
                table(None, MODEL_HEADERS, model_rows(a), sortable=False)]
    if a.get("additive"):
        out += ["<h3>Additive model on every cell (family bootstrap 95% intervals)</h3>",
                table(None, ADDITIVE_HEADERS, additive_rows(a["additive"]), sortable=False)]
    mixed = a.get("mixed")
    if mixed and "ops_doubling_effect" in mixed:
        out.append(f"<p>Mixed model (a random intercept per family): doubling the executed ops at equal FLOPs and "
                   f"traffic changes latency by {esc(pct_interval(mixed['ops_doubling_effect'], mixed['ops_doubling_effect_ci'], 1))}; "
                   f"family intercepts vary with sd {mixed['family_sd']:.2f} (log scale).</p>")
    return out + _contrast_tables(a)


def _contrast_tables(a: dict) -> list[str]:
    """Within-pair contrasts, the A/A control, iso-FLOPs bands and rank correlations."""
    out = []
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
                      [[b["band"], (str(b["n"]), b["n"]), fmt_rho(b["rho"].get("flops")),
                        fmt_rho(b["rho"].get("executed_ops")), fmt_rho(b["rho"].get("mac_bytes"))] for b in bands])]
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
        plots[f"g-{key}"] = guideline_plot(entries)
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
                    text = fmt_rel(r["ours"]) + ("" if not r["ours"] or r.get("paired") else " unpaired")
                    ours.append((esc(text), r["ours"][0] if r["ours"] else None))
                body.append([row["row"], (f"{row['arm']:.2f}", row["arm"]), (f"{row['gpu']:.2f}", row["gpu"]), *ours])
            verdicts = "; ".join(f"{esc(e['backend'])}: {badge(e['verdict'])}" for e in ents)
            out += [f"<p class='small'>Channels x{mult}. Verdict ({esc(ents[0]['best'])} faster than "
                    f"{esc(ents[0]['worst'])}?): {verdicts}</p>", table(f"g-{key}-{mult}", headers, body)]
    return out


def _verdict_section(analysis: dict, per_backend: dict, plots: dict) -> list[str]:
    parts = ["<h2>Verdict per backend</h2>"]
    if not per_backend:
        return parts + ["<p>No zoo measurements: the guideline nets only fill their tables.</p>"]
    parts.append(_verdict_table(per_backend))
    effect = effect_plot(per_backend)
    if effect:
        plots["effect"] = effect
        parts.append('<div data-plot="effect"></div>')
    parts += [f'<p class="verdict">{esc(a["verdict"])}</p>' for a in per_backend.values()]
    method = re.sub(r"\*([^*]+)\*", r"<i>\1</i>", md_inline(VERDICT_METHOD))  # md_inline knows bold and code only
    parts.append(f"<p class='note'>{method}</p>")
    if analysis.get("zoo"):
        parts.append(f"<p class='note'>{esc(zoo_sentence(analysis['zoo']))}</p>")
    return parts


def _per_backend_section(analysis: dict, per_backend: dict, rows: list[dict], plots: dict) -> list[str]:
    """The backend tabs: each backend's plots and tables, with a family picker that highlights across plots."""
    families = sorted({r["family"] for r in rows})
    parts = ["<h2>Per backend</h2>", '<div class="controls"><label>highlight a family '
             '<select data-highlight="" aria-label="highlight a family"><option value="">all families</option>'
             + "".join(f'<option value="{esc(f)}">{esc(f)}</option>' for f in families) + "</select></label></div>",
             '<div class="tabs" data-tabs="backends">']
    parts += [f'<button data-tab="b{i}">{esc(b)} {badge(a.get("verdict_code", ""))}</button>'
              for i, (b, a) in enumerate(per_backend.items())]
    parts += ["</div>", '<div id="backends">']
    for i, (backend, a) in enumerate(per_backend.items()):
        parts += [f'<section data-tab-panel="b{i}" hidden>',
                  f"<h3>{esc(backend)} ({a['n']} cells, {a['families']} families)</h3>"]
        for key, spec in ((f"lat-{i}", latency_plot(rows, backend)),
                          (f"ovh-{i}", overhead_plot(rows, backend, a.get("additive"))),
                          (f"pairs-{i}", pairs_plot(analysis.get("pairs") or [], backend, a.get("aa")))):
            if spec:
                plots[key] = spec
                parts.append(f'<div data-plot="{key}"></div>')
        parts += _backend_tables(a)
        parts.append("</section>")
    return parts + ["</div>"]


def _closing_sections(analysis: dict, runs: list) -> list[str]:
    """Train → deploy per family, the threats to validity and the machines."""
    parts = []
    if analysis.get("family_ratios"):
        parts += ["<h2>Train → deploy per family</h2>",
                  "<p class='note'>Median over members of deploy/train ratios (&lt; 1: deploy smaller or faster).</p>",
                  table("family-ratios", ["family", "backend", ("members", "num"), ("FLOPs ratio", "num"),
                                          ("latency ratio", "num")],
                        [[r["family"], r["backend"], (str(r["members"]), r["members"]),
                          (f"{r['flops_ratio']:.2f}", r["flops_ratio"]), (f"{r['latency_ratio']:.2f}", r["latency_ratio"])]
                         for r in analysis["family_ratios"]])]
    parts += ["<h2>Threats to validity</h2>", "<ul>", *[f"<li>{md_inline(t[2:])}</li>" for t in THREATS], "</ul>"]
    for run in runs:
        name = run.path.parent.name if run.path else "run"
        parts += [f"<h2>Measured on ({esc(name)}, {len(run.cells)} cells)</h2>", '<ul class="meta">',
                  *[f"<li>{md_inline(line[2:])}</li>" for line in run_header(run.meta)], "</ul>"]
    return parts


def _lab_section(lab: dict) -> list[str]:
    """The lab beside the zoo (``claim --lab``): the comparison per backend, then the lab fit's summary."""
    from .claim_lab import LAB_HEADERS, LAB_INTRO, lab_rows
    from .lab_report import SUMMARY_HEADERS, summary_rows

    parts = ["<h2>The fragmentation lab beside the zoo</h2>",
             f"<p class='note'>From <code>{esc(lab['source'])}</code>. {esc(LAB_INTRO)}</p>",
             table("lab-vs-zoo", LAB_HEADERS, lab_rows(lab["comparison"]), sortable=False)]
    backends = (lab.get("fit") or {}).get("backends") or {}
    if backends:
        parts += ["<h3>The lab fit per backend (95% bootstrap intervals over design points and rounds)</h3>",
                  table("lab-fit", SUMMARY_HEADERS, summary_rows(backends), sortable=False)]
    return parts


def claim_html(analysis: dict, runs=(), title: str = TITLE) -> str:
    """The claim as one page: the verdict per backend with its interval (a table and a forest plot), per
    backend the interactive plots (latency against FLOPs, the per-op overhead at fixed FLOPs and traffic, the
    train/deploy pairs) and the model tables, the lab beside the zoo (with ``--lab``), the guideline tables with
    their paired intervals, the threats to validity and the machines. ``analysis`` is ``claim.analyze(runs)``; ``runs`` only add their headers (and
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
             "says the same in Markdown.</p>"]
    parts += _verdict_section(analysis, per_backend, plots)
    if per_backend:
        parts += _per_backend_section(analysis, per_backend, rows, plots)
    if analysis.get("lab"):
        parts += _lab_section(analysis["lab"])
    if analysis.get("guidelines"):
        parts += _guideline_section(analysis["guidelines"], plots)
    parts += _closing_sections(analysis, runs)
    return page(title, "\n".join(parts), {"plots": plots})


def write_claim_html(analysis: dict, runs, folder: str | Path) -> Path:
    """``claim.html`` in ``folder``, written whole (``results.html.write_page``)."""
    return write_page(folder, CLAIM_HTML, claim_html(analysis, runs))
