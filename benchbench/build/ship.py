"""Builds travel by content: a build's record as a payload (its manifest and the bytes of the files its
cells read), and a payload installed into another host's cache, every file's hash checked on arrival.

Used by the Dask executor (``benchbench.measure.cluster``): the coordinator, or a building worker, makes a
build and ships it with each measuring task; a measuring worker installs it into its own verified cache and
keeps it, so a build already there with those hashes is not written again. A user's model file travels too:
its measuring host has no copy of the coordinator's path.
"""

from __future__ import annotations

import os
from pathlib import Path

from benchbench.core.faults import env_fault
from benchbench.core.status import Status

from . import cache
from .builds import needed_files
from .export import artifact_files

__all__ = ["payload", "install"]

_SOURCE = "source"  # a user's model file (and its sidecars) travels into this sub-folder of the build


def payload(build: dict, formats: set[str], source_path: str | None = None) -> dict:
    """What a task carries of a build: a failed build as is; an ok one's manifest and the bytes of the files
    its cells read (each listed, with its sha256, in the manifest it carries). ``source_path``: a user's
    model file, shipped with its sidecars."""
    if build.get("status") != Status.OK:
        return {k: v for k, v in build.items() if k != "dir"}
    manifest, folder = dict(build["manifest"]), Path(build["dir"])
    names = needed_files(manifest, formats & set(manifest.get("artifacts") or {}))
    files = {name: (folder / name).read_bytes() for name in names}
    if source_path is not None:  # add the user's files to the manifest it carries, sealed again
        manifest["files"] = dict(manifest["files"])
        for path in artifact_files(Path(source_path)):
            name = f"{_SOURCE}/{path.name}"
            files[name] = path.read_bytes()
            manifest["files"][name] = cache.file_record(path)
        manifest["shipped_source"] = f"{_SOURCE}/{Path(source_path).name}"
        cache.seal(manifest)
    return {"status": Status.OK, "key": folder.name, "manifest": manifest, "files": files}


def install(shipped: dict) -> dict:
    """A shipped build in this host's cache, verified: the build record the measuring code takes."""
    if shipped.get("status") != Status.OK:
        return shipped
    root, manifest, files = cache.cache_root(), shipped["manifest"], shipped["files"]
    key = shipped["key"]
    if os.sep in key or key.startswith("."):
        return {"status": Status.ERROR, "reason": f"a shipped build's key is not a cache entry name: {key!r:.60}"}
    folder = root / key
    try:
        with cache.key_lock(root, key):
            cached = (cache.read_json(folder / "build.json") == manifest
                      and not cache.verify(folder, manifest, list(files)))
            if not cached:
                for name, data in files.items():
                    if name not in (manifest.get("files") or {}) or ".." in Path(name).parts:
                        return {"status": Status.ERROR, "reason": f"a shipped file is not in its manifest: {name!r:.60}"}
                    (folder / name).parent.mkdir(parents=True, exist_ok=True)
                    with cache.atomic_path(folder / name) as tmp:
                        tmp.write_bytes(data)
                cache.write_json(folder / "build.json", manifest)
                if problem := cache.verify(folder, manifest, list(files)):
                    return {"status": Status.ERROR, "reason": f"artifact failed its check on arrival: {problem}"}
    except OSError as exc:
        return {"status": Status.ENV_ERROR, "reason": f"cache {root}: {env_fault(exc) or exc.strerror or exc}"}
    extra = {"source_path": str(folder / manifest["shipped_source"])} if manifest.get("shipped_source") else {}
    return cache.build_record(manifest, folder, cached, **extra)
