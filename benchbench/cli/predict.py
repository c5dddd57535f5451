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

With ``--scheduler`` and ``--device``, ``--fit`` and ``--evaluate`` measure on a Dask cluster's devices, and each
device gets its own predictor (its anchor, fusion rules and kernel costs are that machine's), stored under the
device's name; ``predict --device NAME`` then predicts with it, without the cluster.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from benchbench.core.atomic import write_atomic

from .errors import UsageError, one_line
from .predictors import (
    device_identity,
    load_predictor,
    predictor_file_name,
    predictor_identity,
    predictor_path,
    target_label,
)
from .resume import resumed_predict, sweep_folders
from .run import measure, run_dir

__all__ = ["cmd_predict", "SWEEP", "SWEEP_QUICK", "first_sweep", "model_kernels"]

# Points per kernel class in the first round of the sweep (the adaptive round adds up to half as many again).
SWEEP = {"conv": 30, "dwconv": 21, "gconv": 12, "gemm": 12, "eltwise": 33, "pool": 9, "move": 12}
SWEEP_QUICK = {"conv": 4, "dwconv": 2, "gconv": 2, "gemm": 2, "eltwise": 3, "pool": 2, "move": 2}
ADAPT_BELOW = 0.9  # a class whose cross-validated share within ±10% is under this gets more points


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- a model's kernels ---------------------------------------------------------------------------------------

def _onnx_of(model: str, variant: str, config, seed: int):
    """(graph, file): the ONNX graph of a zoo or plugin model (its cached build's export) or of an ONNX file, and
    the file it was read from."""
    import onnx

    from benchbench.build.builds import ensure_build
    from benchbench.core.spec import CellSpec

    if _is_onnx_file(model):  # checked and read as run reads a model file (never a FIFO; its weights not loaded)
        from benchbench.core.files import PathError, regular_file
        from benchbench.formats import FormatError, get_format

        file = Path(model).expanduser()
        try:
            regular_file(file, "model file")
            return get_format("onnx").shaped(file, {}), file
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
    file = Path(build["dir"]) / entry["file"]
    return onnx.load(str(file), load_external_data=False), file


def _backend_artifact(model: str, variant: str, backend: str, onnx_file: Path, config, seed: int):
    """What ``backend``'s runner prepares for the model: the ONNX file itself for a backend that runs ONNX, else the
    cached build's artifact (made if missing: LiteRT's layout is the converter's, so predicting it needs the
    conversion); None for a model file the backend does not run, or a conversion that failed (said on stderr)."""
    from benchbench.build.builds import artifact_for, ensure_build
    from benchbench.core.spec import CellSpec
    from benchbench.runners import get_runner

    cls = get_runner(backend)
    fmt = cls.artifact_for({})
    if fmt == "onnx":
        return onnx_file
    if _is_onnx_file(model):
        return None
    spec = CellSpec(model, variant, backend, 1, None, 1, seed, ())
    build = ensure_build(spec, {fmt}, config)
    artifact, _, unusable = artifact_for(cls, spec, build) if build.get("status") == "ok" else (None, {}, None)
    if artifact is None:
        why = unusable or build.get("reason") or "no artifact"
        _stderr(f"benchbench: no {backend} artifact of {model} ({variant}) to read its layout reorders "
                f"({one_line(str(why))}); predicted without them")
    return artifact


def _layout_kernels(model: str, variant: str, file: Path, graph, backend: str, config, seed: int) -> list[dict]:
    """The layout reorders ``backend`` inserts into the model (``Runner.layout_reorders``: ONNX Runtime's NCHWc
    reorders, the TRANSPOSEs LiteRT's converter leaves between NHWC and NCHW), as kernels the graph does not hold;
    none for a backend that inserts none. The backend loads the model to say so (nothing is run). Its layout does
    not depend on the threads, so one thread loads it."""
    import numpy as np
    from onnx import helper

    from benchbench.analysis.kernel_graph import layout_kernel
    from benchbench.runners import get_runner
    from benchbench.runners.base import Runner

    cls = get_runner(backend)
    if cls.layout_reorders is Runner.layout_reorders or not cls.is_available()[0]:
        return []
    artifact = _backend_artifact(model, variant, backend, file, config, seed)
    if artifact is None:
        return []
    inits = {i.name for i in graph.graph.initializer}
    inputs = {i.name: np.zeros([d.dim_value or 1 for d in i.type.tensor_type.shape.dim],
                               helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type))
              for i in graph.graph.input if i.name not in inits}
    # a model file's inputs by name (as run binds a user's file); a zoo model's single input as its runner takes it
    feed = inputs if _is_onnx_file(model) or len(inputs) != 1 else next(iter(inputs.values()))
    runner = cls(1, {})
    try:
        runner.load_runtime()
        runner.prepare(artifact, feed)
        elements = runner.layout_reorders() or []
    except Exception as exc:  # a model the backend cannot load: predicted without its reorders, and said so
        _stderr(f"benchbench: {backend} could not load the model to read its layout reorders ({one_line(str(exc))}); "
                "predicted without them")
        return []
    finally:
        runner.teardown()
    return [layout_kernel(e) for e in elements]


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
    """(kernels, io) of a model as ``backend`` runs it: the graph cut by the backend's fusion rules, and the layout
    reorders the backend inserts (``_layout_kernels``); for torch,
    the batch norms eager runs (the export folded those after a convolution) in place of the graph's: after the
    cut, as nothing fuses with them there and the graph's links stay those of the graph."""
    from benchbench.analysis.kernel_graph import graph_kernels

    graph, file = _onnx_of(model, variant, config, seed)
    kernels = graph_kernels(graph, rules) + _layout_kernels(model, variant, file, graph, backend, config, seed)
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
    devices = _devices(args)
    predictors = {(b, d): load_predictor(b, threads, args.predictor, d) for b in backends for d in devices}
    for (backend, device), predictor in predictors.items():
        for name in names:
            for variant in variants if not _is_onnx_file(name) else ("deploy",):
                kernels, io = model_kernels(name, variant, backend, predictor.rules, PROFILES["default"], args.seed)
                p = predictor.predict(kernels, io)
                rows.append([name, variant, target_label(backend, device), f"{p['ms']:.3g}",
                             f"[{p['ms_low']:.3g}, {p['ms_high']:.3g}]", f"{p['t_rel']:.3g}", len(kernels)])
                details.append({"model": name, "variant": variant, "backend": backend,
                                **({"device": device} if device is not None else {}), **p})
    if args.json:
        print(json.dumps(details, indent=1))
        return 0
    print(tabulate(rows, ["model", "variant", "backend", "predicted ms", "95% interval", "x anchor", "kernels"],
                   tablefmt="simple"))
    for d in details:
        top = sorted(d["kernels"], key=lambda k: -k["t_rel"])[:args.top]
        total = d["t_rel"] or 1.0
        print(f"\n{d['model']} ({d['variant']}) on {target_label(d['backend'], d.get('device'))}: fixed cost "
              f"{d['fixed_rel'] / total:.0%}; "
              f"the {len(top)} costliest of {len(d['kernels'])} kernels:")
        print(tabulate([[k["op"], k["kind"], f"{k['t_rel'] / total:.1%}", f"{k['t_rel'] * d['ms'] / total:.3g}",
                         ", ".join(k["nodes"])] for k in top], ["kernel", "class", "share", "ms", "ONNX nodes"],
                       tablefmt="simple"))
    print("\n(predicted, not measured: 'x anchor' is in units of the lab anchor's latency at fit time)")
    return 0


def _devices(args, runs=()) -> list:
    """The cluster devices named (``--device``), else those ``runs`` were measured on, else ``[None]``: this
    machine."""
    if getattr(args, "device", None):
        return list(dict.fromkeys(args.device.split(",")))
    found = {c.spec.device for r in runs for c in r.cells}
    return sorted(found, key=lambda d: (d is not None, d or "")) or [None]


def _folder(args, slug: str) -> tuple[Path, list[Path]]:
    """The command's folder, and the sweeps an interrupted run of it left there to finish (``--resume``: the
    folder given; otherwise a new one, and none)."""
    if not getattr(args, "resume", None):
        return run_dir(Path(args.out), slug), []
    return Path(args.resume), sweep_folders(Path(args.resume))


# -- fit ---------------------------------------------------------------------------------------------------

def _sub_args(args, names: list[str], out: Path, evaluate: bool = False, resume: Path | None = None):
    """The namespace ``measure`` takes for one sweep of ``names`` (kernel nets, or zoo models to check), in a
    new folder under ``out`` or, to finish it, in the sweep folder ``resume``."""
    ns = argparse.Namespace(**vars(args))
    ns.sweep_names, ns.evaluate, ns.out = list(names), evaluate, str(out)
    ns.resume = str(resume) if resume is not None else None
    ns.model = ",".join(names[:3]) + ("..." if len(names) > 3 else "")
    ns.argv = [*getattr(args, "argv", sys.argv[1:])]
    return ns


def _measured(runs, keep, device: str | None = None, quiet: Mapping | None = None) -> dict:
    """The anchored cells ``keep`` selects among those measured on ``device`` (None: this machine). Each
    device's cells are read apart: their anchor's quiet latency, by which a disturbed round is told, is that
    machine's own. ``quiet``: per (backend, device), a quiet anchor (ms) known from elsewhere (the fit's, for a
    check), used where it is lower than the one these runs show."""
    from benchbench.analysis.anchored import anchored_cells

    docs = [r.to_dict() for r in runs]
    return anchored_cells([{**d, "cells": [c for c in d.get("cells", []) if c["spec"].get("device") == device]}
                           for d in docs], keep,
                          quiet={b: ms for (b, d), ms in (quiet or {}).items() if d == device})


def _is_kernel(cell) -> bool:
    return str(cell["spec"]["model"]).startswith("kern_")


def _is_zoo(cell) -> bool:
    from benchbench.results.load import DESIGNED_KINDS, model_kind

    return model_kind(cell.get("model") or {}) not in DESIGNED_KINDS


def _measure_anchored(args, names: list[str], folder: Path, keep, evaluate: bool = False, earlier=None,
                      quiet: Mapping | None = None):
    """(exit code, runs): ``names`` measured in anchored blocks; then, once, the cells every round of which ran
    while their group's anchor read disturbed (``analysis.anchored.DISTURBED`` above its quiet latency, or
    above ``quiet``'s where lower: see ``_measured``), on the backends that had any. A cell's quiet rounds
    count, from both measurements (``anchored_cells``). ``earlier``: the sweep folders of an interrupted
    command, in order (``--resume``); each sweep finishes the next of them, if any, instead of starting a
    folder of its own."""
    from benchbench.analysis.anchored import DISTURBED

    earlier = earlier if earlier is not None else []
    code, run = measure(_sub_args(args, names, folder, evaluate, earlier.pop(0) if earlier else None))
    runs = [run]
    if code >= 128:
        return code, runs
    again: dict[str, set] = {}
    for device in _devices(args):
        for backend, cells in _measured(runs, keep, device, quiet).items():
            again.setdefault(backend, set()).update(name for (name, _), rec in cells.items() if rec["disturbed"])
    again = {b: n for b, n in again.items() if n}
    if again:
        names = sorted({n for ns in again.values() for n in ns})
        _stderr(f"benchbench: {len(names)} nets on {', '.join(again)} ran while their anchor read more than "
                f"{DISTURBED:.0%} slower than its quiet latency (disturbed): measuring them again, once")
        sub = _sub_args(args, names, folder, evaluate, earlier.pop(0) if earlier else None)
        sub.backend = ",".join(again)
        retake, run = measure(sub)
        runs.append(run)
        code = retake if retake >= 128 else max(code, retake)
    return code, runs


def first_sweep(quick: bool, seed: int) -> list[str]:
    """The kernel nets ``predict --fit`` measures first, each once: the base nets (``kernelpoints.base_points``),
    then the sampled points of every class (``SWEEP``, or ``SWEEP_QUICK`` with ``--quick``)."""
    from benchbench.core.kernelpoints import base_points, sample_points

    counts = SWEEP_QUICK if quick else SWEEP
    return list(dict.fromkeys(p.name for p in base_points(quick) + sample_points(counts, seed)))


def _fit(args) -> int:
    from benchbench.build.cache import seal, write_json
    from benchbench.core.spec import physical_cores
    from benchbench.runners import resolve_backends

    start = time.monotonic()
    backends = resolve_backends(args.backend)
    threads = args.threads or physical_cores()
    counts = SWEEP_QUICK if args.quick else SWEEP
    folder, earlier = _folder(args, f"predict_{'+'.join(backends)}")
    if args.results:  # refit from sweeps measured before: nothing is measured
        from benchbench.results.load import load_run

        runs, code = [load_run(p) for p in args.results], 0
        devices = _devices(args, runs)
        docs = _fit_all(runs, backends, threads, start, devices)
        extra = []
    else:
        first = first_sweep(args.quick, args.seed)
        code, runs = _measure_anchored(args, first, folder, _is_kernel, earlier=earlier)
        if code >= 128:
            return code
        devices = _devices(args)
        docs = _fit_all(runs, backends, threads, start, devices)
        extra = _adaptive_points(docs, counts, args.seed + 1, exclude=set(first))
    if extra and not args.no_adapt:
        _stderr(f"benchbench: adaptive round: {len(extra)} more kernel nets where cross-validated error is high")
        code, more = _measure_anchored(args, extra, folder, _is_kernel, earlier=earlier)
        runs += more
        if code >= 128:
            return code
        docs = _fit_all(runs, backends, threads, start, devices)
    if not docs:
        _stderr("benchbench: error: no backend has enough kernel nets measured ok to fit a predictor")
        return 1
    from benchbench.analysis.predictor_report import predictor_markdown

    for (backend, device), doc in docs.items():
        seal(doc)
        write_json(predictor_path(backend, threads, device), doc)
        write_json(folder / predictor_file_name(backend, device), doc)
    write_atomic(folder / "predictor.md", predictor_markdown(list(docs.values())))
    for (backend, device), doc in docs.items():
        cv = doc["cv"]
        worst = sorted(cv.items(), key=lambda kv: kv[1]["within_10pct"])[:2]
        _stderr(f"{target_label(backend, device)}: {len(doc['points'])} kernel nets; fused chains: "
                f"{', '.join(k for k, r in doc['rules'].items() if r['fused']) or 'none'}; cross-validated within "
                f"±10%: " + ", ".join(f"{k} {v['within_10pct']:.0%}" for k, v in worst) + " (the two lowest)")
    print(f"\nwrote {folder / 'predictor.md'}\n      " + "\n      ".join(
        str(predictor_path(b, threads, d)) for b, d in docs))
    return code


def _fit_all(runs, backends, threads, start, devices) -> dict:
    """(backend, device) → the predictor document fitted on that device's kernel nets (device None: this
    machine's); a backend and device without enough nets measured ok is said on stderr and left out."""
    from benchbench.analysis.predictor import fit_document

    docs = {}
    for device in devices:
        measured = _measured(runs, _is_kernel, device)
        for backend in backends:
            cells = {name: rec for (name, _), rec in measured.get(backend, {}).items()}
            runtime = next((c.backend.get("runtime") for r in runs for c in r.cells
                            if c.spec.backend == backend and c.spec.device == device and c.ok and c.backend), None)
            identity = (predictor_identity(backend, threads) if device is None
                        else device_identity(runs, backend, threads, device))
            meta = {"identity": identity, **({"device": device} if device is not None else {}), "runtime": runtime,
                    "runs": [str(r.path) for r in runs], "fit_s": round(time.monotonic() - start, 1),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            try:
                docs[(backend, device)] = fit_document(cells, backend, meta)
            except ValueError as exc:
                where = "" if device is None else f" (device {device})"
                _stderr(f"benchbench: {one_line(str(exc))}{where}")
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
    from benchbench.analysis.predictor_report import evaluation, evaluation_markdown, fit_quiet_anchor_ms
    from benchbench.core import strictjson
    from benchbench.core.spec import PROFILES, physical_cores
    from benchbench.models import list_models, resolve_models
    from benchbench.results.load import load_run
    from benchbench.runners import resolve_backends

    backends = resolve_backends(args.backend)
    threads = args.threads or physical_cores()
    runs = [load_run(p) for p in args.results] if args.results else []
    devices = _devices(args, runs)
    predictors = {(b, d): load_predictor(b, threads, args.predictor, d)  # before measuring anything
                  for b in backends for d in devices}
    folder, earlier = _folder(args, f"predict_eval_{'+'.join(backends)}")
    # the anchor's quiet latency at fit time: a check spent entirely in the anchor's slow state is told by it
    quiet = {key: fit_quiet_anchor_ms(p.doc) for key, p in predictors.items()}
    if args.results:
        code = 0
    else:
        names = resolve_models(args.model)[0] if args.model else list_models("*", kind="zoo")
        code, runs = _measure_anchored(args, names, folder, _is_zoo, evaluate=True, earlier=earlier, quiet=quiet)
        if code >= 128:
            return code
    measured = {d: _measured(runs, _is_zoo, d, quiet) for d in devices}  # each device's cells, read once
    rows = {}
    for (backend, device), predictor in predictors.items():
        label = target_label(backend, device)
        rows[label] = []
        for (name, variant), rec in sorted(measured[device].get(backend, {}).items()):
            try:
                kernels, io = model_kernels(name, variant, backend, predictor.rules, PROFILES["default"], args.seed)
            except UsageError as exc:
                _stderr(f"benchbench: {name} ({variant}) not predicted: {exc}")
                continue
            p = predictor.predict(kernels, io)
            rows[label].append({"model": name, "variant": variant, "family": rec["model"].get("family"),
                                  "flops": rec["model"].get("flops"), "measured_rel": rec["t_rel"],
                                  "measured_ms": rec["t_ms"], "anchor_ms": rec["anchor_ms"],
                                  "disturbed": rec["disturbed"], **{
                                      k: p[k] for k in ("t_rel", "t_rel_low", "t_rel_high", "ms")},
                                  "by_kind": _by_kind(p["kernels"])})
    doc = evaluation(rows, {target_label(b, d): p.doc for (b, d), p in predictors.items()})
    doc["runs"] = [str(r.path) for r in runs]
    write_atomic(folder / "predictor_eval.json", strictjson.dumps(doc, indent=1, default=str))
    write_atomic(folder / "predictor_eval.md", evaluation_markdown(doc))
    for backend, s in doc["backends"].items():
        if not s["n"]:
            print(f"{backend}: no zoo or plugin model measured ok, nothing to check")
            continue
        loud = (f" ({s['n_disturbed']} disturbed, left out of the anchor-relative figures: with them "
                f"{s['within_10pct_rel_all']:.0%})") if s["n_disturbed"] else ""
        print(f"{backend}: {s['n']} cells{loud}; within ±10% anchor-relative {s['within_10pct_rel']:.0%} (median error "
              f"{s['median_abs_error_rel']:.0%}), absolute {s['within_10pct_abs']:.0%} "
              f"({s['median_abs_error_abs']:.0%}); "
              f"FLOPs-only {s['flops_only_within_10pct_rel']:.0%}")
        if not s["anchor"]["steady"]:
            a = s["anchor"]
            print(f"  {backend}: the anchor was not steady ({a['fit']['median']:.3g} ms at fit, {a['now']['median']:.3g} "
                  f"now: {a['shift']:+.0%} where the models moved {a['cells_shift']:+.0%}; its groups "
                  f"{a['now']['p10']:.3g}-{a['now']['p90']:.3g} ms now): the anchor-relative figures compare its "
                  "states as much as the models")
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
    if args.resume:
        args = resumed_predict(args)
    if args.fit and args.evaluate:
        raise UsageError("--fit and --evaluate are two steps: fit first, then evaluate")
    if args.scheduler and not (args.fit or args.evaluate):
        raise UsageError("--scheduler measures on a cluster: it goes with --fit or --evaluate (predicting measures "
                         "nothing; --device alone picks a device's stored predictor)")
    if args.scheduler and not args.device:
        raise UsageError("a predictor is one machine's: with --scheduler, name the devices to measure on with "
                         "--device NAME[,NAME] (one predictor each)")
    if args.device and (args.fit or args.evaluate) and not (args.scheduler or args.results):
        raise UsageError("--device with --fit or --evaluate measures on a cluster's devices: it needs --scheduler "
                         "tls://HOST:PORT (or --results of a cluster sweep)")
    if args.fit:
        return _fit(args)
    if args.evaluate:
        return _evaluate(args)
    return _predict(args)
