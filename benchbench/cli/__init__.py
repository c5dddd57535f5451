"""The ``benchbench`` command line: run, profile, report, list, compare, history, claim, doctor, cache.

User mistakes (bad option values, unknown names, missing packages, unreadable or malformed files, a model
file that does not load) end with one line on stderr, ``benchbench: error: ...``, and exit code 2, never a
traceback. Exit codes:

* 0: done;
* 1: ``run``/``profile`` (and ``claim`` when it measures) had broken cells (crashed, timed out, lost on a cluster, or an error not of the model's making) or a
  parity failure (unless ``--allow-parity-fail``); ``compare --fail-above`` found a regression;
  ``history --fail-on-change`` a change; ``doctor``'s A/A interval excludes 1.00;
* 2: a mistake in what was asked (nothing to decide on included: no cell compared, no ok cell to claim), or a
  user error: a model whose factory or eager forward fails (its cells have status ``error`` and ``fault:
  "user"``; its own message is printed on one line); an empty, refused, unreachable or silent scheduler;
* 3: an environment error: out of memory, a full disk, an unwritable cache (cells with status
  ``env-error``), a run folder that cannot be written, or a Dask scheduler that went away mid-sweep (the
  line says where the finished cells are);
* 130, 143, 129: interrupted by Ctrl-C, SIGTERM, SIGHUP (128 + the signal).

When several apply, the highest of 3, 2 and 1 is returned: a machine problem hides nothing of the model's.
"""

from __future__ import annotations

import os
import sys

from .errors import Printable, UsageError, one_line

__all__ = ["main", "HANDLERS"]

# Each command's handler: module (in benchbench.cli) and function; imported when the command runs.
HANDLERS = {"run": ("run", "cmd_run"), "report": ("commands", "cmd_report"), "list": ("commands", "cmd_list"),
            "compare": ("commands", "cmd_compare"), "history": ("commands", "cmd_history"),
            "claim": ("claim", "cmd_claim"), "cache": ("commands", "cmd_cache"),
            "doctor": ("commands", "cmd_doctor")}


def _handler(name: str):
    import importlib

    module, function = HANDLERS[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), function)


def main(argv: list[str] | None = None) -> int:
    """The ``benchbench`` command; returns the exit code (0, 1, 2, 3; 130 on Ctrl-C, 143 on SIGTERM, 129 on
    SIGHUP: see the module's docstring). What it prints goes through ``Printable``: control characters from
    names and records are escaped."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = Printable(out), Printable(err)
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = out, err


def _main(argv: list[str] | None) -> int:
    from benchbench.build.files import ArtifactError
    from benchbench.core.registry import PluginError, UnknownNameError
    from benchbench.measure.executor import ExecutorError
    from benchbench.results.journal import JournalBusy, WriteError
    from benchbench.results.load import SchemaError

    from .parser import build_parser

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
        args.argv = argv  # recorded in the run's meta, and what --resume reads back
        return _handler(args.handler)(args)
    except (UnknownNameError, UsageError, SchemaError, PluginError, ArtifactError, JournalBusy) as exc:
        print(f"benchbench: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except WriteError as exc:  # the environment, not the request: a read-only folder, a full disk
        print(f"benchbench: error: {one_line(str(exc))}", file=sys.stderr)
        return 3
    except ExecutorError as exc:  # an unreachable scheduler, an unknown --device (2); a cluster gone (3)
        print(f"benchbench: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except SystemExit as exc:  # --help and --version exit 0 from inside argparse
        return exc.code if isinstance(exc.code, int) else 0
    except BrokenPipeError:  # `benchbench list | head`: the reader left; nothing is wrong
        # Point stdout at devnull so the interpreter's final flush does not fail again (Python's docs' recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
