"""``benchbench claim``: turn result files into evidence for or against "fragmentation matters more
than FLOPs", per backend. Every verdict is computed from the data; nothing here assumes the answer.
"""

from __future__ import annotations

from pathlib import Path

from tabulate import tabulate

from benchbench.result import SchemaError

from . import correlate, plots
from .guidelines import guideline_results

__all__ = ["analyze", "check_claimable", "verdict_sentence", "claim_markdown", "guideline_tables", "SIGNIFICANCE"]

# A verdict needs the held-out errors of the two latency models to differ at this level (paired
# Wilcoxon signed-rank test on the same cells); otherwise it says "inconclusive".
SIGNIFICANCE = 0.05


def check_claimable(run) -> None:
    """Refuse a run the analysis cannot use: every measured cell needs its model's family and FLOPs.

    A result file may lack them (compare does not need them), but here a missing family or FLOPs would
    silently drop cells from the correlations, or put a zoo model among the guideline nets.
    """
    for i, c in enumerate(run.cells):
        missing = [k for k in ("family", "flops") if c.model.get(k) in (None, "")]
        if c.ok and missing and c.spec.source is None:  # a model file without counts is left out, not refused
            raise SchemaError(f"{run.path}: cells[{i}] ({c.spec.label()}) has no model {' or '.join(missing)}; "
                              "claim needs the model metadata of every measured cell")


def _guideline_cells(runs) -> dict:
    cells = {}
    for run in runs:
        for c in run.cells:
            if c.ok and c.model.get("family", "").startswith("guideline"):
                # Train and deploy are the same network here: either measurement stands for the row.
                cells.setdefault((c.spec.model, c.spec.backend), c)
    return cells


def analyze(runs) -> dict:
    """Everything the claim report shows, as plain data (JSON-serializable)."""
    rows = correlate.observations(runs)
    per_backend = {}
    for backend in sorted({r["backend"] for r in rows}):
        sub = [r for r in rows if r["backend"] == backend]
        per_backend[backend] = {
            "n": len(sub),
            "correlations": correlate.correlations(sub),
            "partial": correlate.partial_correlations(sub),
            "loo": correlate.loo_family_models(sub),
        }
        per_backend[backend]["verdict"] = verdict_sentence(backend, per_backend[backend])
    return {
        "observations": rows,
        "per_backend": per_backend,
        "family_ratios": correlate.family_ratios(rows),
        "guidelines": guideline_results(_guideline_cells(runs)),
    }


def verdict_sentence(backend: str, a: dict) -> str:
    """One sentence: does fragmentation explain latency better than FLOPs on this backend, by how much?"""
    corr = {c["predictor"]: c for c in a["correlations"]}
    loo = a.get("loo")
    flops_rho = corr.get("flops", {}).get("spearman")
    frag = [c for c in a["correlations"] if c["predictor"] in correlate.FRAGMENTATION]
    best_frag = max(frag, key=lambda c: abs(c["spearman"]), default=None)
    if loo:
        f, g = loo["flops_only"], loo["fragmentation"]
        p = loo.get("wilcoxon_p", float("nan"))
        how = (f"leave-one-family-out median error {100 * g['median_ape']:.0f}% with fragmentation vs "
               f"{100 * f['median_ape']:.0f}% with FLOPs alone ({100 * g['within_10pct']:.0f}% vs "
               f"{100 * f['within_10pct']:.0f}% of {loo['n']} cells within ±10%; Wilcoxon p = {p:.2g})")
        if not p < SIGNIFICANCE:  # nan included: too few cells to tell
            text = f"{backend}: inconclusive, the two latency models' errors do not differ significantly: {how}"
        elif g["median_ape"] < f["median_ape"]:
            text = f"{backend}: yes, fragmentation explains latency better than FLOPs here: {how}"
        else:
            text = f"{backend}: no, FLOPs alone explain latency as well or better here: {how}"
    elif best_frag and flops_rho is not None:
        better = abs(best_frag["spearman"]) > abs(flops_rho)
        text = f"{backend}: {'yes' if better else 'no'} (too few families for a held-out model)"
    else:
        return f"{backend}: not enough measurements to tell."
    if best_frag and flops_rho is not None:
        text += (f"; Spearman ρ of latency with FLOPs {flops_rho:.2f}, with {best_frag['label']} "
                 f"{best_frag['spearman']:.2f}")
    return text + "."


def _fmt_rel(v) -> str:
    return f"{v[0]:.2f} [{v[1]:.2f}, {v[2]:.2f}]" if v else "—"


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
            body = [[row["row"], f"{row['arm']:.2f}", f"{row['gpu']:.2f}"] + [_fmt_rel(e["rows"][i]["ours"]) for e in ents]
                    for i, row in enumerate(ents[0]["rows"])]
            lines += [f"Channels x{mult}: speed relative to the first row, with its 95% interval from the lockstep "
                      "rounds (rows measured together, one ratio per round; 'unpaired' if measured apart).", "",
                      tabulate(body, headers, tablefmt="github", disable_numparse=True), ""]
            lines += ["Verdict (" + ents[0]["best"] + " faster than " + ents[0]["worst"] + "?): "
                      + "; ".join(f"{e['backend']}: **{e['verdict']}**" for e in ents), ""]
    return lines


def claim_markdown(analysis: dict, out_dir: Path, runs=(),
                   title: str = "Does fragmentation predict latency better than FLOPs?") -> str:
    """The claim report; writes its plots under ``out_dir/plots`` and links them.

    ``runs`` are the measured runs; their machine, versions, settings and sweep time close the report.
    """
    from benchbench.report import run_header

    plot_dir = out_dir / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    made = {
        "scatter": plots.latency_vs_flops(analysis["observations"], plot_dir / "latency_vs_flops.png"),
        "families": plots.train_vs_deploy(analysis["family_ratios"], plot_dir / "train_vs_deploy.png"),
        "guidelines": plots.guideline_bars(analysis["guidelines"], plot_dir / "guidelines_x1.png"),
    }
    lines = [f"# {title}", "", "## Verdict per backend", ""]
    lines += [f"- {b['verdict']}" for b in analysis["per_backend"].values()] or ["- no zoo measurements"]
    lines += ["", "The verdict compares two log-linear latency models fitted with each model family held out in "
              "turn: log latency on log FLOPs alone, and on log FLOPs, log executed ops and log memory access "
              "cost. It says yes or no only when the paired Wilcoxon signed-rank test on their per-cell errors "
              f"gives p < {SIGNIFICANCE}; otherwise inconclusive. It is computed from the measurements; the "
              "paper's answer is not assumed. The correlations and models use the zoo's cells (train and deploy "
              "forms); the guideline nets, built to hold FLOPs equal, are analysed in their own tables below.", ""]
    outside = sorted({r["model"] for r in analysis["observations"] if not r.get("zoo", True)})
    if outside:
        lines += [f"Outside the zoo: {len(outside)} user model file(s) ({', '.join(outside)}) are among the cells, each "
                  "its own family; their FLOPs and fragmentation are counted from the file's graph.", ""]
    for backend, a in analysis["per_backend"].items():
        lines += [f"## {backend} ({a['n']} cells)", ""]
        if a["correlations"]:
            body = [[c["label"], c["n"], f"{c['spearman']:.2f}", f"{c['spearman_p']:.1g}", f"{c['kendall']:.2f}",
                     f"{c['kendall_p']:.1g}"] for c in a["correlations"]]
            lines += [tabulate(body, ["latency vs", "n", "Spearman ρ", "p", "Kendall τ", "p"], tablefmt="github",
                               disable_numparse=True), ""]
        if a["partial"]:
            body = [[p["label"], p["n"], f"{p['partial_spearman']:.2f}", f"{p['p']:.1g}"] for p in a["partial"]]
            lines += ["Partial rank correlation with latency, controlling for FLOPs:", "",
                      tabulate(body, ["metric", "n", "partial ρ", "p"], tablefmt="github", disable_numparse=True), ""]
        if a["loo"]:
            lo = a["loo"]
            body = [[name, f"{100 * lo[k]['median_ape']:.1f}%", f"{100 * lo[k]['within_10pct']:.0f}%"]
                    for name, k in (("FLOPs only", "flops_only"), ("FLOPs + " + ", ".join(lo["features"][1:]), "fragmentation"))]
            lines += [f"Leave-one-family-out latency models ({lo['n']} cells, {lo['families']} families):", "",
                      tabulate(body, ["model", "median abs. error", "within ±10%"], tablefmt="github",
                               disable_numparse=True), ""]
    if analysis["family_ratios"]:
        body = [[r["family"], r["backend"], r["members"], f"{r['flops_ratio']:.2f}", f"{r['latency_ratio']:.2f}"]
                for r in analysis["family_ratios"]]
        lines += ["## Train → deploy per family", "", "Median over members of deploy/train ratios (< 1: deploy "
                  "smaller or faster).", "", tabulate(body, ["family", "backend", "members", "FLOPs ratio",
                                                             "latency ratio"], tablefmt="github",
                                                     disable_numparse=True), ""]
    if analysis["guidelines"]:
        lines += ["## ShuffleNetV2 guideline tables", "", "The paper's speeds (ARM: Snapdragon 810 single thread, "
                  "GPU: GTX 1080Ti) and ours, each relative to the table's first row.", ""]
        lines += guideline_tables(analysis["guidelines"])
    lines += ["## Plots", ""]
    for name, path in made.items():
        if path:
            lines += [f"![{name}](plots/{path.name})", ""]
    for run in runs:
        lines += [f"## Measured on ({run.path.parent.name if run.path else 'run'}, {len(run.cells)} cells)", "",
                  *run_header(run.meta), ""]
    return "\n".join(lines)
