"""claim.md and the terminal summary of ``benchbench claim``: the analysis of ``claim.analyze`` in words,
tables and plots. Every number shown is computed by the analysis; this module only formats it."""

from __future__ import annotations

from pathlib import Path

from tabulate import tabulate

from benchbench.core.atomic import own_subfolder

from . import correlate, plots
from .claim_tables import (
    ADDITIVE_HEADERS,
    INFERENCE_HEADERS,
    LOFO_HEADERS,
    MODEL_HEADERS,
    additive_rows,
    fmt_ci,
    fmt_df,
    fmt_pct,
    fmt_rel,
    fmt_rho,
    inference_rows,
    lofo_rows,
    model_rows,
    zoo_sentence,
)
from .latency_models import FORMS
from .predictor_report import cells_label
from .verdict_text import VERDICT_METHOD, pct_interval

__all__ = ["claim_markdown", "guideline_tables", "backend_summary", "THREATS"]


def _share(x) -> str:
    return "—" if x is None else f"{x:.0%}"


def predictor_section(analysis: dict) -> list[str]:
    """claim.md's section on the kernel-level predictor (``claim --predictor``): per backend, the share of zoo
    cells within ±10% from the kernel sweep alone, beside FLOPs only (fitted on the same sweep), the lab's additive
    fit and the zoo's own kernel-sum predictor (leave one family out), and the kernel classes that miss most."""
    pred = analysis["predictor"]
    lab = ((analysis.get("lab") or {}).get("fit") or {}).get("backends") or {}
    lines = ["## Kernel-level predictor", "",
             f"From `{pred['source']}`: each zoo cell predicted from its kernels alone (a designed kernel sweep; no "
             "zoo cell in the fit), checked against its measurement beside the lab anchor. Anchor-relative readings "
             "cancel the drift between the fit and the check; absolute ones do not. Cells whose anchor read "
             "disturbed in every round (its slow state; `disturbed` in the cells column) are left out of the "
             "anchor-relative figures and kept in the absolute ones.", "",
             "| backend | cells | within ±10% (anchor-relative) | median error | within ±10% (absolute) | FLOPs only "
             "(same sweep) | lab additive fit | zoo kernel-sum (held-out families) | time in the worst cells |",
             "|---|---|---|---|---|---|---|---|---|"]
    for backend, s in pred["backends"].items():
        ks = ((analysis.get("per_backend") or {}).get(backend) or {}).get("kernel_sum") or {}
        lab_share = (lab.get(backend) or {}).get("zoo_within_10pct")
        worst = ", ".join(f"{k} {v:.0%}" for k, v in list(s.get("worst_cells_time_by_kind", {}).items())[:3])
        lines.append(f"| {backend} | {cells_label(s)} | {s['within_10pct_rel']:.0%} | {s['median_abs_error_rel']:.0%} | "
                     f"{s['within_10pct_abs']:.0%} | {s['flops_only_within_10pct_rel']:.0%} | "
                     f"{_share(lab_share)} | "
                     f"{_share(ks.get('within_10pct'))} | {worst or '—'} |")
    return lines + [""]


def _md(body, headers) -> str:
    return tabulate(body, headers, tablefmt="github", disable_numparse=True)


def guideline_tables(results: list[dict], multipliers=(1, 2, 4)) -> list[str]:
    """Markdown lines: each guideline table beside the paper's, per channel multiplier, with verdicts."""
    lines = []
    for key in ("G1", "G2", "G3", "G4"):
        entries = [r for r in results if r["table"] == key]
        if not entries:
            continue
        lines += [f"### {entries[0]['title']}", ""]
        for mult in multipliers:
            ents = [e for e in entries if e["multiplier"] == mult]
            if not ents:
                continue
            headers = ["row", "paper ARM", "paper GPU"] + [f"ours {e['backend']}" for e in ents]
            body = [[row["row"], f"{row['arm']:.2f}", f"{row['gpu']:.2f}"] + [fmt_rel(e["rows"][i]["ours"]) for e in ents]
                    for i, row in enumerate(ents[0]["rows"])]
            lines += [f"Channels x{mult}: speed relative to the first row, with its 95% interval from the lockstep "
                      "rounds (rows measured together, one ratio per round; 'unpaired' if measured apart).", "",
                      _md(body, headers), ""]
            lines += ["Verdict (" + ents[0]["best"] + " faster than " + ents[0]["worst"] + "?): "
                      + "; ".join(f"{e['backend']}: **{e['verdict']}**" for e in ents), ""]
    return lines


def backend_summary(backend: str, a: dict) -> list[str]:
    """The terminal block for one backend: model forms, overhead, verdict, pairs, bands, kernel sum."""
    lines = [f"  {a['verdict']}"]
    e = a.get("effect")
    if e:  # the verdict's readings at a glance, then the same with memory traffic in the model
        for label, row in zip(("ops effect", "with traffic"), inference_rows(e)):
            lines.append(f"    {label}: {row[1]}; CR1 {row[2]}; CR2 {row[3]}; wild bootstrap p {row[4]}; "
                         f"leaving out one family {row[5]}" + (f"; per doubling of traffic {row[6]}"
                                                               if row[6] != "—" else ""))
    forms = a.get("forms") or {}
    if forms:
        lines.append("    held out by family (median error, within ±10%): " + "; ".join(
            f"{f} {100 * forms[f]['median_ape']:.1f}%, {100 * forms[f]['within_10pct']:.0f}%" for f in FORMS if f in forms))
    ks = a.get("kernel_sum")
    if ks:
        base = ks.get("flops_same_cells")
        lines.append(f"    kernel-sum predictor: {100 * ks['within_10pct']:.0f}% of {ks['n']} cells within ±10% "
                     f"(median error {100 * ks['median_ape']:.1f}%)"
                     + (f"; FLOPs only on the same cells {100 * base['within_10pct']:.0f}%" if base else ""))
    else:
        lines.append("    kernel-sum predictor: no per-op profile times for this backend")
    add = a.get("additive")
    if add:
        lines.append(f"    additive fit: {fmt_ci(add['overhead_us_per_op'], add['ci']['overhead_us_per_op'])} µs per executed op, "
                     f"{fmt_ci(add['throughput_gflops'], add['ci']['throughput_gflops'], '.0f')} GFLOP/s")
    p = a.get("pairs")
    if p:
        lines.append(f"    within pairs ({p['n']}): log latency ratio = {p['flops']['coef']:.2f} x log FLOPs ratio "
                     f"[{p['flops']['ci'][0]:.2f}, {p['flops']['ci'][1]:.2f}] + {p['ops']['coef']:.2f} x log ops ratio "
                     f"[{p['ops']['ci'][0]:.2f}, {p['ops']['ci'][1]:.2f}]")
    bands = [b for b in a.get("bands") or [] if b["band"] != "whole zoo" and b["rho"]]
    if bands:
        lines.append("    iso-FLOPs bands, ρ with FLOPs / executed ops: " + "; ".join(
            f"{b['band']} (n={b['n']}) {fmt_rho(b['rho'].get('flops'))} / {fmt_rho(b['rho'].get('executed_ops'))}"
            for b in bands))
    return lines


THREATS = [
    "- **A shared VM.** Two vCPUs of a cloud VM, shared with other tenants and with other sessions' work. Every "
    "comparison that matters is measured in lockstep (both sides take turns block by block), every cell of the "
    "reference in two or three rounds spread over the sweep (the run's rounds are under *Measured on*), and blocks "
    "in which the measuring process waited for a CPU are dropped; absolute latencies still move with the host's "
    "load.",
    "- **Threads and batch.** Two intra-op threads and batch 1 throughout. With more cores a runtime parallelizes "
    "large kernels better than small ones, so per-op overheads weigh more there; with larger batches they weigh less.",
    "- **Random weights.** No pretrained weights can be downloaded; every model uses seeded random initialization. "
    "Dense f32 kernels do not run faster on zeros, but a runtime that skips or sparsifies would.",
    "- **The exporter folds BatchNorm.** torch.onnx folds a train form's BN into its convolutions, so on ort, "
    "openvino and tflite many train/deploy pairs run the same graph (the A/A control below); only torch eager "
    "runs the BN ops. The train form is therefore not the training graph on those backends.",
    "- **One CPU microarchitecture.** An x86-64 server core with AVX-512. Kernel libraries (oneDNN, MLAS, "
    "XNNPACK) pick different code paths elsewhere; the ranking of backends is not portable.",
    "- **No ARM device, no GPU here.** ShuffleNetV2 measured on a Snapdragon 810 and a GTX 1080Ti. A phone CPU "
    "has less cache and bandwidth, which favours the memory-traffic argument; a GPU pays a launch cost per "
    "kernel (several µs), which multiplies the per-op overhead found here. The per-op overheads and "
    "throughputs are this machine's, not a phone's; the direction of the effects is what may carry over, and "
    "only a measurement on the device can say by how much.",
    "- **Which graph a metric describes.** Executed ops are counted on each runtime's own graph; graph ops, "
    "DAG width, joins and memory traffic on the ONNX export (table above). A runtime that fuses differently "
    "from its ONNX input is described only by its executed ops.",
]


def _backend_section(backend: str, a: dict) -> list[str]:
    lines = [f"## {backend} ({a['n']} cells, {a['families']} families)", "", f"**Verdict.** {a['verdict']}", ""]
    return lines + _inference_lines(a) + _model_lines(a) + _contrast_lines(a) + _correlation_lines(a)


def _inference_lines(a: dict) -> list[str]:
    """The verdict's model read every way, beside the same model with memory traffic, and the families whose
    absence changes a reading."""
    e = a.get("effect")
    if not e or "cr2" not in e:
        return []
    lines = ["The verdict's model read with CR1 and CR2 intervals, a wild cluster bootstrap (Webb weights, null "
             "imposed) and every family left out in turn, beside the same model with log memory traffic added "
             "(the traffic column: latency change per doubling of traffic at equal FLOPs and ops):", "",
             _md(inference_rows(e), INFERENCE_HEADERS), ""]
    changed = lofo_rows(e)
    if changed:
        lines += ["Families whose absence changes a reading of the verdict's model (leave-one-family-out fits):", "",
                  _md(changed, LOFO_HEADERS), ""]
    return lines


def _model_lines(a: dict) -> list[str]:
    """The held-out latency models, the kernel sum's sources, the additive fit and the mixed model."""
    lines = []
    forms = a.get("forms") or {}
    if forms:
        lines += [f"Latency models, each family predicted by a fit to the others ({next(iter(forms.values()))['n']} "
                  "cells); 95% intervals resample families:", "", _md(model_rows(a), MODEL_HEADERS), ""]
        if "mixed" not in forms:
            lines += ["The mixed model needs statsmodels (`pip install 'benchbench[analysis]'`).", ""]
        ks = a.get("kernel_sum")
        if ks:
            src = ks["sources"]
            lines += [f"Kernel-sum predictions came {100 * src['lookup']:.0f}% from the same kernel profiled in other "
                      f"families, {100 * src['type model']:.0f}% from a model of the kernel's type and "
                      f"{100 * src['roofline']:.0f}% from the roofline-style fallback (shares of predicted time).", ""]
    add = a.get("additive")
    if add:
        lines += ["Additive model on every cell (family bootstrap 95% intervals):", "",
                  _md(additive_rows(add), ADDITIVE_HEADERS), ""]
    mixed = a.get("mixed")
    if mixed and "ops_doubling_effect" in mixed:
        lines += [f"Mixed model (log-linear with a random intercept per family, statsmodels MixedLM): doubling the "
                  "executed ops at equal FLOPs and traffic changes latency by "
                  f"{pct_interval(mixed['ops_doubling_effect'], mixed['ops_doubling_effect_ci'], 1)}; family intercepts "
                  f"vary with sd {mixed['family_sd']:.2f} (log scale).", ""]
    return lines


def _contrast_lines(a: dict) -> list[str]:
    """Within-pair contrasts and their A/A control."""
    lines = []
    p, aa = a.get("pairs"), a.get("aa")
    if p:
        lines += [f"Within-pair contrasts ({p['n']} train/deploy pairs of {p['families']} families whose graphs "
                  "differ): log(latency deploy/train) regressed on log FLOPs ratio and log executed-ops ratio, "
                  "weighted by each lockstep ratio's precision, intervals cluster-robust by family:", "", _md([
                      [k, f"{p[k]['coef']:.3f}", f"[{p[k]['ci'][0]:.3f}, {p[k]['ci'][1]:.3f}]"]
                      for k in ("intercept", "flops", "ops")], ["term", "coefficient", "95% interval"]), "",
                  f"At equal FLOPs, halving the executed ops changes latency by "
                  f"{pct_interval(p['halving_ops_effect'], p['halving_ops_effect_ci'], 1)}.", ""]
    if aa:
        lines += [f"A/A control: {aa['n']} pairs whose two forms run the same graph here; {aa['holds_one']} of "
                  f"{aa['n']} ratio intervals hold 1, median deviation {100 * aa['median_deviation']:.1f}%, "
                  f"largest {100 * aa['max_deviation']:.1f}%.", ""]
    return lines


def _correlation_lines(a: dict) -> list[str]:
    """Iso-FLOPs bands, time shares, and rank and partial correlations."""
    lines = []
    bands = a.get("bands") or []
    if bands:
        body = [[b["band"], b["n"], fmt_rho(b["rho"].get("flops")), fmt_rho(b["rho"].get("executed_ops")),
                 fmt_rho(b["rho"].get("mac_bytes"))] for b in bands]
        lines += ["Iso-FLOPs bands (deploy forms, one cell per model): Spearman ρ of latency with 95% intervals.", "",
                  _md(body, ["band", "n", "ρ FLOPs", "ρ executed ops", "ρ memory traffic"]), ""]
    ts = a.get("time_shares")
    if ts:
        lines += [f"Time outside MAC-heavy kernels (convolutions and matrix products), from the profiler: median "
                  f"{100 * ts['median_non_mac_share']:.0f}% of the per-op time over {ts['n']} cells (quartiles "
                  f"{100 * ts['quartiles'][0]:.0f}–{100 * ts['quartiles'][1]:.0f}%).", ""]
    if a["correlations"]:
        body = [[c["label"], c["n"], f"{c['spearman']:.2f}", f"{c['spearman_p']:.1g}", f"{c['kendall']:.2f}",
                 f"{c['kendall_p']:.1g}"] for c in a["correlations"]]
        lines += ["Rank correlations over the whole zoo, both forms (a range effect: the zoo spans two orders of "
                  "magnitude in FLOPs; the bands above are the harder test):", "",
                  _md(body, ["latency vs", "n", "Spearman ρ", "p", "Kendall τ", "p"]), ""]
    if a["partial"]:
        body = [[p["label"], p["n"], f"{p['partial_spearman']:.2f}", f"{p['p']:.1g}"] for p in a["partial"]]
        lines += ["Partial rank correlation with latency, controlling for FLOPs:", "",
                  _md(body, ["metric", "n", "partial ρ", "p"]), ""]
    return lines


def _headline(analysis: dict) -> list[str]:
    body = []
    for backend, a in analysis["per_backend"].items():
        e, add, forms, ks = a.get("effect"), a.get("additive"), a.get("forms") or {}, a.get("kernel_sum")
        within = " / ".join(f"{100 * forms[f]['within_10pct']:.0f}%" if f in forms else "—" for f in FORMS)
        t = (e or {}).get("with_traffic")
        boot = ((e or {}).get("wild_bootstrap") or {}).get("p")
        body.append([backend, e["verdict"] if e else "—",
                     pct_interval(e["effect"], e["effect_ci95"], 1) + f" ({fmt_df(e['df'])})" if e else "—",
                     pct_interval(e["effect"], e["cr1"]["ci95"], 1) if e and "cr1" in e else "—",
                     "—" if boot is None else f"{boot:.2g}",
                     "{} to {}".format(*map(fmt_pct, e["lofo"]["range"])) if e and e.get("lofo") else "—",
                     pct_interval(t["effect"], t["cr2"]["ci95"], 1) if t else "—",
                     fmt_ci(add["overhead_us_per_op"], add["ci"]["overhead_us_per_op"]) if add else "—",
                     fmt_ci(add["throughput_gflops"], add["ci"]["throughput_gflops"], ".0f") if add else "—",
                     within, f"{100 * ks['within_10pct']:.0f}%" if ks else "no op times"])
    return [_md(body, ["backend", "verdict", "latency per doubling of ops at equal FLOPs, CR2 95%", "CR1 95%",
                       "wild bootstrap p", "leaving out one family", "with traffic in the model, CR2 95%",
                       "µs per executed op", "GFLOP/s", "within ±10%: FLOPs / additive / log-linear / mixed",
                       "kernel sum"]), ""]


def _plots(analysis: dict, plot_dir: Path) -> dict:
    """The claim's plots, written into ``plot_dir``: caption → path (None where a plot had nothing to show)."""
    return {
        "latency per FLOPs-proportional prediction against ops per GFLOP, with the additive fit":
            plots.overhead_curve(analysis, plot_dir / "overhead_curve.png"),
        "held-out errors of every model form": plots.held_out_errors(analysis, plot_dir / "held_out_errors.png"),
        "train/deploy latency ratio against FLOPs ratio, with the A/A band": plots.pair_ratios(
            analysis["pairs"], plot_dir / "pair_ratios.png"),
        "latency against FLOPs": plots.latency_vs_flops(analysis["observations"], plot_dir / "latency_vs_flops.png"),
        "guideline tables, every width": plots.guideline_dots(analysis["guidelines"], plot_dir / "guidelines.png"),
    }


def claim_markdown(analysis: dict, out_dir: Path, runs=(),
                   title: str = "Does fragmentation predict latency beyond FLOPs?") -> str:
    """The claim report; writes its plots under ``out_dir/plots`` and links them.

    ``runs`` are the measured runs; their machine, versions, settings and sweep time close the report.
    """
    from benchbench.results.views import run_header

    made = _plots(analysis, own_subfolder(out_dir, "plots"))
    lines = [f"# {title}", "", "## Verdict per backend", ""]
    lines += [f"- {b['verdict']}" for b in analysis["per_backend"].values()] or ["- no zoo measurements"]
    lines += ["", VERDICT_METHOD + " The guideline nets, built to hold FLOPs equal, are analysed in their own "
              "tables.", ""]
    zoo = analysis.get("zoo")
    if zoo:
        lines += [zoo_sentence(zoo), ""]
    outside = sorted({r["model"] for r in analysis["observations"] if not r.get("zoo", True)})
    if outside:
        lines += [f"Outside the zoo: {len(outside)} user model file(s) ({', '.join(outside)}) are among the cells, each "
                  "its own family; their FLOPs and fragmentation are counted from the file's graph.", ""]
    lines += ["## Summary", ""]
    lines += _headline(analysis)
    lines += ["## Which graph each metric describes", "", _md(
        [[correlate.PREDICTORS[k], correlate.PREDICTOR_GRAPH[k]] for k in correlate.PREDICTORS], ["metric", "counted on"]),
        "", "Memory traffic (ShuffleNetV2's memory access cost, MAC) is bytes read and written; it is reported as "
        "memory traffic, not as fragmentation. Fragmentation here means executed operators.", ""]
    for backend, a in analysis["per_backend"].items():
        lines += _backend_section(backend, a)
    if analysis["family_ratios"]:
        body = [[r["family"], r["backend"], r["members"], f"{r['flops_ratio']:.2f}", f"{r['latency_ratio']:.2f}"]
                for r in analysis["family_ratios"]]
        lines += ["## Train → deploy per family", "", "Median over members of deploy/train ratios (< 1: deploy "
                  "smaller or faster); each pair's interval is in the pair plot.", "",
                  _md(body, ["family", "backend", "members", "FLOPs ratio", "latency ratio"]), ""]
    if analysis["guidelines"]:
        lines += ["## ShuffleNetV2 guideline tables", "", "The paper's speeds (ARM: Snapdragon 810 single thread, "
                  "GPU: GTX 1080Ti) and ours, each relative to the table's first row.", ""]
        lines += guideline_tables(analysis["guidelines"])
    if analysis.get("lab"):
        from .claim_lab import lab_section

        lab = analysis["lab"]
        lines += lab_section(lab["comparison"], lab["fit"], lab["source"])
    if analysis.get("predictor"):
        lines += predictor_section(analysis)
    lines += ["## Plots", ""]
    for name, path in made.items():
        if path:
            lines += [f"![{name}](plots/{path.name})", ""]
    lines += ["## Threats to validity", "", *THREATS, ""]
    for run in runs:
        lines += [f"## Measured on ({run.path.parent.name if run.path else 'run'}, {len(run.cells)} cells)", "",
                  *run_header(run.meta), ""]
    return "\n".join(lines)
