"""Reading the files and folders a user names (result files, run folders, model files, ``--input-data``),
safely: one line for every problem, and never a hang.

``open()`` on a FIFO blocks until a writer comes, and ``read()`` of ``/dev/zero`` never ends; a name longer
than the file system allows raises ``ENAMETOOLONG`` from places (``Path.exists``) that are not expected to
raise. Every read of a user-named file here checks the file's type first (``os.stat``), then opens it with
``O_NONBLOCK`` and checks it again on the open descriptor (``fstat``), so that a file swapped for a FIFO in
between is refused too, and reads at most a size limit.

Problems raise :class:`PathError`: one line that names the path, and the exit code it calls for: 2 for a
path that cannot be used as given (missing, a directory, a FIFO, too long, not readable), 3 for the
environment (a failing disk, out of memory).
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path

__all__ = ["PathError", "MACHINE_ERRNOS", "file_kind", "path_error", "regular_file", "open_regular",
           "read_regular_bytes", "check_folder", "exists", "reason", "require_utf8",
           "utf8_problem"]

# An OSError with one of these is the machine's, not the request's: exit 3.
MACHINE_ERRNOS = {errno.EIO, errno.ENOMEM, errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENFILE, errno.EMFILE}


class PathError(Exception):
    """A file or folder the user named cannot be used. ``str()`` is one line naming it; ``exit_code`` is 2
    (a mistake in what was asked) or 3 (the environment)."""

    def __init__(self, message: str, exit_code: int = 2, error_number: int | None = None):
        super().__init__(message)
        self.exit_code, self.errno = exit_code, error_number

    @property
    def missing(self) -> bool:
        """Nothing is at the path (or a part of it is not a folder)."""
        return self.errno in (errno.ENOENT, errno.ENOTDIR)


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words: ``a directory``, ``a FIFO``, ``a character device``, ..."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISREG, "a regular file")):
        if test(mode):
            return name
    return "not a regular file"


def reason(exc: OSError) -> str:
    """What went wrong, in a few words that follow 'cannot read PATH: '."""
    if exc.errno == errno.ENAMETOOLONG:
        return "the name is too long for the file system"
    if exc.errno == errno.ELOOP:
        return "too many levels of symbolic links (a symlink loop?)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))


def path_error(exc: OSError, path, what: str, verb: str = "read") -> PathError:
    """The one-line PathError for an OSError raised about ``path`` (a ``what``, e.g. 'result file')."""
    if exc.errno == errno.ENOENT:
        return PathError(f"no such {what}: {path}", error_number=exc.errno)
    if exc.errno == errno.ENOTDIR:
        return PathError(f"no such {what}: {path} (a part of the path is not a folder)", error_number=exc.errno)
    code = 3 if exc.errno in MACHINE_ERRNOS else 2
    return PathError(f"cannot {verb} {path}: {reason(exc)}", code, exc.errno)


def _stat(path, what: str) -> os.stat_result:
    try:
        return os.stat(path)
    except OSError as exc:
        raise path_error(exc, path, what) from None
    except ValueError:  # an embedded NUL byte
        raise PathError(f"cannot read {what} {path!r}: the name holds a NUL byte") from None


def regular_file(path, what: str) -> os.stat_result:
    """The stat of ``path`` (symlinks followed) if it is a regular file; else PathError, without opening it."""
    st = _stat(path, what)
    if not stat.S_ISREG(st.st_mode):
        raise PathError(f"{path} is {file_kind(st.st_mode)}, not a {what}")
    return st


def open_regular(path, what: str):
    """``path`` opened for binary reading (a file object), if it is a regular file. The type is checked
    before opening and again on the descriptor, which is opened with O_NONBLOCK so that a FIFO put in its
    place meanwhile cannot block; PathError otherwise."""
    regular_file(path, what)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise path_error(exc, path, what) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PathError(f"{path} is {file_kind(st.st_mode)}, not a {what}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular_bytes(path, what: str, limit: int) -> bytes:
    """The content of the regular file ``path``, refused (PathError) when larger than ``limit`` bytes."""
    with open_regular(path, what) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > limit:
            raise PathError(f"{path} is {_size(size)}, more than a {what} may be ({_size(limit)})")
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise path_error(exc, path, what) from None
    if len(data) > limit:  # it grew while being read
        raise PathError(f"{path} is more than a {what} may be ({_size(limit)})")
    return data


def check_folder(path, what: str) -> Path:
    """``path`` as a Path if it is an existing folder (symlinks followed); else PathError."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise PathError(f"no such {what}: {path}") from None
        raise path_error(exc, path, what) from None
    except ValueError:
        raise PathError(f"cannot read {what} {path!r}: the name holds a NUL byte") from None
    if not stat.S_ISDIR(st.st_mode):
        raise PathError(f"{path} is {file_kind(st.st_mode)}, not a {what}")
    return Path(path)


def exists(path, what: str) -> bool:
    """Whether anything (a dangling symlink too) is at ``path``; PathError for a name that cannot be looked
    up (too long, a symlink loop in a parent, no permission to search a folder)."""
    try:
        os.lstat(path)
        return True
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise path_error(exc, path, what, verb="look up") from None
    except ValueError:
        raise PathError(f"cannot look up {what} {path!r}: the name holds a NUL byte") from None


def require_utf8(path, what: str) -> None:
    """Refuse (PathError) a path that is not UTF-8 text as Python holds it: such a path becomes a model's name
    in the run's records, which are UTF-8 JSON (it could not be written, or read back), and ONNX Runtime and
    the ONNX checker take UTF-8 paths only."""
    if (problem := utf8_problem(os.fspath(path))) is not None:
        raise PathError(f"{what} {os.fspath(path)!r}: {problem}")


def utf8_problem(text: str | bytes) -> str | None:
    """Why ``text`` (a name from the command line or the file system) cannot be recorded as UTF-8, or None.
    Python holds bytes it could not decode as lone surrogates: bytes in another encoding, or, under a locale
    whose encoding is ASCII (LC_ALL=C with PYTHONUTF8=0), any name beyond ASCII."""
    try:
        if not isinstance(text, bytes):
            text.encode("utf-8")
            return None
    except UnicodeEncodeError:
        pass
    try:
        (text if isinstance(text, bytes) else os.fsencode(text)).decode("utf-8")  # the bytes the name stands for
    except (UnicodeEncodeError, UnicodeDecodeError):
        return "its name is not valid UTF-8 (bytes from another encoding); rename it or its folder"
    if isinstance(text, bytes):
        return None
    if sys.getfilesystemencoding().lower().replace("-", "") == "utf8":
        return "its name is not valid UTF-8 (lone surrogates); rename it or its folder"
    return (f"this locale's encoding ({sys.getfilesystemencoding()}) cannot name it, and results are recorded as "
            "UTF-8: run under a UTF-8 locale (LC_ALL=C.UTF-8) or with PYTHONUTF8=1")


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
