"""Writing a file into a folder without ever writing through a link: a temporary file created exclusively in
the folder, fsynced, then renamed over the final name.

A rename replaces the directory entry itself: if something (a symlink planted in a run folder, say) sits at
the final name, it is replaced, and what it pointed to is untouched. A reader sees the old file or the new
one, never half of one. Every view benchbench writes into a run folder (results.json, results.csv,
report.md, profile.md, claim.md, claim.json, the plots, the HTML pages) goes through :func:`write_atomic`.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

__all__ = ["write_atomic", "own_subfolder"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, data: str | bytes, mode: int = 0o666) -> Path:
    """Write ``data`` (text is UTF-8; a character UTF-8 cannot hold, such as a lone surrogate from a file name's
    undecodable bytes, as a backslash escape) to ``path`` by temp file and rename; ``OSError`` as the OS
    raises it. The file gets ``mode`` less the umask, as an ordinary file would."""
    path = Path(path)
    raw = data.encode("utf-8", "backslashreplace") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name[:40]}-")  # O_EXCL: never a link
    try:
        os.fchmod(fd, mode & ~_umask())  # mkstemp makes it owner-only; a report is as readable as any file
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:  # a full disk or an interrupt mid-write leaves no partial temp file behind
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return path


def own_subfolder(folder: str | Path, name: str) -> Path:
    """``folder/name`` as a real folder of its own (created if missing): a symlink or a file planted at that
    name is removed (the link itself, never what it points to) and replaced by a new folder."""
    sub = Path(folder) / name
    try:
        st = sub.lstat()
    except FileNotFoundError:
        sub.mkdir()
        return sub
    if stat.S_ISDIR(st.st_mode):
        return sub
    sub.unlink()  # a link or a file where our folder belongs
    sub.mkdir()
    return sub
