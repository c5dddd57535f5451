"""argparse ``type=`` functions for the command line's numbers, sizes, name lists and paths.

Each one turns a bad value into ``argparse.ArgumentTypeError`` with a short reason, which the CLI prints
as one line (``benchbench: error: argument --threads: ...``) with exit code 2, before anything runs.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

from .files import file_kind, reason

__all__ = ["bounded_int", "bounded_float", "input_size", "option", "percent", "name_list", "new_folder_base",
           "MAX_INPUT_SIZE"]

MAX_INPUT_SIZE = 8192  # an 8192x8192 image is 200 Mpx: past it, a typo, not a benchmark


def bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    """An int in ``low..high`` (inclusive; no upper bound if ``high`` is None)."""
    where = f"between {low} and {high}" if high is not None else f"at least {low}"

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number {where}, got '{text}'") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {where}, got {value}")
        return value

    parse.__name__ = "int"
    return parse


def bounded_float(low: float, high: float = math.inf, *, low_open: bool = True,
                  high_open: bool = True) -> Callable[[str], float]:
    """A finite float between ``low`` and ``high``, each bound excluded unless ``*_open`` is False."""
    lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
    where = f"in {lo}{low:g}, {high:g}{hi}" if math.isfinite(high) else \
        (f"above {low:g}" if low_open else f"at least {low:g}")

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number {where}, got '{text}'") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number {where}, got {text.strip()}")
        if value < low or (low_open and value == low) or value > high or (high_open and value == high):
            raise argparse.ArgumentTypeError(f"must be {where}, got {value:g}")
        return value

    parse.__name__ = "float"
    return parse


def percent(text: str) -> float:
    """``5%`` or ``5`` → 0.05; finite and above zero (a regression gate of 0% or less gates nothing)."""
    value = bounded_float(0)(text.strip().rstrip("%"))
    return value / 100


def input_size(text: str) -> tuple[int, int]:
    """``N`` or ``HxW`` (also ``H,W``), each side 1..MAX_INPUT_SIZE."""
    m = re.fullmatch(r"(\d+)(?:[x,](\d+))?", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"expected N or HxW, got '{text}'")
    sides = [int(g) for g in m.groups() if g is not None]
    if not all(1 <= s <= MAX_INPUT_SIZE for s in sides):
        raise argparse.ArgumentTypeError(f"each side must be between 1 and {MAX_INPUT_SIZE}, got '{text}'")
    return sides[0], sides[-1]


def option(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` for a backend option."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got '{text}'")
    return key.strip(), value.strip()


def name_list(text: str) -> str:
    """A comma-separated list with at least one name, normalized (``' a, ,b'`` → ``'a,b'``)."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected one or more comma-separated names, got '{text}'")
    return ",".join(names)


def new_folder_base(text: str) -> str:
    """A folder to create run folders in: it may not exist yet, but must not be a file."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder, got ''")
    try:
        st = os.stat(Path(text).expanduser())
    except (FileNotFoundError, NotADirectoryError):
        return text  # created when the run starts (or refused then, under a file)
    except OSError as exc:  # too long a name, a symlink loop, a folder we may not search
        raise argparse.ArgumentTypeError(f"cannot use '{text}': {reason(exc)}") from None
    if not stat.S_ISDIR(st.st_mode):
        what = "a file" if stat.S_ISREG(st.st_mode) else file_kind(st.st_mode)
        raise argparse.ArgumentTypeError(f"'{text}' is {what}, not a folder")
    return text
