"""``index.html``: the front page of a published folder (``reports/reference``), with the headline verdicts,
when and where it was measured, and links to the pages and files the folder holds."""

from __future__ import annotations

import json
from pathlib import Path

from benchbench.results.html import esc, md_inline, page, table, write_page
from benchbench.results.views import run_header

from .claim_html import TITLE, badge
from .verdict_text import VERDICT_TEXT, pct_interval

__all__ = ["index_html", "write_index_html", "INDEX_HTML"]

INDEX_HTML = "index.html"

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
            parts.append(f'<div class="card">{esc(backend)}<b>{badge(a.get("verdict_code", "not enough data"))}</b>'
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
                body.append([ents[0]["title"], *[(badge(e["verdict"]), e["verdict"]) for e in ents]])
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
