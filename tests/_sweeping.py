"""Helpers for tests that drive a `benchbench run` in a subprocess and act on it mid-sweep."""

import signal
import time
from pathlib import Path

import pytest


def groups_in(folder: Path) -> int:
    """Comparison groups journaled so far in the run folders under ``folder``."""
    return "".join(p.read_text() for p in folder.glob("*/cells.jsonl")).count('"kind":"group"')


def wait_for(predicate, proc, timeout: float = 240):
    """Poll ``predicate`` until it holds; fail the test if ``proc`` ends first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"benchbench ended early (exit {proc.returncode}): {proc.stderr.read()[-800:]}")
        time.sleep(0.05)
    pytest.fail("timed out")


def default_signals() -> None:
    """In a child (``preexec_fn``): SIGINT, SIGTERM and SIGHUP as in a foreground process. A suite started in
    the background of a shell inherits SIGINT ignored (under nohup, SIGHUP too), and benchbench, rightly, keeps
    an ignored signal ignored: a test of how it ends on a signal must give it the signal's default first."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
