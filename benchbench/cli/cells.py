"""The cells a ``run``, ``profile`` or ``claim`` command line asks for: the sampling policy, and every zoo model
and model file on every backend (and cluster device), with what is asked checked before what is installed."""

from __future__ import annotations

import sys

from .errors import UsageError, one_line
from .parser import sampling_dests

__all__ = ["config_from", "cells_from"]


def _stderr(msg: str) -> None:
    """One line on stderr: a path or name in it (a folder named with a newline) is escaped."""
    print(one_line(msg), file=sys.stderr, flush=True)


def config_from(args):
    """The sampling policy: the ``--sampling`` profile, with any sampling flag given on top of it."""
    from benchbench.core.spec import PROFILES

    config = PROFILES[args.sampling or "default"]
    changes = {name: getattr(args, name) for name in sampling_dests() if getattr(args, name, None) is not None}
    config = config.replace(**changes) if changes else config
    if config.min_s > config.max_s:  # checked on the profile's values too: --min-time 20 alone exceeds 10 s
        raise UsageError(f"the minimum sampling time ({config.min_s:g} s, --min-time) exceeds the maximum "
                         f"({config.max_s:g} s, --max-time)")
    return config.replace(process_sd=process_sd_for(getattr(args, "threads", None)))


def process_sd_for(threads: int | None) -> float | None:
    """The between-process term ``benchbench doctor`` cached for this machine at ``threads`` (default: the
    physical cores), or None (the paired intervals then add ``estimates.PROCESS_SD``). The term used is the
    measurement's one-sided 80% upper bound, not its point estimate: from a handful of sessions the point
    estimate is often low (8 sessions here read 0.40% where 6 one-pair A/A trials showed 0.86%, and a noise
    benchmark's interval then missed), so a short measurement errs wide and a longer one tightens it."""
    from benchbench.core.spec import physical_cores
    from benchbench.measure.doctor import cached_process_sd

    entry = cached_process_sd(threads or physical_cores())
    return None if entry is None else float(entry["upper80"])


def cells_from(args):
    """The cells asked for (zoo models and model files, or the lab's or predict's designed nets, on every backend
    and device) and the model names."""
    maker = {"lab": lab_cells, "predict": predict_cells}.get(args.command, _run_cells)
    cells, names = maker(args)
    if devices := getattr(args, "device", None):  # one copy of every cell per cluster target
        from benchbench.core.spec import CellSpec

        cells = [CellSpec(**{**c.__dict__, "device": d}) for d in dict.fromkeys(devices.split(",")) for c in cells]
    return cells, names


def _run_cells(args):
    """``run``'s cells: zoo models and model files on every backend (``cells_from`` adds the devices)."""
    from benchbench.build.files import file_cells, is_artifact
    from benchbench.core.spec import CellSpec, physical_cores
    from benchbench.models import VARIANTS, model_info, resolve_models
    from benchbench.runners import resolve_backends

    parts = args.model.split(",")
    files = [p for p in parts if is_artifact(p)]
    zoo = ",".join(p for p in parts if p not in files)
    quantize, calibration = getattr(args, "quantize", None), getattr(args, "calibration_data", None)
    if (args.vs or args.input_shape or args.input_data or quantize or calibration) and not files:
        raise UsageError("--vs, --input-shape, --input-data, --quantize and --calibration-data apply to a model file "
                         "(.onnx, .tflite, .xml) given with --model")
    names, notes = resolve_models(zoo) if zoo else ([], [])
    for note in notes:
        _stderr(f"note: {note}")
    backends = resolve_backends(args.backend)
    # A mistake in what was asked is reported before what is installed: a typo must not hide behind a
    # missing package.
    _check_options(args.options, backends)
    available = _available(backends, cluster=bool(getattr(args, "scheduler", None)))
    threads = args.threads or physical_cores()
    variants = {"both": VARIANTS, "all": (*VARIANTS, "int8")}.get(args.variant, (args.variant,))
    options = tuple(sorted(args.options))
    cells = []
    for name in names:
        info = model_info(name)
        if args.input_size and min(args.input_size) < info.min_input:
            _stderr(f"note: {name} needs inputs of at least {info.min_input}; "
                    f"{args.input_size[0]}x{args.input_size[1]} is recorded as unsupported")
        # one network: its train and deploy forms are measured once (an int8 form is another network)
        forms = tuple(dict.fromkeys("deploy" if v == "train" else v for v in variants)) if info.identical_forms \
            and len(variants) > 1 else variants
        if args.variant == "all" and info.kind in ("guideline", "lab", "kernel"):  # designed nets stay float
            forms = tuple(v for v in forms if v != "int8")
        for backend in backends:
            for variant in forms:
                cells.append(CellSpec(name, variant, backend, args.batch, args.input_size, threads, args.seed, options))
    if files:
        file_specs, file_names = file_cells(files, args.vs, backends, available, shapes=args.input_shape,
                                            batch=args.batch, size=args.input_size, input_data=args.input_data,
                                            threads=threads, seed=args.seed, options=options,
                                            quantize=quantize, calibration_data=calibration)
        cells += file_specs
        names += file_names
    return cells, names


def _available(backends: list[str], cluster: bool) -> dict[str, bool]:
    """Which backends are installed here; a missing one is noted (its cells are recorded unavailable), and none
    at all is an error, unless a cluster's workers measure (they may have them)."""
    from benchbench.runners import get_runner

    available = {}
    for b in backends:
        ok, why = get_runner(b).is_available()
        available[b] = ok
        if not ok:
            _stderr(f"note: {why}; its cells are recorded as unavailable")
    if not any(available.values()) and not cluster:
        raise UsageError(f"no requested backend is available: {'; '.join(get_runner(b).is_available()[1] for b in backends)}")
    return available


def _check_options(options: list[tuple[str, str]], backends: list[str]) -> None:
    """Each --option must be known to at least one requested backend, with an allowed value."""
    from benchbench.runners import get_runner

    known = {b: get_runner(b).OPTIONS for b in backends}
    for key, value in options:
        takers = {b: opts[key] for b, opts in known.items() if key in opts}
        if not takers:
            offered = sorted({f"{k} ({b})" for b, opts in known.items() for k in opts})
            raise UsageError(f"unknown option '{key}' for {', '.join(backends)}"
                             + (f"; known: {', '.join(offered)}" if offered else "; these backends take no options"))
        for b, allowed in takers.items():
            if allowed and value.lower() not in allowed:
                raise UsageError(f"option {key}={value} for {b}: choose from {', '.join(allowed)}")


def lab_cells(args):
    """``benchbench lab``: the design's points (the quick design with ``--quick``; its first ``--points``) in
    blocks of ``BLOCK_POINTS``, each block led by its own copy of the anchor net, on every backend. Points go to
    blocks in turn (point i to block i mod the block count), so that each block mixes kinds and sizes."""
    from benchbench.core.labpoints import ANCHOR_NAME, BLOCK_POINTS, DESIGN, DESIGN_QUICK

    points = list(DESIGN_QUICK if args.quick else DESIGN)[: args.points]
    variant = "int8" if getattr(args, "int8", False) else "deploy"  # --int8: each runtime's int8 form of every net
    return anchored_blocks(args, points, (variant,), BLOCK_POINTS), [ANCHOR_NAME, *points]


def anchored_blocks(args, names: list[str], variants: tuple[str, ...], per_block: int) -> list:
    """Cells of ``names`` (each in every one of ``variants``) on every backend of ``args.backend``, in lockstep
    blocks of ``per_block`` names, each block led by its own copy of the anchor net (in the one variant, else
    deploy). Names go to blocks in turn (name i to block i mod the block count), so that each block mixes kinds
    and sizes."""
    from benchbench.core.labpoints import ANCHOR_NAME
    from benchbench.core.spec import CellSpec, physical_cores
    from benchbench.runners import resolve_backends

    backends = resolve_backends(args.backend)
    _available(backends, cluster=bool(getattr(args, "scheduler", None)))
    threads = args.threads or physical_cores()
    n_blocks = max(1, -(-len(names) // per_block))
    blocks = [names[b::n_blocks] for b in range(n_blocks)]
    return [CellSpec(name, variant, backend, 1, None, threads, args.seed, (), block=b)
            for backend in backends for b, members in enumerate(blocks)
            for name, variant in [(ANCHOR_NAME, variants[0] if len(variants) == 1 else "deploy")]
            + [(m, v) for m in members for v in variants]]


def predict_cells(args):
    """``benchbench predict --fit`` and ``--evaluate``: the names the command put in ``args.sweep_names`` (kernel
    nets, or the zoo models to check), in anchored blocks of four nets (two models in both forms with
    ``--variant both``)."""
    from benchbench.core.labpoints import ANCHOR_NAME

    names = list(args.sweep_names)
    if not args.evaluate:
        variants = ("deploy",)  # a kernel net's forms are one network
    else:
        variants = ("train", "deploy") if args.variant == "both" else (args.variant,)
    return anchored_blocks(args, names, variants, 4 // len(variants)), [ANCHOR_NAME, *names]
