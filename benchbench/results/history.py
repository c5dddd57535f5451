"""History: the same cells across several runs, in time order, with the changes between consecutive runs.

Cells are matched by ``CellSpec.key()`` (as ``compare`` matches them) and runs ordered by when they were
measured (``meta.environment.time``; a run without one keeps its place after the timed ones). Each cell shows
its median with its 95% interval in every run. A change is flagged with compare's own rule
(``compare.compare_runs``): between a cell's consecutive measurements, the 95% interval of the latency ratio
lies outside the ±threshold band, and the Mann-Whitney test on the two cells' block medians is significant:
*slower* or *faster*. Two runs are measured apart, so the ratio is always the unpaired one (the quotient of
the two cells' intervals), never paired by round: rounds of different runs did not run together.

Views: a terminal table, a Markdown table, a PNG plot (matplotlib) and an HTML page (the page kit of
``results.html``).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path

from tabulate import tabulate

from .compare import compare_runs
from .record import CellResult, RunResult

__all__ = ["History", "CellHistory", "Point", "history", "load_any", "require_pandas", "HISTORY_HTML"]

HISTORY_HTML = "history.html"
CHANGES = ("slower", "faster")


@dataclass
class Point:
    """One cell in one run: its status, median and 95% interval, and how it compares with the cell's previous
    measurement (``verdict``: compare's verdict, or None for the first one; ``ratio``: the RatioEstimate)."""

    status: str  # "ok", a failure status, or "absent" (the run has no such cell)
    median_ms: float | None = None
    low_ms: float | None = None
    high_ms: float | None = None
    noisy: bool = False
    verdict: str | None = None
    ratio: object = None  # benchbench.results.estimates.RatioEstimate vs the previous measurement
    p_value: float | None = None
    reason: str | None = None

    @property
    def changed(self) -> bool:
        return self.verdict in CHANGES


@dataclass
class CellHistory:
    key: tuple
    label: str
    cell: CellResult  # the latest measurement (its spec and model describe the row)
    points: list[Point] = field(default_factory=list)  # one per run, in time order

    @property
    def changes(self) -> list[tuple[int, Point]]:
        """(run index, point) of each flagged change."""
        return [(i, p) for i, p in enumerate(self.points) if p.changed]


@dataclass
class History:
    runs: list[RunResult]
    names: list[str]
    times: list[str | None]
    cells: list[CellHistory]
    threshold: float

    def changes(self) -> list[tuple[CellHistory, int, Point]]:
        """Every flagged change: (cell, run index, point)."""
        return [(c, i, p) for c in self.cells for i, p in c.changes]

    @property
    def changed(self) -> list[CellHistory]:
        return [c for c in self.cells if c.changes]

    def rows(self) -> list[dict]:
        """One flat dict per cell and run (long format; ``benchbench.api`` turns it into a DataFrame)."""
        out = []
        for c in self.cells:
            for i, p in enumerate(c.points):
                out.append({"cell": c.label, "model": c.cell.spec.model, "variant": c.cell.spec.variant,
                            "backend": c.cell.spec.backend, "run": self.names[i], "time": self.times[i],
                            "status": p.status, "median_ms": p.median_ms, "ci_low_ms": p.low_ms, "ci_high_ms": p.high_ms,
                            "noisy": p.noisy, "verdict": p.verdict,
                            "ratio": p.ratio.value if p.ratio else None, "ratio_low": p.ratio.low if p.ratio else None,
                            "ratio_high": p.ratio.high if p.ratio else None, "p_value": p.p_value})
        return out

    def to_pandas(self):
        """``rows()`` as a pandas DataFrame (needs ``benchbench[pandas]``)."""
        return require_pandas().DataFrame(self.rows())

    # ---- text views ----------------------------------------------------------------------------------

    def _point_text(self, p: Point, markdown: bool) -> str:
        if p.status != "ok":
            return "—" if p.status == "absent" else p.status
        text = f"{p.median_ms:.3f} [{p.low_ms:.3f}, {p.high_ms:.3f}]" + (" ~" if p.noisy else "")
        if p.changed:
            mark = f"{'▲' if p.verdict == 'slower' else '▼'} {p.verdict} {_pct(p.ratio)}"
            return f"{text} **{mark}**" if markdown else f"{text} {mark}"
        return text

    def _table(self, markdown: bool, only_changed: bool) -> tuple[list[str], list[list[str]]]:
        headers = ["cell", *[f"{n}" + (f" ({t[:16].replace('T', ' ')})" if t else "") for n, t in
                             zip(self.names, self.times)], "changes"]
        cells = self.changed if only_changed else self.cells
        body = [[c.label, *[self._point_text(p, markdown) for p in c.points],
                 ", ".join(f"{p.verdict} in {self.names[i]}" for i, p in c.changes) or "none"] for c in cells]
        return headers, body

    def _summary(self) -> str:
        n = len(self.changes())
        return (f"{len(self.cells)} cells over {len(self.runs)} runs; {n} change{'s' if n != 1 else ''} flagged in "
                f"{len(self.changed)} cells. Median ms [95% interval]; a change (▲ slower, ▼ faster, with the "
                f"latency ratio to the cell's previous measurement and its 95% interval) is flagged when that "
                f"interval lies outside ±{100 * self.threshold:g}% and the block-level U test is significant "
                "(compare's rule, unpaired across runs).")

    def terminal_table(self, only_changed: bool = False) -> str:
        headers, body = self._table(False, only_changed)
        return tabulate(body, headers, tablefmt="simple", disable_numparse=True) + "\n" + self._summary()

    def markdown(self, only_changed: bool = False, title: str = "benchbench history") -> str:
        headers, body = self._table(True, only_changed)
        return "\n".join([f"# {title}", "", self._summary(), "",
                          tabulate(body, headers, tablefmt="github", disable_numparse=True), ""])

    # ---- plots ---------------------------------------------------------------------------------------

    def _plotted(self, max_cells: int) -> list[CellHistory]:
        """The cells with a change first, then the others, up to ``max_cells``."""
        return (self.changed + [c for c in self.cells if not c.changes])[:max_cells]

    def plot_png(self, path: str | Path, cells: list[CellHistory] | None = None, max_cells: int = 12) -> Path | None:
        """Small multiples: each cell's median with its 95% interval per run; a flagged change in red. By
        default the cells with a change, then the others, up to ``max_cells``. None when nothing is measured."""
        cells = [c for c in (cells if cells is not None else self._plotted(max_cells))
                 if any(p.status == "ok" for p in c.points)]
        if not cells:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        cols = min(3, len(cells))
        rows = math.ceil(len(cells) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.0 * rows), squeeze=False, layout="constrained")
        x_labels = [n if len(n) <= 14 else n[:13] + "…" for n in self.names]
        for ax, c in zip(axes.flat, cells):
            idx = [i for i, p in enumerate(c.points) if p.status == "ok"]
            med = [c.points[i].median_ms for i in idx]
            err = [[c.points[i].median_ms - c.points[i].low_ms for i in idx],
                   [c.points[i].high_ms - c.points[i].median_ms for i in idx]]
            ax.errorbar(idx, med, yerr=err, fmt="o-", color="tab:blue", ecolor="grey", capsize=3, markersize=4,
                        linewidth=1)
            for i, p in c.changes:
                ax.plot([i], [p.median_ms], "o", color="tab:red", markersize=8, zorder=3)
                ax.annotate(f"{p.verdict} {_pct(p.ratio)}", (i, p.median_ms), textcoords="offset points",
                            xytext=(0, 8), ha="center", fontsize=7, color="tab:red")
            # at least ±2 thresholds around the cell's level: noise inside the band must not look like a change
            level = sorted(med)[len(med) // 2]
            low = min([level / (1 + 2 * self.threshold)] + [c.points[i].low_ms for i in idx])
            high = max([level * (1 + 2 * self.threshold)] + [c.points[i].high_ms for i in idx])
            ax.set_ylim(low - 0.05 * (high - low), high + 0.15 * (high - low))
            ax.set_title(c.label, fontsize=8)
            ax.set_xticks(range(len(self.names)), x_labels, fontsize=7, rotation=30, ha="right")
            ax.set_xlim(-0.5, len(self.names) - 0.5)
            ax.set_ylabel("median ms (95% CI)", fontsize=7)
            ax.tick_params(axis="y", labelsize=7)
            ax.grid(True, alpha=0.25)
        for ax in list(axes.flat)[len(cells):]:
            ax.set_visible(False)
        fig.suptitle(f"History: {len(self.changed)} of {len(self.cells)} cells changed "
                     f"(interval of the ratio outside ±{100 * self.threshold:g}%)", fontsize=10)
        import io

        from benchbench.core.atomic import write_atomic

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        return write_atomic(Path(path), buf.getvalue())

    # ---- HTML ----------------------------------------------------------------------------------------

    def html(self, title: str = "benchbench history") -> str:
        """One page: the summary, a plot of every cell relative to its first measurement (hover for the
        values, pick a cell to highlight it), and the table (sortable, filterable) with the flagged changes."""
        from .html import PALETTE, esc, page, table

        ticks = [[i, n] for i, n in enumerate(self.names)]
        series = []
        for j, c in enumerate(self.cells):
            first = next((p.median_ms for p in c.points if p.status == "ok" and p.median_ms), None)
            if not first:
                continue
            pts = []
            for i, p in enumerate(c.points):
                if p.status != "ok":
                    continue
                tip = [c.label, f"{self.names[i]}" + (f" · {self.times[i]}" if self.times[i] else ""),
                       f"median {p.median_ms:.3f} ms [{p.low_ms:.3f}, {p.high_ms:.3f}] (95%)"]
                if p.ratio is not None:
                    tip.append(f"vs previous: {p.verdict} ×{p.ratio.value:.3f} [{p.ratio.low:.3f}, {p.ratio.high:.3f}]")
                pts.append({"x": i, "y": p.median_ms / first, "lo": p.low_ms / first, "hi": p.high_ms / first,
                            "g": c.label, "t": tip})
            series.append({"name": c.label, "line": True, "points": pts,
                           "color": PALETTE[2] if c.changes else "#8c959f", "marker": "circle" if c.changes else "square",
                           "size": 4 if c.changes else 3})
        series.sort(key=lambda s: s["color"] != "#8c959f")  # changed cells drawn last, on top
        n_changes = len(self.changes())
        plot = {"title": "Each cell's median relative to its first measurement (95% interval scaled alike)",
                "x": {"label": "run (time order)", "ticks": ticks, "min": -0.3, "max": len(self.names) - 0.7},
                "y": {"label": "median / first median", "log": True}, "series": series, "legend": False,
                "refs": [{"axis": "y", "value": 1.0}],
                "note": "Red circles: cells with a flagged change; grey squares: the others. Hover a point for its "
                        "values and the comparison with the previous run."}
        headers = ["cell", *[(n, "num") for n in self.names], "changes"]
        body, attrs = [], []
        for c in self.cells:
            row = [c.label]
            for p in c.points:
                text = self._point_text(p, False)
                cls = f' class="v-{p.verdict}"' if p.changed else ""
                row.append((f"<span{cls}>{esc(text)}</span>", p.median_ms))
            row.append(", ".join(f"{p.verdict} in {self.names[i]}" for i, p in c.changes) or "none")
            body.append(row)
            attrs.append({"changed": "yes" if c.changes else "no"})
        options = "".join(f'<option value="{esc(c.label)}">{esc(c.label)}</option>' for c in self.cells)
        parts = [f"<h1>{esc(title)}</h1>",
                 '<div class="cards">', f'<div class="card"><b>{len(self.runs)}</b>runs</div>',
                 f'<div class="card"><b>{len(self.cells)}</b>cells</div>',
                 f'<div class="card"><b class="{"s-bad" if n_changes else "s-ok"}">{n_changes}</b>changes flagged</div>',
                 "</div>", f"<p class='note'>{esc(self._summary())}</p>",
                 '<ol class="meta">', *[f"<li>{esc(n)}" + (f" — {esc(t)}" if t else "") + "</li>"
                                        for n, t in zip(self.names, self.times)], "</ol>",
                 '<div class="controls"><label>highlight a cell <select data-highlight="" aria-label="highlight a '
                 f'cell"><option value="">all cells</option>{options}</select></label></div>',
                 '<div data-plot="history"></div>', "<h2>Cells</h2>", '<div class="controls">',
                 '<input type="search" data-filter-for="history" placeholder="filter cells…" aria-label="filter">',
                 '<select data-filter-for="history" data-field="changed" aria-label="changed"><option value="">every '
                 'cell</option><option value="yes">changed</option><option value="no">unchanged</option></select>',
                 '<span class="muted" data-count-for="history"></span></div>',
                 table("history", headers, body, row_attrs=attrs)]
        return page(title, "\n".join(parts), {"plots": {"history": plot}})

    def write_html(self, folder: str | Path) -> Path:
        """``history.html`` in ``folder``, written whole (``results.html.write_page``)."""
        from .html import write_page

        return write_page(folder, HISTORY_HTML, self.html())


def require_pandas():
    """pandas, or an ImportError that names the extra to install."""
    try:
        import pandas
    except ImportError:
        raise ImportError("this needs pandas, an optional extra: pip install 'benchbench[pandas]'") from None
    return pandas


def _pct(est) -> str:
    if est is None:
        return ""
    return f"{100 * (est.value - 1):+.1f}% [{100 * (est.low - 1):+.1f}, {100 * (est.high - 1):+.1f}]"


def load_any(source) -> RunResult:
    """A run from a RunResult, an object wrapping one (``.run``), a run folder (its journal, else its
    results.json), a results.json or a cells.jsonl."""
    if isinstance(source, RunResult):
        return source
    if isinstance(getattr(source, "run", None), RunResult):
        return source.run
    path = Path(source)
    if path.is_dir():
        from .journal import load_results

        return load_results(path)[0]
    if path.suffix == ".jsonl":
        from .journal import read_journal

        return read_journal(path)
    from .load import load_run

    return load_run(path)


def _time(run: RunResult) -> dt.datetime | None:
    text = (run.meta.get("environment") or {}).get("time")
    try:
        t = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def _name(run: RunResult, i: int) -> str:
    if run.path is not None:
        path = Path(run.path)
        return path.parent.name if path.name in ("results.json", "cells.jsonl") else path.stem
    return f"run {i + 1}"


def history(paths, threshold: float = 0.05, alpha: float = 0.01) -> History:
    """Line up the cells of several runs (folders, results files or RunResults) by spec key, in time order,
    and flag each change between a cell's consecutive measurements with compare's rule (``threshold``: the
    relative no-change band, ``alpha``: the U test's level)."""
    runs = [load_any(p) for p in paths]
    if not runs:
        raise ValueError("history needs at least one run")
    stamps = [_time(r) for r in runs]
    order = sorted(range(len(runs)), key=lambda i: (0, stamps[i], i) if stamps[i] else (1, 0, i))
    runs = [runs[i] for i in order]
    names = [_name(r, i) for i, r in enumerate(runs)]  # an unnamed run is numbered in time order
    times = [(r.meta.get("environment") or {}).get("time") for r in runs]
    # two runs in one folder name (or unnamed): keep names apart
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        seen[n] = seen.get(n, 0) + 1
        if seen[n] > 1:
            names[i] = f"{n} ({seen[n]})"
    by_key = [{c.spec.key(): c for c in r.cells} for r in runs]
    keys: dict[tuple, CellHistory] = {}
    for cells in by_key:
        for k, c in cells.items():
            if k not in keys:
                keys[k] = CellHistory(k, c.spec.label(), c)
            keys[k].cell = c
    for k, ch in keys.items():
        previous: CellResult | None = None
        for cells in by_key:
            cell = cells.get(k)
            if cell is None:
                ch.points.append(Point("absent"))
                continue
            if not cell.ok or cell.median_ms is None:
                ch.points.append(Point(cell.status if not cell.ok else "no samples", reason=cell.reason))
                continue
            s = cell.stats
            point = Point("ok", s.get("median_ms"), s.get("ci_low_ms"), s.get("ci_high_ms"), bool(s.get("noisy")))
            if previous is not None:
                # measured apart: compare_runs compares two runs unpaired
                (cmp,) = compare_runs(RunResult(meta={}, cells=[previous]), RunResult(meta={}, cells=[cell]),
                                      threshold, alpha)
                point.verdict, point.ratio, point.p_value = cmp.verdict, cmp.estimate, cmp.p_value
            ch.points.append(point)
            previous = cell
    return History(runs, names, times, list(keys.values()), threshold)
