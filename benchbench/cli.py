"""The ``benchbench`` command line: run, profile, report, list, compare, claim, doctor, cache.

User mistakes (bad option values, unknown names, missing packages, unreadable or malformed files, a model
file that does not load) end with one line on stderr, ``benchbench: error: ...``, and exit code 2, never a
traceback. Exit codes:

* 0: done;
* 1: ``run``/``profile`` (and ``claim`` when it measures) had broken cells (crashed, timed out, lost on a cluster, or an error not of the model's making) or a
  parity failure (unless ``--allow-parity-fail``); ``compare --fail-above`` found a regression; ``doctor``'s
  A/A interval excludes 1.00;
* 2: a mistake in what was asked, or a user error: a model whose factory or eager forward fails (its cells
  have status ``error`` and ``fault: "user"``; its own message is printed on one line);
* 3: an environment error: out of memory, a full disk, an unwritable cache (cells with status
  ``env-error``), a run folder that cannot be written, or a Dask scheduler that went away mid-sweep (the
  line says where the finished cells are); an unreachable scheduler or an unknown ``--device`` is 2;
* 130, 143, 129: interrupted by Ctrl-C, SIGTERM, SIGHUP (128 + the signal).

When several apply, the highest of 3, 2 and 1 is returned: a machine problem hides nothing of the model's.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import os
import re
import signal
import sys
from pathlib import Path

from benchbench import __version__
from benchbench.core.argtypes import bounded_float, bounded_int, input_size, name_list, new_folder_base, option, percent
from benchbench.core.registry import PluginError, UnknownNameError

__all__ = ["main"]

DEFAULT_OUT = Path("reports") / "runs"


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread so that a sweep ends as on Ctrl-C: workers stopped,
    finished cells saved, views written; the exit code is 128 + the signal number."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _terminate(signum, frame):
    raise Terminated(signum)


class UsageError(Exception):
    """A mistake in what the user asked for; printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line like every other mistake, not usage + message."""

    def error(self, message: str):
        raise UsageError(f"{message} (see {self.prog} --help)")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default. argparse's ArgumentDefaultsHelpFormatter would print
    'None' where the real default is computed (threads, sampling bounds); those helps say it themselves."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (not action.option_strings or action.default is argparse.SUPPRESS or action.required
                or "(default" in text):
            return text
        default = action.default
        shown = "off" if action.nargs == 0 and not default else ("none" if default in (None, []) else "%(default)s")
        return f"{text} (default: {shown})"


# Sizes past these are typos, not benchmarks; they stay far inside what a runtime accepts.
MAX_THREADS = 1024
MAX_BATCH = 4096
MAX_SEED = 2**32 - 1  # numpy's legacy seeding and most runtimes take 32-bit seeds


def _run_dir(base: Path, slug: str) -> Path:
    """A new directory per run; never reuses an existing one, so no earlier run is overwritten."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", slug).strip("-")[:60] or "run"
    try:
        base.mkdir(parents=True, exist_ok=True)
        for n in range(1, 10000):
            path = base / (f"{stamp}_{slug}" + (f"-{n}" if n > 1 else ""))
            try:
                path.mkdir()  # atomic: of two runs started in the same second, one gets -2
                return path
            except FileExistsError:
                continue
    except OSError as exc:  # --out under a file, or in a folder we may not write
        raise UsageError(f"cannot create a folder in {base}: {exc.strerror or exc}") from None
    raise UsageError(f"cannot create a folder in {base}: 9999 runs named {stamp}_{slug} already")


_POSITIVE_S = bounded_float(0)  # seconds: finite and above zero


def _add_measure_args(p: argparse.ArgumentParser, resumable: bool = False) -> None:
    p.add_argument("--model", "-m", required=not resumable, type=name_list,
                   help="names, globs ('repvgg_*'), family names, path/to/file.py:factory, or a model file "
                        "(.onnx, .tflite, OpenVINO .xml); comma-separated, any case "
                        + ("(required, unless --resume)" if resumable else "(required)"))
    p.add_argument("--vs", metavar="FILE", default=None,
                   help="with --model FILE: a second file of the same model, measured in lockstep against it (the "
                        "speedup is FILE → this one); inputs must match in names and shapes")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=DIMS",
                   help="the shape of a model file's input, e.g. x=1x3x640x640; needed for its dynamic dims "
                        "(repeatable)")
    p.add_argument("--input-data", metavar="NPZ", default=None,
                   help="a model file's inputs, one array per input name (default: seeded random data)")
    p.add_argument("--backend", "-b", default="torch", type=name_list,
                   help="torch, torch-cuda, ort, ort-cuda, openvino (ov), tflite (litert); comma-separated, any case")
    p.add_argument("--variant", choices=["both", "train", "deploy"], default="both",
                   help="both: train and deploy side by side, with the deploy speedup")
    p.add_argument("--batch", type=bounded_int(1, MAX_BATCH), default=1, help=f"batch size, 1..{MAX_BATCH}")
    p.add_argument("--input-size", type=input_size, default=None,
                   help="input resolution, N or HxW, each side 1..8192 (default: the model's)")
    p.add_argument("--threads", type=bounded_int(1, MAX_THREADS), default=None,
                   help=f"intra-op threads, 1..{MAX_THREADS} (default: the physical core count)")
    p.add_argument("--seed", type=bounded_int(0, MAX_SEED), default=0,
                   help="seed of the weights and the input, 0..2**32-1")
    p.add_argument("--option", "-o", type=option, action="append", default=[], metavar="KEY=VALUE",
                   help="backend option, e.g. precision=bf16 (repeatable; the keys are listed below)")
    p.add_argument("--quick", action="store_const", const="quick", dest="sampling",
                   help="short warm-up and sampling, for smoke runs (= --sampling quick)")
    p.add_argument("--sampling", choices=["default", "quick", "reference"], default="default",
                   help="sampling profile: default, quick (smoke runs), reference (the reference report's: "
                        "±2%%, 0.6 s cap per cell and round)")
    p.add_argument("--rounds", type=bounded_int(1), default=1,
                   help="measure every comparison group N times, each in fresh workers, in sweeps of alternating "
                        "direction; intervals are built over every round's blocks")
    p.add_argument("--lockstep", choices=["auto", "backend", "off"], default="auto",
                   help="which cells take turns block by block: auto = train/deploy pairs and guideline tables; "
                        "backend = also one model on every backend; off = each cell alone (default: auto)")
    p.add_argument("--min-time", type=_POSITIVE_S,
                   help="minimum sampling time per cell and round, s (default: the --sampling profile's: 1, quick 0.2, "
                        "reference 0.3)")
    p.add_argument("--max-time", type=_POSITIVE_S,
                   help="maximum sampling time per cell and round, s, at least --min-time (default: the --sampling "
                        "profile's: 10, quick 2, reference 0.6)")
    p.add_argument("--target-ci", type=bounded_float(0, 1),
                   help="stop once every 95%% interval's half-width is within this fraction, in (0, 1) "
                        "(default: the --sampling profile's: 0.015, quick 0.03, reference 0.02)")
    p.add_argument("--cell-timeout", type=_POSITIVE_S, help="kill a worker after this many seconds (default: 900)")
    p.add_argument("--allow-parity-fail", action="store_true",
                   help="exit 0 even if a cell's outputs disagree with PyTorch eager (they are still flagged)")


def _config(args):
    from benchbench.core.spec import QUICK, REFERENCE, MeasureConfig

    config = {"quick": QUICK, "reference": REFERENCE}.get(args.sampling, MeasureConfig())
    changes = {k: v for k, v in {"min_s": args.min_time, "max_s": args.max_time, "target_ci": args.target_ci,
                                 "cell_timeout_s": args.cell_timeout}.items() if v is not None}
    config = config.replace(**changes) if changes else config
    if config.min_s > config.max_s:  # checked on the profile's values too: --min-time 20 alone exceeds 10 s
        raise UsageError(f"the minimum sampling time ({config.min_s:g} s, --min-time) exceeds the maximum "
                         f"({config.max_s:g} s, --max-time)")
    return config


def _cells(args):
    from benchbench.models import VARIANTS, model_info, resolve_models
    from benchbench.runners import get_runner, resolve_backends

    from benchbench.core.spec import CellSpec, physical_cores

    from benchbench.build.files import file_cells, is_artifact

    parts = args.model.split(",")
    files = [p for p in parts if is_artifact(p)]
    zoo = ",".join(p for p in parts if p not in files)
    if (args.vs or args.input_shape or args.input_data) and not files:
        raise UsageError("--vs, --input-shape and --input-data apply to a model file (.onnx, .tflite, .xml) "
                         "given with --model")
    names, notes = resolve_models(zoo) if zoo else ([], [])
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    backends = resolve_backends(args.backend)
    # A mistake in what was asked is reported before what is installed: a typo must not hide behind a
    # missing package.
    _check_options(args.option, backends)
    available = {}
    for b in backends:
        ok, why = get_runner(b).is_available()
        available[b] = ok
        if not ok:
            print(f"note: {why}; its cells are recorded as unavailable", file=sys.stderr)
    if not any(available.values()) and not getattr(args, "scheduler", None):  # a cluster's workers may have them
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
    if files:
        file_specs, file_names = file_cells(files, args.vs, backends, available, shapes=args.input_shape,
                                            batch=args.batch, size=args.input_size, input_data=args.input_data,
                                            threads=threads, seed=args.seed, options=options)
        cells += file_specs
        names += file_names
    if devices := getattr(args, "device", None):  # one copy of every cell per cluster target
        cells = [CellSpec(**{**c.__dict__, "device": d}) for d in dict.fromkeys(devices.split(",")) for c in cells]
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
    if not args.model and not getattr(args, "resume", None):
        raise UsageError(f"the following arguments are required: --model/-m (see benchbench {args.command} --help)")
    return _run(args)[0]


def _argv(args) -> list[str]:
    """The command line as typed (``main``'s argv, which differs from sys.argv when called in-process)."""
    return ["benchbench", *getattr(args, "argv", sys.argv[1:])]


def _run(args, rounds=None):
    """Measure, write the reports, print the table; returns (exit code, run).

    ``rounds``: rounds per cell spec (a callable), overriding ``--rounds``.
    """
    from benchbench.measure.calibration import calibrate_run
    from benchbench.measure.executor import ExecutorError
    from benchbench.measure.sweep import run_sweep
    from benchbench.results.journal import WriteError
    from benchbench.measure.machinelock import measuring
    from benchbench.results.views import terminal_table

    if getattr(args, "resume", None):
        args, config, cells, out_dir, run, journal, done = _resume(args)
        rounds = args.rounds
        executor = _executor(args, cells, rounds)
    else:
        config = _config(args)  # before resolving models, which imports the zoo (seconds)
        cells, names = _cells(args)
        rounds = rounds or args.rounds
        executor = _executor(args, cells, rounds)  # before the run's folder: a bad address leaves none behind
        out_dir, run, journal = _new_run(args, config, cells, names, rounds)
        done = {}
    if executor is not None:
        run.meta["scheduler"] = args.scheduler
    interrupted, lost_cluster = 0, None
    # SIGTERM and SIGHUP end a sweep as Ctrl-C does (workers stopped, finished cells saved, views written).
    previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        # The machine's measuring lock is held while calibrating, building and measuring, not while
        # writing the views.
        # A cluster run measures nothing here: no lock, and no roofline of this machine for other hosts' cells.
        with (measuring(wait=not getattr(args, "no_wait", False), argv=_argv(args)) if executor is None
              else contextlib.nullcontext()) as concurrent:
            if concurrent:
                run.meta["concurrent_run"] = concurrent
            calibrate_run(cells, run, args.roofline if executor is None else "off",
                          progress=lambda msg: print(msg, file=sys.stderr, flush=True))
            run_sweep(cells, config, run, rounds=rounds, lockstep=args.lockstep, journal=journal, done=done,
                      executor=executor)
            if args.profile:  # after the sweep, in separate workers: no profiler touches the timed samples
                from benchbench.measure.profile import profile_run

                try:
                    profile_run(run, config, runs=args.profile_runs, select=getattr(args, "profile_select", None))
                except OSError as exc:  # its run.save() after each profiled cell
                    raise WriteError(f"cannot write {run.path}: {exc.strerror or exc}") from None
    except KeyboardInterrupt as exc:
        interrupted = 128 + exc.signum if isinstance(exc, Terminated) else 130
        print(f"interrupted{f' by {exc}' if isinstance(exc, Terminated) else ''}: the cells finished so far are saved",
              file=sys.stderr)
    except WriteError as exc:
        raise WriteError(f"{exc}; {_kept(journal)}") from None
    except ExecutorError as exc:  # the cluster went away mid-sweep: the finished cells are kept, as on Ctrl-C
        lost_cluster = exc
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        journal.close()
        if executor is not None:
            executor.close()
    try:
        paths = _write_views(run, out_dir)
    except WriteError as exc:
        raise WriteError(f"{exc}; {_kept(journal)}") from None
    print(terminal_table(run))
    if args.profile:
        from benchbench.measure.profile import profile_table, write_profiles

        paths["profiles"] = write_profiles(run, out_dir / "profile.md")
        if args.command == "profile":
            for cell in run.cells:
                if cell.ok:
                    print("\n" + profile_table(cell, top=args.top))
    print(f"\nwrote {run.path}\n      {paths['csv']}\n      {paths['markdown']}"
          + (f"\n      {paths['profiles']}" if "profiles" in paths else ""))
    if lost_cluster is not None:
        print(f"benchbench: error: {_one_line(str(lost_cluster))}; {_kept(journal)}", file=sys.stderr)
        return lost_cluster.exit_code, run
    if interrupted:
        return interrupted, run
    return _exit_code(run, args.allow_parity_fail), run


def _executor(args, cells, rounds):
    """The Dask executor of ``--scheduler`` (connected, its devices checked), or None: measure here."""
    scheduler = getattr(args, "scheduler", None)
    if not scheduler:
        if getattr(args, "device", None):
            raise UsageError("--device picks a cluster's workers: it needs --scheduler tcp://HOST:PORT")
        return None
    if callable(rounds) or rounds != 1:
        raise UsageError("--scheduler measures every group once, on one host: leave out --rounds")
    if getattr(args, "profile", False):
        raise UsageError("--profile profiles on this machine: it cannot be combined with --scheduler")
    from benchbench.measure.cluster import connect

    return connect(scheduler, sorted({c.device for c in cells if c.device}),
                   progress=lambda msg: print(msg, file=sys.stderr, flush=True))


def _exit_code(run, allow_parity_fail: bool) -> int:
    """3 environment errors, 2 user errors (each told in one line), 1 broken cells or parity failures, else 0."""
    env = [c for c in run.cells if c.status == "env-error"]
    user = [c for c in run.cells if c.status == "error" and c.fault == "user"]
    broken = [c for c in run.cells if c.status in ("crashed", "timeout", "error", "lost") and c.fault != "user"]
    parity = [c for c in run.cells if c.ok and c.parity.get("checked") and not c.parity.get("passed")]
    for cells, what in ((env, "environment error"), (user, "model error")):
        for reason in dict.fromkeys(c.reason or "" for c in cells):
            who = sorted({c.spec.model for c in cells if (c.reason or "") == reason})
            print(f"benchbench: {what}: {_one_line(reason)}" + ("" if what == "model error" else
                                                              f" ({', '.join(who)})"), file=sys.stderr)
    if parity and not allow_parity_fail:
        print(f"benchbench: {len(parity)} cells failed parity with PyTorch eager (exit 1; --allow-parity-fail "
              "to exit 0)", file=sys.stderr)
    if env:
        return 3
    if user:
        return 2
    return 1 if broken or (parity and not allow_parity_fail) else 0


def _kept(journal) -> str:
    """Where the finished cells are when a write failed: the journal, up to its last whole group."""
    where = journal.path.parent
    n = journal.cells
    return (f"{n} finished cell{' is' if n == 1 else 's are'} in {journal.path} (benchbench report {where} "
            f"rebuilds the views; benchbench run --resume {where} measures the rest)")


def _new_run(args, config, cells, names, rounds):
    """The run's new folder, its RunResult and its journal (the header written)."""
    from benchbench.core.env import environment
    from benchbench.results.journal import JOURNAL, Journal
    from benchbench.measure.machine import busy_warning, machine_state
    from benchbench.results.record import RunResult

    slug = names[0] if len(names) == 1 else f"{len(names)}models"
    backends = "+".join(dict.fromkeys(c.backend for c in cells))  # canonical names, whatever the case typed
    out_dir = _run_dir(Path(args.out), f"{slug}_{backends}")  # a mistake in --out is reported first
    state = machine_state(0.5, threads=max(c.threads for c in cells))
    if warning := busy_warning(state):
        print(f"benchbench: {warning}", file=sys.stderr)
    meta = {
        "benchbench_version": __version__,
        "argv": _argv(args),
        "environment": environment(),
        "settings": config.__dict__,
        "rounds": getattr(rounds, "__doc__", None) if callable(rounds) else rounds,
        "lockstep": args.lockstep,
        "machine_before": state,
    }
    run = RunResult(meta=meta, path=out_dir / "results.json")
    journal = Journal.create(out_dir / JOURNAL, meta)
    print(f"benchbench: {len(cells)} cells ({len(names)} models), results in {out_dir}", file=sys.stderr)
    return out_dir, run, journal


# Options that --resume takes from the command line rather than from the run folder.
_RESUME_OWN = {"resume", "no_wait", "argv", "func", "command", "out", "scheduler"}  # a new cluster's address


def _resume(args):
    """``run --resume DIR``: the stored command line's args, its config and cells, the run to fill (with
    the folder's finished groups to adopt, by group index), and the journal to append to."""
    from benchbench.measure.sweep import comparison_groups
    from benchbench.results.journal import JOURNAL, Journal, load_results
    from benchbench.results.record import RunResult
    from benchbench.core.spec import MeasureConfig

    folder = Path(args.resume)
    prior, source = load_results(folder)
    argv = prior.meta.get("argv") or []
    if len(argv) < 2 or argv[1] not in ("run", "profile"):
        raise UsageError(f"--resume: {folder} was not written by benchbench run or profile "
                         f"(its command: {' '.join(map(str, argv[:2])) or 'not recorded'})")
    try:
        stored = build_parser().parse_args([str(a) for a in argv[1:]])
    except UsageError as exc:
        raise UsageError(f"--resume: the command line stored in {folder} no longer parses: {exc}") from None
    defaults = build_parser().parse_args([args.command, "--resume", args.resume])
    for dest, value in vars(args).items():
        if dest in _RESUME_OWN or value == getattr(defaults, dest, None):
            continue
        if value != getattr(stored, dest, None):
            theirs = getattr(stored, dest, None)
            raise UsageError(f"--resume {folder}: --{dest.replace('_', '-')} {value} conflicts with the run's "
                             f"({'not given' if theirs is None else theirs}); leave it out to resume, or start a "
                             "new run")
    for dest in _RESUME_OWN - {"func", "command", "out"}:
        setattr(stored, dest, getattr(args, dest, None))
    if args.out != defaults.out:
        raise UsageError("--resume writes into the run's own folder; leave out --out")
    config = MeasureConfig.from_dict(prior.meta.get("settings") or {})
    cells, _ = _cells(stored)
    known = set(cells)
    if strays := [c for c in prior.cells if c.spec not in known]:
        raise UsageError(f"--resume: {folder} holds cells its command line does not give here "
                         f"({strays[0].spec.label()}, threads {strays[0].spec.threads}); start a new run")
    groups = comparison_groups(cells, stored.lockstep)
    finished = {}
    for g in prior.groups:
        members = [prior.cells[s] for s in g["cells"]]
        # complete: every round asked for, or no cell ok (the sweep measures no further round of those)
        if len(g.get("rounds") or []) >= stored.rounds or not any(c.ok for c in members):
            finished[tuple(c.spec for c in members)] = (g.get("rounds") or [], members)
    done = {i: finished[key] for i, group in enumerate(groups) if (key := tuple(cells[j] for j in group)) in finished}
    meta = dict(prior.meta)
    meta["resumed"] = [*meta.get("resumed", []), {"time": _dt.datetime.now().astimezone().isoformat(
        timespec="seconds"), "argv": _argv(args), "groups_finished": len(done), "groups_left": len(groups) - len(done)}]
    run = RunResult(meta=meta, path=folder / "results.json")
    if source == JOURNAL:
        journal = Journal.reopen(folder / JOURNAL, notice=lambda msg: None)  # load_results gave the notice
    else:  # a run from before journals: its finished groups start the journal
        journal = Journal.create(folder / JOURNAL, meta)
        for i, (rounds, members) in done.items():
            journal.append_group(meta, i, rounds, members)
    left = sum(len(g) for i, g in enumerate(groups) if i not in done)
    print(f"benchbench: resuming {folder}: {len(groups) - len(done)} of {len(groups)} groups ({left} cells) "
          "to measure", file=sys.stderr)
    return stored, config, cells, folder, run, journal, done


def _write_views(run, folder: Path, json_too: bool = True) -> dict[str, Path]:
    """results.json (unless ``json_too`` is False), results.csv and report.md, from ``run``."""
    from benchbench.results.journal import WriteError
    from benchbench.results.views import write_reports

    try:
        if json_too:
            run.save(folder / "results.json")
    except OSError as exc:  # its temp file is gone already (RunResult.save)
        raise WriteError(f"cannot write {folder / 'results.json'}: {exc.strerror or exc}") from None
    try:
        return write_reports(run, folder)
    except OSError as exc:
        raise WriteError(f"cannot write {exc.filename or folder}: {exc.strerror or exc}") from None


def cmd_report(args) -> int:
    """Rebuild a run folder's results.json, results.csv and report.md from its journal (or results.json)."""
    from benchbench.results.journal import RESULTS, load_results
    from benchbench.results.views import terminal_table

    folder = Path(args.folder)
    run, source = load_results(folder)
    paths = _write_views(run, folder, json_too=source != RESULTS)
    print(terminal_table(run))
    print(f"\nwrote {folder / RESULTS}\n      {paths['csv']}\n      {paths['markdown']}"
          if source != RESULTS else f"\nwrote {paths['csv']}\n      {paths['markdown']}")
    return 0


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
                         "yes" if info.default else ""])
        # "family default": the member that `--model <family>` picks.
        print(tabulate(body, ["model", "family", "input", "paper", "family default"], tablefmt="simple"))
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


def _check_writable(path: Path) -> None:
    """Refuse an output path that cannot be written, before any work is done."""
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a directory")
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {path}: no folder {path.parent}")
    if not os.access(path if path.exists() else path.parent, os.W_OK):
        raise UsageError(f"cannot write {path}: permission denied")


def _write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as exc:  # what _check_writable cannot foresee: a full disk, a race
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def cmd_compare(args) -> int:
    from benchbench.results.compare import compare_runs, comparison_markdown, pivot, regressions
    from benchbench.results.record import load_run

    if args.output:
        _check_writable(Path(args.output))
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
            raise UsageError("compare needs two result files, or one with --pivot variant|backend|device")
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
        _write_text(Path(args.output), text + "\n")
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
# tables), so a slow phase of the machine hits both sides of a ratio alike, and in several rounds minutes
# apart, so a slow phase of the sweep is spread over every cell instead of landing on a few families.
ZOO_ROUNDS, GUIDELINE_ROUNDS = 3, 2
# Per-op profiles of every zoo cell feed the claim's time shares and kernel-sum predictor; profiled
# inferences per op (fewer than run --profile's default: 400 cells, and an op's median over 5 is stable).
REFERENCE_PROFILE_RUNS = 5


def reference_rounds(spec) -> int:
    """Rounds per cell of the reference sweep: 3 for zoo models, 2 for the guideline nets (lockstep tables)."""
    return GUIDELINE_ROUNDS if _is_guideline(spec.model) else ZOO_ROUNDS


def _is_guideline(model: str) -> bool:
    from benchbench.models import model_info

    try:
        return model_info(model).family.startswith("guideline")
    except KeyError:  # not a registered model: measured like a zoo model
        return False


def _reference_args(args) -> None:
    """Turn ``claim --reference`` into the reference sweep's settings; refuse what would change it."""
    if args.results or args.model or args.backend is not None or args.sampling != "default" or args.rounds != 1:
        raise UsageError("--reference measures a fixed set (every model on torch, ort, tflite, openvino); "
                         "drop result files, --model, --backend, --quick and --rounds, or leave out --reference")
    args.model, args.backend, args.sampling, args.roofline = REFERENCE_MODELS, REFERENCE_BACKENDS, "reference", "fresh"
    # profile the zoo cells after the sweep (time shares, kernel-sum predictor); the guideline nets need none
    args.profile, args.profile_runs = True, REFERENCE_PROFILE_RUNS
    args.profile_select = _reference_profiled


def _reference_profiled(cell) -> bool:
    """The reference profiles zoo cells on backends with a per-op timer (the claim's time shares and kernel
    sums need times; an untimed op list adds nothing to the executed-op counts every cell has)."""
    from benchbench.runners import get_runner

    return not cell.model.get("family", "").startswith("guideline") and get_runner(cell.spec.backend).op_timer


# Written into every folder `claim --reference` publishes: only a folder holding it is ever replaced.
REFERENCE_MARKER = ".benchbench-reference"


def check_reference_dest(dest: Path) -> None:
    """Refuse to publish over a folder benchbench did not create (``UsageError``): ``dest`` (and its staging
    folder) must be absent, or hold ``REFERENCE_MARKER``."""
    for path in (dest, dest.with_name(dest.name + ".new")):
        if (path.exists() or path.is_symlink()) and not (path.is_dir() and not path.is_symlink()
                                                         and (path / REFERENCE_MARKER).is_file()):
            raise UsageError(f"{path} exists and was not published by benchbench (no {REFERENCE_MARKER} in it); "
                             "move it away, or it would be replaced")


def publish_reference(run_dir: Path, dest: Path) -> Path:
    """Replace ``dest`` with a finished run folder (results, reports, claim, plots); the run folder stays.
    Only a folder that an earlier publish created is replaced (``check_reference_dest``)."""
    import shutil

    check_reference_dest(dest)
    staging = dest.with_name(dest.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(run_dir, staging)
    (staging / REFERENCE_MARKER).write_text("Published by `benchbench claim --reference`; the next publish replaces "
                                            "this folder.\n")
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    return dest


def cmd_claim(args) -> int:
    from benchbench.core import strictjson
    from benchbench.analysis.claim import analyze, check_claimable
    from benchbench.analysis.claim_report import backend_summary, claim_markdown, guideline_tables
    from benchbench.results.journal import WriteError
    from benchbench.results.record import load_run

    if args.reference:
        _reference_args(args)
        check_reference_dest(Path(args.out).parent / REFERENCE_DIR.name)  # before an hour of measuring, not after
    code = 0
    if args.results:
        runs = [load_run(p) for p in args.results]
        for run in runs:
            check_claimable(run)
        out_dir = _run_dir(Path(args.out), "claim")
    else:
        args.backend = args.backend or "ort"
        args.model = ",".join(filter(None, [args.model, "g*"]))  # the guideline nets, plus any zoo models
        code, run = _run(args, rounds=reference_rounds if args.reference else None)
        if code >= 128:  # interrupted: the cells so far are saved, but no analysis of a partial sweep
            return code
        runs, out_dir = [run], run.path.parent
    analysis = analyze(runs)
    try:
        (out_dir / "claim.md").write_text(claim_markdown(analysis, out_dir, runs))
        (out_dir / "claim.json").write_text(strictjson.dumps({k: v for k, v in analysis.items() if k != "observations"},
                                                             indent=1, default=str))
    except OSError as exc:  # the run's own folder: a full disk or a folder made read-only, not a request
        raise WriteError(f"cannot write the claim into {out_dir}: {exc.strerror or exc}") from None
    verdicts = [line for backend, a in analysis["per_backend"].items() for line in backend_summary(backend, a)]
    print("\n".join(["", "At equal FLOPs, do more executed ops cost latency? (family-level verdict per backend)"]
                    + (verdicts or ["  (no zoo cells measured: the guideline nets only fill the tables)"])))
    if analysis["guidelines"]:  # the x1 tables here; every width is in claim.md
        print("\n" + "\n".join(guideline_tables(analysis["guidelines"], multipliers=(1,))))
    print(f"\nwrote {out_dir / 'claim.md'} (with plots in {out_dir / 'plots'})")
    if args.reference:
        print(f"published the reference report: {publish_reference(out_dir, Path(args.out).parent / REFERENCE_DIR.name)}")
    # the measuring run's own code (1 broken cells or parity failures, 2 a model error, 3 the environment):
    # the analysis is written either way, but a claim over broken cells does not pass for a clean one
    return code


def _backend_options_text() -> str:
    """The --option keys each backend takes, from the runner classes (their modules import no runtime)."""
    from benchbench.runners import get_runner, list_runners

    lines, bare = [], []
    for name in list_runners():
        options = get_runner(name).OPTIONS
        if not options:
            bare.append(name)
            continue
        keys = ", ".join(f"{k}={'|'.join(v) if v else 'VALUE'}" for k, v in options.items())
        lines.append(f"  {name:<12}{keys}")
    if bare:
        lines.append(f"  {', '.join(bare)}: no options")
    return "\n".join(lines)


def _measure_epilog(command: str) -> str:
    return (f"backend options (--option KEY=VALUE):\n{_backend_options_text()}\n\n"
            f"example:\n  benchbench {command} --model vanillanet --backend ort --quick\n\n"
            "The models and backends (and which are installed): benchbench list")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="benchbench", description=__doc__.splitlines()[0], formatter_class=_HelpFormatter,
                     epilog="Start with: benchbench list; then benchbench run --help")
    parser.add_argument("--version", action="version", version=f"benchbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, formatter_class=_HelpFormatter, **kwargs)

    out_help = "folder in which the run's own new folder is created"
    wait_help = ("if another benchbench is measuring on this machine, warn and measure anyway instead of waiting "
                 "for it (recorded as concurrent_run in the run's meta)")
    p = command("run", help="measure models on backends (train and deploy forms)",
                description="Measure models on backends; writes results.json, results.csv and report.md.",
                epilog=_measure_epilog("run"))
    _add_measure_args(p, resumable=True)
    p.add_argument("--out", default=str(DEFAULT_OUT), type=new_folder_base, help=out_help)
    p.add_argument("--resume", metavar="DIR", default=None,
                   help="finish an interrupted run in its folder DIR: measure only the comparison groups not "
                        "finished there, with the run's own command line (give no other option)")
    p.add_argument("--no-wait", action="store_true", help=wait_help)
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", default=None,
                   help="measure on the Dask cluster of this scheduler: one group at a time on each worker with "
                        "the resource measure=1 (pip install 'benchbench[cluster]'; see the README's Many machines)")
    p.add_argument("--device", type=name_list, default=None, metavar="NAME[,NAME]",
                   help="with --scheduler: measure every cell on the workers with the resource device:NAME=1, once "
                        "per NAME (compare --pivot device compares them)")
    p.add_argument("--roofline", choices=["auto", "cached", "fresh", "off"], default="auto",
                   help="place cells on this machine's roofline (peak GFLOP/s, bandwidth): auto uses a calibration "
                        "under 24 h old if one is cached and never measures one; cached reuses one or calibrates "
                        "(about a minute); fresh always calibrates; off")
    p.add_argument("--profile", action="store_true",
                   help="also profile each ok cell per operator, in separate workers (written to profile.md)")
    p.add_argument("--profile-runs", type=bounded_int(1), default=10,
                   help="profiled inferences per op (its time is their median)")
    p.set_defaults(func=cmd_run)

    p = command("profile", help="measure, then print a per-operator profile of each cell",
                description="run, then a per-operator time table for each cell (profiled in separate workers).",
                epilog=_measure_epilog("profile"))
    _add_measure_args(p)
    p.add_argument("--out", default=str(DEFAULT_OUT), type=new_folder_base, help=out_help)
    p.add_argument("--profile-runs", type=bounded_int(1), default=10,
                   help="profiled inferences per op (its time is their median)")
    p.add_argument("--top", type=bounded_int(0), default=25, help="show the slowest N ops per cell (0: all)")
    p.add_argument("--no-wait", action="store_true", help=wait_help)
    p.set_defaults(func=cmd_run, profile=True, roofline="off")

    p = command("report", help="rebuild a run folder's results.json, results.csv and report.md; print its table",
                description="Re-render a run folder's views from its journal (cells.jsonl), or from its "
                            "results.json when it has no journal.",
                epilog="example:\n  benchbench report reports/runs/20260101-120000_vanillanet_5_ort")
    p.add_argument("folder", help="a run folder (holding cells.jsonl or results.json)")
    p.set_defaults(func=cmd_report)

    p = command("list", help="list models and backends")
    p.add_argument("what", nargs="?", choices=["models", "backends", "all"], help="what to list (default: all)")
    p.add_argument("pattern", nargs="?", help="fnmatch pattern for models (default: every model)")
    p.set_defaults(func=cmd_list)

    p = command("compare", help="compare two result files: ratios, Mann-Whitney U, geometric mean",
                epilog="example:\n  benchbench compare A/results.json B/results.json --fail-above 5%")
    p.add_argument("a", help="baseline results.json")
    p.add_argument("b", nargs="?", help="candidate results.json (omit with --pivot)")
    p.add_argument("--pivot", choices=["variant", "backend", "device"], help="compare within one file: train vs "
                   "deploy, or each backend (cluster device) against --baseline (default: compare two files)")
    p.add_argument("--baseline", help="with --pivot backend or device: the reference one (default: the file's first)")
    p.add_argument("--fail-above", type=percent, metavar="PCT",
                   help="exit 1 if any cell is significantly slower by more than PCT, above 0, e.g. 5%% "
                        "(default: never)")
    p.add_argument("--threshold", type=bounded_float(0, low_open=False), default=5.0, metavar="PCT",
                   help="percent change, at least 0, within which cells count as the same")
    p.add_argument("--alpha", type=bounded_float(0, 1), default=0.01,
                   help="significance level of the U test, in (0, 1)")
    p.add_argument("--output", help="also write the Markdown table to this file (default: only print it)")
    p.set_defaults(func=cmd_compare)

    p = command("claim", help="FLOPs vs fragmentation: correlations, held-out models, guideline tables",
                epilog="example:\n  benchbench claim reports/runs/*/results.json")
    p.add_argument("results", nargs="*", help="result files to analyze; none: measure the guideline nets now")
    p.add_argument("--model", "-m", default=None, type=name_list,
                   help="zoo models to measure beside the guideline nets (default: none)")
    p.add_argument("--backend", "-b", default=None, type=name_list,
                   help="backends to measure on, comma-separated (default: ort)")
    p.add_argument("--out", default=str(DEFAULT_OUT), type=new_folder_base, help="folder for the report's folder")
    p.add_argument("--threads", type=bounded_int(1, MAX_THREADS), default=None,
                   help=f"intra-op threads, 1..{MAX_THREADS} (default: the physical core count)")
    p.add_argument("--quick", action="store_const", const="quick", dest="sampling", default="default",
                   help="short warm-up and sampling, for smoke runs (default: off)")
    p.add_argument("--reference", action="store_true",
                   help=f"regenerate the reference report: every model on {REFERENCE_BACKENDS} with the reference "
                        f"sampling, published to reports/{REFERENCE_DIR.name}/ (beside the --out folder)")
    p.add_argument("--rounds", type=bounded_int(1), default=1,
                   help="measure every comparison group N times, each in fresh workers (intervals use every round)")
    p.set_defaults(func=cmd_claim, variant="both", batch=1, input_size=None, seed=0, option=[], min_time=None,
                   vs=None, input_shape=[], input_data=None,
                   lockstep="auto",
                   max_time=None, target_ci=None, cell_timeout=None, roofline="auto", profile=False,
                   allow_parity_fail=False)

    p = command("cache", help="show the artifact cache (where, size, entries) or clear it",
                description="Show the build cache ($BENCHBENCH_CACHE, else ~/.cache/benchbench): where it is, its "
                            "size and one line per entry; or clear all of it, or the entries matching a glob.",
                epilog="examples:\n  benchbench cache\n  benchbench cache clear 'vanillanet_*'\n  benchbench cache clear")
    p.add_argument("action", nargs="?", choices=["show", "clear"], default="show", help="what to do")
    p.add_argument("pattern", nargs="?", help="glob over entry or model names, e.g. 'repvgg_*' (default: every entry)")
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser("doctor", help="machine check: load, steal, busy processes, and an A/A comparison")
    p.add_argument("--model", "-m", default="resnet18", help="model of the A/A comparison (default: resnet18)")
    p.add_argument("--backend", "-b", default="ort", help="backend of the A/A comparison (default: ort)")
    p.add_argument("--variant", choices=["train", "deploy"], default="deploy")
    p.add_argument("--threads", type=bounded_int(1, 1024), default=None,
                   help="intra-op threads (default: physical cores)")
    p.add_argument("--max-time", type=_POSITIVE_S, default=5.0, help="A/A sampling cap per worker, seconds (default: 5)")
    p.add_argument("--no-aa", action="store_true", help="machine state only, no A/A comparison")
    p.set_defaults(func=cmd_doctor)
    return parser


def cmd_cache(args) -> int:
    """``benchbench cache [show|clear] [PATTERN]``."""
    from benchbench.build import cache

    root = cache.cache_root()
    if root.exists() and not root.is_dir():
        raise UsageError(f"the cache {root} is not a folder")
    try:
        if args.action == "show":
            print(cache.show(args.pattern, root))
        else:
            removed, kept = cache.clear(args.pattern, root)
            print(cache.clear_text(removed, kept, args.pattern, root))
    except ValueError as exc:  # a bad pattern
        raise UsageError(str(exc)) from None
    except BrokenPipeError:  # `benchbench cache | head`: main() handles it
        raise
    except OSError as exc:
        raise UsageError(f"cache {root}: {exc.strerror or exc}") from None
    return 0


def cmd_doctor(args) -> int:
    """Print the machine's state and an A/A comparison; exit 1 if the A/A interval excludes 1.00."""
    from benchbench.models import resolve_models
    from benchbench.runners import get_runner, resolve_backends

    from benchbench.measure.machine import busy_warning, machine_state
    from benchbench.core.spec import CellSpec, MeasureConfig, physical_cores

    threads = args.threads or physical_cores()
    names, _ = resolve_models(args.model)
    backend = resolve_backends(args.backend)[0]
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
    from benchbench.measure.doctor import aa_check

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


def _one_line(text: str) -> str:
    """``text`` with control characters escaped: a quoted file name or argument may hold a newline."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def main(argv: list[str] | None = None) -> int:
    """The ``benchbench`` command; returns the exit code (0, 1, 2, 3; 130 on Ctrl-C, 143 on SIGTERM, 129 on
    SIGHUP: see the module's docstring)."""
    from benchbench.build.files import ArtifactError
    from benchbench.measure.executor import ExecutorError
    from benchbench.results.journal import WriteError
    from benchbench.results.record import SchemaError

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
        args.argv = argv  # recorded in the run's meta, and what --resume reads back
        return args.func(args)
    except (UnknownNameError, UsageError, SchemaError, PluginError, ArtifactError) as exc:
        print(f"benchbench: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except WriteError as exc:  # the environment, not the request: a read-only folder, a full disk
        print(f"benchbench: error: {_one_line(str(exc))}", file=sys.stderr)
        return 3
    except ExecutorError as exc:  # an unreachable scheduler, an unknown --device (2); a cluster gone (3)
        print(f"benchbench: error: {_one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except SystemExit as exc:  # --help and --version exit 0 from inside argparse
        return exc.code if isinstance(exc.code, int) else 0
    except BrokenPipeError:  # `benchbench list | head`: the reader left; nothing is wrong
        # Point stdout at devnull so the interpreter's final flush does not fail again (Python's docs' recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
