"""The verified artifact cache: atomic writes, per-key locks, hashed manifests, and who may use an entry (the listing and
clearing behind ``benchbench cache`` are in ``benchbench.build.cache_admin``).

A build's folder (``<cache>/<key>/``, see ``benchbench.build.export``) holds its files and ``build.json``, the
manifest. Every file is written to a temporary name in the same folder, fsynced and renamed over its
final name, so a reader sees the old file or the new one, never half of one. The manifest records each
file's size and sha256 under ``files``, with paths relative to the build's folder, so a cache that is
moved still works; a manifest without ``layout: 2`` (older versions stored absolute paths) is stale.

Before a build is used, every file it needs is checked: its size always, its hash once per process
(``verify``). A bad entry is rebuilt once by the caller. Two processes building one key serialize on
``<cache>/.locks/<key>.lock`` (``fcntl.flock``): the second waits, then finds the build done.

The cache owns only what it can prove is its own. Its root is created owner-only (0700) and holds a marker
file (``.benchbench-cache``); ``benchbench cache clear`` refuses a root without it, and removes an entry only
when the entry's ``build.json`` lists every file in it (a manifest), and only while no other benchbench holds
the entry's lock: one building it holds it exclusively, one measuring from it holds it shared (``hold``).
Nothing here follows a symlink out of the cache: listing uses ``lstat``, locks are opened without following
links, and clearing removes a link, never what it points to.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["LAYOUT", "MARKER", "CacheRootError", "build_record", "cache_root", "ensure_root", "atomic_path",
           "write_json", "file_record", "read_json", "verify", "trust", "key_lock", "hold", "release", "seal", "sealed"]

LAYOUT = 2  # 2: relative paths and per-file sha256 in build.json (1 had absolute paths, no hashes)
MARKER = ".benchbench-cache"  # in the root of every cache benchbench made (or adopted): clear needs it
LOCKS = ".locks"
_VERIFIED: set[tuple[str, str, int]] = set()  # (build dir, file, size) hashed in this process already
# Not a build, but the cache's own: its locks, roofline calibrations, an atomic write's leftovers, the marker.
_OWN_NAMES = (LOCKS, "roofline", MARKER)


class CacheRootError(Exception):
    """A cache root benchbench will not use or clear: not a folder, or a folder holding what is not benchbench's
    (``str()`` is one line)."""


def cache_root() -> Path:
    """``$BENCHBENCH_CACHE`` (made absolute), else ``$XDG_CACHE_HOME/benchbench`` where that variable is an
    absolute path (the XDG spec says to ignore a relative or empty one: ``XDG_CACHE_HOME=''`` must not make
    the cache ``./benchbench``), else ``~/.cache/benchbench``."""
    if env := os.environ.get("BENCHBENCH_CACHE", "").strip():
        return Path(env).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache") / "benchbench"


def _looks_ours(path: Path) -> bool:
    """An entry a cache made before roots carried a marker would hold: a build folder, the locks, roofline."""
    if path.name in _OWN_NAMES or path.name.startswith(".tmp-"):
        return True
    return path.is_dir() and not path.is_symlink() and (path / "build.json").is_file()


def ensure_root(root: Path | None = None) -> Path:
    """The cache root, ready to write: created owner-only (0700) with its marker, or an existing root that
    has the marker. An existing root without one is adopted (the marker written) when everything in it looks
    like a cache's; otherwise ``CacheRootError``: benchbench does not fill, or later clear, a folder that is
    not its own (``BENCHBENCH_CACHE=$HOME`` by mistake). A root that cannot be written is left as it is:
    a read-only cache still serves its builds."""
    root = Path(root or cache_root())
    try:
        root.mkdir(parents=True, mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return root
        raise
    if not root.is_dir():
        raise CacheRootError(f"the cache {root} is not a folder")
    if (root / MARKER).is_file():
        return root
    foreign = sorted(n for n in os.listdir(root) if not _looks_ours(root / n))
    if foreign:
        raise CacheRootError(f"the cache {root} holds files that are not benchbench's ({foreign[0]!r:.60}, "
                             f"{len(foreign)} in all): set BENCHBENCH_CACHE to an empty folder or a benchbench cache")
    try:
        fd = os.open(root / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        return root
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return root
        raise
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("benchbench's artifact cache: `benchbench cache` shows it, `benchbench cache clear` empties it.\n")
    return root


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)  # the rename itself is durable only once its folder is
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A path to write ``path``'s content to, in a temporary folder beside it; on success every file
    written there is fsynced and renamed into ``path``'s folder, ``path`` itself last.

    A folder, not a temporary name, because exporters write sidecars named after their output
    (``model.onnx.data``, which the ONNX file then references by name): they must be written under the
    final name. On any failure the temporary folder is removed and nothing in the cache changes.
    """
    path = Path(path)
    tmp_dir = path.parent / f".tmp-{os.getpid()}-{path.name}"
    shutil.rmtree(tmp_dir, ignore_errors=True)  # a leftover of a killed writer with this pid
    tmp_dir.mkdir(parents=True)
    try:
        yield tmp_dir / path.name
        names = sorted(os.listdir(tmp_dir), key=lambda n: n == path.name)  # sidecars first: the main file last
        for name in names:
            with open(tmp_dir / name, "rb") as fh:
                os.fsync(fh.fileno())
        for name in names:
            os.replace(tmp_dir / name, path.parent / name)
        _fsync_dir(path.parent)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def build_record(manifest: dict, folder: Path, cached: bool, **extra) -> dict:
    """An ok build's record, as the build step hands it on: its manifest and folder, and where its cells'
    inputs (``input.npy`` of a zoo model, ``input.npz`` of a user's file) and reference outputs are."""
    files = manifest.get("files") or {}
    inputs = "input.npz" if "input.npz" in files else "input.npy"
    return {"status": "ok", "manifest": manifest, "dir": str(folder), "cached": cached,
            "input_path": str(Path(folder) / inputs),
            "reference_path": str(Path(folder) / "reference.npz") if "reference.npz" in files else None, **extra}


def write_json(path: Path, obj) -> None:
    """``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1), encoding="utf-8")


def read_json(path: Path) -> dict | None:
    """A JSON object from a cache file, or None if it is missing or does not parse: a cache file that
    cannot be read is treated as absent, never trusted and never fatal."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _digest(obj: dict) -> str:
    body = {k: v for k, v in obj.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def seal(obj: dict) -> dict:
    """``obj`` with a ``checksum`` of the rest of it: a flipped digit in a JSON record still parses, and
    only the checksum can tell."""
    obj["checksum"] = _digest(obj)
    return obj


def sealed(obj: dict) -> bool:
    """Whether ``obj`` carries a checksum that matches it (see :func:`seal`)."""
    return obj.get("checksum") == _digest(obj)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def file_record(path: Path) -> dict:
    """``{"bytes", "sha256"}`` of a file just written (it is in the page cache: hashing it is cheap)."""
    return {"bytes": Path(path).stat().st_size, "sha256": _sha256(path)}


def verify(build_dir: Path, manifest: dict, names: list[str]) -> str | None:
    """Why the files ``names`` of a build cannot be trusted (``"model.onnx: hash mismatch"``), or None.

    Sizes are checked on every call. Hashes are checked once per process and build file: sha256 runs at
    about 1 GB/s, so even a 500 MB artifact costs half a second once, against minutes of measuring it;
    later uses in the same process (every cell of a build) check only the size.
    """
    files = manifest.get("files")
    if not isinstance(files, dict):
        return "build.json lists no files"
    for name in names:
        rec = files.get(name)
        if not isinstance(rec, dict) or "bytes" not in rec or "sha256" not in rec:
            return f"{name}: not in build.json"
        path = build_dir / name
        try:
            st = path.lstat()
        except FileNotFoundError:
            return f"{name}: missing"
        if not path.is_file() or path.is_symlink():
            return f"{name}: not a regular file"
        if st.st_size != rec["bytes"]:
            return f"{name}: {st.st_size} bytes, build.json says {rec['bytes']}"
        seen = (str(build_dir), name, st.st_size)
        if seen not in _VERIFIED:
            if _sha256(path) != rec["sha256"]:
                return f"{name}: hash mismatch"
            _VERIFIED.add(seen)
    return None


def trust(build_dir: Path, manifest: dict) -> None:
    """Mark a build this process has just written as verified (its hashes were taken from the bytes written)."""
    for name, rec in (manifest.get("files") or {}).items():
        _VERIFIED.add((str(build_dir), name, rec.get("bytes")))


@contextlib.contextmanager
def key_lock(root: Path, key: str, on_wait: Callable[[], None] = lambda: None, blocking: bool = True,
             lock: str = ".lock"):
    """Hold the exclusive lock of build ``key``; ``on_wait`` is called once if another process holds it.

    The lock is ``flock`` on a file of its own, outside the build's folder (so clearing an entry never
    removes a lock someone holds); the kernel releases it when the holder dies, even by SIGKILL.
    Yields True when held, False when ``blocking`` is off and another process holds it. ``lock=".use"``
    takes the entry's use lock instead, which measuring sweeps hold shared (``hold``): ``cache clear`` takes
    both, so it removes no entry being built or measured from.
    """
    fd = _lock_fd(root, key, lock)
    if fd is None:
        # A read-only cache (shared, or on a read-only mount) can still serve complete builds; nothing can
        # write it, so nothing needs the lock. A build that must be written fails in the worker as env-error.
        yield True
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not blocking:
                yield False
                return
            on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield True
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _lock_fd(root: Path, key: str, suffix: str = ".lock") -> int | None:
    """The open lock file of ``key`` (never through a link), or None for a cache that cannot be written."""
    ensure_root(root)
    folder = root / LOCKS
    try:
        folder.mkdir(exist_ok=True)
        return os.open(folder / f"{key}{suffix}", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        return None


# This process's holds (``hold``): use-lock file -> [descriptor, holders], so that nested holds share one
# open file (a second open of it in this process would count as another holder).
_HELD: dict[str, list[int]] = {}


def hold(root: Path, key: str) -> bool:
    """Take a shared *use* lock on entry ``key`` until :func:`release`: ``cache clear`` leaves an entry alone
    while a benchbench measures from it, as it does while one builds it. The use lock is a file of its own
    (``<key>.use``), apart from the build lock, so a measurement never makes a builder wait (a builder only adds
    files, each atomically). False for a cache that cannot be written (nothing can clear it either). Holds
    nest: each ``hold`` needs its ``release``."""
    path = str(root / LOCKS / f"{key}.use")
    if path in _HELD:
        _HELD[path][1] += 1
        return True
    fd = _lock_fd(root, key, ".use")
    if fd is None:
        return False
    fcntl.flock(fd, fcntl.LOCK_SH)
    _HELD[path] = [fd, 1]
    return True


def release(root: Path, key: str) -> None:
    """Let go of one :func:`hold` of entry ``key``; the lock goes with the last."""
    path = str(root / LOCKS / f"{key}.use")
    held = _HELD.get(path)
    if held is None:
        return
    held[1] -= 1
    if held[1] <= 0:
        del _HELD[path]
        os.close(held[0])
