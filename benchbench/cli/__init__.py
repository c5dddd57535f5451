"""The ``benchbench`` command line: run, profile, report, list, compare, history, claim, lab, doctor, cache.

User mistakes (bad option values, unknown names, missing packages, unreadable or malformed files, a model
file that does not load) end with one line on stderr, ``benchbench: error: ...``, and exit code 2, never a
traceback. Exit codes:

* 0: done;
* 1: ``run``/``profile`` (and ``claim`` when it measures, and ``lab``) had broken cells (crashed, timed out, lost on a cluster, or an error not of the model's making) or a
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

import contextlib
import os
import signal
import sys
import threading

from .errors import Printable, Terminated, UsageError, one_line

__all__ = ["main", "HANDLERS"]

# Each command's handler: module (in benchbench.cli) and function; imported when the command runs.
HANDLERS = {"run": ("run", "cmd_run"), "report": ("commands", "cmd_report"), "list": ("commands", "cmd_list"),
            "compare": ("commands", "cmd_compare"), "history": ("commands", "cmd_history"),
            "claim": ("claim", "cmd_claim"), "lab": ("lab", "cmd_lab"), "predict": ("predict", "cmd_predict"),
            "cache": ("commands", "cmd_cache"),
            "doctor": ("commands", "cmd_doctor")}


def _handler(name: str):
    import importlib

    module, function = HANDLERS[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), function)


def main(argv: list[str] | None = None) -> int:
    """The ``benchbench`` command; returns the exit code (0, 1, 2, 3; 130 on Ctrl-C, 143 on SIGTERM, 129 on
    SIGHUP: see the module's docstring). What it prints goes through ``Printable``: control characters from
    names and records are escaped."""
    signals = _Signals()
    out, err = sys.stdout, sys.stderr
    try:
        try:
            _safe_streams()
            sys.stdout, sys.stderr = Printable(sys.stdout), Printable(sys.stderr)
            signals.install()
            code = _main(argv)
        except KeyboardInterrupt as exc:  # a signal between the handlers above (or before them) and _main's own
            signals.received.append(getattr(exc, "signum", signal.SIGINT))
            code = _interrupted(signals.received[0])
        finally:
            signals.armed = False  # a signal from here on is recorded, not raised
        if signals.received and code < 128:
            # The signal's KeyboardInterrupt was swallowed somewhere (by code that catches too much), or came
            # as the command finished: it was still interrupted.
            code = _interrupted(signals.received[0])
    finally:
        sys.stdout, sys.stderr = out, err
        signals.disarm(restore=argv is not None)  # in-process callers get their handlers back
    if argv is None:  # the command line itself: the process ends with this code
        _end_quietly()
    return code


def _end_quietly() -> None:
    """After the command: the exit code is decided and its line printed.

    * A signal from here on is ignored: the interpreter's finalization puts the default handlers back, and a
      Ctrl-C then would kill the process (-2) after the command had finished and said so.
    * CPython remembers a KeyboardInterrupt that ended a ``PyRun_String`` evaluation (a dataclass's generated
      methods, for one, are made so at import) even when it was caught, and under ``python -m`` it then ends
      the process by SIGINT instead of with the exit code; a string evaluation of its own resets that flag.
    """
    for sig in _Signals.HANDLED:
        with contextlib.suppress(Exception):
            if signal.getsignal(sig) is not signal.SIG_DFL:  # ignored already, or benchbench's
                signal.signal(sig, signal.SIG_IGN)
    exec("None", {})  # noqa: S102 - a constant: only the flag is reset


def _main(argv: list[str] | None) -> int:
    from benchbench.build.files import ArtifactError
    from benchbench.core.files import PathError
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
        return _error(exc, 2)
    except PathError as exc:  # a path the user named: 2, or 3 when the machine failed reading it
        return _error(exc, exc.exit_code)
    except WriteError as exc:  # the environment, not the request: a read-only folder, a full disk
        return _error(exc, 3)
    except ExecutorError as exc:  # an unreachable scheduler, an unknown --device (2); a cluster gone (3)
        return _error(exc, exc.exit_code)
    except SystemExit as exc:  # --help and --version exit 0 from inside argparse
        return exc.code if isinstance(exc.code, int) else 0
    except BrokenPipeError:  # `benchbench list | head`: the reader left; nothing is wrong
        # Point stdout at devnull so the interpreter's final flush does not fail again (Python's docs' recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (Terminated), outside a sweep's own handling
        return _interrupted(getattr(exc, "signum", signal.SIGINT))
    except OSError as exc:
        # A file or folder that no check above caught: still one line that names it. A full disk or a
        # read-only file system is the machine's (3); anything else about a path the user gave is 2.
        from benchbench.core.files import MACHINE_ERRNOS

        where = f"{exc.filename}: " if exc.filename is not None else ""
        return _error(f"{where}{exc.strerror or exc}", 3 if exc.errno in MACHINE_ERRNOS else 2)


def _error(exc, code: int) -> int:
    print(f"benchbench: error: {one_line(str(exc))}", file=sys.stderr, flush=True)
    return code


def _interrupted(signum: int) -> int:
    """The one line and the exit code (128 + the signal) of a command ended by a signal."""
    with contextlib.suppress(Exception):  # a second Ctrl-C from here on changes nothing
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    name = signal.Signals(signum).name
    try:
        print(f"benchbench: interrupted by {name}", file=sys.stderr, flush=True)
    except (OSError, ValueError):  # stderr itself is gone
        pass
    return 128 + signum


def _safe_streams() -> None:
    """stdout and stderr never fail on a character the locale cannot encode (LC_ALL=C: ASCII): help texts hold
    arrows, tables µ and ±, names the user's own characters. They are written escaped instead."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", None) not in ("backslashreplace",):
            with contextlib.suppress(Exception):
                reconfigure(errors="backslashreplace")


class _Signals:
    """For the whole command: SIGTERM and SIGHUP end it as Ctrl-C does (``Terminated``), and every such signal
    is recorded in ``received``, so that one whose exception was swallowed still sets the exit code. A
    signal ignored when benchbench started (``nohup``, a background job) stays ignored. Only in the main
    thread."""

    HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self):
        self.received: list[int] = []
        self.armed = False
        self.previous: dict = {}
        self.previous_hook = None

    def __call__(self, signum, frame):
        self.received.append(signum)
        if self.armed:
            raise KeyboardInterrupt if signum == signal.SIGINT else Terminated(signum)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in self.HANDLED:
            current = signal.getsignal(sig)
            if current is signal.SIG_IGN or current is None:  # ignored, or set outside Python: left alone
                continue
            self.previous[sig] = current
            signal.signal(sig, self)
        self.previous_hook, sys.unraisablehook = sys.unraisablehook, self._unraisable
        self.armed = True

    def _unraisable(self, unraisable) -> None:
        """The handler's exception raised inside a finalizer or a weakref callback (importlib's module-lock
        cleanup, for one), where Python prints 'Exception ignored in: ... Traceback' and goes on: no such
        print, and the signal is raised again, to interrupt the command in its own code."""
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and self.received:
            if self.armed:  # from another thread, a moment later: after this hook has returned
                signum = getattr(unraisable.exc_value, "signum", signal.SIGINT)
                timer = threading.Timer(0.05, signal.pthread_kill, (threading.main_thread().ident, signum))
                timer.daemon = True
                timer.start()
            return
        (self.previous_hook or sys.__unraisablehook__)(unraisable)

    def disarm(self, restore: bool) -> None:
        self.armed = False
        if restore:
            for sig, old in self.previous.items():
                with contextlib.suppress(Exception):
                    signal.signal(sig, old)
            if self.previous_hook is not None and sys.unraisablehook == self._unraisable:
                sys.unraisablehook = self.previous_hook
