"""Headless PNG plots for the claim report (matplotlib, Agg backend)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = ["latency_vs_flops", "train_vs_deploy", "guideline_bars"]

_MARKERS = "osD^vPX*<>hp8d"
# Past 14 families the markers repeat; a second and third edge colour keeps every family distinct.
_EDGES = ("black", "crimson", "royalblue")


def _family_styles(families: list[str]) -> dict[str, tuple[str, str]]:
    """family -> (marker, edge colour), unique for up to 42 families."""
    n = len(_MARKERS)
    return {f: (_MARKERS[i % n], _EDGES[(i // n) % len(_EDGES)]) for i, f in enumerate(families)}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def latency_vs_flops(rows: list[dict], path: Path) -> Path | None:
    """Per backend, log-log latency against FLOPs; colour = executed ops, marker = family."""
    rows = [r for r in rows if r.get("flops") and r.get("median_ms")]
    if not rows:
        return None
    plt = _plt()
    from matplotlib.colors import LogNorm

    backends = sorted({r["backend"] for r in rows})
    families = sorted({r["family"] for r in rows})
    style = _family_styles(families)
    ops = [r["executed_ops"] for r in rows if r.get("executed_ops")]
    norm = LogNorm(vmin=max(1, min(ops)), vmax=max(ops)) if ops else None
    cols = min(2, len(backends))
    nrows = math.ceil(len(backends) / cols)
    # Constrained layout keeps titles, axis labels, the colour bar and the legend from overlapping.
    fig, axes = plt.subplots(nrows, cols, figsize=(6.5 * cols, 4.8 * nrows), squeeze=False, layout="constrained")
    scatter = None
    for ax, backend in zip(axes.flat, backends):
        for fam in families:
            pts = [r for r in rows if r["backend"] == backend and r["family"] == fam]
            if not pts:
                continue
            scatter = ax.scatter([r["flops"] / 1e9 for r in pts], [r["median_ms"] for r in pts],
                                 c=[r.get("executed_ops") or 1 for r in pts], cmap="viridis", norm=norm,
                                 marker=style[fam][0], s=42, edgecolors=style[fam][1],
                                 linewidths=0.4 if style[fam][1] == "black" else 1.1, label=fam)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(backend)
        ax.set_xlabel("GFLOPs per inference")
        ax.set_ylabel("median latency (ms)")
        ax.grid(True, which="both", alpha=0.25)
    for ax in list(axes.flat)[len(backends):]:
        ax.set_visible(False)
    handles = [plt.Line2D([], [], marker=style[f][0], linestyle="", color="grey", markeredgecolor=style[f][1],
                          markeredgewidth=0.4 if style[f][1] == "black" else 1.1, label=f)
               for f in families]
    if scatter is not None and norm is not None:
        fig.colorbar(scatter, ax=axes, label="executed ops", shrink=0.8)
    fig.legend(handles=handles, loc="outside right center", fontsize=8, title="family")
    fig.suptitle("Latency vs FLOPs (colour: ops the backend executes)")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def train_vs_deploy(ratios: list[dict], path: Path) -> Path | None:
    """Per family and backend: deploy/train latency ratio beside the deploy/train FLOPs ratio."""
    if not ratios:
        return None
    plt = _plt()
    backends = sorted({r["backend"] for r in ratios})
    families = sorted({r["family"] for r in ratios})
    fig, axes = plt.subplots(len(backends), 1, figsize=(max(8, 0.55 * len(families) + 2), 3.2 * len(backends)),
                             squeeze=False)
    x = np.arange(len(families))
    for ax, backend in zip(axes[:, 0], backends):
        by_fam = {r["family"]: r for r in ratios if r["backend"] == backend}
        lat = [by_fam[f]["latency_ratio"] if f in by_fam else np.nan for f in families]
        flops = [by_fam[f]["flops_ratio"] if f in by_fam else np.nan for f in families]
        ax.bar(x - 0.2, lat, 0.4, label="latency deploy/train")
        ax.bar(x + 0.2, flops, 0.4, label="FLOPs deploy/train", alpha=0.6)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_title(backend, fontsize=10)
        ax.set_xticks(x, families, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("ratio (< 1: deploy smaller)")
        ax.legend(fontsize=8, loc="upper right")
    fig.suptitle("Train vs deploy per family (median over members)")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def guideline_bars(results: list[dict], path: Path, multiplier: int = 1) -> Path | None:
    """One panel per guideline table: relative speed per row, ours per backend (with CI) and the paper's."""
    tables = [t for t in ("G1", "G2", "G3", "G4") if any(r["table"] == t and r["multiplier"] == multiplier
                                                          for r in results)]
    if not tables:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(tables), figsize=(4.6 * len(tables), 4.2), squeeze=False)
    for ax, key in zip(axes[0], tables):
        entries = [r for r in results if r["table"] == key and r["multiplier"] == multiplier]
        labels = [row["row"] for row in entries[0]["rows"]]
        series = [(f"ours: {e['backend']}", [row["ours"] for row in e["rows"]]) for e in entries]
        series += [("paper: ARM", [(row["arm"], None, None) for row in entries[0]["rows"]]),
                   ("paper: GPU", [(row["gpu"], None, None) for row in entries[0]["rows"]])]
        width = 0.8 / len(series)
        x = np.arange(len(labels))
        for i, (name, vals) in enumerate(series):
            med = [v[0] if v else np.nan for v in vals]
            err = None
            if name.startswith("ours"):
                err = np.array([[v[0] - v[1], v[2] - v[0]] if v else [0, 0] for v in vals]).T
            ax.bar(x + (i - (len(series) - 1) / 2) * width, med, width, yerr=err, capsize=2, label=name,
                   hatch="//" if name.startswith("paper") else None, alpha=0.85)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(key, fontsize=10)
        ax.set_ylabel("speed relative to row 1")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", ncol=min(6, len(names)), fontsize=8, bbox_to_anchor=(0.5, 1.08))
    fig.suptitle(f"ShuffleNetV2 guideline tables at x{multiplier} channels", y=1.13)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
