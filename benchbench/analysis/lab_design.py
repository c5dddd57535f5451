"""The lab's design: candidate points, their counts, and the selection that makes the factors separable.

Three quantities drive the additive latency model: FLOPs, executed operators and memory traffic. In the zoo they
move together (log executed ops and log traffic correlate at r = 0.80–0.86 within families, net of FLOPs). The
lab nets (``benchbench.models.lab``) set them apart:

1. **Candidates** (:func:`candidate_points`). For every op kind and structure, targets for the three totals are
   drawn as a Latin hypercube in log space (ops: the ``k`` levels; traffic: 128 KiB–48 MiB; FLOPs: 1–256 MFLOP)
   and each target is met by the nearest physical point on a grid of body tensors (channels x size), carrier
   widths and carrier kernels, within a latency budget. The crossing is done on the *totals*: a chain of many
   ops gets small tensors, one of few ops large ones, so that log ops and log traffic do not move together.
2. **Counts.** :func:`analytic_counts` gives each point's FLOPs by kind, ops and bytes by cache regime as the
   un-fused graph has them. Runtimes fuse, so the design is chosen on what each backend executes:
   ``benchmarks/lab_fusion.py`` builds the candidates and reads every backend's executed ops, and the traffic of
   its executed graph (:func:`traffic_of_ops`, from the per-op tensor shapes its profiler reports).
3. **Selection** (:func:`select_design`), per backend: a subset of ``n`` points whose log executed ops, log
   traffic and log FLOPs have pairwise |r| <= ``max_abs_corr`` (0.2), chosen by an exchange algorithm (Fedorov
   style swaps from random starts) that maximizes the determinant of the three logs' covariance (D-optimality:
   spread and orthogonality) with penalties for any |r| above the bound and for kinds or cache regimes left with
   too few points (a conv kind, whose throughput the fit reads from the points it is the body of, needs n / 6). Points whose body a backend's fusion collapses (executed ops below half of the un-fused
   count) are dropped from that backend's pool first (:func:`collapsed`).

:func:`identification` reports a design's pairwise correlations and condition number; the same function runs on
the zoo's cells for the comparison. Pure numpy; nothing here builds or measures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

from benchbench.core.labpoints import (
    ANCHOR,
    ANCHOR_NAME,
    FAN_KINDS,
    FLOP_KINDS,
    LAB_KINDS,
    LabPoint,
    regime_of,
)

__all__ = [
    "FACTORS",
    "MAX_ABS_CORR",
    "NO_DATA_TYPES",
    "analytic_counts",
    "candidate_points",
    "collapsed",
    "design_from_fusion",
    "design_rows",
    "estimated_ms",
    "identification",
    "select_design",
    "select_joint",
    "traffic_of_ops",
]

FACTORS = ("executed_ops", "traffic", "flops")  # the three totals whose logs must not move together
MAX_ABS_CORR = 0.2

# The candidate grid: body tensors, carrier widths and kernels. Levels of k per structure.
# Widths the zoo's kernels have: 8-channel convolutions run far below a kind's usual throughput (ORT reorders
# around every one of them), and a 1x1 carrier on a narrow tensor is memory-bound, its FLOPs tied to its bytes;
# the throughput a kind is fitted with must transfer to the zoo's convolutions. So: tensors of 16+ channels, conv
# bodies of 32+, 3x3 carriers only, and no tensor over 8 MiB (bigger ones ran in DRAM-like time, noisily, here).
CHANNELS = (16, 32, 64, 128)
MIN_CONV_CHANNELS = 32
SIZES = (8, 16, 32, 64, 128, 256)
MAX_TENSOR_BYTES = 8 * 1024 * 1024
CARRIER_IN = tuple(2 ** i for i in range(10))  # 1 .. 512
CARRIER_KERNELS = (3,)
CHAIN_K = (2, 4, 8, 16, 32, 64)
FAN_K = (2, 3, 4, 6, 8, 12, 16)
TRAFFIC_RANGE = (128 * 1024, 48 * 1024 * 1024)  # bytes per inference
FLOPS_RANGE = (1e6, 256e6)
BUDGET_MS = 5.0  # a candidate's rough latency (estimated_ms) stays under this
PER_COMBO = 10  # candidates per (kind, structure)
# Rough costs for the budget only (not a model of any backend): GFLOP/s by kind, GB/s, µs per op, fixed µs.
_ROUGH = {"gflops": {"conv3x3": 100.0, "conv1x1": 60.0, "dw3x3": 8.0}, "gbs": 15.0, "op_us": 5.0, "fixed_us": 20.0}


# -- counts -----------------------------------------------------------------------------------------------


def _group(kind: str, flops: float, ops: int, nbytes: float, ws: float, caches: dict | None) -> dict:
    g = {"kind": kind, "flops": float(flops), "ops": int(ops), "bytes": float(nbytes), "working_set": float(ws)}
    if caches is not None:
        g["regime"] = regime_of(ws, caches)
    return g


def _unit(kind: str, c: int, s: int, first: bool, fan: bool) -> tuple[float, int, float, float]:
    """(FLOPs, ops, bytes, working set per op) of one body unit on a c x s x s float32 tensor."""
    t = 4.0 * c * s * s  # bytes of one tensor
    if kind == "conv3x3":
        b = 2 * t + 4.0 * 9 * c * c
        return 18.0 * c * c * s * s, 1, b, b
    if kind == "conv1x1":
        b = 2 * t + 4.0 * c * c
        return 2.0 * c * c * s * s, 1, b, b
    if kind == "dw3x3":
        b = 2 * t + 4.0 * 9 * c
        return 18.0 * c * s * s, 1, b, b
    if kind == "add":
        b = 2 * t + 4.0 * c if (first or fan) else 3 * t  # a Mul by a per-channel scale, else a Sub of two tensors
        return 0.0, 1, b, b
    if kind == "act":
        return 0.0, 1, 2 * t, 2 * t
    if kind == "concat":
        return 0.0, 2, 4 * t, 2 * t  # split (reads t, writes t) and concat (reads t, writes t)
    if kind == "transpose":
        return 0.0, 1, 2 * t, 2 * t  # the reshapes are views; the transpose moves the tensor
    raise ValueError(kind)


def analytic_counts(point: LabPoint, caches: dict | None = None) -> dict:
    """FLOPs, ops and bytes of a lab point's un-fused graph, by op group (carrier, body, join).

    Bytes follow ``mac_bytes`` (docs/metrics.md): every op's inputs, weights and outputs, float32, reshapes free.
    With ``caches`` (``models.lab.cache_sizes()``) each group gets the regime of its per-op working set, and the
    totals ``bytes_by_regime``. Returns ``{"groups", "flops", "flops_by_kind", "ops", "bytes", "bytes_by_regime"}``."""
    c, s, k = point.channels, point.size, point.k
    cin, kc = point.carrier_in, point.carrier_kernel
    carrier_bytes = 4.0 * (cin * s * s + c * s * s + cin * c * kc * kc)
    groups = [_group("conv3x3" if kc == 3 else "conv1x1", 2.0 * cin * c * kc * kc * s * s, 1, carrier_bytes,
                     carrier_bytes, caches)]
    fan = point.structure == "fan"
    flops = ops = nbytes = ws = 0.0
    for i in range(k):
        f, o, b, w = _unit(point.kind, c, s, i == 0, fan)
        flops, ops, nbytes, ws = flops + f, ops + o, nbytes + b, max(ws, w)
    groups.append(_group(point.kind, flops, int(ops), nbytes, ws, caches))
    if fan:
        t = 4.0 * c * s * s * k
        groups.append(_group("concat", 0.0, 1, 2 * t, 2 * t, caches))
    out = {"groups": groups, "flops": sum(g["flops"] for g in groups), "ops": sum(g["ops"] for g in groups),
           "bytes": sum(g["bytes"] for g in groups)}
    by_kind: dict[str, float] = {}
    for g in groups:
        if g["flops"] > 0:
            by_kind[g["kind"]] = by_kind.get(g["kind"], 0.0) + g["flops"]
    out["flops_by_kind"] = by_kind
    if caches is not None:
        by_regime: dict[str, float] = {}
        for g in groups:
            by_regime[g["regime"]] = by_regime.get(g["regime"], 0.0) + g["bytes"]
        out["bytes_by_regime"] = by_regime
        out["regime"] = groups[1]["regime"]  # the body's: what the point was placed for
    return out


def estimated_ms(point: LabPoint) -> float:
    """A rough latency for the candidate budget only: FLOPs at fixed per-kind rates, bytes at one bandwidth, a
    fixed cost per op. Not a model of any backend."""
    a = analytic_counts(point)
    us = _ROUGH["fixed_us"] + a["ops"] * _ROUGH["op_us"] + a["bytes"] / (_ROUGH["gbs"] * 1e3)
    for kind, f in a["flops_by_kind"].items():
        us += f / (_ROUGH["gflops"][kind] * 1e3)
    return us / 1e3


# Op types that move no data in the runtime that reports them (ONNX/ORT/OpenVINO, TFLite, torch views): their
# shapes are not traffic. A torch ``reshape`` stays: on a non-contiguous tensor it copies.
NO_DATA_TYPES = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Shape", "Size", "ShapeOf",
                           "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "SHAPE",
                           "view", "_unsafe_view", "t", "transpose", "permute", "expand", "detach", "alias",
                           "unsqueeze", "squeeze", "flatten", "as_strided", "slice", "select", "split", "chunk",
                           "split_with_sizes", "unbind", "_reshape_alias", "narrow"})


def traffic_of_ops(ops: Iterable[Mapping], caches: dict, itemsize: int = 4) -> dict:
    """Memory traffic of an executed graph from its ops' tensor shapes, by cache regime.

    ``ops``: ``{"type", "inputs": [shape, ...], "outputs": [shape, ...]}`` per executed op (``NO_DATA_TYPES`` skipped), as the runners' profilers
    report them (ORT's profiler, OpenVINO's performance counters, torch.profiler; ``benchbench.measure.profile``)
    or as ``benchmarks/lab_fusion.py`` reads them from a TFLite op list. An op's bytes are its inputs (weights
    included) and outputs at ``itemsize`` bytes per element; it goes to the regime of that sum (its working set).
    Returns ``{"bytes", "bytes_by_regime", "ops", "unknown"}`` (ops with no shapes count as unknown)."""
    by_regime: dict[str, float] = {}
    total, n, unknown = 0.0, 0, 0
    for op in ops:
        if op.get("type") in NO_DATA_TYPES:
            continue
        shapes = [sh for sh in (op.get("inputs") or []) + (op.get("outputs") or []) if sh is not None]
        n += 1
        if not shapes:
            unknown += 1
            continue
        b = float(sum(math.prod(int(d) for d in sh) for sh in shapes if all(isinstance(d, int) and d >= 0 for d in sh)))
        b *= itemsize
        total += b
        r = regime_of(b, caches)
        by_regime[r] = by_regime.get(r, 0.0) + b
    return {"bytes": total, "bytes_by_regime": by_regime, "ops": n, "unknown": unknown}


# -- candidates -------------------------------------------------------------------------------------------


def _latin(n: int, dims: int, rng: np.random.Generator) -> np.ndarray:
    """A Latin hypercube in [0, 1)^dims: each dimension's n strata used once, points jittered in their stratum."""
    out = np.empty((n, dims))
    for d in range(dims):
        out[:, d] = (rng.permutation(n) + rng.random(n)) / n
    return out


def _physical(kind: str, structure: str, k: int, log_t: float, log_f: float) -> LabPoint | None:
    """The grid point of this kind, structure and k nearest the targets (log traffic, log FLOPs), in budget."""
    best, best_err = None, math.inf
    for c in CHANNELS:
        if (kind in ("concat", "transpose") and c % 4) or (kind in FLOP_KINDS and c < MIN_CONV_CHANNELS):
            continue
        for s in SIZES:
            if 4 * c * s * s > MAX_TENSOR_BYTES:
                continue
            for cin in CARRIER_IN:
                for kc in CARRIER_KERNELS:
                    p = LabPoint(kind=kind, k=k, channels=c, size=s, carrier_in=cin, carrier_kernel=kc,
                                 structure=structure)
                    a = analytic_counts(p)
                    err = (math.log(a["bytes"]) - log_t) ** 2 + (math.log(a["flops"]) - log_f) ** 2
                    # prefer a middle width when two points are as near
                    err += 0.01 * abs(math.log2(c / 32))
                    if err < best_err and estimated_ms(p) <= BUDGET_MS:
                        best, best_err = p, err
    return best


def candidate_points(seed: int = 0, per_combo: int = PER_COMBO) -> list[LabPoint]:
    """The crossed candidate set (deterministic for a seed): per (kind, structure), ``per_combo`` Latin-hypercube
    targets of (k level, log traffic, log FLOPs), each met by the nearest in-budget grid point. Duplicates and
    the anchor are dropped. Machine-independent: cache sizes only place the points in regimes afterwards."""
    rng = np.random.default_rng(seed)
    lo_t, hi_t = (math.log(x) for x in TRAFFIC_RANGE)
    lo_f, hi_f = (math.log(x) for x in FLOPS_RANGE)
    points: list[LabPoint] = []
    for kind in LAB_KINDS:
        for structure in ("chain", "fan"):
            if structure == "fan" and kind not in FAN_KINDS:
                continue
            levels = CHAIN_K if structure == "chain" else FAN_K
            n = per_combo if structure == "chain" else max(4, per_combo // 2)
            for u in _latin(n, 3, rng):
                k = levels[min(int(u[0] * len(levels)), len(levels) - 1)]
                p = _physical(kind, structure, k, lo_t + u[1] * (hi_t - lo_t), lo_f + u[2] * (hi_f - lo_f))
                if p is not None and p != ANCHOR and p not in points:
                    points.append(p)
    return points


# -- identification and selection -------------------------------------------------------------------------


def _logs(rows: list[Mapping], factors=FACTORS) -> np.ndarray:
    return np.log(np.array([[float(r[f]) for f in factors] for r in rows]))


def identification(rows: list[Mapping], factors=FACTORS) -> dict:
    """Pairwise Pearson r of the factors' logs, the largest |r|, and the condition number of their correlation
    matrix (largest over smallest eigenvalue: 1 for orthogonal factors; 12 for two at r = 0.85)."""
    rows = [r for r in rows if all(isinstance(r.get(f), (int, float)) and r[f] > 0 for f in factors)]
    if len(rows) < len(factors) + 1:
        return {"n": len(rows), "corr": None, "max_abs_corr": None, "condition_number": None}
    x = _logs(rows, factors)
    sd = x.std(axis=0)
    if np.any(sd == 0):
        return {"n": len(rows), "corr": None, "max_abs_corr": None, "condition_number": math.inf,
                "constant": [f for f, v in zip(factors, sd) if v == 0]}
    r = np.corrcoef(x, rowvar=False)
    eig = np.linalg.eigvalsh(r)
    pairs = {f"{factors[i]}~{factors[j]}": float(r[i, j]) for i in range(len(factors)) for j in range(i + 1, len(factors))}
    return {"n": len(rows), "corr": pairs, "max_abs_corr": float(np.max(np.abs(r[np.triu_indices(len(factors), 1)]))),
            "condition_number": float(eig[-1] / max(eig[0], 1e-12)),
            "log_sd": {f: float(v) for f, v in zip(factors, sd)}}


def collapsed(analytic_ops: int, executed_ops: int, fraction: float = 0.5) -> bool:
    """Whether a backend's fusion collapsed a point's graph: it executes under ``fraction`` of the un-fused ops."""
    return executed_ops < fraction * analytic_ops


def _score(x: np.ndarray, idx: np.ndarray, strata: list[tuple[np.ndarray, np.ndarray]], bound: float) -> tuple[float, float]:
    """(penalized objective, max |r|) of the subset ``idx``: log det of the three logs' covariance (D-optimality),
    minus heavy penalties for |r| above ``bound`` and for strata (kinds, regimes) under their minimum.
    ``strata``: (labels per candidate, the minimum count per label, capped at what the pool holds)."""
    sub = x[idx]
    cov = np.cov(sub, rowvar=False)
    sign, logdet = np.linalg.slogdet(cov)
    if sign <= 0:
        return -1e9, 1.0
    sd = np.sqrt(np.diag(cov))
    r = cov / np.outer(sd, sd)
    max_r = float(max(abs(r[0, 1]), abs(r[0, 2]), abs(r[1, 2])))
    penalty = 10.0 + 100.0 * (max_r - bound) if max_r > bound else 0.0  # any excess outweighs any spread
    for labels, need in strata:
        penalty += float(np.sum(np.maximum(0, need - np.bincount(labels[idx], minlength=len(need)))))
    return logdet - penalty, max_r


def _exchange(xs: list[np.ndarray], strata: list[np.ndarray], mins: list, n: int, bound: float,
              fixed: list[int], restarts: int, seed: int) -> list[int]:
    """Fedorov-style exchange from random starts: swap a chosen point for a pooled one while the worst score over
    the count tables ``xs`` (one per backend) improves. Returns the best subset's indices."""
    rng = np.random.default_rng(seed)
    size = len(xs[0])
    capped = [(labels, np.minimum(m, np.bincount(labels))) for labels, m in zip(strata, mins)]  # m: per label or one

    def score(idx):
        return min(_score(x, np.array(idx), capped, bound)[0] for x in xs)

    best, best_score = None, -math.inf
    for _ in range(restarts):
        rest = [i for i in rng.permutation(size) if i not in fixed]
        chosen = fixed + rest[: n - len(fixed)]
        pool = rest[n - len(fixed):]
        current = score(chosen)
        improved = True
        while improved:
            improved = False
            for a in range(len(fixed), n):
                for b in range(len(pool)):
                    trial = chosen.copy()
                    trial[a], swapped = pool[b], chosen[a]
                    s = score(trial)
                    if s > current + 1e-9:
                        chosen, current, improved = trial, s, True
                        pool[b] = swapped
        if current > best_score:
            best, best_score = chosen, current
    return sorted(best)


def _strata(rows: list[Mapping]) -> list[np.ndarray]:
    kinds = {k: i for i, k in enumerate(sorted({r["kind"] for r in rows}))}
    regimes = {k: i for i, k in enumerate(sorted({r["regime"] for r in rows}))}
    return [np.array([kinds[r["kind"]] for r in rows]), np.array([regimes[r["regime"]] for r in rows])]


def select_design(rows: list[Mapping], n: int = 32, max_abs_corr: float = MAX_ABS_CORR, min_per_kind: int = 2,
                  min_per_regime: int = 3, restarts: int = 12, seed: int = 0, keep: Iterable[str] = (),
                  min_per_flop_kind: int | None = None) -> dict:
    """Pick ``n`` of one backend's candidate rows whose log executed ops, log traffic and log FLOPs are nearly
    orthogonal (pairwise |r| <= ``max_abs_corr``), spread (D-optimal) and cover every kind and regime.

    ``rows``: ``{"name", "kind", "regime", "executed_ops", "traffic", "flops"}`` per candidate (collapsed points
    already dropped). ``keep``: names that must stay in (they are never swapped out). Returns the selected names,
    the achieved identification, and whether the bound was met."""
    return select_joint({"_": rows}, n, max_abs_corr, min_per_kind, min_per_regime, restarts, seed, keep,
                        min_per_flop_kind)


def select_joint(rows_by_backend: Mapping[str, list[Mapping]], n: int = 32, max_abs_corr: float = MAX_ABS_CORR,
                 min_per_kind: int = 2, min_per_regime: int = 3, restarts: int = 12, seed: int = 0,
                 keep: Iterable[str] = (), min_per_flop_kind: int | None = None) -> dict:
    """One set of ``n`` points for several backends at once: the candidates every backend can use (present and not
    collapsed in each table), chosen so that the *worst* backend's score is best, i.e. the bound holds on every
    backend's executed counts. Same rows and result as :func:`select_design`, with ``per_backend``
    identification when there is more than one table."""
    tables = {b: {r["name"]: r for r in rows if all(r.get(f, 0) > 0 for f in FACTORS)}
              for b, rows in rows_by_backend.items()}
    names = sorted(set.intersection(*(set(t) for t in tables.values())))
    first = tables[next(iter(tables))]
    rows = [first[nm] for nm in names]
    per = {b: [t[nm] for nm in names] for b, t in tables.items()}
    if len(rows) <= n:
        picked = list(range(len(rows)))
    else:
        if min_per_flop_kind is None:  # a FLOP kind's throughput is read from the points whose body it is
            min_per_flop_kind = max(min_per_kind, round(n / 6))
        strata = _strata(rows)
        kinds = sorted({r["kind"] for r in rows})
        kind_need = np.array([min_per_flop_kind if k in FLOP_KINDS else min_per_kind for k in kinds])
        picked = _exchange([_logs(per[b]) for b in per], strata, [kind_need, min_per_regime], n,
                           max_abs_corr, [i for i, r in enumerate(rows) if r["name"] in set(keep)], restarts, seed)
    chosen = [rows[i] for i in picked]
    idents = {b: identification([per[b][i] for i in picked]) for b in per}
    worst = max(idents.values(), key=lambda d: d.get("max_abs_corr") or math.inf)
    out = {"names": [r["name"] for r in chosen], "n": len(chosen), "candidates": len(rows),
           "kinds": _tally(r["kind"] for r in chosen), "regimes": _tally(r["regime"] for r in chosen),
           **_summary(worst, max_abs_corr)}
    if len(per) > 1:
        out["per_backend"] = {b: _summary(d, max_abs_corr) for b, d in idents.items()}
    return out


def _tally(values) -> dict:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


def _summary(ident: dict, bound: float) -> dict:
    return {"identification": ident, "max_abs_corr": ident.get("max_abs_corr"),
            "condition_number": ident.get("condition_number"),
            "meets_bound": ident.get("max_abs_corr") is not None and ident["max_abs_corr"] <= bound}


def design_rows(fusion: Mapping, backend: str) -> tuple[list[dict], list[str]]:
    """One backend's candidate rows from a ``benchmarks/lab_fusion.py`` result, and the names dropped because the
    backend's fusion collapsed them. FLOPs are the build's (torch's count: no backend changes it); executed ops
    and traffic the backend's."""
    rows, dropped = [], []
    for name, entry in fusion["points"].items():
        if name == ANCHOR_NAME:  # the bracket of every group, not a design point
            continue
        rec = (entry.get("backends") or {}).get(backend) or {}
        if rec.get("status") != "ok" or not (entry.get("model") or {}).get("flops"):
            continue
        if rec.get("collapsed"):
            dropped.append(name)
            continue
        rows.append({"name": name, "kind": entry["point"]["kind"], "regime": entry["analytic"].get("regime", "?"),
                     "executed_ops": rec["executed_ops"], "traffic": rec["traffic"], "flops": entry["model"]["flops"],
                     "bytes_by_regime": rec.get("bytes_by_regime", {})})
    return rows, dropped


def design_from_fusion(fusion: Mapping, n: int = 32, max_abs_corr: float = MAX_ABS_CORR, seed: int = 0) -> dict:
    """Per backend, the selected design from real executed counts (``select_design``), beside the identification
    of the whole candidate pool; the union of those nets (what per-backend designs must build); and one ``joint``
    design meeting the bound on every backend at once (``select_joint``: one set of nets to build and run)."""
    out: dict = {"n": n, "max_abs_corr_bound": max_abs_corr, "backends": {}}
    union: set[str] = set()
    for backend in fusion["meta"]["backends"]:
        rows, dropped = design_rows(fusion, backend)
        if len(rows) < 4:
            continue
        sel = select_design(rows, n=n, max_abs_corr=max_abs_corr, seed=seed)
        sel["collapsed"] = len(dropped)
        sel["collapsed_names"] = dropped
        sel["pool_identification"] = identification(rows)
        out["backends"][backend] = sel
        union |= set(sel["names"])
    out["union"] = sorted(union)
    tables = {b: design_rows(fusion, b)[0] for b in out["backends"]}
    if tables:
        out["joint"] = select_joint(tables, n=n, max_abs_corr=max_abs_corr, seed=seed)
    return out
