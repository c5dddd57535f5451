"""Model file formats a user can bring (``--model model.onnx``): one module per format, found on use.

A format module defines one :class:`Format` subclass named ``FORMAT``. It knows its file suffixes, the
files that travel with the main one (an IR's ``.bin``), how to check that a file loads, how to read its
declared inputs and outputs, and how to count its metrics at concrete input shapes. Which backend runs
which format is the runners' business (``Runner.formats``), not the format's. Adding a format is adding a
module here: the package lists its own modules, and nothing else names them.

Nothing heavy is imported here: onnx, the TFLite interpreter and OpenVINO load inside the methods.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

__all__ = ["Format", "FormatError", "TensorDecl", "format_for", "get_format", "list_formats"]


class FormatError(Exception):
    """A model file that cannot be used as given: missing, truncated, a sidecar absent. ``str()`` is one line."""


@dataclass(frozen=True)
class TensorDecl:
    """A declared graph input or output: its name, numpy dtype name, and dims (an int, or a str naming a
    symbolic dim, or None for an unnamed dynamic one)."""

    name: str
    dtype: str
    dims: tuple[int | str | None, ...]

    @property
    def dynamic(self) -> list[str]:
        """The dims without a value, as written: ``batch``, ``height``, or ``?`` (unnamed)."""
        return [d if isinstance(d, str) else "?" for d in self.dims if not isinstance(d, int)]

    def text(self) -> str:
        dims = "x".join(str(d) if isinstance(d, int) else (d or "?") for d in self.dims)
        return f"{self.name} {self.dtype}[{dims}]"


class Format:
    """One file format. Subclasses set the class attributes and implement the methods."""

    name: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]]
    description: ClassVar[str]

    def files(self, path: Path) -> list[Path]:
        """The model file and the files it needs beside it, main file first; a missing one raises FormatError."""
        return [path]

    def check(self, path: Path) -> None:
        """Raise FormatError (one line) if the file does not load as this format."""

    def inputs(self, path: Path) -> list[TensorDecl]:
        raise NotImplementedError

    def outputs(self, path: Path) -> list[TensorDecl]:
        raise NotImplementedError

    def metrics(self, path: Path, shapes: dict[str, tuple[int, ...]]) -> tuple[dict, dict | None]:
        """(model counts: params, flops, macs, and what could not be counted; graph metrics or None) at
        the given input shapes. Counts that cannot be made are None, with the reason recorded."""
        raise NotImplementedError


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def _all() -> dict[str, Format]:
    found = {}
    for module in _modules():
        fmt = importlib.import_module(f"{__name__}.{module}").FORMAT()
        found[fmt.name] = fmt
    return found


def list_formats() -> list[Format]:
    return list(_all().values())


def get_format(name: str) -> Format:
    return _all()[name]


def format_for(path: str | Path) -> Format | None:
    """The format a file name says it is (by suffix, any case), or None if it names none."""
    suffix = Path(path).suffix.lower()
    return next((f for f in _all().values() if suffix in f.suffixes), None)
