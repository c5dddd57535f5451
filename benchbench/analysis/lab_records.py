"""Lab and zoo records from result files, the input of the lab fit (``benchbench.analysis.lab``).

A record is one measured cell (a zoo cell) or one cell and round (a lab cell), with its latency and its counts:
FLOPs by lab kind, executed ops, and bytes moved by cache regime, from the cell's profile where it has one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

from .correlate import target_name
from .lab_design import traffic_of_ops

__all__ = ["conv_kind", "lab_records", "zoo_records"]


def _pos(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 and math.isfinite(v)


def conv_kind(weight: list[int], inputs: list[int] | None = None) -> str | None:
    """The lab kind whose throughput a convolution's FLOPs take, from its weight shape: depthwise (one input
    channel per group) → dw3x3, 1x1 → conv1x1, any other kernel → conv3x3. A 5-D weight is OpenVINO's
    GroupConvolution (groups, out/g, in/g, kh, kw)."""
    if weight is None or len(weight) < 3:
        return None
    if len(weight) == 5:
        groups, cin_g, kernel = weight[0], weight[2], weight[3:]
    else:
        cin_g, kernel = weight[1], weight[2:]
        groups = (inputs[1] // cin_g) if inputs and len(inputs) > 1 and cin_g else 1
    if cin_g == 1 and groups > 1:
        return "dw3x3"
    return "conv1x1" if all(k == 1 for k in kernel) else "conv3x3"


_CONV = ("conv", "Conv", "Convolution", "GroupConvolution", "CONV_2D", "DEPTHWISE_CONV_2D", "conv2d", "convolution")
_GEMM = ("MatMul", "Gemm", "FullyConnected", "linear", "matmul", "mm", "addmm", "bmm", "FULLY_CONNECTED", "MatMulNBits")


def _flops_shares(ops: list[Mapping]) -> dict[str, float] | None:
    """Shares of a profile's convolution and matrix FLOPs by lab kind, from its ops' shapes."""
    by: dict[str, float] = {}
    for op in ops:
        t, ins, outs = str(op.get("type", "")), op.get("inputs") or [], op.get("outputs") or []
        if not outs or not outs[0] or len(ins) < 2 or not ins[1]:
            continue
        if t in _CONV or t.endswith("Conv"):
            w = ins[1]
            kind = conv_kind(w, ins[0])
            if kind is None:
                continue
            per_out = (w[2] if len(w) == 5 else w[1]) * math.prod(w[-2:])
            f = 2.0 * math.prod(outs[0]) * per_out
        elif t in _GEMM:
            kind, f = "conv1x1", 2.0 * math.prod(outs[0]) * (ins[0][-1] if ins[0] else 0)
        else:
            continue
        by[kind] = by.get(kind, 0.0) + f
    total = sum(by.values())
    return {k: v / total for k, v in by.items()} if total > 0 else None


def _cell_profile_ops(cell: Mapping) -> list[dict]:
    prof = (cell.get("metrics") or {}).get("profile") or {}
    return [o for o in prof.get("ops") or [] if o.get("inputs") or o.get("outputs")]


def _cells(results: Iterable[Mapping]) -> list[Mapping]:
    out = []
    for res in results:
        out += [c for c in res.get("cells", []) if c.get("status") == "ok"]
    return out


def _is_lab(cell: Mapping) -> bool:
    return str(cell["spec"]["model"]).startswith("lab_") or (cell.get("model") or {}).get("family") == "lab"


def zoo_records(results: Iterable[Mapping], caches: Mapping,
                is_zoo: Callable[[Mapping], bool] | None = None) -> list[dict]:
    """Zoo records from result files (``results.json`` dicts), one per ok cell.

    Counts, per cell: FLOPs (``model.flops``) split by lab kind in the shares its profile's shapes give (any
    backend's profile of the same model and variant, torch first, where the cell's own has none; all conv3x3 when
    none has); executed ops (``metrics.executed_ops``); traffic: ORT and OpenVINO the executed graph's, from
    their profiles' shapes (``lab_design.traffic_of_ops``); torch and TFLite ``metrics.mac_bytes`` (eager does
    not fuse; the reference has no TFLite shapes), split by regime in the shares of the first profile with shapes.
    ``is_zoo``: which cells are zoo cells (default: not lab nets, not guideline tables)."""
    cells = _cells(results)
    if is_zoo is None:
        def is_zoo(c):
            return not _is_lab(c) and not str((c.get("model") or {}).get("family", "")).startswith("guideline")
    cells = [c for c in cells if is_zoo(c)]
    profiles: dict[tuple, dict[str, list]] = {}
    for c in cells:
        ops = _cell_profile_ops(c)
        if ops:
            profiles.setdefault((c["spec"]["model"], c["spec"]["variant"]), {})[c["spec"]["backend"]] = ops
    out = []
    for c in cells:
        spec, metrics = c["spec"], c.get("metrics") or {}
        flops, ops_n, mac = (c.get("model") or {}).get("flops"), metrics.get("executed_ops"), metrics.get("mac_bytes")
        median = (c.get("stats") or {}).get("median_ms")
        if not (_pos(flops) and _pos(ops_n) and _pos(median)):
            continue
        siblings = profiles.get((spec["model"], spec["variant"]), {})
        order = [spec["backend"], "torch", "ort", "openvino"]
        shares = next((s for b in order if b in siblings and (s := _flops_shares(siblings[b]))), None)
        note = []
        if shares is None:
            shares, note = {"conv3x3": 1.0}, ["FLOPs kinds unknown: all conv3x3"]
        own = siblings.get(spec["backend"])
        if spec["backend"] in ("ort", "openvino") and own:
            t = traffic_of_ops(own, caches)
            by_regime = t["bytes_by_regime"]
        else:
            if not _pos(mac):
                continue
            src = next((siblings[b] for b in ("torch", "ort", "openvino") if b in siblings), None)
            split = traffic_of_ops(src, caches)["bytes_by_regime"] if src else {}
            tot = sum(split.values())
            by_regime = {g: mac * v / tot for g, v in split.items()} if tot > 0 else {"L2": float(mac)}
            if not tot:
                note.append("traffic regimes unknown: all L2")
        # named as the claim names its targets (``ort int8``); lab fits are per backend, with no cluster device
        out.append({"backend": target_name(spec["backend"], spec.get("variant")), "name": spec["model"],
                    "variant": spec["variant"],
                    "family": (c.get("model") or {}).get("family"), "latency_ms": float(median),
                    "flops_by_kind": {k: flops * s for k, s in shares.items()}, "executed_ops": int(ops_n),
                    "bytes_by_regime": by_regime, **({"note": "; ".join(note)} if note else {})})
    return out


def lab_records(results: Iterable[Mapping], caches: Mapping) -> list[dict]:
    """Lab records from result files, one per ok lab cell and round (``stats.round_medians_ms``).

    A cell's lockstep group is ``cell.group``; a round's anchor is the ``lab_anchor`` cell of the same group
    and backend. FLOPs by kind and bytes by regime come from the lab point (``lab_design.analytic_counts``),
    except that ORT's and OpenVINO's traffic is their executed graph's when the cell carries a profile with
    shapes, as for the zoo. Executed ops are the backend's (``metrics.executed_ops``)."""
    from benchbench.core.labpoints import parse_name

    from .lab_design import analytic_counts

    out = []
    for c in _cells(results):
        if not _is_lab(c):
            continue
        spec, metrics, stats = c["spec"], c.get("metrics") or {}, c.get("stats") or {}
        ops_n = metrics.get("executed_ops")
        if not _pos(ops_n):
            continue
        point = parse_name(spec["model"])
        a = analytic_counts(point, caches)
        own = _cell_profile_ops(c)
        by_regime = a["bytes_by_regime"]
        if spec["backend"] in ("ort", "openvino") and own:
            by_regime = traffic_of_ops(own, caches)["bytes_by_regime"]
        rounds = stats.get("round_medians_ms") or ([stats["median_ms"]] if _pos(stats.get("median_ms")) else [])
        for i, lat in enumerate(rounds):
            if not _pos(lat):
                continue
            out.append({"backend": target_name(spec["backend"], spec.get("variant")), "name": spec["model"],
                        "anchor": spec["model"] == "lab_anchor",
                        "group": c.get("group"), "round": i, "latency_ms": float(lat),
                        "flops_by_kind": dict(a["flops_by_kind"]), "executed_ops": int(ops_n),
                        "bytes_by_regime": dict(by_regime)})
    return out
