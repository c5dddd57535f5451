"""The ``benchbench`` command line: run, profile, list, compare, claim, doctor.

User mistakes (unknown names, missing packages, unreadable files) end with one line on stderr and
exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import re
import sys
from pathlib import Path

from . import __version__
from .registry import UnknownNameError

__all__ = ["main"]

DEFAULT_OUT = Path("reports") / "runs"


class UsageError(Exception):
    """A mistake in what the user asked for; printed as one line, exit code 2."""


def _input_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)(?:[x,](\d+))?", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"expected N or HxW, got '{text}'")
    h = int(m.group(1))
    return h, int(m.group(2) or h)


def _option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got '{text}'")
    return key.strip(), value.strip()


def _run_dir(base: Path, slug: str) -> Path:
    """A new directory per run; never reuses an existing one, so no earlier run is overwritten."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", slug).strip("-")[:60] or "run"
    path = base / f"{stamp}_{slug}"
    n = 2
    while path.exists():
        path = base / f"{stamp}_{slug}-{n}"
        n += 1
    path.mkdir(parents=True)
    return path


def _add_measure_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", required=True,
                   help="names, globs ('repvgg_*'), family names, or path/to/file.py:factory; comma-separated")
    p.add_argument("--backend", "-b", default="torch",
                   help="torch, torch-cuda, ort, ort-cuda, openvino (ov), tflite (litert); comma-separated")
    p.add_argument("--variant", choices=["both", "train", "deploy"], default="both")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--input-size", type=_input_size, default=None, help="N or HxW (default: the model's)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: physical cores)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the input")
    p.add_argument("--option", "-o", type=_option, action="append", default=[], metavar="KEY=VALUE",
                   help="backend option, e.g. precision=bf16 (repeatable)")
    p.add_argument("--quick", action="store_const", const="quick", dest="sampling",
                   help="short warm-up and sampling, for smoke runs (= --sampling quick)")
    p.add_argument("--sampling", choices=["default", "quick", "reference"], default="default",
                   help="sampling profile: default, quick (smoke runs), reference (the reference report's: "
                        "3 s cap per cell)")
    p.add_argument("--rounds", type=int, default=1,
                   help="measure every comparison group N times, each in fresh workers, in sweeps of alternating "
                        "direction; intervals are built over every round's blocks")
    p.add_argument("--lockstep", choices=["auto", "backend", "off"], default="auto",
                   help="which cells take turns block by block: auto = train/deploy pairs and guideline tables; "
                        "backend = also one model on every backend; off = each cell alone (default: auto)")
    p.add_argument("--min-time", type=float, help="minimum sampling time per cell (s)")
    p.add_argument("--max-time", type=float, help="maximum sampling time per cell (s)")
    p.add_argument("--target-ci", type=float, help="stop once the median's 95%% CI half-width is within this fraction")
    p.add_argument("--cell-timeout", type=float, help="kill a worker after this many seconds")


def _config(args):
    from .spec import QUICK, REFERENCE, MeasureConfig

    config = {"quick": QUICK, "reference": REFERENCE}.get(args.sampling, MeasureConfig())
    changes = {k: v for k, v in {"min_s": args.min_time, "max_s": args.max_time, "target_ci": args.target_ci,
                                 "cell_timeout_s": args.cell_timeout}.items() if v is not None}
    return config.replace(**changes) if changes else config


def _cells(args):
    from benchbench.models import VARIANTS, model_info, resolve_models
    from benchbench.runners import get_runner, resolve_backends

    from .spec import CellSpec, physical_cores

    names, notes = resolve_models(args.model)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    backends = resolve_backends(args.backend)
    # A mistake in what was asked is reported before what is installed: a typo must not hide behind a
    # missing package.
    if args.batch < 1:
        raise UsageError("--batch must be at least 1")
    _check_options(args.option, backends)
    available = {}
    for b in backends:
        ok, why = get_runner(b).is_available()
        available[b] = ok
        if not ok:
            print(f"note: {why}; its cells are recorded as unavailable", file=sys.stderr)
    if not any(available.values()):
        raise UsageError(f"no requested backend is available: {'; '.join(get_runner(b).is_available()[1] for b in backends)}")
    threads = args.threads or physical_cores()
    variants = VARIANTS if args.variant == "both" else (args.variant,)
    options = tuple(sorted(args.option))
    cells = []
    for name in names:
        info = model_info(name)
        if args.input_size and min(args.input_size) < info.min_input:
            print(f"note: {name} needs inputs of at least {info.min_input}; "
                  f"{args.input_size[0]}x{args.input_size[1]} is recorded as unsupported", file=sys.stderr)
        forms = ("deploy",) if info.identical_forms and len(variants) > 1 else variants  # one network: measure once
        for backend in backends:
            for variant in forms:
                cells.append(CellSpec(name, variant, backend, args.batch, args.input_size, threads, args.seed, options))
    return cells, names


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


def cmd_run(args) -> int:
    return _run(args)[0]


def _run(args, rounds=None):
    """Measure, write the reports, print the table; returns (exit code, run).

    ``rounds``: rounds per cell spec (a callable), overriding ``--rounds``.
    """
    from .calibration import calibrate_run
    from .env import environment
    from .harness import run_sweep
    from .report import terminal_table, write_reports
    from .result import RunResult

    cells, names = _cells(args)
    config = _config(args)
    if args.rounds < 1:
        raise UsageError("--rounds must be at least 1")
    from .machine import busy_warning, machine_state

    state = machine_state(0.5, threads=max(c.threads for c in cells))
    if warning := busy_warning(state):
        print(f"benchbench: {warning}", file=sys.stderr)
    rounds = rounds or args.rounds
    slug = names[0] if len(names) == 1 else f"{len(names)}models"
    out_dir = _run_dir(Path(args.out), f"{slug}_{args.backend.replace(',', '+')}")
    meta = {
        "benchbench_version": __version__,
        "argv": ["benchbench", *sys.argv[1:]],
        "environment": environment(),
        "settings": config.__dict__,
        "rounds": getattr(rounds, "__doc__", None) if callable(rounds) else rounds,
        "lockstep": args.lockstep,
        "machine_before": state,
    }
    run = RunResult(meta=meta, path=out_dir / "results.json")
    run.save()
    print(f"benchbench: {len(cells)} cells ({len(names)} models), results in {out_dir}", file=sys.stderr)
    interrupted = False
    try:
        calibrate_run(cells, run, args.roofline, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
        run_sweep(cells, config, run, rounds=rounds, lockstep=args.lockstep)
        if args.profile:  # after the sweep, in separate workers: no profiler touches the timed samples
            from .profile import profile_run

            profile_run(run, config, runs=args.profile_runs)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: the cells finished so far are saved", file=sys.stderr)
    paths = write_reports(run, out_dir)
    print(terminal_table(run))
    if args.profile:
        from .profile import profile_table, write_profiles

        paths["profiles"] = write_profiles(run, out_dir / "profile.md")
        if args.command == "profile":
            for cell in run.cells:
                if cell.ok:
                    print("\n" + profile_table(cell, top=args.top))
    print(f"\nwrote {run.path}\n      {paths['csv']}\n      {paths['markdown']}"
          + (f"\n      {paths['profiles']}" if "profiles" in paths else ""))
    if interrupted:
        return 130, run
    broken = [c for c in run.cells if c.status in ("crashed", "timeout", "error")]
    return (1 if broken else 0), run


def cmd_list(args) -> int:
    from tabulate import tabulate

    from benchbench.models import list_models, model_info
    from benchbench.runners import get_runner, list_runners, runner_entry

    what = args.what or "all"
    if what in ("all", "models"):
        body = []
        for name in list_models(args.pattern or "*"):
            info = model_info(name)
            body.append([name, info.family, "x".join(map(str, info.input_size)), str(info.paper),
                         "default" if info.default else ""])
        print(tabulate(body, ["model", "family", "input", "paper", ""], tablefmt="simple"))
        print(f"{len(body)} models\n")
    if what in ("all", "backends"):
        body = []
        for name in list_runners():
            try:
                cls = get_runner(name)
            except UnknownNameError:
                body.append([name, ", ".join(runner_entry(name).aliases), "no", "not implemented in this version", ""])
                continue
            ok, why = cls.is_available()
            body.append([name, ", ".join(runner_entry(name).aliases), "yes" if ok else "no", cls.description,
                         "" if ok else why])
        print(tabulate(body, ["backend", "aliases", "installed", "what", "to install"], tablefmt="simple"))
    return 0


def _percent(text: str) -> float:
    try:
        return float(text.strip().rstrip("%")) / 100
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage such as 5%, got '{text}'") from None


def cmd_compare(args) -> int:
    from .compare import compare_runs, comparison_markdown, pivot, regressions
    from .result import load_run

    a = load_run(args.a)
    if args.pivot:
        if args.b:
            raise UsageError("--pivot compares within one file; give only one")
        try:
            pairs = pivot(a, args.pivot, args.baseline)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    else:
        if not args.b:
            raise UsageError("compare needs two result files, or one with --pivot variant|backend")
        pairs = [("", a, load_run(args.b))]
    texts, failing = [], []
    for label, run_a, run_b in pairs:
        comparisons = compare_runs(run_a, run_b, threshold=args.threshold / 100, alpha=args.alpha)
        names = label.split(" → ") if label else [Path(args.a).parent.name or "A", Path(args.b).parent.name or "B"]
        texts.append((f"## {label}\n\n" if label else "") + comparison_markdown(comparisons, *names))
        if args.fail_above is not None:
            failing += regressions(comparisons, args.fail_above)
    text = "\n\n".join(texts)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    if failing:
        print(f"benchbench: {len(failing)} cells slower by more than {100 * args.fail_above:g}%: "
              + ", ".join(c.label for c in failing), file=sys.stderr)
        return 1
    return 0


# `benchbench claim --reference`: what the committed reference report measures, and where it lands.
REFERENCE_MODELS = "*"  # the whole zoo and the guideline nets
REFERENCE_BACKENDS = "torch,ort,tflite,openvino"
REFERENCE_DIR = Path("reports") / "reference"
# Every compared cell of the reference sweep is measured in lockstep (train/deploy pairs, guideline
# tables), so a slow phase of the machine hits both sides of a ratio alike; one round each.
REFERENCE_ROUNDS = 1


def _reference_args(args) -> None:
    """Turn ``claim --reference`` into the reference sweep's settings; refuse what would change it."""
    if args.results or args.model or args.backend is not None or args.sampling != "default" or args.rounds != 1:
        raise UsageError("--reference measures a fixed set (every model on torch, ort, tflite, openvino); "
                         "drop result files, --model, --backend, --quick and --rounds, or leave out --reference")
    args.model, args.backend, args.sampling, args.roofline = REFERENCE_MODELS, REFERENCE_BACKENDS, "reference", "fresh"


def publish_reference(run_dir: Path, dest: Path) -> Path:
    """Replace ``dest`` with a finished run folder (results, reports, claim, plots); the run folder stays."""
    import shutil

    staging = dest.with_name(dest.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(run_dir, staging)
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    return dest


def cmd_claim(args) -> int:
    import json

    from .analysis.claim import analyze, claim_markdown, guideline_tables
    from .result import load_run

    if args.reference:
        _reference_args(args)
    if args.results:
        runs = [load_run(p) for p in args.results]
        out_dir = _run_dir(Path(args.out), "claim")
    else:
        args.backend = args.backend or "ort"
        args.model = ",".join(filter(None, [args.model, "g*"]))  # the guideline nets, plus any zoo models
        code, run = _run(args, rounds=REFERENCE_ROUNDS if args.reference else None)
        if code == 130:
            return code
        runs, out_dir = [run], run.path.parent
    analysis = analyze(runs)
    (out_dir / "claim.md").write_text(claim_markdown(analysis, out_dir, runs))
    (out_dir / "claim.json").write_text(json.dumps({k: v for k, v in analysis.items() if k != "observations"},
                                                   indent=1, default=str))
    verdicts = [f"  {b['verdict']}" for b in analysis["per_backend"].values()]
    print("\n".join(["", "Does fragmentation explain latency better than FLOPs?"]
                    + (verdicts or ["  (no zoo cells measured: the guideline nets only fill the tables)"])))
    if analysis["guidelines"]:  # the x1 tables here; every width is in claim.md
        print("\n" + "\n".join(guideline_tables(analysis["guidelines"], multipliers=(1,))))
    print(f"\nwrote {out_dir / 'claim.md'} (with plots in {out_dir / 'plots'})")
    if args.reference:
        print(f"published the reference report: {publish_reference(out_dir, Path(args.out).parent / REFERENCE_DIR.name)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="benchbench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"benchbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="measure models on backends (train and deploy forms)")
    _add_measure_args(p)
    p.add_argument("--out", default=str(DEFAULT_OUT), help="directory for the run's folder (default: reports/runs)")
    p.add_argument("--roofline", choices=["cached", "fresh", "off"], default="cached",
                   help="calibrate peak GFLOP/s and bandwidth per backend first; cached reuses one under 24 h old")
    p.add_argument("--profile", action="store_true",
                   help="also profile each ok cell per operator, in separate workers (written to profile.md)")
    p.add_argument("--profile-runs", type=int, default=10, help="profiled inferences per op (its time is their median)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("profile", help="measure, then print a per-operator profile of each cell")
    _add_measure_args(p)
    p.add_argument("--out", default=str(DEFAULT_OUT), help="directory for the run's folder (default: reports/runs)")
    p.add_argument("--profile-runs", type=int, default=10, help="profiled inferences per op (its time is their median)")
    p.add_argument("--top", type=int, default=25, help="show the slowest N ops per cell (0: all)")
    p.set_defaults(func=cmd_run, profile=True, roofline="off")

    p = sub.add_parser("list", help="list models and backends")
    p.add_argument("what", nargs="?", choices=["models", "backends", "all"])
    p.add_argument("pattern", nargs="?", help="fnmatch pattern for models")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("compare", help="compare two result files: ratios, Mann-Whitney U, geometric mean")
    p.add_argument("a", help="baseline results.json")
    p.add_argument("b", nargs="?", help="candidate results.json (omit with --pivot)")
    p.add_argument("--pivot", choices=["variant", "backend"], help="compare within one file: train vs deploy, "
                   "or each backend against --baseline")
    p.add_argument("--baseline", help="with --pivot backend: the reference backend (default: the file's first)")
    p.add_argument("--fail-above", type=_percent, metavar="PCT",
                   help="exit 1 if any cell is significantly slower by more than PCT (e.g. 5%%)")
    p.add_argument("--threshold", type=float, default=5.0, help="percent change below which cells count as same")
    p.add_argument("--alpha", type=float, default=0.01, help="significance level of the U test")
    p.add_argument("--output", help="also write the Markdown table here")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("claim", help="FLOPs vs fragmentation: correlations, held-out models, guideline tables")
    p.add_argument("results", nargs="*", help="result files to analyze; none: measure the guideline nets now")
    p.add_argument("--model", "-m", default="", help="zoo models to measure beside the guideline nets")
    p.add_argument("--backend", "-b", default=None, help="backends to measure on (comma-separated; default: ort)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="directory for the report's folder")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: physical cores)")
    p.add_argument("--quick", action="store_const", const="quick", dest="sampling", default="default",
                   help="short warm-up and sampling, for smoke runs")
    p.add_argument("--reference", action="store_true",
                   help=f"regenerate the reference report: every model on {REFERENCE_BACKENDS} with the reference "
                        f"sampling, published to reports/{REFERENCE_DIR.name}/ (beside the --out folder)")
    p.add_argument("--rounds", type=int, default=1,
                   help="measure every comparison group N times, each in fresh workers (intervals use every round)")
    p.set_defaults(func=cmd_claim, variant="both", batch=1, input_size=None, seed=0, option=[], min_time=None, lockstep="auto",
                   max_time=None, target_ci=None, cell_timeout=None, roofline="cached", profile=False)

    p = sub.add_parser("doctor", help="machine check: load, steal, busy processes, and an A/A comparison")
    p.add_argument("--model", "-m", default="resnet18", help="model of the A/A comparison (default: resnet18)")
    p.add_argument("--backend", "-b", default="ort", help="backend of the A/A comparison (default: ort)")
    p.add_argument("--variant", choices=["train", "deploy"], default="deploy")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: physical cores)")
    p.add_argument("--max-time", type=float, default=5.0, help="A/A sampling cap per worker, seconds (default: 5)")
    p.add_argument("--no-aa", action="store_true", help="machine state only, no A/A comparison")
    p.set_defaults(func=cmd_doctor)
    return parser


def cmd_doctor(args) -> int:
    """Print the machine's state and an A/A comparison; exit 1 if the A/A interval excludes 1.00."""
    from benchbench.models import resolve_models
    from benchbench.runners import get_runner, resolve_backends

    from .machine import busy_warning, machine_state
    from .spec import CellSpec, MeasureConfig, physical_cores

    threads = args.threads or physical_cores()
    names, _ = resolve_models(args.model)
    backend = resolve_backends(args.backend)[0]
    if args.threads is not None and args.threads < 1:
        raise UsageError("--threads must be at least 1")
    state = machine_state(1.0, threads)
    share = lambda v: "not readable" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    print(f"load average (1 min)      {state['load_avg_1m']:.2f} on {state['cores_logical']} logical / "
          f"{state['cores_physical']} physical cores; {threads} threads asked")
    print(f"CPU used by others (1 s)  {share(state['others_cpu_share'])}")
    print(f"VM steal (1 s)            {share(state['steal_share'])}")
    print(f"frequency governor        {state['governor'] or 'not readable'}; turbo {state['turbo'] or 'not readable'}")
    for b in state["busy_processes"]:
        print(f"busy: pid {b['pid']} at {100 * b['cpu']:.0f}% of a CPU: {b['command']}")
    if warning := busy_warning(state):
        print(warning)
    if args.no_aa:
        return 0
    ok, why = get_runner(backend).is_available()
    if not ok:
        raise UsageError(why)
    from .doctor import aa_check

    spec = CellSpec(names[0], args.variant, backend, threads=threads)
    config = MeasureConfig(max_s=args.max_time)
    print(f"\nA/A: {spec.label()} in two workers, in lockstep ...", flush=True)
    result = aa_check(spec, config)
    if result.estimate is None:
        print(f"A/A could not run: {result.reason}")
        return 1
    e = result.estimate
    print(f"A/A ratio {e.value:.4f} [{e.low:.4f}, {e.high:.4f}] over {e.units} rounds "
          f"({result.median_ms:.3f} ms per inference; {e.rule}; waited {share(result.wait_share)})")
    print(f"smallest difference resolvable now: about ±{100 * e.half_width:.1f}%"
          + ("" if result.contains_one else "  — the interval excludes 1.00: this machine's noise is not "
             "stationary enough for lockstep comparisons right now"))
    return 0 if result.contains_one else 1


def main(argv: list[str] | None = None) -> int:
    from .result import SchemaError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UnknownNameError, UsageError, SchemaError) as exc:
        print(f"benchbench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
