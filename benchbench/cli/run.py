"""``benchbench run`` and ``profile`` (and ``claim`` when it measures): the cells asked for, a new run folder or
a resumed one, the sweep under the machine's measuring lock, then the views, the table and the exit code."""

from __future__ import annotations

import contextlib
import datetime as _dt
import re
import signal
import sys
import time
from pathlib import Path

from benchbench import __version__

from .cells import cells_from, config_from
from .errors import Terminated, UsageError, one_line
from .resume import ACCESS_FLAGS, plugin_hashes, resumed_args, resumed_sweep

__all__ = ["cmd_run", "measure", "run_dir", "write_views", "wrote_text"]


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
            # a predict sweep's cells are the names predict gives it; a run's, its stored command line's
            args, cells, prior, source = (resumed_sweep if getattr(args, "sweep_names", ()) else resumed_args)(args)
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

    ``rounds``: rounds per cell spec (a callable) or an ``Allocation``, overriding ``--rounds``.
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
        select = getattr(args, "profile_select", None)
        runs = args.profile_runs if args.profile else 0
        run_sweep(session.cells, session.config, run, rounds=session.rounds, lockstep=args.lockstep,
                  journal=session.journal, finished=session.finished, executor=session.executor,
                  profile=(lambda spec: runs if select is None or select(spec) else 0) if runs else None)
        if args.profile:  # the sweep profiled its cells in their own workers; a resumed run's older cells now
            from benchbench.measure.profile import profile_run

            start = time.monotonic()
            try:
                profile_run(run, session.config, runs=args.profile_runs, select=select)
            except OSError as exc:  # its run.save() after each profiled cell
                raise WriteError(f"cannot write {run.path}: {exc.strerror or exc}") from None
            # the profiling's own time, beside the sweep's (meta.sweep): results.json is written after this
            run.meta["profile"] = {"cells": sum(1 for c in run.cells if c.metrics.get("profile")),
                                   "wall_s": round(time.monotonic() - start, 1)}
            session.journal.append_meta(run.meta)  # the journal's readers see it too, not only results.json's


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
    access = [flag for dest, flag in ACCESS_FLAGS.items() if getattr(args, dest, None)]
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


def _exit_code(run, allow_parity_fail: bool) -> int:
    """3 environment errors, 2 user errors (each told in one line), 1 broken cells or parity failures, else 0."""
    from benchbench.core.status import BROKEN, Status

    env = [c for c in run.cells if c.status == Status.ENV_ERROR]
    user = [c for c in run.cells if c.status == Status.ERROR and c.fault == "user"]
    broken = [c for c in run.cells if c.status in BROKEN and c.fault != "user"]
    parity = [c for c in run.cells if c.ok and c.outputs_failed]
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


def _process_sd_source(config) -> dict:
    """The between-process term this run's paired intervals add, and where it comes from."""
    from benchbench.results.estimates import PROCESS_SD

    if config.process_sd is not None:
        return {"sd": config.process_sd, "source": "benchbench doctor's measurement of this machine (cached)"}
    return {"sd": PROCESS_SD, "source": "the constant estimates.PROCESS_SD: no doctor measurement of this machine "
                                        "and thread count is cached (run benchbench doctor)"}


def _new_run(args, config, cells, names, rounds):
    """The run's new folder, its RunResult and its journal (the header written)."""
    from benchbench.core.env import environment
    from benchbench.measure.machine import busy_warning, machine_state
    from benchbench.measure.sweep import Allocation
    from benchbench.results.journal import JOURNAL, Journal
    from benchbench.results.record import RunResult
    from benchbench.runners import tracked_packages

    slug = "lab" if args.command == "lab" else names[0] if len(names) == 1 else f"{len(names)}models"
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
        "rounds": rounds.note if isinstance(rounds, Allocation) else rounds,
        "process_sd": _process_sd_source(config),
        "lockstep": args.lockstep,
        "machine_before": state,
    }
    run = RunResult(meta=meta, path=out_dir / "results.json")
    journal = Journal.create(out_dir / JOURNAL, meta)
    _stderr(f"benchbench: {len(cells)} cells ({len(names)} models), results in {out_dir}")
    return out_dir, run, journal


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
