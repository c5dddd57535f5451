"""The kernel-level latency predictor, after nn-Meter: a model's latency is a fixed cost plus the sum of its
kernels' latencies, each predicted by a regressor of its kernel class, fitted on a designed kernel sweep.

Everything is anchor-relative (``analysis.anchored``): latencies in units of the lab anchor's latency measured in
the same lockstep group, so a predictor fitted in one sweep predicts another despite the machine's drift. A
prediction converts to milliseconds with the anchor's latency at fit time (``anchor_ms``).

**What one kernel net's latency is made of.** A one-kernel net runs a call's fixed cost, copies its input and
output (ORT and OpenVINO hand numpy arrays; TFLite's NCHW signature adds a transpose at each end), and runs its
kernel. The ``reshape`` probes (``core.kernelpoints.probe_points``) run no kernel worth the name: a line through
them, ``base = a + b x (input + output elements) / 2``, is that overhead. A kernel's **marginal** cost is the
net's latency minus its base, and for a convolution minus its boundary too: the layout reorders ORT and
OpenVINO wrap a lone convolution in, read from chains (``chain_fit``), which also correct the base's I/O pricing.
A model's prediction is the base of the model's own input and output plus, for each kernel, its marginal cost and
a **dispatch** where chains of tiny kernels measure one that a one-kernel net does not show; and, for each layout
reorder the backend inserts into the model (ORT's NCHWc reorders around the operators its blocked layout does not
cover: a fifth of ghostnet's time; the NHWC/NCHW transposes LiteRT's converter leaves around a channel shuffle),
the boundary's price per element it moves.

**Regressors** (one per class: conv, dwconv, gconv, gemm, eltwise, pool, move): a non-negative line in the
kernel's physical columns (fixed cost, MACs, elements in and out, weights; fitted for relative error with
scipy's NNLS), so that it extrapolates the way cost scales, times a scikit-learn random forest's correction read
from log features (kernel size, stride, channel counts, sizes: the efficiency cliffs a line misses). The forest
is nn-Meter's choice of regressor and scikit-learn is already pinned for the NNCF quantizer; a boosting library
(LightGBM) would add a compiled wheel and gains nothing on a few dozen points per class, where a forest alone
(tried on the planted-truth test) cannot extrapolate to kernels larger than the sweep's.
Points' cross-validated errors (:func:`cross_validate`) drive the sweep's adaptive rounds and give each class's
error distribution, from which a prediction's interval is drawn.

A predictor is stored as JSON: its training points, the fusion rules and the base; the regressors are refitted
from the points when loaded (deterministic, well under a second), so no pickled object is ever loaded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from benchbench.core.kernelpoints import CLASSES, KERNEL_OPS, STRATIFIED, KernelPoint

from .kernel_graph import LAYOUT, kernel_macs, kernel_weights, point_kernel

__all__ = ["PREDICTOR_SCHEMA", "Predictor", "base_fit", "chain_fit", "cross_validate", "features", "fit_document"]

PREDICTOR_SCHEMA = "benchbench.predictor/1"
_OP_CODE = {op: i for i, op in enumerate(KERNEL_OPS)}
_FLOOR = 0.005  # a marginal cost under half a percent of the anchor counts as that much (profilers' zeros, noise)
_TREES = 200
_INTERVAL_DRAWS = 2000
_REACH = 2.0
_MIN_FOREST = 12


def _lg(x: float) -> float:
    return math.log2(max(float(x), 1.0))


def features(k: Mapping) -> list[float]:
    """A kernel's regressor features (its class decides which)."""
    kind = k["kind"]
    if kind in ("conv", "dwconv", "gconv"):
        return [_lg(kernel_macs(k)), _lg(k["in_elems"]), _lg(k["out_elems"]), _lg(kernel_weights(k)), k["k"],
                k["stride"], _lg(k["cin"]), _lg(k["cout"]), _lg(k["out"])]
    if kind == "gemm":
        return [_lg(kernel_macs(k)), _lg(k["rows"]), _lg(k["cin"]), _lg(k["cout"])]
    if kind == "pool":
        return [_OP_CODE[k["op"]], _lg(k["in_elems"]), _lg(k["out_elems"]), k["k"]]
    return [_OP_CODE[k["op"]], _lg(k["in_elems"]), _lg(k["out_elems"]), _lg(k["cin"])]


def base_fit(probes: list[tuple[Mapping, float]]) -> dict:
    """The fixed cost and per-element I/O cost of a one-kernel net, from (kernel, t_rel) of the reshape probes:
    ``a + b x (in + out) / 2``, both non-negative."""
    from scipy.optimize import nnls

    x = np.array([[1.0, (k["in_elems"] + k["out_elems"]) / 2] for k, _ in probes])
    y = np.array([t for _, t in probes])
    coef, _ = nnls(x / y[:, None], np.ones(len(y)))  # relative error: the small probes matter as much
    return {"a": float(coef[0]), "b": float(coef[1])}


def _base(base: Mapping, k: Mapping) -> float:
    return base["a"] + base["b"] * (k["in_elems"] + k["out_elems"]) / 2


def _io_base(base: Mapping, k: Mapping) -> float:
    """The base with the I/O correction (``chain_fit``), of either sign, never under the fixed cost."""
    io = (base.get("boundary") or {}).get("io", 0.0)
    return max(_base(base, k) + io * (k["in_elems"] + k["out_elems"]), base["a"])


def _net_base(base: Mapping, k: Mapping) -> float:
    """What a one-kernel net costs besides its kernel: the base with its I/O correction, and for a convolution its
    boundary (the layout reorders a model's inner convolutions do not pay; ``chain_fit``)."""
    out = _io_base(base, k)
    if k["kind"] in ("conv", "dwconv", "gconv"):
        beta = (base.get("boundary") or {}).get("dwconv" if k["kind"] == "dwconv" else "conv", 0.0)
        out += beta * (k["in_elems"] + k["out_elems"])
    return out


def chain_fit(pairs: list[tuple[Mapping, float, float, int]], base: Mapping) -> dict:
    """What chains tell that a lone kernel's net does not, from (kernel, t alone, t in a chain of ``r``; the caller
    leaves out chains the backend fused into one kernel): each copy after the first costs
    ``c = (t_r - t_1) / (r - 1)``, the kernel as a model's inner kernels run it. In turn:

    * The **dispatch** δ, from the dispatch probes' chains of ``DISPATCH_REPEAT`` tiny kernels: what a kernel
      costs inside a model beyond its one-kernel net's marginal, ``c - (t_1 - base - (γ + β) e)`` (the net's base,
      read from the reshape probes, holds one dispatch already; the lone depthwise net pays γ and its boundary β).
    * The **I/O correction** γ, from the I/O probes' chains of element-wise kernels:
      ``t_1 - base - c + δ = γ x (input + output elements)``, of either sign.
      The reshape probes' line prices a net's I/O with the Reshape's own copy in it; γ is what that gets wrong.
    * The **boundary** of a lone convolution (the layout reorders ORT and OpenVINO wrap it in), from the
      boundary probes' chains of two: ``t_1 - base - γ e - c + δ = β e``, e the input and output elements, per
      class (dense, depthwise), non-negative least squares on relative error.

    Each is read with the others held, three rounds over. δ and γ are the means over their probes, kept only where a
    t-test at 95% sets them apart from 0 (a model pays them once per kernel or per element, so noise read as a cost
    would add up); else 0. Returns
    ``{"conv": β, "dwconv": β, "io": γ, "dispatch": δ}``; 0 where no pairs were measured."""
    from scipy.optimize import nnls
    from scipy.stats import t as student_t

    from benchbench.core.kernelpoints import DISPATCH_REPEAT

    def significant(values: list[float]) -> float:
        # the mean, where a t-test at 95% sets it apart from 0: a model pays these once per kernel or per element,
        # so noise read as a cost would add up over its kernels
        if len(values) < 2:
            return 0.0
        mean, se = float(np.mean(values)), float(np.std(values, ddof=1) / math.sqrt(len(values)))
        return mean if abs(mean) > student_t.ppf(0.975, len(values) - 1) * se else 0.0

    chains = [(k, t1, (tr - t1) / (r - 1), r, k["in_elems"] + k["out_elems"]) for k, t1, tr, r in pairs if r > 1]
    fit = {"conv": 0.0, "dwconv": 0.0, "io": 0.0, "dispatch": 0.0}
    # The dispatch probes' lone nets pay the I/O correction and the depthwise boundary too, which are read with the
    # dispatch: a few rounds of reading each with the others held settle them (where the boundary is a real share
    # of a tiny kernel's net, reading the dispatch without it read it a quarter low, planted).
    for _ in range(3):
        dispatch = max(significant([c - (t1 - _base(base, k) - (fit["io"] + fit["dwconv"]) * e)
                                    for k, t1, c, r, e in chains if r == DISPATCH_REPEAT]), 0.0)
        io = significant([(t1 - _base(base, k) - c + dispatch) / e
                          for k, t1, c, _, e in chains if k["kind"] == "eltwise"])
        fit = {"conv": 0.0, "dwconv": 0.0, "io": io, "dispatch": dispatch}
        corrected = {**base, "boundary": {"io": io}}
        for kind in ("conv", "dwconv"):
            rows = [(e, t1 - _io_base(corrected, k) - c + dispatch, t1)
                    for k, t1, c, r, e in chains if k["kind"] == kind and r < DISPATCH_REPEAT]
            if rows:
                x = np.array([[e / t] for e, _, t in rows])
                y = np.array([b / t for _, b, t in rows])
                fit[kind] = float(nnls(x, y)[0][0])
    return fit


_CHEAP = frozenset({"relu", "clip", "add", "mul", "mulbc", "bn"})
_REDUCING = frozenset({"softmax", "layernorm"})


def _cost_group(op: str) -> int:
    return 0 if op in _CHEAP else 2 if op in _REDUCING else 1


def physical(k: Mapping) -> list[float]:
    """A kernel's physical cost columns (millions): a fixed cost, then its MACs (pointwise and k x k apart) and the
    elements it reads and writes; element-wise ops split by cost group (cheap, transcendental, reducing), as
    their rates differ."""
    m = 1e-6
    kind = k["kind"]
    if kind in ("conv", "dwconv", "gconv", "gemm"):
        # a pointwise convolution is a matrix product, a k x k one is not: their MACs are priced apart
        macs, pointwise = kernel_macs(k) * m, kind == "gemm" or k["k"] == 1
        return [1.0, macs if pointwise else 0.0, 0.0 if pointwise else macs, k["in_elems"] * m, k["out_elems"] * m,
                kernel_weights(k) * m]
    if kind == "eltwise":
        e = max(k["in_elems"], k["out_elems"]) * m
        return [1.0] + [e if g == _cost_group(k["op"]) else 0.0 for g in range(3)]
    return [1.0, k["in_elems"] * m, k["out_elems"] * m]


def _stand_in(k: Mapping, seen: set[str]) -> Mapping:
    """A kernel whose operator the sweep did not measure, priced as a measured one of its class: of the same cost
    group for element-wise ops (silu as sigmoid or gelu), else the first measured."""
    if k["op"] in seen or not seen or k["kind"] not in STRATIFIED:
        return k
    same = [op for op in STRATIFIED[k["kind"]] if op in seen and (k["kind"] != "eltwise"
                                                                   or _cost_group(op) == _cost_group(k["op"]))]
    return {**k, "op": (same or sorted(seen))[0]}


class _ClassModel:
    """A class's marginal cost: a non-negative line in the physical columns (each point's error relative to its
    net's time: the line extrapolates the way cost scales, linearly in work), times a random forest's
    correction read from the log features (the efficiency cliffs a line misses: kernel size, stride, channel
    alignment, cache fit). With fewer than ``_MIN_FOREST`` points the MACs are one column and there is no forest.

    The forest only corrects, within the range of corrections it saw, and only with ``_MIN_FOREST`` points or
    more; its features are clipped to the training range widened by ``_REACH`` (log2: a factor of 4)."""

    def __init__(self, kernels: list[Mapping], y: np.ndarray, seed: int = 0, scale: np.ndarray | None = None):
        from scipy.optimize import nnls
        from sklearn.ensemble import RandomForestRegressor

        self.ops = {k["op"] for k in kernels}
        self.pooled = len(y) < _MIN_FOREST  # too few points to price pointwise and k x k MACs apart
        cols = self._columns(kernels)
        target = np.exp(y)
        # Each point weighs by what its error is relative to: its net's time (``scale``), as a measurement errs in
        # proportion to the whole net. Weighing by the marginal itself would let a small kernel whose marginal
        # came out near zero by noise outweigh every other point.
        w = 1.0 / (target if scale is None else np.maximum(scale, target))
        self.coef, _ = nnls(cols * w[:, None], target * w)
        line = np.maximum(cols @ self.coef, 1e-12)
        # The forest learns the ratio to the line: a ratio averages without bias, where a log ratio would return
        # the geometric mean of a small kernel's noisy marginals, which is low.
        ratio = target / line
        self.r_low, self.r_high = max(ratio.min(), 1e-3), ratio.max()
        self.forest = None
        x = np.array([features(k) for k in kernels], float)
        self.x_low, self.x_high = x.min(axis=0) - _REACH, x.max(axis=0) + _REACH
        if len(y) >= _MIN_FOREST:
            self.forest = RandomForestRegressor(n_estimators=_TREES, min_samples_leaf=2, random_state=seed,
                                                n_jobs=1).fit(x, ratio)

    def _columns(self, kernels: list[Mapping]) -> np.ndarray:
        cols = np.array([physical(k) for k in kernels], float)
        if self.pooled and cols.shape[1] == 6:
            cols[:, 1] += cols[:, 2]
            cols[:, 2] = 0.0
        return cols

    def predict(self, kernels: list[Mapping]) -> np.ndarray:
        """The log marginal cost of each kernel."""
        kernels = [_stand_in(k, self.ops) for k in kernels]
        cols = self._columns(kernels)
        y = np.log(np.maximum(cols @ self.coef, 1e-12))
        if self.forest is not None:
            x = np.clip(np.array([features(k) for k in kernels], float), self.x_low, self.x_high)
            y = y + np.log(np.clip(self.forest.predict(x), self.r_low, self.r_high))
        return y


def _rows(points: list[Mapping], kind: str) -> list[Mapping]:
    """A class's training points: its one-kernel nets without a fusion chain; the reshape probes are the base,
    not a kernel (a view's marginal cost is ``_FLOOR``)."""
    return [p for p in points if p["kernel"]["kind"] == kind and not p["kernel"]["post"]
            and p["kernel"]["op"] != "reshape" and p.get("repeat", 1) == 1]


def _floor(base: Mapping) -> float:
    return _FLOOR * base["a"] if base["a"] > 0 else _FLOOR


def _training(points: list[Mapping], base: Mapping, kind: str) -> tuple[list, np.ndarray, np.ndarray]:
    rows = _rows(points, kind)
    if not rows:
        return [], np.empty(0), np.empty(0)
    x = [p["kernel"] for p in rows]
    bases = np.array([_net_base(base, p["kernel"]) for p in rows])
    t = np.array([p["t_rel"] for p in rows])
    y = np.log(np.maximum(t - bases, _floor(base)))
    return x, y, t


def cross_validate(points: list[Mapping], base: Mapping, folds: int = 5, seed: int = 0) -> dict[str, dict]:
    """Per class, k-fold: each point's one-kernel net predicted (its base plus the predicted marginal) by a model
    fitted without it. Returns the relative errors, their median absolute value, the share within ±10%, and
    the log-ratio residuals of the marginal (which a prediction's interval resamples)."""
    out = {}
    for kind in CLASSES:
        x, y, t = _training(points, base, kind)
        if len(y) < 4:
            continue
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(y))
        pred = np.empty(len(y))
        for f in range(min(folds, len(y))):
            test = order[f::min(folds, len(y))]
            train = np.setdiff1d(order, test)
            pred[test] = _ClassModel([x[i] for i in train], y[train], seed, t[train]).predict([x[i] for i in test])
        rows = _rows(points, kind)
        bases = np.array([_net_base(base, p["kernel"]) for p in rows])
        net = bases + np.exp(pred)
        err = net / t - 1
        out[kind] = {"n": int(len(y)), "median_abs_error": float(np.median(np.abs(err))),
                     "within_10pct": float(np.mean(np.abs(err) <= 0.10)), "errors": [float(e) for e in err],
                     "log_residuals": [float(r) for r in (y - pred)], "names": [p["name"] for p in rows],
                     "shares": [float(v) for v in np.clip(np.exp(y) / t, 0.0, 1.0)]}
    return out


def _weights(cv: Mapping) -> np.ndarray:
    """The interval's weight of each cross-validated residual: its marginal's share of its net (all 1 for a
    predictor stored before shares were)."""
    n = len(cv["log_residuals"])
    w = np.array(cv.get("shares") or [1.0] * n, float)
    return w if w.sum() > 0 else np.ones(n)


class Predictor:
    """A fitted predictor for one backend (a ``fit_document``'s content)."""

    def __init__(self, doc: Mapping):
        if doc.get("schema") != PREDICTOR_SCHEMA:
            raise ValueError(f"not a benchbench predictor (schema {doc.get('schema')!r})")
        self.doc = doc
        self.base = doc["base"]
        self.rules = doc["rules"]
        self.models: dict[str, _ClassModel] = {}
        for kind in CLASSES:
            x, y, t = _training(doc["points"], self.base, kind)
            if len(y) >= 2:
                self.models[kind] = _ClassModel(x, y, scale=t)
        # A kernel's residual says as much about its class as its marginal is a share of its net (a marginal lost in
        # its net's fixed cost is mostly noise): the interval draws residuals with those weights.
        self.residuals = {k: (np.array(v["log_residuals"]), _weights(v)) for k, v in (doc.get("cv") or {}).items()}

    def marginal(self, kernels: list[Mapping]) -> np.ndarray:
        """Each kernel's predicted cost inside a model (anchor-relative): its marginal cost, the dispatch
        (``chain_fit``), and a fused chain's extra. A view (Reshape, Flatten) costs the dispatch where the
        backend executes the reshape probes' node, else a floor; a layout reorder (``kernel_graph.layout_kernel``)
        the convolution boundary's price per element."""
        out = np.zeros(len(kernels))
        by_kind: dict[str, list[int]] = {}
        for i, k in enumerate(kernels):
            by_kind.setdefault(k["kind"], []).append(i)
        dispatch = self.base.get("dispatch", 0.0)
        view = dispatch if self.base.get("views_execute") else 0.0
        # A layout reorder moves what a lone convolution's boundary moves (its input into the blocked layout, its
        # output back), so it costs the boundary's price per element (``chain_fit``; ORT here: 1.84e-6 anchor
        # per element, where its profiler timed a 451,584-element ReorderInput at 2.0e-6)
        per_element = (self.base.get("boundary") or {}).get("conv", 0.0)
        for i in by_kind.pop(LAYOUT, []):
            out[i] = per_element * kernels[i]["in_elems"] + dispatch
        for kind, idx in by_kind.items():
            views = [i for i in idx if kernels[i]["op"] == "reshape"]
            out[views] = max(_floor(self.base), view)
            idx = [i for i in idx if kernels[i]["op"] != "reshape"]
            model = self.models.get(kind) or self.models.get("eltwise")
            if model is None or not idx:
                continue
            ks = [kernels[i] if kind in self.models else {**kernels[i], "kind": "eltwise", "op": "relu"} for i in idx]
            out[idx] = np.exp(model.predict(ks)) + dispatch
        for i, k in enumerate(kernels):
            if k.get("fusion"):
                out[i] *= 1.0 + self.rules.get(k["fusion"], {}).get("extra", 0.0)
        return out

    def measured_marginal(self, kernel: Mapping, t_rel: float) -> float:
        """What ``kernel`` costs inside a model (anchor units) if it costs there what its one-kernel net, measured at
        ``t_rel``, shows: the net less its base (the fixed cost, its I/O, a convolution's boundary), floored, plus
        the dispatch. The regressors learn this same marginal; ``benchmarks/kernel_oracle.py`` prices a model's
        kernels by their own nets this way to tell the regressors' misses from what a kernel costs in context."""
        return max(t_rel - _net_base(self.base, kernel), _floor(self.base)) + self.base.get("dispatch", 0.0)

    def fixed(self, io: Mapping) -> float:
        """A model's fixed cost (anchor units): the base of its input and output (``io``: ``in_elems``,
        ``out_elems``)."""
        return _io_base(self.base, io)

    def predict(self, kernels: list[Mapping], io: Mapping, seed: int = 0) -> dict:
        """The prediction for a model cut into ``kernels`` (``kernel_graph.graph_kernels`` under this
        predictor's rules), whose input and output have ``io`` = ``{"in_elems", "out_elems"}``: the total in
        anchor units and ms, a 95% interval (each class's cross-validated residuals resampled, one draw per class
        and simulation: errors of one class's kernels move together), and the per-kernel breakdown."""
        m = self.marginal(kernels)
        fixed = self.fixed(io)
        total = fixed + float(m.sum())
        rng = np.random.default_rng(seed)
        kinds = sorted({k["kind"] for k in kernels})
        sims = np.full(_INTERVAL_DRAWS, fixed)
        for kind in kinds:
            idx = [i for i, k in enumerate(kernels) if k["kind"] == kind]
            if kind == LAYOUT:  # priced by the boundary, not a regressor: no regressor's residuals to draw
                sims += m[idx].sum()
                continue
            resid, weights = self.residuals.get(kind) or (None, None)
            if resid is None or not len(resid):
                resid = np.concatenate([r for r, _ in self.residuals.values()]) if self.residuals else np.zeros(1)
                weights = np.concatenate([w for _, w in self.residuals.values()]) if self.residuals else np.ones(1)
            draws = np.exp(rng.choice(resid, _INTERVAL_DRAWS, p=weights / weights.sum()))
            sims += m[idx].sum() * draws
        low, high = np.percentile(sims, [2.5, 97.5])
        # residuals of about 0 (a backend the kernels fit exactly) leave every draw at the total, summed in
        # another order: the interval must still hold the prediction, not miss it by a rounding
        low, high = min(low, total), max(high, total)
        anchor = self.doc["anchor_ms"]
        return {"t_rel": total, "t_rel_low": float(low), "t_rel_high": float(high), "ms": total * anchor,
                "ms_low": float(low) * anchor, "ms_high": float(high) * anchor, "fixed_rel": fixed,
                "kernels": [{"op": k["op"] + (f"-{k['post']}" if k["post"] else ""), "kind": k["kind"],
                             "t_rel": float(m[i]), "nodes": k["nodes"][:3]} for i, k in enumerate(kernels)]}


def fit_document(measured: Mapping[str, Mapping], backend: str, meta: Mapping) -> dict:
    """A predictor's JSON document from one backend's measured kernel nets (name → ``{"t_rel", "t_ms",
    "anchor_ms", "executed_ops"}``): the base from the probes, fusion rules from the experiments, the training
    points, and their cross-validation."""
    from benchbench.core.kernelpoints import parse_kernel_name

    from .fusion import fusion_rules

    parsed: dict[str, KernelPoint] = {name: parse_kernel_name(name) for name in measured}
    points, probes = [], []
    for name, rec in sorted(measured.items()):
        p = parsed[name]
        k = point_kernel(p)
        entry = {"name": name, "kernel": {**k, "post": p.post}, "t_rel": rec["t_rel"], "t_ms": rec["t_ms"],
                 "executed_ops": rec.get("executed_ops"), "repeat": p.repeat}
        points.append(entry)
        if p.op == "reshape":
            probes.append((k, rec["t_rel"]))
    if len(probes) < 2:
        raise ValueError(f"{backend}: fewer than two reshape probes measured ok; no base to subtract")
    base = base_fit(probes)
    t_of = {e["name"]: e["t_rel"] for e in points}
    executed = {e["name"]: e["executed_ops"] for e in points}
    pairs = []
    for e in points:
        if e["repeat"] > 1:
            alone = replace(parsed[e["name"]], repeat=1).name
            ran, ran_alone = executed[e["name"]], executed.get(alone)
            if alone in t_of and not (ran is not None and ran_alone is not None and ran <= ran_alone):
                pairs.append((e["kernel"], t_of[alone], e["t_rel"], e["repeat"]))  # not a chain fused into one
    chains = chain_fit(pairs, base)
    base["boundary"] = {"conv": chains["conv"], "dwconv": chains["dwconv"], "io": chains["io"]}
    base["dispatch"] = chains["dispatch"]
    # a view is a kernel of its own where the backend executes the reshape probes' node
    base["views_execute"] = bool(np.median([e["executed_ops"] or 0 for e in points
                                            if e["kernel"]["op"] == "reshape"]) >= 1)
    rules = fusion_rules(measured, lambda p: _net_base(base, point_kernel(p)))
    anchors = [rec["anchor_ms"] for rec in measured.values()]
    cv = cross_validate(points, base)
    return {"schema": PREDICTOR_SCHEMA, "backend": backend, **meta, "anchor_ms": float(np.median(anchors)),
            "base": base, "rules": rules, "points": points, "cv": cv}
