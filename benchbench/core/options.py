"""One definition per option: a dataclass field carries its command-line flag, its parser and its help.

``CellSpec`` and ``MeasureConfig`` (``benchbench.core.spec``) declare their user-settable fields with
:func:`flag_field`; the command line builds its arguments from them (:func:`flags_of`), the report
describes the settings by them, and the result schema is derived from the same dataclasses. A default
is written once, on the field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

__all__ = ["Flag", "flag_field", "flags_of", "flag_of"]


@dataclass(frozen=True)
class Flag:
    """How a field is set on the command line: ``--flag VALUE`` parsed by ``parse`` (an argparse ``type=``
    function, which turns a bad value into one line), described by ``help``. ``default_help`` replaces the
    field's own default in the help where the command line computes it (threads: the physical cores)."""

    flag: str
    help: str
    parse: Callable[[str], Any] | None = None
    metavar: str | None = None
    default_help: str | None = None
    repeat: bool = False  # the flag may be given several times; the field holds all of them
    short: str | None = None  # a one-letter alias, e.g. -o


def flag_field(default: Any = MISSING, *, flag: str, help: str, parse: Callable[[str], Any] | None = None,
               metavar: str | None = None, default_help: str | None = None, repeat: bool = False,
               short: str | None = None, default_factory: Any = MISSING) -> Any:
    """A dataclass field settable as ``flag`` (see :class:`Flag`)."""
    meta = {"flag": Flag(flag, help, parse, metavar, default_help, repeat, short)}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def flags_of(cls) -> list[tuple[Field, Flag]]:
    """The fields of dataclass ``cls`` that carry a flag, in declaration order."""
    return [(f, f.metadata["flag"]) for f in fields(cls) if "flag" in f.metadata]


def flag_of(cls, name: str) -> Flag:
    """The flag of field ``name`` of ``cls`` (``KeyError`` if it has none)."""
    return next(flag for f, flag in flags_of(cls) if f.name == name)
