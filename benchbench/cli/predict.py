"""``benchbench predict``: a model's latency from its kernels, without measuring it; ``--fit`` measures the kernel
sweep that trains the predictor, ``--evaluate`` checks it against the zoo measured beside the anchor.

* ``predict --model M --backend B``: cut M's graph into the kernels B runs (``analysis.kernel_graph`` under B's
  fusion rules), predict each (``analysis.predictor``), print the total with its interval and the kernels that
  cost most. Nothing is timed; a zoo or plugin model is exported (cached like any build) to read its graph.
* ``predict --fit --backend B[,B...]``: the kernel sweep as ordinary runs (one-kernel nets in lockstep blocks,
  each led by the lab's anchor), the fusion experiments among them; one adaptive round adds points to the
  classes whose cross-validated error is high; then one predictor per backend, stored in the build cache under a
  key of the machine, the backend's runtime versions and the threads, and in the run folder.
* ``predict --evaluate --backend B``: the zoo (or ``--model``) measured in anchored blocks (or read from
  ``--results``), each cell predicted; the share within ±10%, anchor-relative and absolute, beside a FLOPs-only
  fit of the same sweep, in ``predictor_eval.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

from benchbench.core.atomic import write_atomic

from .errors import UsageError, one_line
from .run import measure, run_dir

__all__ = ["cmd_predict", "SWEEP", "SWEEP_QUICK", "predictor_path", "load_predictor", "model_kernels"]

# Points per kernel class in the first round of the sweep (the adaptive round adds up to half as many again).
SWEEP = {"conv": 30, "dwconv": 14, "gconv": 12, "gemm": 12, "eltwise": 33, "pool": 9, "move": 12}
SWEEP_QUICK = {"conv": 4, "dwconv": 2, "gconv": 2, "gemm": 2, "eltwise": 3, "pool": 2, "move": 2}
ADAPT_BELOW = 0.9  # a class whose cross-validated share within ±10% is under this gets more points
PREDICTOR_VERSION = 2


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- the store ---------------------------------------------------------------------------------------------

def predictor_identity(backend: str, threads: int) -> dict:
    """What a predictor is valid for: this machine (host, CPU), the backend's runner and package versions, the
    threads, and the predictor's own version."""
    from benchbench.measure.calibration import runtime_identity

    return {**runtime_identity(backend, threads), "version": PREDICTOR_VERSION}


def predictor_path(backend: str, threads: int) -> Path:
    from benchbench.build.cache import cache_root

    ident = predictor_identity(backend, threads)
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    return cache_root() / "predictors" / f"{backend}-t{threads}-{digest}.json"


def load_predictor(backend: str, threads: int, path: str | None = None):
    """The stored predictor (``path``, else the cache's for this machine), as ``analysis.predictor.Predictor``.
    A missing one is a one-line usage error that says how to fit it."""
    from benchbench.analysis.predictor import Predictor
    from benchbench.build.cache import read_json, sealed

    if path:  # the user's file, read with the result files' checks (never a FIFO, never unbounded)
        from .claim import read_json_file

        where, doc = read_json_file(path, f"predictor_{backend}.json", "--predictor", "predictor file")
        if not isinstance(doc, dict):
            raise UsageError(f"--predictor {path}: no predictor for {backend} there")
    else:  # the cache's own: a file that cannot be read counts as absent
        where = predictor_path(backend, threads)
        doc = read_json(where)
    if doc is None:
        raise UsageError(f"no predictor for {backend} with {threads} threads on this machine and these versions: "
                         f"run benchbench predict --fit --backend {backend} (about 10 minutes per backend)")
    if not sealed(doc):
        raise UsageError(f"{where}: the predictor's checksum does not match (a damaged file); fit it again")
    try:
        return Predictor(doc)
    except (KeyError, ValueError, TypeError) as exc:
        raise UsageError(f"{where}: not a usable predictor ({exc})") from None


# -- a model's kernels ---------------------------------------------------------------------------------------

def _onnx_of(model: str, variant: str, config, seed: int):
    """The ONNX graph of a zoo or plugin model (its cached build's export) or of an ONNX file."""
    import onnx

    from benchbench.build.builds import ensure_build
    from benchbench.core.spec import CellSpec

    if _is_onnx_file(model):  # checked and read as run reads a model file (never a FIFO; its weights not loaded)
        from benchbench.core.files import PathError, regular_file
        from benchbench.formats import FormatError, get_format

        file = Path(model).expanduser()
        try:
            regular_file(file, "model file")
            return get_format("onnx").shaped(file, {})
        except PathError as exc:
            if exc.exit_code != 2:
                raise
            raise UsageError(f"model file {model} does not exist" if exc.missing else str(exc)) from None
        except FormatError as exc:
            raise UsageError(str(exc)) from None
    spec = CellSpec(model, variant, "ort", 1, None, 1, seed, ())
    build = ensure_build(spec, {"onnx"}, config)
    if build.get("status") != "ok":
        raise UsageError(f"{model} ({variant}): cannot export it to read its graph: "
                         f"{one_line(build.get('reason', ''))}")
    entry = build["manifest"]["artifacts"].get("onnx") or {}
    if entry.get("status") != "ok":
        raise UsageError(f"{model} ({variant}): no ONNX export: {one_line(entry.get('reason', 'export failed'))}")
    return onnx.load(str(Path(build["dir"]) / entry["file"]), load_external_data=False)


def _is_onnx_file(model: str) -> bool:
    return model.lower().endswith(".onnx")


def _torch_batch_norms(model: str, variant: str, seed: int, shape) -> list[dict]:
    """The batch norms PyTorch eager runs (the export folds those after a convolution): one kernel per
    ``BatchNorm`` module call, from a forward with hooks (not timed)."""
    import torch

    from benchbench.analysis.kernel_graph import point_kernel
    from benchbench.core.kernelpoints import KernelPoint
    from benchbench.models import create_model

    net = create_model(model, variant, seed=seed)
    found = []

    def hook(module, inputs, output):
        s = list(output.shape)
        c, h = (s[1], s[2]) if len(s) == 4 else (s[-1], 1)
        found.append({**point_kernel(KernelPoint("bn", c, c, max(1, h))), "nodes": [type(module).__name__]})

    norms = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, norms)]
    with torch.no_grad():
        net(torch.zeros(shape))
    for h in handles:
        h.remove()
    return found


def model_kernels(model: str, variant: str, backend: str, rules: dict, config, seed: int = 0):
    """(kernels, io) of a model as ``backend`` runs it: the graph cut by the backend's fusion rules; for torch,
    the batch norms eager runs (the export folded those after a convolution) in place of the graph's: after the
    cut, as nothing fuses with them there and the graph's links stay those of the graph."""
    from benchbench.analysis.kernel_graph import graph_kernels

    graph = _onnx_of(model, variant, config, seed)
    kernels = graph_kernels(graph, rules)
    shapes = {}
    for vi in list(graph.graph.input) + list(graph.graph.output):
        dims = [d.dim_value or 1 for d in vi.type.tensor_type.shape.dim]
        shapes[vi.name] = dims
    inits = {i.name for i in graph.graph.initializer}
    in_shape = next(shapes[i.name] for i in graph.graph.input if i.name not in inits)
    io = {"in_elems": math.prod(in_shape), "out_elems": sum(math.prod(shapes[o.name]) for o in graph.graph.output)}
    if backend.startswith("torch") and not _is_onnx_file(model):
        kernels = [k for k in kernels if k["op"] != "bn"] + _torch_batch_norms(model, variant, seed, in_shape)
    return kernels, io


# -- predict ---------------------------------------------------------------------------------------------

def _predict(args) -> int:
    from tabulate import tabulate

    from benchbench.core.spec import PROFILES, physical_cores
    from benchbench.models import resolve_models
    from benchbench.runners import resolve_backends

    if not args.model:
        raise UsageError("predict needs --model (a zoo name, file.py:factory or file.onnx), or --fit / --evaluate")
    backends = resolve_backends(args.backend)
    threads = args.threads or physical_cores()
    parts = [p for p in args.model.split(",") if p]
    files = [p for p in parts if _is_onnx_file(p)]
    names = (resolve_models(",".join(p for p in parts if p not in files))[0] if len(files) < len(parts) else []) + files
    rows, details = [], []
    variants = ("train", "deploy") if args.variant == "both" else (args.variant,)
    for backend in backends:
        predictor = load_predictor(backend, threads, args.predictor)
        for name in names:
            for variant in variants if not _is_onnx_file(name) else ("deploy",):
                kernels, io = model_kernels(name, variant, backend, predictor.rules, PROFILES["default"], args.seed)
                p = predictor.predict(kernels, io)
                rows.append([name, variant, backend, f"{p['ms']:.3g}", f"[{p['ms_low']:.3g}, {p['ms_high']:.3g}]",
                             f"{p['t_rel']:.3g}", len(kernels)])
                details.append({"model": name, "variant": variant, "backend": backend, **p})
    if args.json:
        print(json.dumps(details, indent=1))
        return 0
    print(tabulate(rows, ["model", "variant", "backend", "predicted ms", "95% interval", "x anchor", "kernels"],
                   tablefmt="simple"))
    for d in details:
        top = sorted(d["kernels"], key=lambda k: -k["t_rel"])[:args.top]
        total = d["t_rel"] or 1.0
        print(f"\n{d['model']} ({d['variant']}) on {d['backend']}: fixed cost {d['fixed_rel'] / total:.0%}; "
              f"the {len(top)} costliest of {len(d['kernels'])} kernels:")
        print(tabulate([[k["op"], k["kind"], f"{k['t_rel'] / total:.1%}", f"{k['t_rel'] * d['ms'] / total:.3g}",
                         ", ".join(k["nodes"])] for k in top], ["kernel", "class", "share", "ms", "ONNX nodes"],
                       tablefmt="simple"))
    print("\n(predicted, not measured: 'x anchor' is in units of the lab anchor's latency at fit time)")
    return 0


# -- fit ---------------------------------------------------------------------------------------------------

def _sub_args(args, names: list[str], out: Path, evaluate: bool = False):
    """The namespace ``measure`` takes for one sweep of ``names`` (kernel nets, or zoo models to check)."""
    ns = argparse.Namespace(**vars(args))
    ns.sweep_names, ns.evaluate, ns.out = list(names), evaluate, str(out)
    ns.model = ",".join(names[:3]) + ("..." if len(names) > 3 else "")
    ns.argv = [*getattr(args, "argv", sys.argv[1:])]
    return ns


def _measured(runs, keep) -> dict:
    from benchbench.analysis.anchored import anchored_cells

    return anchored_cells([r.to_dict() for r in runs], keep)


def _is_kernel(cell) -> bool:
    return str(cell["spec"]["model"]).startswith("kern_")


def _is_zoo(cell) -> bool:
    from benchbench.results.load import DESIGNED_KINDS, model_kind

    return model_kind(cell.get("model") or {}) not in DESIGNED_KINDS


def _measure_anchored(args, names: list[str], folder: Path, keep, evaluate: bool = False):
    """(exit code, runs): ``names`` measured in anchored blocks; then, once, the cells every round of which ran
    while their group's anchor read disturbed (``analysis.anchored.DISTURBED``), on the backends that had any.
    A cell's quiet rounds count, from both measurements (``anchored_cells``)."""
    from benchbench.analysis.anchored import DISTURBED

    code, run = measure(_sub_args(args, names, folder, evaluate))
    runs = [run]
    if code >= 128:
        return code, runs
    again = {backend: sorted({name for (name, _), rec in cells.items() if rec["disturbed"]})
             for backend, cells in _measured(runs, keep).items()}
    again = {b: n for b, n in again.items() if n}
    if again:
        names = sorted({n for ns in again.values() for n in ns})
        _stderr(f"benchbench: {len(names)} nets on {', '.join(again)} ran while their anchor read more than "
                f"{DISTURBED:.0%} slower than the sweep's median (disturbed): measuring them again, once")
        sub = _sub_args(args, names, folder, evaluate)
        sub.backend = ",".join(again)
        retake, run = measure(sub)
        runs.append(run)
        code = retake if retake >= 128 else max(code, retake)
    return code, runs


def _fit(args) -> int:
    from benchbench.build.cache import seal, write_json
    from benchbench.core.kernelpoints import (
        chain_points,
        dispatch_points,
        fusion_points,
        io_points,
        probe_points,
        sample_points,
    )
    from benchbench.core.spec import physical_cores
    from benchbench.runners import resolve_backends

    start = time.monotonic()
    backends = resolve_backends(args.backend)
    threads = args.threads or physical_cores()
    counts = SWEEP_QUICK if args.quick else SWEEP
    folder = run_dir(Path(args.out), f"predict_{'+'.join(backends)}")
    if args.results:  # refit from sweeps measured before: nothing is measured
        from benchbench.results.load import load_run

        runs, code = [load_run(p) for p in args.results], 0
        docs = _fit_all(runs, backends, threads, start)
        extra = []
    else:
        probes = probe_points() + fusion_points() + dispatch_points() + ([] if args.quick else
                                                                          chain_points() + io_points())
        first = list(dict.fromkeys(p.name for p in probes + sample_points(counts, args.seed)))
        code, runs = _measure_anchored(args, first, folder, _is_kernel)
        if code >= 128:
            return code
        docs = _fit_all(runs, backends, threads, start)
        extra = _adaptive_points(docs, counts, args.seed + 1, exclude=set(first))
    if extra and not args.no_adapt:
        _stderr(f"benchbench: adaptive round: {len(extra)} more kernel nets where cross-validated error is high")
        code, more = _measure_anchored(args, extra, folder, _is_kernel)
        runs += more
        if code >= 128:
            return code
        docs = _fit_all(runs, backends, threads, start)
    if not docs:
        _stderr("benchbench: error: no backend has enough kernel nets measured ok to fit a predictor")
        return 1
    from benchbench.analysis.predictor_report import predictor_markdown

    for backend, doc in docs.items():
        seal(doc)
        write_json(predictor_path(backend, threads), doc)
        write_json(folder / f"predictor_{backend}.json", doc)
    write_atomic(folder / "predictor.md", predictor_markdown(list(docs.values())))
    for backend, doc in docs.items():
        cv = doc["cv"]
        worst = sorted(cv.items(), key=lambda kv: kv[1]["within_10pct"])[:2]
        _stderr(f"{backend}: {len(doc['points'])} kernel nets; fused chains: "
                f"{', '.join(k for k, r in doc['rules'].items() if r['fused']) or 'none'}; cross-validated within "
                f"±10%: " + ", ".join(f"{k} {v['within_10pct']:.0%}" for k, v in worst) + " (the two lowest)")
    print(f"\nwrote {folder / 'predictor.md'}\n      " + "\n      ".join(
        str(predictor_path(b, threads)) for b in docs))
    return code


def _fit_all(runs, backends, threads, start) -> dict:
    from benchbench.analysis.predictor import fit_document

    measured = _measured(runs, _is_kernel)
    docs = {}
    for backend in backends:
        cells = {name: rec for (name, _), rec in measured.get(backend, {}).items()}
        runtime = next((c.backend.get("runtime") for r in runs for c in r.cells
                        if c.spec.backend == backend and c.ok and c.backend), None)
        meta = {"identity": predictor_identity(backend, threads), "runtime": runtime,
                "runs": [str(r.path) for r in runs], "fit_s": round(time.monotonic() - start, 1),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:
            docs[backend] = fit_document(cells, backend, meta)
        except ValueError as exc:
            _stderr(f"benchbench: {one_line(str(exc))}")
    return docs


def _adaptive_points(docs: dict, counts: dict, seed: int, exclude: set) -> list[str]:
    """More points for the classes whose cross-validated share within ±10% is under ``ADAPT_BELOW`` on any
    backend: up to half the class's first-round count, in proportion to the shortfall."""
    from benchbench.core.kernelpoints import sample_points

    want = {}
    for kind, n in counts.items():
        shares = [d["cv"][kind]["within_10pct"] for d in docs.values() if kind in d["cv"]]
        if shares and min(shares) < ADAPT_BELOW:
            want[kind] = max(1, math.ceil(n / 2 * (ADAPT_BELOW - min(shares)) / ADAPT_BELOW))
    return [p.name for p in sample_points(want, seed) if p.name not in exclude]


# -- evaluate ----------------------------------------------------------------------------------------------

def _evaluate(args) -> int:
    from benchbench.analysis.predictor_report import evaluation, evaluation_markdown
    from benchbench.core import strictjson
    from benchbench.core.spec import PROFILES, physical_cores
    from benchbench.models import list_models, resolve_models
    from benchbench.results.load import load_run
    from benchbench.runners import resolve_backends

    backends = resolve_backends(args.backend)
    threads = args.threads or physical_cores()
    predictors = {b: load_predictor(b, threads, args.predictor) for b in backends}  # before measuring anything
    folder = run_dir(Path(args.out), f"predict_eval_{'+'.join(backends)}")
    if args.results:
        runs, code = [load_run(p) for p in args.results], 0
    else:
        names = resolve_models(args.model)[0] if args.model else list_models("*", kind="zoo")
        code, runs = _measure_anchored(args, names, folder, _is_zoo, evaluate=True)
        if code >= 128:
            return code
    measured = _measured(runs, _is_zoo)
    rows = {}
    for backend, predictor in predictors.items():
        rows[backend] = []
        for (name, variant), rec in sorted(measured.get(backend, {}).items()):
            try:
                kernels, io = model_kernels(name, variant, backend, predictor.rules, PROFILES["default"], args.seed)
            except UsageError as exc:
                _stderr(f"benchbench: {name} ({variant}) not predicted: {exc}")
                continue
            p = predictor.predict(kernels, io)
            rows[backend].append({"model": name, "variant": variant, "family": rec["model"].get("family"),
                                  "flops": rec["model"].get("flops"), "measured_rel": rec["t_rel"],
                                  "measured_ms": rec["t_ms"], "anchor_ms": rec["anchor_ms"], **{
                                      k: p[k] for k in ("t_rel", "t_rel_low", "t_rel_high", "ms")},
                                  "by_kind": _by_kind(p["kernels"])})
    doc = evaluation(rows, {b: p.doc for b, p in predictors.items()})
    doc["runs"] = [str(r.path) for r in runs]
    write_atomic(folder / "predictor_eval.json", strictjson.dumps(doc, indent=1, default=str))
    write_atomic(folder / "predictor_eval.md", evaluation_markdown(doc))
    for backend, s in doc["backends"].items():
        if not s["n"]:
            print(f"{backend}: no zoo or plugin model measured ok, nothing to check")
            continue
        print(f"{backend}: {s['n']} cells; within ±10% anchor-relative {s['within_10pct_rel']:.0%} (median error "
              f"{s['median_abs_error_rel']:.0%}), absolute {s['within_10pct_abs']:.0%} "
              f"({s['median_abs_error_abs']:.0%}); "
              f"FLOPs-only {s['flops_only_within_10pct_rel']:.0%}")
    print(f"\nwrote {folder / 'predictor_eval.md'}\n      {folder / 'predictor_eval.json'}")
    return code


def _by_kind(kernels: list[dict]) -> dict[str, float]:
    out: dict[str, float] = {}
    for k in kernels:
        out[k["kind"]] = out.get(k["kind"], 0.0) + k["t_rel"]
    return out


def cmd_predict(args) -> int:
    """``benchbench predict``: predict (default), ``--fit`` or ``--evaluate``."""
    import importlib.util

    for module, package in (("sklearn", "scikit-learn"), ("onnx", "onnx")):
        if importlib.util.find_spec(module) is None:
            raise UsageError(f"benchbench predict needs {package}: pip install -c constraints.txt "
                             "'benchbench[predict]'")
    if args.fit and args.evaluate:
        raise UsageError("--fit and --evaluate are two steps: fit first, then evaluate")
    if args.fit:
        return _fit(args)
    if args.evaluate:
        return _evaluate(args)
    return _predict(args)
