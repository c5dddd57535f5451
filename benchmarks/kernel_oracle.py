"""Is it the regressors or the context? The kernel-sum predictor with each kernel's own net measured in place of
its regressor: what a perfect regressor would reach.

The predictor (``analysis.predictor``) sums a model's kernels, each priced by its class's regressor, fitted on a
designed sweep of one-kernel nets. It misses a model for two kinds of reasons: the regressor prices a kernel
unlike its own one-kernel net (too few points, the wrong features), or the kernel costs more or less inside the
model than alone (its weights and input arrive from elsewhere in the memory hierarchy; the backend fuses or
reorders across kernels). This script separates the two. It cuts each model into the kernels the stored
predictor's fusion rules say the backend runs, names the one-kernel net of each (``core.kernelpoints``), and
measures those nets and the models together, in anchored blocks of one sweep (``predict --evaluate``'s
measurement). Each model is then predicted twice, on the same measurement:

* **predictor**: as ``predict`` does (every kernel from its regressor);
* **oracle**: every kernel that has a net priced at that net's measured marginal (its latency less the net's base,
  ``analysis.predictor``), plus the dispatch; the others (a view, a layout reorder, a kernel no net can name) as
  the predictor prices them. The fixed cost, the base, the boundary and the dispatch are the stored predictor's.

Where the oracle lands within ±10% far more often than the predictor, the regressors (their points and features)
are what limits it; where it misses the same way, a kernel in a model is not the kernel alone, and no regressor
fitted on one-kernel nets can close the gap. No zoo cell enters a fit: the oracle is a diagnostic, not a
predictor (its kernel nets are the models' own kernels).

    python benchmarks/kernel_oracle.py --backend ort,torch --out /tmp/oracle
    python benchmarks/kernel_oracle.py --backend ort,torch --base-nets --no-kernels --out /tmp/oracle2
    python benchmarks/kernel_oracle.py --backend ort,torch --results /tmp/oracle/*/results.json /tmp/oracle2/*/results.json

With the default models it measures 491 nets on ORT and 559 on torch (12–14 minutes per backend here, their
builds included); ``--dry-run`` prints how many without measuring. ``--base-nets`` adds the fit's base nets, so
the oracle can also subtract a base read in the same sweep (``--no-kernels``: those and the models only).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import numpy as np

MODELS = ("resnet18,resnet50,se_resnet18,repvgg_a0,vanillanet_5,mobileone_s0,mobileone_s2,mobilenetv2_100,"
          "mobilenetv2_100_rfcr,mobilenetv3_small_100,efficientnet_b0,effnetv2_nofused,shufflenetv2_x0_5,"
          "shufflenetv2_x1_0")


def kernel_point(k: dict):
    """The one-kernel net that runs graph kernel ``k``, or None where none can (a view, a layout reorder, a batched
    convolution, an odd channel count for a channel move)."""
    from benchbench.core.kernelpoints import KernelPoint

    if k["kind"] == "reorder" or k["op"] == "reshape" or (k["rows"] > 1 and k["kind"] != "gemm"):
        return None
    try:
        return KernelPoint(op=k["op"], cin=k["cin"], cout=k["cout"], size=k["size"], k=k["k"], stride=k["stride"],
                           groups=k["groups"], rows=k["rows"], post=k["post"] or "")
    except ValueError:
        return None


def cut(models: list[str], backend: str, predictor) -> dict[str, tuple[list, dict, list]]:
    """Per model: its kernels as ``backend`` runs them, its I/O, and each kernel's net (or None)."""
    from benchbench.cli.predict import model_kernels
    from benchbench.core.spec import PROFILES

    out = {}
    for name in models:
        kernels, io = model_kernels(name, "deploy", backend, predictor.rules, PROFILES["default"], 0)
        out[name] = (kernels, io, [kernel_point(k) for k in kernels])
    return out


def oracle(predictor, kernels: list, io: dict, points: list, measured: dict) -> tuple[float, float]:
    """(the oracle's prediction in anchor units, the share of the predictor's kernel time it replaced)."""
    from benchbench.analysis.kernel_graph import point_kernel

    m = predictor.marginal(kernels)
    predicted = float(m.sum())
    replaced = 0.0
    for i, p in enumerate(points):
        rec = measured.get((p.name, "deploy")) if p is not None else None
        if rec is None or rec["disturbed"]:
            continue
        replaced += m[i]
        m[i] = predictor.measured_marginal(point_kernel(p), rec["t_rel"])
    return predictor.fixed(io) + float(m.sum()), replaced / max(predicted, 1e-12)


def base_nets() -> list[str]:
    """The nets a fit reads its base from (``core.kernelpoints.base_points``: the probes, chains, fusion
    experiments)."""
    from benchbench.core.kernelpoints import base_points

    return [p.name for p in base_points()]


def own_base(predictor, backend: str, cells: dict):
    """The stored predictor with its base (fixed cost, I/O, boundary, dispatch) read from ``cells`` instead, as
    ``predict --fit`` reads it (``analysis.predictor.fit_document``); None where the base nets were not measured."""
    from benchbench.analysis.predictor import Predictor, fit_document

    wanted = set(base_nets())
    kern = {n: rec for (n, _), rec in cells.items() if n in wanted and not rec["disturbed"]}
    if len(kern) < len(wanted) // 2:
        return None
    doc = fit_document(kern, backend, {})
    return Predictor({**predictor.doc, "base": doc["base"]})


def _share(errors: list[float]) -> str:
    return f"{sum(abs(e) <= 0.10 for e in errors) / len(errors):.0%}" if errors else "-"


def _median(errors: list[float]) -> str:
    return f"{statistics.median(errors):+.0%}" if errors else "-"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="ort,torch")
    ap.add_argument("--model", default=MODELS, help="zoo models, comma-separated (their deploy forms)")
    ap.add_argument("--predictor", default="reports/predictor", help="the stored predictors (a --fit folder)")
    ap.add_argument("--out", default="/tmp/kernel_oracle", help="where the sweep's run folder goes")
    ap.add_argument("--results", nargs="*", default=None, help="read these results.json instead of measuring")
    ap.add_argument("--base-nets", action="store_true",
                    help="measure the fit's base nets too (probes, chains, fusion experiments), so that the oracle "
                         "can subtract a base read in the same sweep as well as the stored predictor's")
    ap.add_argument("--no-kernels", action="store_true",
                    help="measure the models (and --base-nets) only: a second sweep for a base of its own")
    ap.add_argument("--dry-run", action="store_true", help="count the nets, measure nothing")
    args = ap.parse_args(argv)

    from benchbench.cli.parser import build_parser
    from benchbench.cli.predict import _measure_anchored, _measured
    from benchbench.cli.predictors import load_predictor
    from benchbench.core.spec import physical_cores
    from benchbench.results.load import load_run

    backends = [b for b in args.backend.split(",") if b]
    models = [m for m in args.model.split(",") if m]
    threads = physical_cores()
    predictors = {b: load_predictor(b, threads, args.predictor) for b in backends}
    cuts = {b: cut(models, b, predictors[b]) for b in backends}
    nets = {b: sorted({p.name for _, _, pts in cuts[b].values() for p in pts if p is not None}) for b in backends}
    for b in backends:
        print(f"{b}: {len(models)} models, {len(nets[b])} distinct kernel nets")
    if args.dry_run:
        return 0

    if args.results:
        runs = [load_run(Path(p)) for p in args.results]
    else:
        runs = []
        for b in backends:  # one sweep per backend: each measures only the nets its own cut names
            ns = build_parser().parse_args(["predict", "--evaluate", "--backend", b, "--out", args.out])
            folder = Path(args.out)
            folder.mkdir(parents=True, exist_ok=True)
            names = [*models, *([] if args.no_kernels else nets[b]), *(base_nets() if args.base_nets else [])]
            code, got = _measure_anchored(ns, list(dict.fromkeys(names)), folder, lambda c: True, evaluate=True)
            runs += got
            if code >= 128:
                return code
            print(f"{b}: measured in {', '.join(str(r.path) for r in got)}", flush=True)
    measured = _measured(runs, lambda c: True)
    own = {b: own_base(predictors[b], b, measured.get(b, {})) for b in backends}

    print("\nwithin ±10% anchor-relative, on the same measurement (median signed error):")
    for b in backends:
        cells = measured.get(b, {})
        rows, err_p, err_o, err_b = [], [], [], []
        for name in models:
            rec = cells.get((name, "deploy"))
            if rec is None or rec["disturbed"]:
                continue
            kernels, io, points = cuts[b][name]
            p = predictors[b].predict(kernels, io)["t_rel"]
            o, covered = oracle(predictors[b], kernels, io, points, cells)
            ep, eo = p / rec["t_rel"] - 1, o / rec["t_rel"] - 1
            err_p.append(ep)
            err_o.append(eo)
            eb = math.nan
            if own[b] is not None:
                eb = oracle(own[b], kernels, io, points, cells)[0] / rec["t_rel"] - 1
                err_b.append(eb)
            rows.append((name, rec["t_rel"], p, ep, o, eo, eb, covered))
        own_text = f", oracle with this sweep's base {_share(err_b)} ({_median(err_b)})" if err_b else ""
        print(f"\n{b}: predictor {_share(err_p)} ({_median(err_p)}), oracle {_share(err_o)} ({_median(err_o)})"
              f"{own_text}, {len(rows)} models")
        print(f"  {'model':<26} {'measured':>9} {'predictor':>10} {'error':>7} {'oracle':>9} {'error':>7} "
              f"{'own base':>9} {'kernels measured':>17}")
        for name, t, p, ep, o, eo, eb, covered in rows:
            print(f"  {name:<26} {t:>9.3g} {p:>10.3g} {ep:>+7.0%} {o:>9.3g} {eo:>+7.0%} {eb:>+9.0%} {covered:>17.0%}")
        corr = np.corrcoef(err_p, err_o)[0, 1] if len(rows) > 2 else math.nan
        print(f"  correlation of the two errors over the models: {corr:+.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
