"""Anchor-relative latencies: each cell's latency over the lab anchor's, measured in the same lockstep group.

Absolute latencies on a shared machine drift by 8-21% between sweeps; a ratio to a fixed net measured in the
same group and round (``lab_anchor``, ``benchbench.core.labpoints``) cancels most of that drift. The kernel
sweep and the predictor's zoo check measure every group with its own copy of the anchor, and read both: the
ratio (``t_rel``, the median over rounds of the per-round ratios) and the absolute median.

A ratio cancels drift that slows the anchor and the cell alike; it does not cancel a disturbance that slows a
large, memory-bound cell far more than the small, cache-resident anchor (another process streaming memory: the
anchor 1.36x slower, resnet18 2.7x, in one sweep here). Nor does it cancel the anchor's own slow state: on these
VMs the anchor (a fraction of a millisecond) ran about 1.5x slower for minutes at a time, with no other process
waiting for a CPU, while the zoo's models (milliseconds) barely moved: in one check on ORT the anchor read 0.080
against 0.050 ms, and the models' absolute errors stayed where they were. Both show in the anchor: a round whose
anchor is more than ``DISTURBED`` slower than its *quiet* latency is left out of the ratio, and a cell with no
round left is marked ``disturbed`` (the predictor's commands measure those again). The quiet latency is a low
quantile (``QUIET_QUANTILE``) of the anchor's round medians, not their median, which a sweep spent mostly in the
slow state would set at the slow state; a caller can lower it further with a reference of its own (the check
passes the fit's), so that a sweep spent entirely in the slow state is told too.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from benchbench.core.labpoints import ANCHOR_NAME

from .correlate import target_name

__all__ = ["DISTURBED", "QUIET_QUANTILE", "anchored_cells", "quiet_anchor_ms"]

DISTURBED = 0.15
QUIET_QUANTILE = 0.10


def _pos(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 and math.isfinite(v)


def _rounds(stats: Mapping) -> list[float]:
    per = [v for v in stats.get("round_medians_ms") or [] if _pos(v)]
    return per or ([float(stats["median_ms"])] if _pos(stats.get("median_ms")) else [])


def quiet_anchor_ms(values: Iterable[float]) -> float:
    """The anchor's quiet latency among ``values`` (its round or group medians, ms): their ``QUIET_QUANTILE``
    quantile, nan when there are none. A low quantile, because the anchor's disturbances only slow it."""
    v = [float(x) for x in values if _pos(x)]
    return float(np.quantile(v, QUIET_QUANTILE)) if v else math.nan


def anchored_cells(results: Iterable[Mapping], keep: Callable[[Mapping], bool],
                   disturbed: float = DISTURBED,
                   quiet: Mapping[str, float] | None = None) -> dict[str, dict[tuple, dict]]:
    """Per target (``ort``, ``ort int8``), per (model, variant) of the ok cells ``keep`` selects: ``t_rel``,
    ``t_ms`` (the cell's median), ``anchor_ms`` (its group's anchor's median), ``executed_ops``, the cell's
    ``model`` record, ``rounds`` (the rounds whose ratio counts) and ``disturbed`` (every round's anchor was
    more than ``disturbed`` slower than the quiet anchor of its target: the ratio is that of all rounds, and
    not to be trusted). The quiet anchor is ``quiet_anchor_ms`` of the target's anchor rounds in ``results``,
    or ``quiet[target]`` where that is lower. A cell whose group has no anchor measured ok is left out.

    A cell measured in several results (a retake, or sweeps refitted together) pools its quiet rounds' ratios;
    its other figures are those of its latest quiet measurement."""
    results = list(results)
    anchors: dict[tuple, Mapping] = {}
    for i, res in enumerate(results):  # group ids restart in every result file: the file is part of the key
        for c in res.get("cells", []):
            if c.get("status") == "ok" and c["spec"]["model"] == ANCHOR_NAME:
                anchors[(i, c.get("group"), c["spec"]["backend"], c["spec"].get("device"))] = c
    typical: dict[str, list[float]] = {}
    for (_, _, backend, _), a in anchors.items():
        typical.setdefault(target_name(backend, a["spec"].get("variant")), []).extend(_rounds(a.get("stats") or {}))
    quiet_anchor = {t: min(quiet_anchor_ms(v), (quiet or {}).get(t, math.inf)) for t, v in typical.items() if v}
    seen: dict[tuple, dict] = {}  # per (target, model, variant): its quiet and its disturbed ratios, its last cell
    for i, res in enumerate(results):
        for c in res.get("cells", []):
            spec, stats = c["spec"], c.get("stats") or {}
            if c.get("status") != "ok" or spec["model"] == ANCHOR_NAME or not keep(c):
                continue
            anchor = anchors.get((i, c.get("group"), spec["backend"], spec.get("device")))
            if anchor is None or not _pos(stats.get("median_ms")):
                continue
            target = target_name(spec["backend"], spec.get("variant"))
            a_stats = anchor.get("stats") or {}
            mine, theirs = _rounds(stats), _rounds(a_stats)
            if len(mine) != len(theirs):  # rounds that do not pair up: the medians only
                mine, theirs = [float(stats["median_ms"])], [float(a_stats["median_ms"])]
            limit = quiet_anchor.get(target, math.inf) * (1 + disturbed)
            entry = seen.setdefault((target, spec["model"], spec["variant"]), {"quiet": [], "loud": []})
            quiet = [y <= limit for y in theirs]
            for x, y, ok in zip(mine, theirs, quiet):
                entry["quiet" if ok else "loud"].append(x / y)
            if any(quiet) or not entry.get("quiet_cell", False):  # the latest quiet measurement describes the cell
                entry.update(cell=c, quiet_cell=any(quiet), anchor_ms=float(a_stats["median_ms"]))
    out: dict[str, dict[tuple, dict]] = {}
    for (target, model, variant), entry in seen.items():
        c, ratios = entry["cell"], entry["quiet"] or entry["loud"]
        t_rel = float(statistics.median(ratios))
        out.setdefault(target, {})[(model, variant)] = {
            "t_rel": t_rel, "t_ms": float(c["stats"]["median_ms"]), "anchor_ms": entry["anchor_ms"],
            "rounds": len(ratios), "disturbed": not entry["quiet"],
            "executed_ops": ((c.get("backend") or {}).get("executed_ops") or {}).get("count"),
            "model": c.get("model") or {}}
    return out
