"""The ``benchbench`` command line: run, list, compare.

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
    p.add_argument("--quick", action="store_true", help="short warm-up and sampling, for smoke runs")
    p.add_argument("--min-time", type=float, help="minimum sampling time per cell (s)")
    p.add_argument("--max-time", type=float, help="maximum sampling time per cell (s)")
    p.add_argument("--target-ci", type=float, help="stop once the median's 95%% CI half-width is within this fraction")
    p.add_argument("--cell-timeout", type=float, help="kill a worker after this many seconds")


def _config(args):
    from .spec import QUICK, MeasureConfig

    config = QUICK if args.quick else MeasureConfig()
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
    available = {}
    for b in backends:
        ok, why = get_runner(b).is_available()
        available[b] = ok
        if not ok:
            print(f"note: {why}; its cells are recorded as unavailable", file=sys.stderr)
    if not any(available.values()):
        raise UsageError(f"no requested backend is available: {'; '.join(get_runner(b).is_available()[1] for b in backends)}")
    if args.batch < 1:
        raise UsageError("--batch must be at least 1")
    threads = args.threads or physical_cores()
    variants = VARIANTS if args.variant == "both" else (args.variant,)
    options = tuple(sorted(args.option))
    cells = []
    for name in names:
        info = model_info(name)
        if args.input_size and min(args.input_size) < info.min_input:
            print(f"note: {name} needs inputs of at least {info.min_input}; "
                  f"{args.input_size[0]}x{args.input_size[1]} is recorded as unsupported", file=sys.stderr)
        for backend in backends:
            for variant in variants:
                cells.append(CellSpec(name, variant, backend, args.batch, args.input_size, threads, args.seed, options))
    return cells, names


def cmd_run(args) -> int:
    from .env import environment
    from .harness import run_sweep
    from .report import terminal_table, write_reports
    from .result import RunResult

    cells, names = _cells(args)
    config = _config(args)
    slug = names[0] if len(names) == 1 else f"{len(names)}models"
    out_dir = _run_dir(Path(args.out), f"{slug}_{args.backend.replace(',', '+')}")
    meta = {
        "benchbench_version": __version__,
        "argv": ["benchbench", *sys.argv[1:]],
        "environment": environment(),
        "settings": config.__dict__,
    }
    run = RunResult(meta=meta, path=out_dir / "results.json")
    run.save()
    print(f"benchbench: {len(cells)} cells ({len(names)} models), results in {out_dir}", file=sys.stderr)
    interrupted = False
    try:
        run_sweep(cells, config, run)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: the cells finished so far are saved", file=sys.stderr)
    paths = write_reports(run, out_dir)
    print(terminal_table(run))
    print(f"\nwrote {run.path}\n      {paths['csv']}\n      {paths['markdown']}")
    if interrupted:
        return 130
    broken = [c for c in run.cells if c.status in ("crashed", "timeout", "error")]
    return 1 if broken else 0


def cmd_list(args) -> int:
    from tabulate import tabulate

    from benchbench.models import list_models, model_info
    from benchbench.runners import get_runner, list_runners, runner_entry

    what = args.what or "all"
    if what in ("all", "models"):
        body = []
        for name in list_models(args.pattern or "*"):
            info = model_info(name)
            body.append([name, info.family, "x".join(map(str, info.input_size[1:])), str(info.paper),
                         "default" if info.default else ""])
        print(tabulate(body, ["model", "family", "input", "paper", ""], tablefmt="simple"))
        print(f"{len(body)} models\n")
    if what in ("all", "backends"):
        body = []
        for name in list_runners():
            cls = get_runner(name)
            ok, why = cls.is_available()
            body.append([name, ", ".join(runner_entry(name).aliases), "yes" if ok else "no", cls.description,
                         "" if ok else why])
        print(tabulate(body, ["backend", "aliases", "installed", "what", "to install"], tablefmt="simple"))
    return 0


def cmd_compare(args) -> int:
    from .compare import compare_runs, comparison_markdown
    from .result import load_run

    a, b = load_run(args.a), load_run(args.b)
    comparisons = compare_runs(a, b, threshold=args.threshold / 100, alpha=args.alpha)
    text = comparison_markdown(comparisons, Path(args.a).parent.name or "A", Path(args.b).parent.name or "B")
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="benchbench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"benchbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="measure models on backends (train and deploy forms)")
    _add_measure_args(p)
    p.add_argument("--out", default=str(DEFAULT_OUT), help="directory for the run's folder (default: reports/runs)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("list", help="list models and backends")
    p.add_argument("what", nargs="?", choices=["models", "backends", "all"])
    p.add_argument("pattern", nargs="?", help="fnmatch pattern for models")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("compare", help="compare two result files: ratios, Mann-Whitney U, geometric mean")
    p.add_argument("a", help="baseline results.json")
    p.add_argument("b", help="candidate results.json")
    p.add_argument("--threshold", type=float, default=5.0, help="percent change below which cells count as same")
    p.add_argument("--alpha", type=float, default=0.01, help="significance level of the U test")
    p.add_argument("--output", help="also write the Markdown table here")
    p.set_defaults(func=cmd_compare)
    return parser


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
