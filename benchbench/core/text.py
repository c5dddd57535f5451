"""Text from data, made safe for a terminal: control characters escaped.

Names and records come from files a user may have received from someone else (a model name in a result
file, the holder record of a lock file); printed raw, an escape sequence in them could clear the screen or
retitle the terminal. :func:`printable` shows such characters as Python escapes (``\\x1b``); a newline and a
tab stay as they are in multi-line output, and everything else printable (any script) is kept.
"""

from __future__ import annotations

import unicodedata

__all__ = ["printable", "one_line"]


def _escape(ch: str) -> str:
    return ascii(ch)[1:-1]


def _unsafe(ch: str) -> bool:
    # Cc: C0 and C1 controls and DEL; Cf: format characters such as bidi overrides that reorder what is shown;
    # Cs: lone surrogates (a file name's undecodable bytes); Zl/Zp: line and paragraph separators.
    return unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp")


def printable(text: str, keep: str = "\n\t") -> str:
    """``text`` with every control or format character except those in ``keep`` escaped."""
    if text.isprintable() and not any(_unsafe(c) for c in text):
        return text
    return "".join(ch if ch in keep or not _unsafe(ch) else _escape(ch) for ch in text)


def one_line(text: str) -> str:
    """``printable`` with newlines and tabs escaped too: for a one-line message."""
    return printable(text, keep="")
