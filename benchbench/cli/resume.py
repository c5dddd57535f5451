"""``run --resume DIR``: the run folder's stored command line, checked against the one given, and its plugins
imported only with the user's consent (named again, content unchanged)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .cells import cells_from
from .errors import UsageError
from .parser import flag_for_dest

__all__ = ["ACCESS_FLAGS", "resumed_args", "resumed_sweep", "resumed_predict", "sweep_folders", "stored_command",
           "plugin_hashes"]

# --scheduler's companions: how this machine reaches the scheduler (taken from the command line on --resume).
ACCESS_FLAGS = {"tls_ca_file": "--tls-ca-file", "tls_cert": "--tls-cert", "tls_key": "--tls-key",
                 "insecure": "--insecure"}


# Options that --resume takes from the command line rather than from the run folder (how many exports run at
# once changes how fast the builds are made, not what is measured).
_RESUME_OWN = {"resume", "no_wait", "argv", "handler", "command", "out", "scheduler",  # a new cluster's address
               *ACCESS_FLAGS, "connect_timeout", "build_jobs"}


def resumed_args(args):
    """``run --resume DIR``: the stored command line's args (the options --resume itself takes from the
    command line laid over them), the cells they give, and the folder's run as read (and from which file)."""
    from benchbench.results.journal import load_results

    folder = Path(args.resume)
    prior, source = load_results(folder)
    stored = stored_command(args, folder, prior.meta, ("run", "profile", "lab"))
    _check_plugins(folder, stored.model, args.model, prior.meta.get("plugins") or {})
    cells, _ = cells_from(stored)  # imports the run's plugins: only now, once the user has vouched for them
    return stored, cells, prior, source


def stored_command(args, folder: Path, meta: dict, commands: tuple[str, ...]):
    """The command line a run folder recorded (``meta["argv"]``), parsed, with the options --resume takes from
    this command line laid over it. Any other option given must agree with the stored one (one-line error)."""
    from .parser import build_parser

    argv = meta.get("argv") or []
    if len(argv) < 2 or argv[1] not in commands:
        raise UsageError(f"--resume: {folder} was not written by benchbench {', '.join(commands[:-1])}"
                         f"{' or ' if len(commands) > 1 else ''}{commands[-1]} "
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
    return stored


def resumed_sweep(args):
    """A sweep of ``benchbench predict`` to finish in its folder ``args.resume``: its cells are those ``args``
    give (the names predict computed again from its stored command line and its earlier sweeps), not those of
    a command line. Returns what ``resumed_args`` returns."""
    from benchbench.results.journal import load_results

    prior, source = load_results(Path(args.resume))
    cells, _ = cells_from(args)
    return args, cells, prior, source


def sweep_folders(folder: Path) -> list[Path]:
    """The sweeps' run folders in a predict folder, in the order they were made (their names start with the
    time they were made: ``run_dir``)."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()
                  and ((p / "cells.jsonl").is_file() or (p / "results.json").is_file()))


def resumed_predict(args):
    """``predict --resume DIR``: the command line the interrupted --fit or --evaluate recorded in its first
    sweep (the options --resume takes from this command line laid over it), to run again in DIR: the sweeps
    it made are finished in order (their cells computed again from that command line and the sweeps before),
    the rest measured anew."""
    from benchbench.core.files import PathError, check_folder
    from benchbench.results.journal import load_results

    folder = Path(args.resume)
    try:
        check_folder(folder, "--resume folder")
    except PathError as exc:
        if exc.exit_code != 2:
            raise
        raise UsageError(str(exc)) from None
    sweeps = sweep_folders(folder)
    if not sweeps:
        raise UsageError(f"--resume: {folder} holds no sweep of benchbench predict (interrupted before its first "
                         "cell was measured?): start it again")
    prior, _ = load_results(sweeps[0])
    stored = stored_command(args, folder, prior.meta, ("predict",))
    if not (stored.fit or stored.evaluate):
        raise UsageError(f"--resume: {folder} was not written by benchbench predict --fit or --evaluate")
    stored.resume, stored.argv = str(folder), prior.meta["argv"][1:]
    return stored


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
