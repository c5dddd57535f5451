"""Self-contained HTML views: ``report.html`` for a run, and the page kit the claim and history pages share.

One file per page, which opens offline: the styles, the scripts and the data are inlined, and the page's
Content-Security-Policy forbids every request, so that a page cannot fetch anything even by mistake. The
tables sort (click a header) and filter (a search box, a status menu, the backend tabs); the plots are SVG
drawn by a small script written for these pages (``assets/bbplot.js``: log axes, intervals, hover tooltips,
a legend that hides series). Like the other views, the pages compute nothing new: ``views.rows``,
``views.speedups`` and ``views.run_header`` supply every number.
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path

from benchbench.core import strictjson
from benchbench.core.atomic import write_atomic

from .journal import WriteError
from .record import RunResult
from .views import _fmt, _footer, _parity_text, rows, run_header, speedups

__all__ = ["report_html", "write_report_html", "write_page", "page", "esc", "md_inline", "json_script", "table",
           "PALETTE", "VARIANT_COLOURS", "REPORT_HTML"]

REPORT_HTML = "report.html"
ASSETS = Path(__file__).with_name("assets")
# Nothing may be fetched: no script, style, font, image or connection from anywhere but the page itself.
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
       "base-uri 'none'; form-action 'none'")
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7",
           "#bab0ac")
VARIANT_COLOURS = {"train": "#f28e2b", "deploy": "#4e79a7", "int8": "#76b7b2", "artifact": "#59a14f", "before": "#b07aa1",
                   "after": "#e15759"}


def esc(value) -> str:
    """Text as HTML (None as nothing); quotes escaped too, so it is safe in an attribute."""
    return "" if value is None else html.escape(str(value), quote=True)


def md_inline(text: str) -> str:
    """The inline Markdown the reports' sentences use (``**bold**``, ```code```) as escaped HTML."""
    parts = str(text).split("`")
    out = []
    for i, part in enumerate(parts):
        if i % 2 and i < len(parts) - 1:
            out.append(f"<code>{esc(part)}</code>")
        else:
            out.append(re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", esc(part if i % 2 == 0 else "`" + part)))
    return "".join(out)


def json_script(data, element_id: str = "bb-data") -> str:
    """``data`` as strict JSON inside a ``<script type="application/json">``, which the page parses. ``<``, ``>``
    and ``&`` are written as JSON escapes, so no text in the data (a model name, a reason) can end the element."""
    text = strictjson.dumps(data, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="{esc(element_id)}">{text}</script>'


def _asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def page(title: str, body: str, data: dict | None = None) -> str:
    """A whole page: ``body`` (HTML) with the stylesheet, the scripts and ``data`` (the plots' specs under
    ``"plots"``, keyed by each ``<div data-plot="KEY">``) inlined."""
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no favicon request
        f"<title>{esc(title)}</title>",
        f"<style>\n{_asset('bb.css')}</style>",
        "</head>",
        "<body>",
        "<main>",
        body,
        "</main>",
        json_script(data or {}),
        f"<script>\n{_asset('bbplot.js')}</script>",
        f"<script>\n{_asset('bbpage.js')}</script>",
        "</body>",
        "</html>",
        "",
    ])


def table(table_id: str | None, headers: list, body: list[list], caption: str | None = None,
          row_attrs: list[dict] | None = None, sortable: bool = True) -> str:
    """An HTML table. A header is a label or ``(label, "num")`` for a numeric column; a body cell is a value
    (escaped) or ``(html, sort_value)``: raw HTML with the value it sorts by (numbers for numeric columns)."""
    head = []
    for h in headers:
        label, kind = (h, "") if isinstance(h, str) else h
        attrs = (' data-sortable=""' if sortable else "") + (' data-type="num" class="num"' if kind == "num" else "")
        head.append(f"<th{attrs}>{esc(label)}</th>")
    kinds = ["" if isinstance(h, str) else h[1] for h in headers]
    lines = []
    for i, row in enumerate(body):
        attrs = "".join(f' data-{esc(k)}="{esc(v)}"' for k, v in (row_attrs[i] if row_attrs else {}).items())
        cells = []
        for value, kind in zip(row, kinds):
            cls = ' class="num"' if kind == "num" else ""
            if isinstance(value, tuple):
                shown, key = value
                key = "" if key is None or (isinstance(key, float) and math.isnan(key)) else key
                cells.append(f'<td{cls} data-v="{esc(key)}">{shown}</td>')
            else:
                cells.append(f"<td{cls}>{esc(value)}</td>")
        lines.append(f"<tr{attrs}>{''.join(cells)}</tr>")
    ident = f' id="{esc(table_id)}"' if table_id else ""
    cap = f"<caption class='note'>{esc(caption)}</caption>" if caption else ""
    return (f'<div class="tablewrap"><table class="bb"{ident}{" data-bb-table" if sortable else ""}>'
            f"{cap}<thead><tr>{''.join(head)}</tr></thead><tbody>\n" + "\n".join(lines) + "\n</tbody></table></div>")


def write_page(folder: str | Path, name: str, text: str) -> Path:
    """Write ``folder/name`` whole or not at all (``benchbench.core.atomic.write_atomic``: a temporary file in
    ``folder``, renamed over ``name``; a symlink at ``name`` is replaced, never followed). ``WriteError`` (one
    line) when the folder or the file cannot be written."""
    folder = Path(folder)
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"not a file name: {name!r}")
    target = folder / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return write_atomic(target, text)
    except OSError as exc:
        raise WriteError(f"cannot write {target}: {exc.strerror or exc}") from None


# ---- report.html ---------------------------------------------------------------------------------------

def _num(value, spec: str = ".3f") -> tuple[str, float | None]:
    """A number shown with ``spec``, sorting by its value; nothing for None or a non-finite one."""
    text = _fmt(value, spec)
    return (esc(text), value if text else None)


def _status_badge(status: str, noisy: bool = False) -> str:
    cls = "s-ok" if status == "ok" else "s-skip" if status == "unavailable" else "s-bad"
    return f'<span class="badge {cls}">{esc(status)}</span>' + (
        ' <span title="noisy: waited for a CPU more than 10% of the time, or an interval wider than ±5%">~</span>'
        if noisy else "")


def _point_tip(r: dict) -> list[str]:
    lines = [r["model"], f"{r['backend']} · {r['variant']}" + (f" · {r['family']}" if r["family"] else "")]
    if r["median_ms"] is not None:
        ci = (f" [{_fmt(r['ci_low_ms'])}, {_fmt(r['ci_high_ms'])}]" if r["ci_low_ms"] is not None else "")
        lines.append(f"median {_fmt(r['median_ms'])} ms{ci} (95%)" + (" ~ noisy" if r["noisy"] else ""))
    if r["flops"]:
        lines.append(f"{r['flops'] / 1e9:.3g} GFLOPs" + (f" · {r['executed_ops']} ops run" if r["executed_ops"] else ""))
    return lines


def _latency_plot(rs: list[dict], by: str, title: str) -> dict | None:
    """Median latency (with its interval) against GFLOPs, log-log, one series per ``by`` value."""
    pts = [r for r in rs if r["status"] == "ok" and r["median_ms"] and r["flops"]]
    if not pts:
        return None
    names = list(dict.fromkeys(r[by] for r in pts))
    series = []
    for i, name in enumerate(names):
        colour = VARIANT_COLOURS.get(name, PALETTE[i % len(PALETTE)]) if by == "variant" else PALETTE[i % len(PALETTE)]
        series.append({"name": name, "color": colour, "points": [
            {"x": r["flops"] / 1e9, "y": r["median_ms"], "lo": r["ci_low_ms"], "hi": r["ci_high_ms"], "g": r["family"],
             "t": _point_tip(r)} for r in pts if r[by] == name]})
    missing = sum(1 for r in rs if r["status"] == "ok" and r["median_ms"] and not r["flops"])
    return {"title": title, "x": {"label": "GFLOPs per inference", "log": True},
            "y": {"label": "median latency (ms), 95% interval", "log": True}, "series": series,
            "note": (f"{missing} measured cells have no FLOPs count and are not shown. " if missing else "")
            + "Hover a point for its cell and interval; click a legend entry to hide it."}


def _speedup_plot(rs: list[dict], by: str, title: str) -> dict | None:
    pts = [r for r in rs if r.get("speedup") and r["flops"]]
    if not pts:
        return None
    names = list(dict.fromkeys(r[by] for r in pts))
    series = []
    for i, name in enumerate(names):
        series.append({"name": name, "color": PALETTE[i % len(PALETTE)], "points": [
            {"x": r["flops"] / 1e9, "y": r["speedup"], "lo": r["speedup_low"], "hi": r["speedup_high"],
             "g": r["family"],
             "t": [r["model"], f"{r['backend']} · {r['variant']} vs {'train' if r['variant'] == 'deploy' else 'before'}",
                   f"speedup {r['speedup']:.2f}x [{r['speedup_low']:.2f}, {r['speedup_high']:.2f}] (95%, "
                   + ("paired)" if r["speedup_paired"] else "unpaired)"),
                   f"{r['flops'] / 1e9:.3g} GFLOPs"]} for r in pts if r[by] == name]})
    return {"title": title, "x": {"label": "GFLOPs per inference", "log": True},
            "y": {"label": "speedup (>1: the deploy or second form is faster)", "log": True}, "series": series,
            "refs": [{"axis": "y", "value": 1.0, "label": "no change"}], "legend": len(series) > 1}


def _varying(run: RunResult) -> list[tuple[str, callable]]:
    """Spec fields that differ between cells, as extra columns (a run usually has one batch, thread count...)."""
    fields = {
        "batch": lambda c: c.spec.batch,
        "threads": lambda c: c.spec.threads,
        "input": lambda c: "x".join(map(str, c.spec.input_size)) if c.spec.input_size else "",
        "options": lambda c: ", ".join(f"{k}={v}" for k, v in c.spec.options),
        "device": lambda c: c.spec.device or "",
    }
    return [(name, get) for name, get in fields.items() if len({get(c) for c in run.cells}) > 1]


def _cells_table(run: RunResult, rs: list[dict]) -> str:
    extra = _varying(run)
    headers = ["model", "family", "backend", "variant", *[name for name, _ in extra], "status", "reason",
               ("median ms", "num"), ("95% CI ms", "num"), ("± %", "num"), ("p90 ms", "num"),
               ("speedup [95% CI]", "num"), ("GFLOPs", "num"), ("params M", "num"), ("ops run", "num"), "parity"]
    body, attrs = [], []
    for r, c in zip(rs, run.cells):
        ok = c.ok
        ci = (f"{_fmt(r['ci_low_ms'])}–{_fmt(r['ci_high_ms'])}", r["ci_low_ms"]) if ok and r["ci_low_ms"] is not None \
            else ("", None)
        rel = c.stats.get("ci_rel") if ok else None
        sp = ""
        if r.get("speedup") is not None:
            sp = (f"{r['speedup']:.2f}x [{r['speedup_low']:.2f}, {r['speedup_high']:.2f}]"
                  + ("" if r["speedup_paired"] else " (unpaired)")
                  + (" (n.s.)" if r["speedup_low"] <= 1 <= r["speedup_high"] else ""))
        body.append([
            r["model"], r["family"], r["backend"], r["variant"], *[get(c) for _, get in extra],
            (_status_badge(c.status, bool(ok and r["noisy"])), c.status),
            (f'<span class="reason">{esc(r["reason"])}</span>', r["reason"]),
            _num(r["median_ms"] if ok else None), (esc(ci[0]), ci[1]),
            _num(100 * rel if rel is not None else None, ".1f"), _num(r["p90_ms"] if ok else None),
            (esc(sp), r.get("speedup")),
            _num(r["flops"] / 1e9 if r["flops"] else None, ".3f"),
            _num(r["params"] / 1e6 if r["params"] else None, ".2f"),
            _num(r["executed_ops"], "d"),
            _parity_text(c) if ok else "",
        ])
        attrs.append({"backend": c.spec.backend, "status": c.status})
    return table("cells", headers, body, row_attrs=attrs)


def report_html(run: RunResult, title: str | None = None) -> str:
    """The run as one HTML page: the header (when, machine, versions, settings), per-backend tabs with
    latency against FLOPs and the speedups (each with its 95% interval, hover for the cell), and every cell
    in a table that sorts and filters, with its status and, for a cell that did not measure, the reason."""
    title = title or "benchbench run" + (f" · {run.path.parent.name}" if run.path else "")
    sp = speedups(run)
    rs = rows(run, sp)
    statuses = {}
    for c in run.cells:
        statuses[c.status] = statuses.get(c.status, 0) + 1
    backends = list(dict.fromkeys(c.spec.backend for c in run.cells))
    parts = [f"<h1>{esc(title)}</h1>", '<ul class="meta">']
    parts += [f"<li>{md_inline(line[2:])}</li>" for line in run_header(run.meta)]
    parts += ["</ul>", *_summary_cards(run, statuses, backends, len(sp))]
    tabs, plots = _backend_tabs(rs, backends)
    parts += tabs + _cells_section(run, rs, statuses)
    return page(title, "\n".join(parts), {"plots": plots})


def _summary_cards(run: RunResult, statuses: dict[str, int], backends: list[str], n_speedups: int) -> list[str]:
    """The count cards (cells, ok, each other status, models, backends, speedups) and any parity failures."""
    ok = [c for c in run.cells if c.ok]
    parts = ['<div class="cards">', f'<div class="card"><b>{len(run.cells)}</b>cells</div>',
             f'<div class="card"><b class="s-ok">{len(ok)}</b>measured (ok)</div>']
    parts += [f'<div class="card"><b class="s-bad">{n}</b>{esc(s)}</div>' for s, n in statuses.items() if s != "ok"]
    parts += [f'<div class="card"><b>{len({c.spec.model for c in run.cells})}</b>models</div>',
              f'<div class="card"><b>{len(backends)}</b>backends</div>',
              f'<div class="card"><b>{n_speedups}</b>speedups</div>' if n_speedups else "", "</div>"]
    bad = [c.spec.label() for c in ok if c.outputs_failed]
    if bad:
        parts.append(f'<p class="verdict s-bad"><b>Parity failures</b> ({len(bad)}): {esc("; ".join(bad))}: their '
                     "outputs disagree with the reference; their latencies measure a computation that is not the "
                     "model's.</p>")
    return parts


def _backend_tabs(rs: list[dict], backends: list[str]) -> tuple[list[str], dict]:
    """One tab for every backend together and one per backend, each with its latency and speedup plots; the
    page's parts and the plots' specs by key."""
    plots = {}
    tabs = ['<div class="tabs" data-tabs="bk" data-filter-table="cells" data-filter-field="backend">',
            '<button data-tab="all" data-filter-value="">All backends</button>']
    panels = ['<div id="bk">', '<section data-tab-panel="all">']
    for key, spec in (("lat-all", _latency_plot(rs, "backend", "Latency against FLOPs, every backend")),
                      ("sp-all", _speedup_plot(rs, "backend", "Speedups, every backend"))):
        if spec:
            plots[key] = spec
            panels.append(f'<div data-plot="{key}"></div>')
    panels.append("</section>")
    for i, backend in enumerate(backends):
        sub = [r for r in rs if r["backend"] == backend]
        n_ok = sum(r["status"] == "ok" for r in sub)
        tabs.append(f'<button data-tab="b{i}" data-filter-value="{esc(backend)}">{esc(backend)} '
                    f'<span class="muted small">{n_ok}/{len(sub)}</span></button>')
        panels.append(f'<section data-tab-panel="b{i}" hidden>')
        for key, spec in ((f"lat-{i}", _latency_plot(sub, "variant", f"Latency against FLOPs on {backend}")),
                          (f"sp-{i}", _speedup_plot(sub, "backend", f"Speedups on {backend}"))):
            if spec:
                plots[key] = spec
                panels.append(f'<div data-plot="{key}"></div>')
        if not any(k.endswith(f"-{i}") for k in plots):
            panels.append('<p class="note">No measured cell with a FLOPs count on this backend: nothing to plot; '
                          "the table below lists its cells.</p>")
        panels.append("</section>")
    panels.append("</div>")
    return tabs + ["</div>"] + panels, plots


def _cells_section(run: RunResult, rs: list[dict], statuses: dict[str, int]) -> list[str]:
    """Every cell in a table that sorts and filters (by text and by status), and the page's footnotes."""
    status_options = "".join(f'<option value="{esc(s)}">{esc(s)}</option>' for s in statuses)
    parts = ["<h2>Cells</h2>", '<div class="controls">',
             '<input type="search" data-filter-for="cells" placeholder="filter: model, family, reason…" '
             'aria-label="filter the cells">',
             '<select data-filter-for="cells" data-field="status" aria-label="status">'
             '<option value="">any status</option><option value="!ok">not ok</option>' + status_options + "</select>",
             '<span class="muted" data-count-for="cells"></span>',
             '<span class="muted small">click a column header to sort</span></div>',
             _cells_table(run, rs), '<ul class="note">']
    return parts + [f"<li>{md_inline(note)}</li>" for note in _footer(run)] + ["</ul>"]


def write_report_html(run: RunResult, folder: str | Path) -> Path:
    """``report.html`` in ``folder`` (``write_page``: a temporary file renamed over it, no symlink followed)."""
    return write_page(folder, REPORT_HTML, report_html(run))
