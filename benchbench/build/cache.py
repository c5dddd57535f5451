"""The verified artifact cache: atomic writes, per-key locks, hashed manifests, and ``benchbench cache``.

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
import fnmatch
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LAYOUT", "MARKER", "CacheRootError", "build_record", "cache_root", "ensure_root", "atomic_path",
           "write_json", "file_record", "read_json", "verify", "trust", "key_lock", "hold", "release", "seal", "sealed", "Entry",
           "entries", "select", "clear", "clear_text", "show", "check_pattern"]

LAYOUT = 2  # 2: relative paths and per-file sha256 in build.json (1 had absolute paths, no hashes)
MARKER = ".benchbench-cache"  # in the root of every cache benchbench made (or adopted): clear needs it
_LOCKS = ".locks"
_VERIFIED: set[tuple[str, str, int]] = set()  # (build dir, file, size) hashed in this process already
# Not a build, but the cache's own: its locks, roofline calibrations, an atomic write's leftovers, the marker.
_OWN_NAMES = (_LOCKS, "roofline", MARKER)


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
    folder = root / _LOCKS
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
    path = str(root / _LOCKS / f"{key}.use")
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
    path = str(root / _LOCKS / f"{key}.use")
    held = _HELD.get(path)
    if held is None:
        return
    held[1] -= 1
    if held[1] <= 0:
        del _HELD[path]
        os.close(held[0])


@dataclass
class Entry:
    """One thing in the cache, as ``benchbench cache`` shows it."""

    name: str  # the folder's name under the cache (a build key, or roofline/<key>.json)
    model: str
    variant: str
    formats: str
    bytes: int
    age_s: float
    path: Path


def _size(path: Path) -> int:
    """Bytes under ``path``, counting symlinks as themselves (never what they point to)."""
    st = path.lstat()
    if not path.is_dir() or path.is_symlink():
        return st.st_size
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):  # os.walk does not descend into linked folders
        for name in dirnames + filenames:
            with contextlib.suppress(OSError):
                p = Path(dirpath, name)
                if not p.is_dir() or p.is_symlink():
                    total += p.lstat().st_size
    return total


def entries(root: Path | None = None) -> list[Entry]:
    """The cache's builds and roofline calibrations, oldest first."""
    root = Path(root or cache_root())
    out = []
    now = time.time()
    if not root.is_dir():
        return out
    for item in sorted(root.iterdir()):
        if item.name in (_LOCKS, "roofline") or item.name.startswith("."):
            continue
        if item.is_symlink():
            out.append(Entry(item.name, "(symlink, not followed)", "", "", item.lstat().st_size, 0.0, item))
            continue
        if not item.is_dir():
            continue
        manifest = read_json(item / "build.json") or {}
        model = manifest.get("model") if isinstance(manifest.get("model"), dict) else {}
        arts = manifest.get("artifacts") if isinstance(manifest.get("artifacts"), dict) else {}
        formats = ",".join(f for f, e in sorted(arts.items()) if isinstance(e, dict) and e.get("status") == "ok")
        parts = item.name.split("-")  # <model>-<variant>-<digest> (benchbench.build.export.build_key)
        variant = manifest.get("variant") or (parts[-2] if len(parts) >= 3 else "")
        mtime = (item / "build.json").lstat().st_mtime if (item / "build.json").exists() else item.lstat().st_mtime
        out.append(Entry(item.name, str(model.get("name") or "(incomplete or unreadable)"), str(variant),
                         formats or "-", _size(item), now - mtime, item))
    roofline = root / "roofline"
    if roofline.is_dir() and not roofline.is_symlink():
        for item in sorted(roofline.iterdir()):
            record = read_json(item) if not item.is_symlink() else None
            what = f"{record.get('backend')}/{record.get('threads')}t" if record else "(unreadable)"
            out.append(Entry(f"roofline/{item.name}", "roofline calibration", what, "-", item.lstat().st_size,
                             now - item.lstat().st_mtime, item))
    return sorted(out, key=lambda e: -e.age_s)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _age(s: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.0f} {unit}"
    return f"{s:.0f} s"


def show(pattern: str | None = None, root: Path | None = None) -> str:
    """Where the cache is, its total size, and one line per entry (or per entry matching ``pattern``):
    model, variant, formats, size, age."""
    from tabulate import tabulate

    root = Path(root or cache_root())
    items = select(pattern, root)
    total = sum(e.bytes for e in items)
    head = f"cache: {root}{'' if root.is_dir() else ' (nothing cached yet)'}\n{len(items)} entries" \
           + (f" matching '{pattern}'" if pattern else "") + f", {_human(total)}"
    if not items:
        return head
    body = [[e.name, e.model, e.variant, e.formats, _human(e.bytes), _age(e.age_s)] for e in items]
    return head + "\n\n" + tabulate(body, ["entry", "model", "variant", "formats", "size", "age"], tablefmt="simple",
                                    disable_numparse=True)


def check_pattern(pattern: str) -> None:
    """Raise ValueError for a pattern that could name something outside the cache, or nothing at all."""
    if not pattern.strip():
        raise ValueError("empty pattern: give a glob such as 'vanillanet_5-*', or no pattern to clear everything")
    if "/" in pattern.replace("roofline/", "", 1) or "\\" in pattern or "\0" in pattern or pattern.startswith(".") \
            or ".." in pattern:
        raise ValueError(f"bad pattern '{pattern}': it names a cache entry (see benchbench cache), not a path")


def _matches(e: Entry, pattern: str | None) -> bool:
    return pattern is None or fnmatch.fnmatch(e.name, pattern) or fnmatch.fnmatch(e.model, pattern)


def select(pattern: str | None = None, root: Path | None = None) -> list[Entry]:
    """The entries whose entry name or model name matches the glob ``pattern`` (all for None)."""
    if pattern is not None:
        check_pattern(pattern)
    return [e for e in entries(root) if _matches(e, pattern)]


def _not_ours(entry: Entry) -> str | None:
    """Why an entry cannot be proven benchbench's (then clear keeps it), or None. A link is ours to remove (the
    link only); a build folder is ours when its build.json lists every file in it (atomic writes' leftovers
    aside); a roofline calibration when its checksum holds."""
    path = entry.path
    if path.is_symlink():
        return None
    if entry.name.startswith("roofline/"):
        record = read_json(path)
        return None if record is not None and sealed(record) else "not a sealed roofline calibration"
    manifest = read_json(path / "build.json")
    listed = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(listed, dict):
        return "no readable build.json to prove it is a benchbench build"
    for dirpath, dirnames, filenames in os.walk(path):  # os.walk does not descend into linked folders
        for name in filenames + [d for d in dirnames if Path(dirpath, d).is_symlink()]:
            rel = Path(dirpath, name).relative_to(path).as_posix()
            if rel != "build.json" and rel not in listed and not rel.split("/")[-1].startswith(".tmp-"):
                return f"it holds {rel!r:.60}, which its build.json does not list"
    return None


def clear(pattern: str | None = None, root: Path | None = None) -> tuple[list[Entry], list[tuple[Entry, str]]]:
    """Remove every entry, or those matching ``pattern`` (see :func:`select`), that can be proven benchbench's
    and that no other benchbench is using; returns (removed, kept with the reason). ``CacheRootError`` for a
    root without the marker that holds anything: benchbench clears only its own caches."""
    root = Path(root or cache_root())
    if root.is_dir() and not (root / MARKER).is_file() and any(True for _ in os.scandir(root)):
        raise CacheRootError(f"{root} is not a benchbench cache (no {MARKER} in it); nothing was removed")
    removed, kept = [], []
    for e in select(pattern, root):
        if why := _not_ours(e):
            kept.append((e, f"not removed: {why}"))
            continue
        if e.path.is_symlink() or not e.path.is_dir():
            e.path.unlink(missing_ok=True)  # a link is removed, never followed
            removed.append(e)
            continue
        with (key_lock(root, e.name, blocking=False) as free,
              key_lock(root, e.name, blocking=False, lock=".use") as unused):
            if not (free and unused):
                kept.append((e, "another benchbench is building it or measuring from it"))
                continue
            shutil.rmtree(e.path)  # rmtree never follows symlinks inside the folder
        removed.append(e)
    return removed, kept


def clear_text(removed: list[Entry], kept: list[tuple[Entry, str]], pattern: str | None, root: Path) -> str:
    """What ``benchbench cache clear`` prints."""
    if not removed and not kept:
        return f"nothing in {root} matches '{pattern}'" if pattern else f"{root} holds nothing to clear"
    lines = [f"removed {e.name} ({e.model}, {_human(e.bytes)})" for e in removed]
    lines += [f"kept {e.name}: {why}" for e, why in kept]
    lines.append(f"removed {len(removed)} entries, {_human(sum(e.bytes for e in removed))} freed")
    return "\n".join(lines)
