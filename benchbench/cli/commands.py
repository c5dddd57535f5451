"""The small commands: ``report``, ``list``, ``compare``, ``cache`` and ``doctor``."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from benchbench.core.files import MACHINE_ERRNOS, file_kind, reason

from .errors import UsageError
from .run import write_views, wrote_text

__all__ = ["cmd_report", "cmd_list", "cmd_compare", "cmd_cache", "cmd_doctor"]

_write = os.write  # compare --output's one write call; tests replace it to inject a full disk


def cmd_report(args) -> int:
    """Rebuild a run folder's results.json, results.csv and report.md from its journal (or results.json),
    keeping the profiles and meta that only results.json holds (written after the sweep)."""
    from benchbench.results.journal import RESULTS, keep_later_records, load_results
    from benchbench.results.views import terminal_table

    folder = Path(args.folder)
    run, source = load_results(folder)
    if source != RESULTS and (folder / RESULTS).is_file():  # profiles and meta written after the sweep
        keep_later_records(run, folder / RESULTS, notice=lambda msg: print(f"benchbench: {msg}", file=sys.stderr))
    paths = write_views(run, folder, json_too=source != RESULTS, html=args.html)
    print(terminal_table(run))
    print(wrote_text(paths, folder / RESULTS if source != RESULTS else None))
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


def _output_kind(path: Path) -> int | None:
    """The file type bits of what is at ``path`` (symlinks followed), or None if nothing; UsageError when the name
    cannot be looked up (too long, a symlink loop)."""
    try:
        return stat.S_IFMT(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {reason(exc)}") from None
    except ValueError:  # a NUL byte in the name
        raise UsageError(f"cannot write {path!r}: the name holds a NUL byte") from None


# An output file may be a regular file, or a character device (/dev/null, a terminal's /dev/stdout); a FIFO
# would block until someone reads it, a folder or a socket cannot be written.
_WRITABLE = (stat.S_IFREG, stat.S_IFCHR)


def _check_writable(path: Path) -> None:
    """Refuse an output path that cannot be written, before any work is done."""
    kind = _output_kind(path)
    if kind is not None and kind not in _WRITABLE:
        raise UsageError(f"cannot write {path}: it is {file_kind(kind)}")
    if kind is None:
        parent = _output_kind(path.parent)
        if parent != stat.S_IFDIR:
            raise UsageError(f"cannot write {path}: no folder {path.parent}")
    if not os.access(path if kind is not None else path.parent, os.W_OK):
        raise UsageError(f"cannot write {path}: permission denied")


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8; a character no encoding holds, such as a lone surrogate from a result file, is
    escaped) to ``path``; opened without blocking, so a FIFO put there since the check is refused too."""
    data = text.encode("utf-8", errors="backslashreplace")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0), 0o666)
    except OSError as exc:  # ENXIO: a FIFO that no one reads
        raise _output_error(path, exc) from None
    try:
        kind = stat.S_IFMT(os.fstat(fd).st_mode)
        if kind not in _WRITABLE:
            raise UsageError(f"cannot write {path}: it is {file_kind(kind)}")
        os.set_blocking(fd, True)
        if kind == stat.S_IFREG:
            os.ftruncate(fd, 0)
        view = memoryview(data)
        while view:
            view = view[_write(fd, view):]
    except OSError as exc:  # what _check_writable cannot foresee: a full disk, a race
        raise _output_error(path, exc) from None
    finally:
        os.close(fd)


def _output_error(path: Path, exc: OSError) -> Exception:
    """A full disk or a read-only file system is the machine's (exit 3); anything else about the path is 2."""
    from benchbench.results.journal import WriteError

    if exc.errno in MACHINE_ERRNOS:
        return WriteError(f"cannot write {path}: {exc.strerror or exc}")
    return UsageError(f"cannot write {path}: {exc.strerror or exc}")


def cmd_compare(args) -> int:
    from benchbench.results.compare import compare_runs, comparison_markdown, pivot, regressions
    from benchbench.results.load import load_run

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
    texts, failing, compared = [], [], 0
    for label, run_a, run_b in pairs:
        comparisons = compare_runs(run_a, run_b, threshold=args.threshold / 100, alpha=args.alpha,
                                   paired=bool(args.pivot))
        names = label.split(" → ") if label else [Path(args.a).parent.name or "A", Path(args.b).parent.name or "B"]
        texts.append((f"## {label}\n\n" if label else "") + comparison_markdown(comparisons, *names))
        compared += sum(c.estimate is not None for c in comparisons)
        if args.fail_above is not None:
            failing += regressions(comparisons, args.fail_above)
    text = "\n\n".join(texts)
    print(text)
    if args.output:
        _write_text(Path(args.output), text + "\n")
    if not compared:  # a gate that compared nothing must not pass, nor a comparison read as "no change"
        raise UsageError("no cell was measured ok in both A and B: nothing was compared")
    if failing:
        print(f"benchbench: {len(failing)} cells slower by more than {100 * args.fail_above:g}%: "
              + ", ".join(c.label for c in failing), file=sys.stderr)
        return 1
    return 0


def cmd_cache(args) -> int:
    """``benchbench cache [show|clear] [PATTERN]``."""
    from benchbench.build import cache, cache_admin

    root = cache.cache_root()
    if root.exists() and not root.is_dir():
        raise UsageError(f"the cache {root} is not a folder")
    try:
        if args.action == "show":
            print(cache_admin.show(args.pattern, root))
        else:
            removed, kept = cache_admin.clear(args.pattern, root)
            print(cache_admin.clear_text(removed, kept, args.pattern, root))
    except (ValueError, cache.CacheRootError) as exc:  # a bad pattern; a folder that is not a benchbench cache
        raise UsageError(str(exc)) from None
    except BrokenPipeError:  # `benchbench cache | head`: main() handles it
        raise
    except OSError as exc:
        raise UsageError(f"cache {root}: {exc.strerror or exc}") from None
    return 0


def cmd_doctor(args) -> int:
    """Print the machine's state and an A/A comparison; exit 1 if the A/A interval excludes 1.00."""
    from benchbench.core.spec import CellSpec, MeasureConfig, physical_cores
    from benchbench.measure.machine import busy_warning, machine_state
    from benchbench.models import resolve_models
    from benchbench.runners import get_runner, resolve_backends

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
    from benchbench.measure.doctor import aa_check, process_sd_path, save_process_sd
    from benchbench.results.estimates import ratio

    spec = CellSpec(names[0], args.variant, backend, threads=threads)
    # every session runs to its share of the time (no early stop): the between-process term needs them all
    config = MeasureConfig(max_s=args.max_time, min_s=args.max_time, sessions=args.sessions, target_ci=1e-9)
    print(f"\nA/A: {spec.label()} in two workers, in lockstep, in {args.sessions} sessions of fresh workers ...",
          flush=True)
    result = aa_check(spec, config)
    if result.estimate is None:
        print(f"A/A could not run: {result.reason}")
        return 1
    if result.between is not None:
        b = result.between
        print(f"between-process term: sd {100 * b['sd']:.2f}% of the log-ratio (80% upper bound "
              f"{100 * b['upper80']:.2f}%), from {b['sessions']} sessions: their means spread by "
              f"{100 * b['spread_sd']:.2f}%, of which their own rounds explain {100 * b['within_sd']:.2f}%")
        try:
            save_process_sd(threads, b, spec)
            print(f"cached in {process_sd_path(threads)}: runs with {threads} threads on this machine add its 80% "
                  f"upper bound ({100 * b['upper80']:.2f}%) to their paired intervals for the next 7 days")
        except OSError as exc:
            print(f"note: could not cache the between-process term: {exc.strerror or exc}")
        a_cells = result.cells
        result.estimate = ratio(a_cells[1].blocks, a_cells[0].blocks, samples_b=a_cells[1].samples_ns,
                                samples_a=a_cells[0].samples_ns, process_sd=b["upper80"])
    else:
        print("between-process term: not measured (fewer than two sessions kept three quiet rounds); nothing cached, "
              "runs keep the cached or default term")
    e = result.estimate
    print(f"A/A ratio {e.value:.4f} [{e.low:.4f}, {e.high:.4f}] over {e.units} rounds "
          f"({result.median_ms:.3f} ms per inference; {e.rule}; waited {share(result.wait_share)})")
    print(f"smallest difference resolvable now: about ±{100 * e.half_width:.1f}%"
          + ("" if result.contains_one else "  — the interval excludes 1.00: this machine's noise is not "
             "stationary enough for lockstep comparisons right now"))
    return 0 if result.contains_one else 1


def cmd_history(args) -> int:
    """The same cells across runs, in time order; writes history.md, history.png and history.html."""
    from benchbench.core.atomic import write_atomic
    from benchbench.results.history import history

    from .run import run_dir

    if len(args.results) < 2:
        raise UsageError("history lines up two runs or more; give at least two result files or run folders")
    hist = history(args.results, threshold=args.threshold / 100, alpha=args.alpha)
    if not hist.cells:
        raise UsageError("the runs hold no cells to line up")
    if not any(sum(p.status == "ok" for p in c.points) >= 2 for c in hist.cells):
        raise UsageError("no cell was measured ok in two of these runs: nothing to follow across them")
    print(hist.terminal_table(only_changed=args.changed))
    out = run_dir(Path(args.out), "history")
    try:
        md = write_atomic(out / "history.md", hist.markdown())
        png = hist.plot_png(out / "history.png")
        html = hist.write_html(out)
    except OSError as exc:
        from benchbench.results.journal import WriteError

        raise WriteError(f"cannot write the history into {out}: {exc.strerror or exc}") from None
    print("\nwrote " + "\n      ".join(str(p) for p in (md, png, html) if p))
    return 1 if args.fail_on_change and hist.changes() else 0
