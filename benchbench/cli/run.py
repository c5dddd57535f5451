"""``benchbench run`` and ``profile`` (and ``claim`` when it measures): the cells asked for, a new run folder or
a resumed one, the sweep under the machine's measuring lock, then the views, the table and the exit code."""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import re
import signal
import sys
import time
from pathlib import Path

from benchbench import __version__

from .errors import Terminated, UsageError, one_line
from .parser import flag_for_dest, sampling_dests

__all__ = ["cmd_run", "measure", "config_from", "cells_from", "run_dir", "write_views"]


def _stderr(msg: str) -> None:
    """One line on stderr: a path or name in it (a folder named with a newline) is escaped."""
    print(one_line(msg), file=sys.stderr, flush=True)


def run_dir(base: Path, slug: str) -> Path:
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
    except OSError as exc:  # --out under a file, too long a name, or in a folder we may not write: the request's;
        # a full disk or a read-only file system: the machine's
        from benchbench.core.files import MACHINE_ERRNOS, reason
        from benchbench.results.journal import WriteError

        error = WriteError if exc.errno in MACHINE_ERRNOS else UsageError
        raise error(f"cannot create a folder in {base}: {reason(exc)}") from None
    raise UsageError(f"cannot create a folder in {base}: 9999 runs named {stamp}_{slug} already")


def config_from(args):
    """The sampling policy: the ``--sampling`` profile, with any sampling flag given on top of it."""
    from benchbench.core.spec import PROFILES

    config = PROFILES[args.sampling or "default"]
    changes = {name: getattr(args, name) for name in sampling_dests() if getattr(args, name, None) is not None}
    config = config.replace(**changes) if changes else config
    if config.min_s > config.max_s:  # checked on the profile's values too: --min-time 20 alone exceeds 10 s
        raise UsageError(f"the minimum sampling time ({config.min_s:g} s, --min-time) exceeds the maximum "
                         f"({config.max_s:g} s, --max-time)")
    return config


def cells_from(args):
    """The cells asked for (zoo models and model files, on every backend and device) and the model names."""
    from benchbench.build.files import file_cells, is_artifact
    from benchbench.core.spec import CellSpec, physical_cores
    from benchbench.models import VARIANTS, model_info, resolve_models
    from benchbench.runners import resolve_backends

    parts = args.model.split(",")
    files = [p for p in parts if is_artifact(p)]
    zoo = ",".join(p for p in parts if p not in files)
    if (args.vs or args.input_shape or args.input_data) and not files:
        raise UsageError("--vs, --input-shape and --input-data apply to a model file (.onnx, .tflite, .xml) "
                         "given with --model")
    names, notes = resolve_models(zoo) if zoo else ([], [])
    for note in notes:
        _stderr(f"note: {note}")
    backends = resolve_backends(args.backend)
    # A mistake in what was asked is reported before what is installed: a typo must not hide behind a
    # missing package.
    _check_options(args.options, backends)
    available = _available(backends, cluster=bool(getattr(args, "scheduler", None)))
    threads = args.threads or physical_cores()
    variants = VARIANTS if args.variant == "both" else (args.variant,)
    options = tuple(sorted(args.options))
    cells = []
    for name in names:
        info = model_info(name)
        if args.input_size and min(args.input_size) < info.min_input:
            _stderr(f"note: {name} needs inputs of at least {info.min_input}; "
                    f"{args.input_size[0]}x{args.input_size[1]} is recorded as unsupported")
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


def cmd_run(args) -> int:
    if not args.model and not getattr(args, "resume", None):
        raise UsageError(f"the following arguments are required: --model/-m (see benchbench {args.command} --help)")
    return measure(args)[0]


def _argv(args) -> list[str]:
    """The command line as typed (``main``'s argv, which differs from sys.argv when called in-process)."""
    return ["benchbench", *getattr(args, "argv", sys.argv[1:])]


class _Session:
    """What a measuring command works on: its cells and config, its run and journal, and how it went."""

    def __init__(self, args, rounds):
        from benchbench.build.cache import CacheRootError, ensure_root
        from benchbench.core.spec import MeasureConfig
        from benchbench.measure.sweep import ResumeError, resume

        try:  # a cache root benchbench must not fill (BENCHBENCH_CACHE=$HOME) is refused before anything runs
            ensure_root()
        except CacheRootError as exc:
            raise UsageError(str(exc)) from None

        _check_recordable(_argv(args))
        self.finished = {}
        if getattr(args, "resume", None):
            args, cells, prior, source = _resumed_args(args)
            self.config = MeasureConfig.from_dict(prior.meta.get("settings") or {})
            self.rounds = args.rounds
            self.executor = _executor(args, cells, self.rounds)
            try:
                self.run, self.journal, self.finished = resume(Path(args.resume), prior, source, cells, args.lockstep,
                                                               args.rounds, _argv(args))
            except ResumeError as exc:
                raise UsageError(str(exc)) from None
            self.out_dir = Path(args.resume)
            left = len(cells) - sum(len(f.cells) for f in self.finished.values())
            _stderr(f"benchbench: resuming {self.out_dir}: {self.run.meta['resumed'][-1]['groups_left']} of "
                    f"{len(self.finished) + self.run.meta['resumed'][-1]['groups_left']} groups ({left} cells) "
                    "to measure")
        else:
            self.config = config_from(args)  # before resolving models, which imports the zoo (seconds)
            cells, names = cells_from(args)
            self.rounds = rounds or args.rounds
            self.executor = _executor(args, cells, self.rounds)  # before the folder: a bad address leaves none
            self.out_dir, self.run, self.journal = _new_run(args, self.config, cells, names, self.rounds)
        self.args, self.cells = args, cells
        if self.executor is not None:
            self.run.meta["scheduler"] = args.scheduler


def _check_recordable(argv: list[str]) -> None:
    """The command line is recorded in the run (its meta, its report) and read back by --resume: an argument
    that is not valid UTF-8 (a file or folder named in another encoding; a lone surrogate in Python) could
    be written into neither, so it is refused before anything is made."""
    from benchbench.core.files import utf8_problem

    for arg in argv:
        if (problem := utf8_problem(str(arg))) is not None:
            raise UsageError(f"{str(arg)!r}: {problem} (the command line is recorded with the run)")


def measure(args, rounds=None):
    """Measure, write the reports, print the table; returns (exit code, run).

    ``rounds``: rounds per cell spec (a callable), overriding ``--rounds``.
    """
    from benchbench.measure.executor import ExecutorError
    from benchbench.results.journal import WriteError

    session = _Session(args, rounds)
    args, run, journal = session.args, session.run, session.journal
    interrupted, lost_cluster = 0, None
    # SIGTERM and SIGHUP end a sweep as Ctrl-C does (workers stopped, finished cells saved, views written).
    # A signal ignored when benchbench started (nohup's SIGHUP) stays ignored.
    previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGTERM, signal.SIGHUP)
                if signal.getsignal(sig) is not signal.SIG_IGN}
    try:
        _sweep(session)
    except KeyboardInterrupt as exc:
        interrupted = 128 + exc.signum if isinstance(exc, Terminated) else 130
        _stderr(f"interrupted{f' by {exc}' if isinstance(exc, Terminated) else ''}: the cells finished so far are saved")
    except WriteError as exc:
        raise WriteError(f"{exc}; {_kept(journal)}") from None
    except ExecutorError as exc:  # the cluster went away mid-sweep: the finished cells are kept, as on Ctrl-C
        lost_cluster = exc
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        journal.close()
        if session.executor is not None:
            session.executor.close()
    _report(session)
    if lost_cluster is not None:
        _stderr(f"benchbench: error: {one_line(str(lost_cluster))}; {_kept(journal)}")
        return lost_cluster.exit_code, run
    if interrupted:
        return interrupted, run
    return _exit_code(run, args.allow_parity_fail), run


def _terminate(signum, frame):
    raise Terminated(signum)


def _sweep(session: _Session) -> None:
    """Calibrate, build and measure, then profile, holding the machine's measuring lock throughout (not while
    writing the views). A cluster run measures nothing here: no lock, and no roofline of this machine for
    other hosts' cells."""
    from benchbench.measure.calibration import calibrate_run
    from benchbench.measure.machinelock import measuring
    from benchbench.measure.sweep import run_sweep
    from benchbench.results.journal import WriteError

    args, run, here = session.args, session.run, session.executor is None
    with (measuring(wait=not getattr(args, "no_wait", False), argv=_argv(args)) if here
          else contextlib.nullcontext()) as concurrent:
        if concurrent:
            run.meta["concurrent_run"] = concurrent
        calibrate_run(session.cells, run, args.roofline if here else "off", progress=_stderr)
        run_sweep(session.cells, session.config, run, rounds=session.rounds, lockstep=args.lockstep,
                  journal=session.journal, finished=session.finished, executor=session.executor)
        if args.profile:  # after the sweep, in separate workers: no profiler touches the timed samples
            from benchbench.measure.profile import profile_run

            start = time.monotonic()
            try:
                profile_run(run, session.config, runs=args.profile_runs, select=getattr(args, "profile_select", None))
            except OSError as exc:  # its run.save() after each profiled cell
                raise WriteError(f"cannot write {run.path}: {exc.strerror or exc}") from None
            # the profiling's own time, beside the sweep's (meta.sweep): results.json is written after this
            run.meta["profile"] = {"cells": sum(1 for c in run.cells if c.metrics.get("profile")),
                                   "wall_s": round(time.monotonic() - start, 1)}


def _report(session: _Session) -> None:
    """The views, the table, the profiles, and where everything was written."""
    from benchbench.results.journal import WriteError
    from benchbench.results.views import terminal_table

    args, run, out_dir = session.args, session.run, session.out_dir
    try:
        paths = write_views(run, out_dir, html=getattr(args, "html", False))
    except WriteError as exc:
        raise WriteError(f"{exc}; {_kept(session.journal)}") from None
    print(terminal_table(run))
    if args.profile:
        from benchbench.measure.profile import profile_table, write_profiles

        paths["profiles"] = write_profiles(run, out_dir / "profile.md")
        if args.command == "profile":
            for cell in run.cells:
                if cell.ok:
                    print("\n" + profile_table(cell, top=args.top))
    print(wrote_text(paths, run.path))


def _executor(args, cells, rounds):
    """The Dask executor of ``--scheduler`` (its address and certificates checked, connected, its devices
    checked), or None: measure here. Ctrl-C while connecting ends the command (exit 130), nothing measured."""
    scheduler = getattr(args, "scheduler", None)
    access = [flag for dest, flag in _ACCESS_FLAGS.items() if getattr(args, dest, None)]
    if scheduler is None:
        if getattr(args, "device", None):
            raise UsageError("--device picks a cluster's workers: it needs --scheduler tls://HOST:PORT")
        if access:
            raise UsageError(f"{', '.join(access)} {'applies' if len(access) == 1 else 'apply'} to --scheduler: give "
                             f"it, or leave {'it' if len(access) == 1 else 'them'} out")
        return None
    from benchbench.measure.cluster import TLSFiles, connect, scheduler_address

    tls = TLSFiles(getattr(args, "tls_ca_file", None), getattr(args, "tls_cert", None), getattr(args, "tls_key", None))
    insecure = bool(getattr(args, "insecure", False))
    scheduler_address(scheduler, tls, insecure)  # an empty or refused address before the other checks
    if callable(rounds) or rounds != 1:
        raise UsageError("--scheduler measures every group once, on one host: leave out --rounds")
    if getattr(args, "profile", False):
        raise UsageError("--profile profiles on this machine: it cannot be combined with --scheduler")
    try:
        return connect(scheduler, sorted({c.device for c in cells if c.device}), tls=tls, insecure=insecure,
                       timeout_s=getattr(args, "connect_timeout", None) or 10.0, progress=_stderr)
    except KeyboardInterrupt:
        _stderr(f"interrupted while connecting to {one_line(scheduler)}: nothing was measured")
        raise SystemExit(130) from None


# --scheduler's companions: how this machine reaches the scheduler (taken from the command line on --resume).
_ACCESS_FLAGS = {"tls_ca_file": "--tls-ca-file", "tls_cert": "--tls-cert", "tls_key": "--tls-key",
                 "insecure": "--insecure"}


def _exit_code(run, allow_parity_fail: bool) -> int:
    """3 environment errors, 2 user errors (each told in one line), 1 broken cells or parity failures, else 0."""
    from benchbench.core.status import BROKEN, Status

    env = [c for c in run.cells if c.status == Status.ENV_ERROR]
    user = [c for c in run.cells if c.status == Status.ERROR and c.fault == "user"]
    broken = [c for c in run.cells if c.status in BROKEN and c.fault != "user"]
    parity = [c for c in run.cells if c.ok and c.parity.get("checked") and not c.parity.get("passed")]
    for cells, what in ((env, "environment error"), (user, "model error")):
        for reason in dict.fromkeys(c.reason or "" for c in cells):
            who = sorted({c.spec.model for c in cells if (c.reason or "") == reason})
            _stderr(f"benchbench: {what}: {one_line(reason)}" + ("" if what == "model error" else f" ({', '.join(who)})"))
    if parity and not allow_parity_fail:
        _stderr(f"benchbench: {len(parity)} cells failed parity with PyTorch eager (exit 1; --allow-parity-fail "
                "to exit 0)")
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
    from benchbench.measure.machine import busy_warning, machine_state
    from benchbench.results.journal import JOURNAL, Journal
    from benchbench.results.record import RunResult
    from benchbench.runners import tracked_packages

    slug = names[0] if len(names) == 1 else f"{len(names)}models"
    backends = "+".join(dict.fromkeys(c.backend for c in cells))  # canonical names, whatever the case typed
    out_dir = run_dir(Path(args.out), f"{slug}_{backends}")  # a mistake in --out is reported first
    state = machine_state(0.5, threads=max(c.threads for c in cells))
    if warning := busy_warning(state):
        _stderr(f"benchbench: {warning}")
    meta = {
        "benchbench_version": __version__,
        "argv": _argv(args),
        **({"plugins": plugins} if (plugins := plugin_hashes(args.model)) else {}),
        "environment": environment(tracked_packages()),
        "settings": config.to_dict(),
        "rounds": getattr(rounds, "__doc__", None) if callable(rounds) else rounds,
        "lockstep": args.lockstep,
        "machine_before": state,
    }
    run = RunResult(meta=meta, path=out_dir / "results.json")
    journal = Journal.create(out_dir / JOURNAL, meta)
    _stderr(f"benchbench: {len(cells)} cells ({len(names)} models), results in {out_dir}")
    return out_dir, run, journal


# Options that --resume takes from the command line rather than from the run folder.
_RESUME_OWN = {"resume", "no_wait", "argv", "handler", "command", "out", "scheduler",  # a new cluster's address
               *_ACCESS_FLAGS, "connect_timeout"}


def _resumed_args(args):
    """``run --resume DIR``: the stored command line's args (the options --resume itself takes from the
    command line laid over them), the cells they give, and the folder's run as read (and from which file)."""
    from benchbench.results.journal import load_results

    from .parser import build_parser

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
            raise UsageError(f"--resume {folder}: {flag_for_dest(dest)} {value} conflicts with the run's "
                             f"({'not given' if theirs is None else theirs}); leave it out to resume, or start a "
                             "new run")
    for dest in _RESUME_OWN - {"handler", "command", "out"}:
        setattr(stored, dest, getattr(args, dest, None))
    if args.out != defaults.out:
        raise UsageError("--resume writes into the run's own folder; leave out --out")
    _check_plugins(folder, stored.model, args.model, prior.meta.get("plugins") or {})
    cells, _ = cells_from(stored)  # imports the run's plugins: only now, once the user has vouched for them
    return stored, cells, prior, source


def plugin_hashes(model_arg: str) -> dict[str, str]:
    """``file.py:factory`` entries of a ``--model`` argument → the sha256 of each file as it is now (a file
    that cannot be read: empty), recorded in a run's meta so that ``--resume`` runs only what was measured."""
    from benchbench.models import is_user_model

    out = {}
    for part in (p.strip() for p in (model_arg or "").split(",")):
        if is_user_model(part):
            try:
                out[part] = hashlib.sha256(Path(part.rpartition(":")[0]).expanduser().read_bytes()).hexdigest()
            except OSError:
                out[part] = ""
    return out


def _check_plugins(folder: Path, stored_model: str, given_model: str | None, recorded: dict[str, str]) -> None:
    """A run folder is data, never code: the ``file.py:factory`` plugins named in its stored command line are
    imported only when the user names them again (``--model``) and each file's sha256 still matches the one
    the run recorded (``meta.plugins``)."""
    wanted = plugin_hashes(stored_model)
    if not wanted:
        return
    if not given_model:
        raise UsageError(f"--resume: the run in {folder} measured Python model files ({', '.join(wanted)}); "
                         "a run folder does not run code by itself: give --model as the run did to resume it")
    for spec, digest in wanted.items():
        if spec not in recorded:
            raise UsageError(f"--resume: {folder} has no record of {spec}'s content (a run from before plugins were "
                             "recorded); start a new run")
        if digest != recorded[spec]:
            raise UsageError(f"--resume: {spec.rpartition(':')[0]} has changed since the run measured it (sha256 "
                             f"{digest[:12] or 'unreadable'}, was {recorded[spec][:12]}); start a new run")


def write_views(run, folder: Path, json_too: bool = True, html: bool = False) -> dict[str, Path]:
    """results.json (unless ``json_too`` is False), results.csv and report.md, from ``run``; and report.html
    (``html``: one self-contained page, ``benchbench.results.html``)."""
    from benchbench.results.journal import WriteError
    from benchbench.results.views import write_reports

    try:
        if json_too:
            run.save(folder / "results.json")
    except OSError as exc:  # its temp file is gone already (RunResult.save)
        raise WriteError(f"cannot write {folder / 'results.json'}: {exc.strerror or exc}") from None
    try:
        paths = write_reports(run, folder)
    except OSError as exc:
        raise WriteError(f"cannot write {exc.filename or folder}: {exc.strerror or exc}") from None
    if html:
        from benchbench.results.html import write_report_html

        paths["html"] = write_report_html(run, folder)
    return paths


def wrote_text(paths: dict[str, Path], first: Path | None = None) -> str:
    """The "wrote ..." lines for the files written, one a line."""
    names = ([first] if first else []) + [paths[k] for k in ("csv", "markdown", "html", "profiles") if k in paths]
    return "\nwrote " + "\n      ".join(str(p) for p in names)
