"""Headless PNG plots for the claim report (matplotlib, Agg backend)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = ["latency_vs_flops", "overhead_curve", "held_out_errors", "pair_ratios", "guideline_dots"]

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
    cols = min(2, len(backends))
    nrows = math.ceil(len(backends) / cols)
    # Constrained layout keeps titles, axis labels, the colour bar and the legend from overlapping.
    fig, axes = plt.subplots(nrows, cols, figsize=(6.5 * cols, 4.8 * nrows), squeeze=False, layout="constrained")
    for ax, backend in zip(axes.flat, backends):
        # Each runtime counts its own kind of op: one colour scale per backend, not one for all.
        ops = [r["executed_ops"] for r in rows if r["backend"] == backend and r.get("executed_ops")]
        norm = LogNorm(vmin=max(1, min(ops)), vmax=max(ops)) if ops else None
        scatter = None
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
        if scatter is not None and norm is not None:
            fig.colorbar(scatter, ax=ax, label=f"executed ops ({backend})", shrink=0.85)
    for ax in list(axes.flat)[len(backends):]:
        ax.set_visible(False)
    handles = [plt.Line2D([], [], marker=style[f][0], linestyle="", color="grey", markeredgecolor=style[f][1],
                          markeredgewidth=0.4 if style[f][1] == "black" else 1.1, label=f)
               for f in families]
    fig.legend(handles=handles, loc="outside right center", fontsize=8, title="family")
    fig.suptitle("Latency vs FLOPs (colour: ops the backend executes, on its own scale)")
    _save(fig, path)
    plt.close(fig)
    return path


def _save(fig, path: Path) -> None:
    """The figure as PNG at ``path``, written by temp file and rename (never through a link planted there)."""
    import io

    from benchbench.core.atomic import write_atomic

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    write_atomic(path, buf.getvalue())


def _plain_log(ax, x: bool = True, y: bool = True):
    """Log axes labelled with plain numbers (0.5, 1, 2) and no crowded minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    for on, axis in ((x, ax.xaxis), (y, ax.yaxis)):
        if on:
            axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(plain)
            axis.set_minor_formatter(NullFormatter())


def _grid(n: int, width: float = 6.0, height: float = 4.6):
    plt = _plt()
    cols = min(2, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False, layout="constrained")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    return plt, fig, list(axes.flat)[:n]


def overhead_curve(analysis: dict, path: Path) -> Path | None:
    """Per backend: measured latency over the FLOPs-only fit's prediction, against executed ops per GFLOP,
    with the additive model's curve (at the zoo's median FLOPs and traffic per FLOP). A point above 1 is slower
    than its FLOPs say; if fragmentation costs time, points rise to the right along the curve."""
    from .latency_models import design_rows, fit_additive

    rows = design_rows(analysis["observations"])
    backends = [b for b in sorted({r["backend"] for r in rows}) if len({r["family"] for r in rows if r["backend"] == b}) >= 3]
    if not backends:
        return None
    plt, fig, axes = _grid(len(backends))
    families = sorted({r["family"] for r in rows})
    style = _family_styles(families)
    for ax, backend in zip(axes, backends):
        sub = [r for r in rows if r["backend"] == backend]
        c_flops = fit_additive(sub, "flops")
        c_add = fit_additive(sub, "additive")
        gflops = np.array([r["flops"] / 1e9 for r in sub])
        x = np.array([r["executed_ops"] for r in sub]) / gflops
        base = c_flops[0] + c_flops[1] * gflops
        y = np.array([r["median_ms"] for r in sub]) / base
        for fam in families:
            m = [i for i, r in enumerate(sub) if r["family"] == fam]
            if m:
                ax.scatter(x[m], y[m], marker=style[fam][0], edgecolors=style[fam][1], s=36, alpha=0.85, label=fam)
        g, mb = float(np.median(gflops)), float(np.median([r["mac_bytes"] / 1e6 / (r["flops"] / 1e9) for r in sub]))
        grid = np.geomspace(x.min(), x.max(), 100)
        curve = (c_add[0] + c_add[1] * g + c_add[2] * grid * g + c_add[3] * mb * g) / (c_flops[0] + c_flops[1] * g)
        ax.plot(grid, curve, color="black", linewidth=1.4,
                label=f"additive fit: {1e3 * c_add[2]:.1f} µs/op (at {g:.2f} GFLOPs)")
        ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log(ax)
        ax.set_title(backend)
        ax.set_xlabel("executed ops per GFLOP")
        ax.set_ylabel("latency / FLOPs-only prediction")
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(handles=ax.get_legend_handles_labels()[0][-1:], fontsize=8, loc="upper left")
    handles = [plt.Line2D([], [], marker=style[f][0], linestyle="", color="grey", markeredgecolor=style[f][1], label=f)
               for f in families]
    fig.legend(handles=handles, loc="outside right center", fontsize=7, title="family")
    fig.suptitle("Does latency beyond FLOPs grow with executed ops per FLOP?")
    _save(fig, path)
    plt.close(fig)
    return path


def held_out_errors(analysis: dict, path: Path) -> Path | None:
    """Per backend: each model form's leave-one-family-out relative errors (residuals), as box plots."""
    per = {b: a.get("held_out") for b, a in analysis["per_backend"].items() if a.get("held_out")}
    if not per:
        return None
    plt, fig, axes = _grid(len(per), width=6.0, height=3.8)
    for ax, (backend, forms) in zip(axes, per.items()):
        names = list(forms)
        data = [100 * np.asarray(forms[f]["error"]) for f in names]
        ax.boxplot(data, showfliers=True, widths=0.6)
        ax.set_xticks(range(1, len(names) + 1), names, fontsize=8)
        ax.axhspan(-10, 10, color="tab:green", alpha=0.12, label="±10%")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_ylabel("held-out error (%)")
        ax.set_title(backend)
        ax.grid(True, axis="y", alpha=0.25)
    fig.suptitle("Leave-one-family-out prediction errors (prediction / measurement − 1)")
    _save(fig, path)
    plt.close(fig)
    return path


def pair_ratios(pairs: list[dict], path: Path) -> Path | None:
    """Per backend, log-log: each train/deploy pair's latency ratio (lockstep 95% interval) against its FLOPs
    ratio; the diagonal is 'latency follows FLOPs', the band is the A/A noise of identical-graph pairs."""
    pairs = [p for p in pairs if p.get("flops_ratio")]
    backends = sorted({p["backend"] for p in pairs})
    if not backends:
        return None
    plt, fig, axes = _grid(len(backends))
    from matplotlib.colors import TwoSlopeNorm

    for ax, backend in zip(axes, backends):
        sub = [p for p in pairs if p["backend"] == backend]
        same = [p for p in sub if p["identical"]]
        band = max((abs(math.log(p["latency_ratio"])) for p in same), default=0.0)
        x = np.array([p["flops_ratio"] for p in sub])
        y = np.array([p["latency_ratio"] for p in sub])
        err = np.array([[p["latency_ratio"] - p["latency_ratio_ci"][0], p["latency_ratio_ci"][1] - p["latency_ratio"]]
                        for p in sub]).T
        ops = np.log2([p["ops_ratio"] or 1.0 for p in sub])
        lim = max(0.1, float(np.max(np.abs(ops))))
        ax.errorbar(x, y, yerr=err, fmt="none", ecolor="grey", elinewidth=0.8, capsize=2, zorder=1)
        sc = ax.scatter(x, y, c=ops, cmap="coolwarm", norm=TwoSlopeNorm(0.0, -lim, lim), s=30, zorder=2,
                        edgecolors="black", linewidths=0.3)
        lo, hi = min(x.min(), y.min()) * 0.9, max(x.max(), y.max()) * 1.1
        ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8, label="latency ratio = FLOPs ratio")
        if band:
            ax.axhspan(math.exp(-band), math.exp(band), color="tab:green", alpha=0.15,
                       label=f"A/A band (±{100 * (math.exp(band) - 1):.1f}%, {len(same)} identical pairs)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log(ax)
        ax.set_xlabel("FLOPs ratio deploy/train")
        ax.set_ylabel("latency ratio deploy/train")
        ax.set_title(backend)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7, loc="upper left")
        fig.colorbar(sc, ax=ax, label="log2 executed-ops ratio", shrink=0.85)
    fig.suptitle("Train → deploy: does latency follow FLOPs or executed ops?")
    _save(fig, path)
    plt.close(fig)
    return path


def guideline_dots(results: list[dict], path: Path) -> Path | None:
    """One panel per guideline table: each row's speed relative to the first, per backend and width, on a log
    axis with its lockstep 95% interval, beside the paper's ARM and GPU speeds (hollow)."""
    tables = [t for t in ("G1", "G2", "G3", "G4") if any(r["table"] == t for r in results)]
    if not tables:
        return None
    plt, fig, axes = _grid(len(tables), width=6.4, height=4.4)
    backends = sorted({r["backend"] for r in results})
    colours = {b: f"C{i}" for i, b in enumerate(backends)}
    markers = {1: "o", 2: "s", 4: "D"}
    for ax, key in zip(axes, tables):
        entries = [r for r in results if r["table"] == key]
        labels = [row["row"] for row in entries[0]["rows"]]
        slots = [(b, m) for b in backends for m in (1, 2, 4) if any(e["backend"] == b and e["multiplier"] == m for e in entries)]
        step = 0.8 / (len(slots) + 2)
        for j, (b, m) in enumerate(slots):
            e = next(e for e in entries if e["backend"] == b and e["multiplier"] == m)
            for i, row in enumerate(e["rows"]):
                if row["ours"]:
                    v, lo, hi = row["ours"]
                    ax.errorbar([v], [i - 0.4 + step * (j + 1)], xerr=[[v - lo], [hi - v]], fmt=markers[m],
                                color=colours[b], markersize=4, capsize=1.5, elinewidth=0.8)
        first = {m: next((e for e in entries if e["multiplier"] == m), None) for m in (1, 2, 4)}
        for m, e in first.items():
            if e:
                for i, row in enumerate(e["rows"]):
                    ax.scatter([row["arm"]], [i + 0.4 - step / 2], marker=markers[m], facecolors="none",
                               edgecolors="black", s=20)
                    ax.scatter([row["gpu"]], [i + 0.4 - step / 2], marker=markers[m], facecolors="none",
                               edgecolors="tab:red", s=20)
        ax.axvline(1.0, color="grey", linewidth=0.8)
        ax.set_xscale("log")
        _plain_log(ax, y=False)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("speed relative to the first row")
        ax.set_title(entries[0]["title"], fontsize=9)
        ax.grid(True, axis="x", which="both", alpha=0.25)
    handles = [plt.Line2D([], [], color=colours[b], marker="o", linestyle="", label=b) for b in backends]
    handles += [plt.Line2D([], [], color="grey", marker=markers[m], linestyle="", label=f"x{m} channels") for m in (1, 2, 4)]
    handles += [plt.Line2D([], [], color="black", marker="o", markerfacecolor="none", linestyle="", label="paper ARM"),
                plt.Line2D([], [], color="tab:red", marker="o", markerfacecolor="none", linestyle="", label="paper GPU")]
    fig.legend(handles=handles, loc="outside right center", fontsize=8)
    fig.suptitle("ShuffleNetV2 guideline tables, every width, with lockstep 95% intervals")
    _save(fig, path)
    plt.close(fig)
    return path
