"""``--input-data FILE.npz`` (and ``--calibration-data``): a user's own arrays, one per input name, read without
trusting the file.

An ``.npz`` is a zip archive of ``.npy`` members, and both layers declare sizes that ``numpy.load`` believes:
a 189-byte file whose ``.npy`` header claims a 48 GiB array makes it allocate 48 GiB, and a small deflated
member can inflate to tens of GB. Here every member that is used is checked before a byte of its data is
read: its zip entry's uncompressed size against a limit (and, for a stored entry, against the archive's own
size), its ``.npy`` header parsed on its own, the declared shape times the dtype's size against the entry's
size and the limit; numeric dtypes only, no objects (no pickles), no empty arrays.

Problems raise ``InputDataError``: one line that names the file, and the array.
"""

from __future__ import annotations

import hashlib
import math
import os
import zipfile

from benchbench.core.files import PathError, open_regular

__all__ = ["MAX_INPUT_BYTES", "InputDataError", "load_input_data", "cast_problem"]

# All the arrays used, together, as loaded: 4 GiB is a batch of 1024 float32 images of 3x512x512.
MAX_INPUT_BYTES = 4 << 30
_MAX_HEADER = 10_000  # numpy's own bound on a .npy header
_NUMERIC = "biufc"  # bool, int, uint, float, complex


class InputDataError(Exception):
    """An ``--input-data`` file or array that cannot be used; ``str()`` is one line naming the file."""


def _error(message: str) -> Exception:
    return InputDataError(message)


def _size(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else (f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n} bytes")


def _header(member, label: str):
    """(shape, dtype) of an opened ``.npy`` member, and the header's length; the data is not read."""
    import numpy as np
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(member, max_header_size=_MAX_HEADER)
        elif version == (2, 0):
            shape, fortran, dtype = npy.read_array_header_2_0(member, max_header_size=_MAX_HEADER)
        else:
            raise ValueError(f".npy format version {version[0]}.{version[1]} (1.0 and 2.0 are read)")
    except (ValueError, SyntaxError, TypeError, EOFError, KeyError, MemoryError, RecursionError) as exc:
        raise _error(f"{label}: not a readable .npy array ({_first_line(exc)})") from None
    if not isinstance(dtype, np.dtype) or dtype.hasobject or dtype.kind not in _NUMERIC or dtype.fields:
        raise _error(f"{label}: holds {dtype} data; model inputs are numbers (bool, int, uint, float, complex)")
    return tuple(int(d) for d in shape), dtype, member.tell()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__


def load_input_data(path: str, names: list[str], limit: int | None = None,
                    option: str = "--input-data") -> tuple[dict, str]:
    """The arrays named ``names`` from the ``.npz`` at ``path``, and the file's SHA-256; ``InputDataError``
    (one line, naming ``option``: the flag that gave the file) for a file or an array that cannot be used,
    before any array larger than ``limit`` bytes (all of them together) is read."""
    flag = f"{option} {path}"
    limit = MAX_INPUT_BYTES if limit is None else limit
    try:
        fh = open_regular(os.path.expanduser(path), f"{option} file")
    except PathError as exc:
        if exc.exit_code != 2:
            raise
        raise _error(f"{option}: {exc}") from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        digest = _npz_digest(fh, flag, names, option)
        archive, members = _npz_members(fh, flag)
        missing = [n for n in names if n not in members]
        if missing:
            raise _error(f"{flag} has no array named {missing[0]} (it holds {', '.join(members) or 'nothing'})")
        total, arrays = 0, {}
        for name in names:
            info, label = members[name], f"{flag}: array {name}"
            shape, nbytes = _member_shape(archive, info, label, size, limit, option)
            total += nbytes
            if total > limit:
                raise _error(f"{flag}: the arrays used are {_size(total)} or more, more than {option} may hold "
                             f"({_size(limit)})")
            arrays[name] = _read_member(archive, info, label, shape)
    return arrays, digest


def _npz_digest(fh, flag: str, names: list[str], option: str) -> str:
    """The SHA-256 of an open file that looks like a .npz (a zip archive); a .npy or any other file is refused."""
    magic = fh.read(6)
    if magic.startswith(b"\x93NUMPY"):
        raise _error(f"{flag}: a .npy file holds one unnamed array; {option} takes a .npz with one array "
                     f"per input name, e.g. numpy.savez(FILE, {names[0] if names else 'x'}=array)")
    if not magic.startswith(b"PK"):
        raise _error(f"{flag}: not a .npz file (numpy.savez writes one; this is no zip archive)")
    fh.seek(0)
    digest = hashlib.sha256()
    while chunk := fh.read(1 << 20):
        digest.update(chunk)
    fh.seek(0)
    return digest.hexdigest()


def _npz_members(fh, flag: str) -> tuple[zipfile.ZipFile, dict]:
    """The open archive and its ``.npy`` members by array name."""
    try:
        archive = zipfile.ZipFile(fh)
        return archive, {info.filename[:-4]: info for info in archive.infolist() if info.filename.endswith(".npy")}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, NotImplementedError,
            UnicodeDecodeError, IndexError, KeyError) as exc:
        raise _error(f"{flag}: not a readable .npz file ({_first_line(exc)})") from None


def _member_shape(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, size: int,
                  limit: int, option: str = "--input-data") -> tuple[tuple, int]:
    """An array's shape and byte count from its header alone, checked against the archive's own sizes and
    ``limit`` before a byte of its data is read (a forged header must not make us allocate)."""
    if info.flag_bits & 0x1:
        raise _error(f"{label} is encrypted")
    if info.file_size > limit:
        raise _error(f"{label} is {_size(info.file_size)} unpacked, more than {option} may hold "
                     f"({_size(limit)})")
    if info.compress_type == zipfile.ZIP_STORED and info.file_size > size:
        raise _error(f"{label}: the archive says it holds {_size(info.file_size)}, more than the whole "
                     f"file ({_size(size)}): a truncated or forged .npz")
    try:
        with archive.open(info) as member:
            shape, dtype, header = _header(member, label)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise _error(f"{label}: not readable ({_first_line(exc)})") from None
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    if count == 0:
        raise _error(f"{label} has no elements (shape {shape}); every input needs data")
    if nbytes > limit:
        raise _error(f"{label}: its header says {dtype}{list(shape)} ({_size(nbytes)}), more than "
                     f"{option} may hold ({_size(limit)})")
    if header + nbytes != info.file_size:
        raise _error(f"{label}: its header says {dtype}{list(shape)} ({_size(nbytes)}), but the archive "
                     f"holds {_size(max(info.file_size - header, 0))} of data: a truncated or forged .npz")
    return shape, nbytes


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, shape: tuple):
    """The array itself, never unpickled, and it must be what its header said."""
    import numpy as np
    from numpy.lib import format as npy

    try:
        with archive.open(info) as member:
            array = npy.read_array(member, allow_pickle=False, max_header_size=_MAX_HEADER)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise _error(f"{label}: not readable ({_first_line(exc)})") from None
    if not isinstance(array, np.ndarray) or array.shape != shape:
        raise _error(f"{label}: not readable (its data does not match its header)")
    return array


def cast_problem(array, dtype_name: str) -> str | None:
    """Why ``array`` cannot be given to an input of dtype ``dtype_name`` without changing its values (complex
    to real, float to int, integers out of range, floats that overflow), or None when it can."""
    import numpy as np

    try:
        target = np.dtype(dtype_name)
    except TypeError:
        return None  # a dtype numpy does not name ("unknown"): the runtime decides
    source = array.dtype
    if source == target or np.can_cast(source, target, "safe"):
        return None
    if not np.can_cast(source, target, "same_kind"):
        return f"{source} data cannot be given to a {target} input without changing it (cast the array first)"
    if source.kind in "iu" and target.kind in "iu":
        info = np.iinfo(target)
        low, high = int(array.min()), int(array.max())
        if low < info.min or high > info.max:
            return f"holds values in [{low}, {high}], outside the {target} input's range"
    if source.kind in "fc" and target.kind in "fc":
        finite = np.isfinite(array)
        big = float(np.abs(array[finite]).max()) if finite.any() else 0.0
        if big > float(np.finfo(target).max):
            return f"holds values up to {big:g}, beyond what the {target} input holds"
    return None

