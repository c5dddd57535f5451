"""A tiny generic name → object registry, shared by the model zoo and the runners.

Names are unique (registering twice raises), lookups ignore case (``VanillaNet_5`` finds
``vanillanet_5``) and fail on unknown names with close-match suggestions, and listing takes fnmatch
patterns, also without regard to case, and sorts naturally (``vanillanet_5`` before ``vanillanet_10``).
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["Registry", "UnknownNameError", "PluginError", "natural_key"]

T = TypeVar("T")


class UnknownNameError(KeyError, LookupError):
    """An unknown registry name. ``str()`` is a one-line message with suggestions."""

    def __init__(self, kind: str, name: str, suggestions: list[str]):
        self.kind, self.name, self.suggestions = kind, name, suggestions
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"unknown {kind} '{name}'{hint}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class PluginError(Exception):
    """A user's plugin file (``file.py:factory``) that cannot be loaded: a syntax or import error, or an
    exception at import time. ``str()`` is one line naming the file and the error."""


def natural_key(name: str) -> list[Any]:
    """Sort key that orders embedded integers numerically."""
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", name)]


@dataclass
class Registry(Generic[T]):
    """Maps names to objects; ``kind`` names the things held, for error messages."""

    kind: str
    _items: dict[str, T] = field(default_factory=dict)

    def register(self, name: str, obj: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._items[name] = obj
        return obj

    def canonical(self, name: str) -> str | None:
        """The registered spelling of ``name``: itself, else its one case-insensitive match, else None."""
        if name in self._items:
            return name
        folded = [n for n in self._items if n.casefold() == name.casefold()]
        return folded[0] if len(folded) == 1 else None  # two names differing only in case: ambiguous

    def get(self, name: str) -> T:
        key = self.canonical(name)
        if key is None:
            raise UnknownNameError(self.kind, name, self.suggest(name))
        return self._items[key]

    def suggest(self, name: str, n: int = 3) -> list[str]:
        """Close matches of ``name`` among the registered names, compared without regard to case."""
        by_folded = {k.casefold(): k for k in self._items}
        return [by_folded[m] for m in difflib.get_close_matches(name.casefold(), list(by_folded), n=n, cutoff=0.5)]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)

    def names(self, include: str | Iterable[str] = "*", exclude: Iterable[str] = ()) -> list[str]:
        """Names matching any ``include`` pattern and no ``exclude`` pattern, naturally sorted."""
        includes = [include] if isinstance(include, str) else list(include)
        excludes = list(exclude)
        found = {
            n
            for n in self._items
            if any(fnmatch.fnmatchcase(n.casefold(), p.casefold()) for p in includes)
            and not any(fnmatch.fnmatchcase(n.casefold(), p.casefold()) for p in excludes)
        }
        return sorted(found, key=natural_key)
