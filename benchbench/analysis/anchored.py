"""Anchor-relative latencies: each cell's latency over the lab anchor's, measured in the same lockstep group.

Absolute latencies on a shared machine drift by 8-21% between sweeps; a ratio to a fixed net measured in the
same group and round (``lab_anchor``, ``benchbench.core.labpoints``) cancels most of that drift. The kernel
sweep and the predictor's zoo check measure every group with its own copy of the anchor, and read both: the
ratio (``t_rel``, the median over rounds of the per-round ratios) and the absolute median.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping

from benchbench.core.labpoints import ANCHOR_NAME

from .correlate import target_name

__all__ = ["anchored_cells"]


def _pos(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 and math.isfinite(v)


def anchored_cells(results: Iterable[Mapping], keep: Callable[[Mapping], bool]) -> dict[str, dict[tuple, dict]]:
    """Per target (``ort``, ``ort int8``), per (model, variant) of the ok cells ``keep`` selects: ``t_rel``,
    ``t_ms`` (the cell's median), ``anchor_ms`` (its group's anchor's median), ``executed_ops`` and the
    cell's ``model`` record. A cell whose group has no anchor measured ok is left out."""
    cells = [c for res in results for c in res.get("cells", []) if c.get("status") == "ok"]
    anchors = {(c.get("group"), c["spec"]["backend"], c["spec"].get("device")): c for c in cells
               if c["spec"]["model"] == ANCHOR_NAME}
    out: dict[str, dict[tuple, dict]] = {}
    for c in cells:
        spec, stats = c["spec"], c.get("stats") or {}
        if spec["model"] == ANCHOR_NAME or not keep(c):
            continue
        anchor = anchors.get((c.get("group"), spec["backend"], spec.get("device")))
        if anchor is None or not _pos(stats.get("median_ms")):
            continue
        a_stats = anchor.get("stats") or {}
        mine, theirs = stats.get("round_medians_ms") or [], a_stats.get("round_medians_ms") or []
        ratios = [x / y for x, y in zip(mine, theirs) if _pos(x) and _pos(y)]
        if not ratios and _pos(a_stats.get("median_ms")):
            ratios = [stats["median_ms"] / a_stats["median_ms"]]
        if not ratios:
            continue
        executed = ((c.get("backend") or {}).get("executed_ops") or {}).get("count")
        out.setdefault(target_name(spec["backend"], spec.get("variant")), {})[(spec["model"], spec["variant"])] = {
            "t_rel": float(statistics.median(ratios)), "t_ms": float(stats["median_ms"]),
            "anchor_ms": float(a_stats["median_ms"]), "executed_ops": executed, "model": c.get("model") or {}}
    return out
