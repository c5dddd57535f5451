"""What the predictor says about itself: its fit (predictor.md) and its check against measured models
(predictor_eval.json and .md).

The check compares each measured cell with its prediction two ways: **anchor-relative** (the cell's latency over
its group's anchor, against the predicted latency in anchor units: drift between the fit and the check cancels)
and **absolute** (ms against the prediction times the anchor's ms at fit time). Beside it, a **FLOPs-only**
predictor fitted on the same kernel sweep (``t = c + FLOPs x s``, non-negative, relative error) shows what the
kernels add over FLOPs alone. No measured zoo cell is used to fit either.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .anchored import DISTURBED, quiet_anchor_ms

__all__ = ["cells_label", "evaluation", "evaluation_markdown", "fit_quiet_anchor_ms", "flops_only_fit",
           "predictor_markdown"]


def flops_only_fit(doc: Mapping) -> tuple[float, float]:
    """(c, s per GFLOP), anchor-relative, from a predictor document's one-kernel nets (their FLOPs as nets)."""
    from scipy.optimize import nnls

    from .kernel_graph import kernel_macs

    pts = [p for p in doc["points"] if not p["kernel"]["post"]]
    flops = [2.0 * kernel_macs(p["kernel"]) for p in pts]
    y = np.array([p["t_rel"] for p in pts])
    x = np.column_stack([np.ones(len(pts)), np.array(flops) / 1e9])
    coef, _ = nnls(x / y[:, None], np.ones(len(y)))
    return float(coef[0]), float(coef[1])


def _share(errors) -> float:
    e = np.abs(np.asarray(errors, float))
    return float(np.mean(e <= 0.10)) if len(e) else float("nan")


def _median(errors) -> float:
    e = np.abs(np.asarray(errors, float))
    return float(np.median(e)) if len(e) else float("nan")


# The anchor's latency is read as steady: a shift of its median between the fit and the check, or a spread of its
# groups' medians within either, beyond this fraction (analysis.anchored's disturbance threshold) is reported.
ANCHOR_STEADY = 0.15


def _spread(values) -> dict:
    """The median of the anchor's group medians and their 10th-90th percentile range."""
    v = np.asarray([x for x in values if x and x > 0], float)
    if not len(v):
        return {"median": float("nan"), "p10": float("nan"), "p90": float("nan")}
    return {"median": float(np.median(v)), "p10": float(np.quantile(v, 0.1)), "p90": float(np.quantile(v, 0.9))}


def _fit_anchors(doc: Mapping) -> list[float]:
    """The anchor's ms in the fit's groups: each training net's ms over its ratio is its group's anchor."""
    return [p["t_ms"] / p["t_rel"] for p in doc.get("points", []) if p.get("t_rel")]


def fit_quiet_anchor_ms(doc: Mapping) -> float:
    """The anchor's quiet latency when the predictor was fitted (``analysis.anchored.quiet_anchor_ms`` of its
    groups' anchors): a check whose groups' anchor reads more than ``DISTURBED`` above it is disturbed, even when
    all of them are."""
    return quiet_anchor_ms(_fit_anchors(doc))


def anchor_check(doc: Mapping, cells: list[dict]) -> dict:
    """Whether the anchor could cancel drift here. The anchor at fit time (from the training points: each net's
    ms over its ratio is its group's anchor) and now (the checked cells' groups), each as ``_spread``;
    ``shift``: the anchor's median now over at fit, less 1; ``cells_shift``: the cells' median measured over
    predicted ms, less 1 (how far the models moved, prediction errors included); ``steady``: false when either
    spread (p90 over p10, less 1), or the gap between the two shifts, exceeds ``ANCHOR_STEADY``. A machine that
    slows everything moves both shifts alike, which the ratio cancels; an anchor that moves alone (or in some
    groups) makes the anchor-relative figures compare its states as much as the models."""
    fit = _spread(_fit_anchors(doc))
    now = _spread([r["anchor_ms"] for r in cells])
    shift = now["median"] / fit["median"] - 1 if fit["median"] > 0 else float("nan")
    moved = [r["measured_ms"] / r["ms"] for r in cells if r.get("ms") and r.get("measured_ms")]
    cells_shift = float(np.median(moved)) - 1 if moved else float("nan")
    wide = [x["p90"] / x["p10"] - 1 for x in (fit, now) if x["p10"] > 0]
    gap = abs((1 + shift) / (1 + cells_shift) - 1) if moved and shift == shift else 0.0
    steady = gap <= ANCHOR_STEADY and all(w <= ANCHOR_STEADY for w in wide)
    return {"fit": fit, "now": now, "shift": shift, "cells_shift": cells_shift, "steady": bool(steady)}


def evaluation(rows: Mapping[str, list[dict]], docs: Mapping[str, Mapping]) -> dict:
    """Per backend: each cell's errors, and the summary (shares within ±10%, median errors, FLOPs-only beside,
    and the kernel classes of the cells that miss most).

    The anchor-relative figures are over the cells whose anchor was quiet in at least one round (a cell's
    ``disturbed`` false): a ratio to an anchor in its slow state is not the quantity the predictor was fitted on.
    ``n_disturbed`` counts the others, and ``within_10pct_rel_all`` gives the share over every cell. The absolute
    figures are over every cell: they do not depend on the anchor's state."""
    out = {"backends": {}}
    for backend, cells in rows.items():
        c, s = flops_only_fit(docs[backend])
        for r in cells:
            r["error_rel"] = r["t_rel"] / r["measured_rel"] - 1
            r["error_abs"] = r["ms"] / r["measured_ms"] - 1
            r["flops_only_rel"] = c + s * (r.get("flops") or 0) / 1e9
            r["flops_only_error_rel"] = r["flops_only_rel"] / r["measured_rel"] - 1
        quiet = [r for r in cells if not r.get("disturbed")]
        worst = sorted(quiet, key=lambda r: -abs(r["error_rel"]))[: max(1, len(quiet) // 5)]
        miss: dict[str, float] = {}
        for r in worst:
            total = sum(r["by_kind"].values()) or 1.0
            for kind, v in r["by_kind"].items():
                miss[kind] = miss.get(kind, 0.0) + v / total / len(worst)
        doc = docs[backend]
        out["backends"][backend] = {
            "n": len(cells),
            "n_disturbed": len(cells) - len(quiet),
            "within_10pct_rel": _share([r["error_rel"] for r in quiet]),
            "within_10pct_rel_all": _share([r["error_rel"] for r in cells]),
            "median_abs_error_rel": _median([r["error_rel"] for r in quiet]),
            "median_error_rel": float(np.median([r["error_rel"] for r in quiet])) if quiet else float("nan"),
            "within_10pct_abs": _share([r["error_abs"] for r in cells]),
            "median_abs_error_abs": _median([r["error_abs"] for r in cells]),
            "interval_coverage": float(np.mean([r["t_rel_low"] <= r["measured_rel"] <= r["t_rel_high"]
                                                for r in quiet])) if quiet else float("nan"),
            "flops_only_within_10pct_rel": _share([r["flops_only_error_rel"] for r in quiet]),
            "flops_only_median_abs_error_rel": _median([r["flops_only_error_rel"] for r in quiet]),
            "worst_cells_time_by_kind": dict(sorted(miss.items(), key=lambda kv: -kv[1])),
            "kernel_cv": {k: {"n": v["n"], "within_10pct": v["within_10pct"], "median_abs_error": v["median_abs_error"]}
                          for k, v in doc.get("cv", {}).items()},
            "anchor_ms_fit": doc["anchor_ms"],
            "anchor_ms_now": float(np.median([r["anchor_ms"] for r in cells])) if cells else float("nan"),
            "anchor": anchor_check(doc, cells),
            "cells": cells,
        }
    return out


def cells_label(summary: Mapping) -> str:
    """A backend's checked cells for a table: their count, and how many of them were disturbed."""
    n, loud = summary["n"], summary.get("n_disturbed")
    return f"{n} ({loud} disturbed)" if loud else f"{n}"


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{x:.0%}"


def evaluation_markdown(doc: Mapping, level: int = 1) -> str:
    h = "#" * level
    lines = [f"{h} The latency predictor against measured models", "",
             "Each model predicted from its kernels alone (no measured model in the fit), compared with its "
             "measurement beside the lab anchor: anchor-relative (drift cancels) and absolute (ms, with the anchor's "
             "ms at fit time). FLOPs-only: `c + FLOPs x s` fitted on the same kernel sweep.", "",
             "| backend | cells | within ±10% (anchor-relative) | median abs error | median signed error | 95% interval "
             "holds it | within ±10% (absolute) | median abs error | FLOPs-only within ±10% | FLOPs-only median error "
             "| anchor ms fit → now |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for b, s in doc["backends"].items():
        lines.append(f"| {b} | {cells_label(s)} | {_pct(s['within_10pct_rel'])} | {_pct(s['median_abs_error_rel'])} | "
                     f"{s['median_error_rel']:+.0%} | {_pct(s.get('interval_coverage', float('nan')))} | "
                     f"{_pct(s['within_10pct_abs'])} | "
                     f"{_pct(s['median_abs_error_abs'])} "
                     f"| {_pct(s['flops_only_within_10pct_rel'])} | {_pct(s['flops_only_median_abs_error_rel'])} | "
                     f"{s['anchor_ms_fit']:.3g} → {s['anchor_ms_now']:.3g} |")
    loud = {b: s for b, s in doc["backends"].items() if s.get("n_disturbed")}
    if loud:
        lines += ["", "**Disturbed cells**: " + "; ".join(
            f"on {b}, {s['n_disturbed']} of {s['n']} (every cell: {_pct(s['within_10pct_rel_all'])} within ±10% "
            "anchor-relative)" for b, s in loud.items()) + ". Their anchor read more than "
            f"{DISTURBED:.0%} above its quiet latency (the lower of the fit's and the check's) in every round, "
            "the retake's included, so their ratio is to the anchor's slow state: they are left out of the "
            "anchor-relative figures and kept in the absolute ones."]
    unsteady = {b: s["anchor"] for b, s in doc["backends"].items() if not s.get("anchor", {}).get("steady", True)}
    if unsteady:
        lines += ["", "**The anchor was not steady** on " + ", ".join(unsteady) + ": its groups' medians spread, or "
                  "its median moved apart from the models', by more than "
                  f"{ANCHOR_STEADY:.0%}, so the anchor-relative figures there compare the anchor's states as much as "
                  "the models (the absolute ones do not depend on it). Anchor ms, median [10th-90th percentile of its "
                  "groups]:", ""]
        for b, a in unsteady.items():
            f, n = a["fit"], a["now"]
            lines.append(f"- {b}: at fit {f['median']:.3g} [{f['p10']:.3g}, {f['p90']:.3g}], now {n['median']:.3g} "
                         f"[{n['p10']:.3g}, {n['p90']:.3g}]: the anchor {a['shift']:+.0%}, the models "
                         f"{a['cells_shift']:+.0%} (measured over predicted ms, median)")
    lines += ["", f"{h}# Where it misses", "",
              "The kernel classes' share of predicted time in the fifth of cells with the largest errors, and each "
              "class's cross-validated accuracy on the kernel sweep (one-kernel nets held out in 5 folds).", ""]
    for b, s in doc["backends"].items():
        share = ", ".join(f"{k} {v:.0%}" for k, v in s["worst_cells_time_by_kind"].items())
        cv = ", ".join(f"{k} {v['within_10pct']:.0%} (n={v['n']})" for k, v in s["kernel_cv"].items())
        lines += [f"- **{b}**: time in the worst cells by class: {share or 'n/a'}. Kernel sweep, within ±10% "
                  f"cross-validated: {cv}."]
    lines += ["", f"{h}# Every cell", "", "| backend | model | variant | measured x anchor | predicted x anchor "
              "[95%] | error | measured ms | predicted ms | error | FLOPs-only error |", "|---|---|---|---|---|---|---|"
              "---|---|---|"]
    for b, s in doc["backends"].items():
        for r in sorted(s["cells"], key=lambda r: -abs(r["error_rel"])):
            mark = " (disturbed)" if r.get("disturbed") else ""
            lines.append(f"| {b} | {r['model']} | {r['variant']} | {r['measured_rel']:.3g} | {r['t_rel']:.3g} "
                         f"[{r['t_rel_low']:.3g}, {r['t_rel_high']:.3g}] | {r['error_rel']:+.0%}{mark} | "
                         f"{r['measured_ms']:.3g} | {r['ms']:.3g} | {r['error_abs']:+.0%} | "
                         f"{r['flops_only_error_rel']:+.0%} |")
    return "\n".join(lines) + "\n"


def predictor_markdown(docs: list[Mapping]) -> str:
    """predictor.md: per backend, the fusion rules found, the base, and each class's cross-validated error."""
    lines = ["# Latency predictor fit", "",
             "One-kernel nets measured in lockstep blocks beside the lab anchor (latencies in anchor units). "
             "Fusion: a chain is fused when its pattern net executes no more kernels than its head alone; "
             "*extra* is what the fused chain still adds to the head's time.", ""]
    for d in docs:
        cv = d["cv"]
        where = f" on device {d['device']}" if d.get("device") is not None else ""
        lines += [f"## {d['backend']}{where} ({d.get('runtime') or 'runtime unknown'})", "",
                  f"{len(d['points'])} kernel nets; anchor {d['anchor_ms']:.3g} ms; one-kernel net's fixed cost "
                  f"{d['base']['a']:.3g} x anchor + {d['base']['b'] * 1e6:.3g} x anchor per million I/O elements; "
                  f"dispatch per kernel in a model {d['base'].get('dispatch', 0.0):.3g} x anchor "
                  f"({d['base'].get('dispatch', 0.0) * d['anchor_ms'] * 1e3:.3g} µs); "
                  f"fit in {d.get('fit_s', 0):.0f} s of wall time.", "",
                  "| fusion experiment | executed kernels (head, pattern) | fused | extra |", "|---|---|---|---|"]
        for key, r in d["rules"].items():
            lines.append(f"| {key} | {r['executed'][0]}, {r['executed'][1]} | {'yes' if r['fused'] else 'no'} | "
                         f"{r['extra']:+.0%} |")
        lines += ["", "| kernel class | points | within ±10% (cross-validated) | median abs error |",
                  "|---|---|---|---|"]
        for kind, v in cv.items():
            lines.append(f"| {kind} | {v['n']} | {v['within_10pct']:.0%} | {v['median_abs_error']:.1%} |")
        lines.append("")
    return "\n".join(lines)
