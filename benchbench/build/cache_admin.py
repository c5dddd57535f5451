"""``benchbench cache``: listing the cache's entries and clearing those that are provably benchbench's.

The cache owns only what it can prove is its own (see ``benchbench.build.cache``): ``clear`` refuses a root
without the marker, keeps an entry whose ``build.json`` does not list every file in it, and skips an entry that
another benchbench holds (building it, or measuring from it). Listing uses ``lstat`` and never follows a link.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .cache import LOCKS, MARKER, CacheRootError, cache_root, key_lock, read_json, sealed

__all__ = ["Entry", "entries", "select", "clear", "clear_text", "show", "check_pattern"]


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
        if item.name in (LOCKS, "roofline") or item.name.startswith("."):
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
