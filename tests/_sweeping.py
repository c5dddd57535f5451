"""Helpers for tests that drive a `benchbench run` in a subprocess and act on it mid-sweep."""

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
