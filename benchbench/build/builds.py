"""Builds, parent side: find a cell's verified cached build or run a build worker, and pick the artifact its
runner takes. The build itself (export, counts, reference outputs) runs in a worker: ``export.build``.

:class:`Builds` is the one build step of a sweep, local or on a cluster: which formats each build needs
(every backend of its cells, and ONNX for the graph metrics), and each build's record once made. A zoo
model is exported (``ensure_build``), a user's model file is counted as it is (``benchbench.build.file_builds``);
either way a record is ``{"status": "ok", "manifest", "dir", "cached", "input_path", "reference_path"}`` or
``{"status", "reason"}``.

A cached build is used only once its files check out against its manifest (``benchbench.build.cache.verify``).
A bad entry (a truncated or corrupted file, a manifest that does not parse, a missing file) is rebuilt
once, with a one-line notice on stderr. An entry of layout 1 (absolute paths, no hashes) whose files all
sit in its own folder is upgraded in place instead, hashing its files as they are (``_upgrade``): a cache
built by an earlier benchbench is hours of exports, not to be thrown away for a change of bookkeeping. The check, the build and the
re-check run under the build key's lock, so two benchbench processes wanting one build build it once.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from benchbench.core.spec import CellSpec, MeasureConfig
from benchbench.processes.manager import BUILD_SERVER, ForkServer, WorkerLost, run_job
from benchbench.processes.protocol import BuildJob

from . import cache
from .cache import build_record
from .export import FORMATS, INT8_FORMATS, INT8_VARIANT, build_key, build_variant, cache_root, missing_formats

# Each backend's int8 artifact (benchbench.build.quantize), made by its own runtime's quantizer from the deploy form's
# float export: ORT's static QDQ quantization for ort, NNCF's for openvino, ai-edge-quantizer's for tflite (its NCHW
# float .tflite; the nhwc layout has no int8 form).
INT8_ARTIFACTS = {"ort": "onnx_int8", "openvino": "openvino_int8", "tflite": "tflite_int8"}
# Why a backend has no int8 cell, for the ones without an int8 artifact here.
INT8_UNSUPPORTED = {
    "torch": "eager PyTorch is not an int8 deploy path (its quantized modules are for export, not for eager "
             "inference); int8 runs on ort, openvino and tflite (--variant int8)",
}

__all__ = ["Builds", "BuildServers", "input_shape", "build_group", "formats_for", "ensure_build", "artifact_for", "needed_files"]

_BASE_FILES = ("input.npy", "reference.npz")


def input_shape(spec: CellSpec) -> list[int]:
    from benchbench.models import model_info

    info = model_info(spec.model)
    h, w = spec.input_size or info.input_size[1:]
    return [spec.batch, info.input_size[0], h, w]


def build_group(spec: CellSpec) -> tuple:
    """Cells sharing a model, variant and input share one build (each backend's artifact in it); an int8 cell
    shares its deploy form's build, whose float files its int8 artifact is quantized from."""
    if spec.source is not None:
        from .file_builds import artifact_group

        return artifact_group(spec)
    return (spec.model, build_variant(spec.variant), spec.input_size, spec.batch, spec.seed)


def formats_for(spec: CellSpec) -> set[str]:
    """The export formats a cell needs: its runner's artifact, and ONNX, from which every measured build's
    deploy-graph metrics are read. A user's file is measured as it is: none."""
    from benchbench.runners import get_runner

    if spec.source is not None:
        return set()
    runner = get_runner(spec.backend)
    fmt = runner.artifact_for(dict(spec.options))
    if spec.variant == INT8_VARIANT:  # the float artifact and its quantized form; no int8 form: nothing to build
        int8 = _int8_format(runner, fmt)
        return {INT8_FORMATS[int8], "onnx", int8} if int8 else set()
    return ({fmt, "onnx"} if fmt != "none" else {fmt}) & set(FORMATS)


class Builds:
    """The builds of a sweep: the formats each build group needs and, once made, each group's record.

    One object serves the local sweep, the cluster's coordinator (which ships the records' files) and a
    measuring worker of the cluster (``Builds.installed``, from what arrived)."""

    def __init__(self, config: MeasureConfig, cells=(), servers: BuildServers | None = None):
        self.config = config
        self.formats: dict[tuple, set[str]] = {}
        self.records: dict[tuple, dict] = {}
        self._held: set[str] = set()  # the cache entries this sweep holds shared (``close`` lets go)
        # the build server: its own, or the caller's (which outlives ``close``)
        self.servers, self._own_servers = servers or BuildServers(), servers is None
        self.add(cells)

    @classmethod
    def installed(cls, config: MeasureConfig, records: dict[tuple, dict], formats: dict[tuple, set[str]]) -> Builds:
        """Builds made elsewhere and installed here (a cluster's measuring worker)."""
        builds = cls(config)
        builds.records, builds.formats = dict(records), {g: set(f) for g, f in formats.items()}
        for record in builds.records.values():
            builds._hold(record)
        return builds

    def _hold(self, record: dict) -> bool:
        """Hold the record's cache entry (shared) until ``close``, so ``cache clear`` cannot remove it under a
        measurement; False when the entry vanished before the lock was taken (cleared meanwhile)."""
        if record.get("status") != "ok" or record["dir"] in self._held:
            return True
        folder = Path(record["dir"])
        if not cache.hold(folder.parent, folder.name):
            return True  # a read-only cache: nothing can clear it
        if not (folder / "build.json").is_file():
            cache.release(folder.parent, folder.name)
            return False
        self._held.add(record["dir"])
        return True

    def close(self) -> None:
        """Let go of every cache entry this sweep held, and stop its own build server."""
        if self._own_servers:
            self.servers.close()
        for folder in map(Path, self._held):
            cache.release(folder.parent, folder.name)
        self._held.clear()

    def add(self, cells) -> None:
        """Note the formats ``cells`` need (before their builds are made)."""
        for spec in cells:
            self.formats.setdefault(build_group(spec), set()).update(formats_for(spec))

    def ensure(self, spec: CellSpec, threads: int | None = None) -> dict:
        """The record of the build ``spec`` belongs to, made (or found in the cache) on first use; a build is
        made with ``threads`` (default: every CPU)."""
        group = build_group(spec)
        for _ in range(2):  # once more if the entry was cleared between its build and its lock
            if group not in self.records:
                self.records[group] = self._make(spec, group, threads)
            if self._hold(self.records[group]):
                break
            del self.records[group]
        return self.records[group]

    def make_all(self, cells, jobs: int = 1, progress: Callable[[str], None] | None = None) -> float:
        """Make (or find in the cache) every build ``cells`` need, up to ``jobs`` at once, each with its share
        of the CPUs. Before a sweep measures anything: builds side by side must never overlap a measurement.

        A build is one export after another in one process, each mostly on one core, so two builds side by
        side on two cores take about half the time of one after the other (``benchmarks/build_time.py``).
        ``progress`` gets a line per build made (a cached one is found silently). Returns the wall seconds."""
        todo = list({build_group(spec): spec for spec in cells if build_group(spec) not in self.records}.values())
        if not todo:
            return 0.0
        jobs = max(1, min(jobs, len(todo)))
        threads = max(1, (os.cpu_count() or 1) // jobs)
        queue, made, lock = list(todo), [0], threading.Lock()
        started = time.perf_counter()

        def one(spec: CellSpec) -> None:
            record = self.ensure(spec, threads)
            if "build_s" in record and progress is not None:
                with lock:
                    made[0] += 1
                    what = "made" if record["status"] == "ok" else f"{record['status']}: {record.get('reason', '')}"
                    progress(f"build {made[0]}: {spec.model} [{spec.variant}] {what} in {record['build_s']:.1f} s")

        def drain() -> None:
            while True:
                with lock:
                    if not queue:
                        return
                    spec = queue.pop(0)
                one(spec)

        if jobs == 1:
            drain()
        else:
            if any(not self._in_cache(spec) for spec in todo):
                self.servers.start(threads)  # here, in the main thread (``BuildServers.start``)
            # Daemon threads: an interrupt ends the process (and, with it, each build's worker) without
            # waiting for a build to finish; what a build finished is in the cache already.
            pool = [threading.Thread(target=drain, name=f"build-{i}", daemon=True) for i in range(jobs)]
            for thread in pool:
                thread.start()
            for thread in pool:
                while thread.is_alive():
                    thread.join(0.5)  # in slices, so Ctrl-C reaches this thread
        wall = time.perf_counter() - started
        if made[0] and progress is not None:
            progress(f"{made[0]} build(s) made in {wall:.0f} s, {jobs} at a time")
        return wall

    def _in_cache(self, spec: CellSpec) -> bool:
        """Whether the cache's manifest for ``spec`` lists every format it needs (its files are checked later,
        by ``ensure``): a quick look, to start no build server for a sweep that will build nothing."""
        if spec.source is not None:
            return True  # a user's file is counted as it is, by a fresh worker
        manifest = cache.read_json(cache_root() / build_key(spec.model, spec.variant, input_shape(spec), spec.seed)
                                   / "build.json")
        wanted = self.formats.get(build_group(spec)) or formats_for(spec)
        return isinstance(manifest, dict) and not missing_formats(manifest, wanted)

    def _make(self, spec: CellSpec, group: tuple, threads: int | None = None) -> dict:
        if spec.source is not None:
            from .file_builds import ensure_artifact_build

            return ensure_artifact_build(spec, self.config)
        return ensure_build(spec, self.formats.get(group) or formats_for(spec), self.config, threads, self.servers)

    def artifact_for(self, runner_cls, spec: CellSpec) -> tuple[object, dict, str | None]:
        """(what the runner's prepare() takes, the artifact record, the reason it is unusable or None)."""
        build = self.ensure(spec)
        if spec.source is not None:
            from .file_builds import artifact_for as file_artifact

            return file_artifact(runner_cls, spec, build)
        return artifact_for(runner_cls, spec, build)

    def build_seconds(self) -> tuple[float, int]:
        """Seconds spent building (not finding in the cache), and how many builds that was."""
        made = [b for b in self.records.values() if "build_s" in b]
        return sum(b["build_s"] for b in made), len(made)


class BuildServers:
    """The build jobs' fork servers (``ForkServer(BUILD_SERVER, threads)``), one per thread count, each started
    at its first build: a forked build starts with torch and the exporters imported, about 4 s sooner than a
    fresh worker, and the first export in it runs faster too. Shared by threads building side by side."""

    def __init__(self):
        self._servers: dict[int, ForkServer] = {}
        self._lock = threading.Lock()

    def start(self, threads: int) -> ForkServer | None:
        """The live server of ``threads``, started (or replaced, if it died) from the main thread only: a server
        dies with the thread that started it (its parent-death signal follows the creating thread, not the
        process), so one started by a build thread would take the other threads' builds down when that thread
        ends. Elsewhere a missing server is None, and the build runs in a fresh worker."""
        with self._lock:
            server = self._servers.get(threads)
            if server is not None and server.proc.poll() is None:
                return server
            if threading.current_thread() is not threading.main_thread():
                return None
            if server is not None:
                server.close()
            try:
                server = self._servers[threads] = ForkServer(BUILD_SERVER, threads)
            except WorkerLost:
                self._servers.pop(threads, None)
                return None  # a fresh worker reports why it cannot start either
            return server

    def close(self) -> None:
        with self._lock:
            for server in self._servers.values():
                server.close()
            self._servers.clear()


def needed_files(manifest: dict, formats: set[str]) -> list[str]:
    """The files a run of ``formats`` reads: input, reference, the pickled model, each ok artifact's files (a
    user's file's build: its inputs and reference outputs)."""
    if (manifest.get("model") or {}).get("kind") == "file" or "input.npz" in (manifest.get("files") or {}):
        return sorted(n for n in manifest["files"] if not n.startswith("source/"))
    names = list(_BASE_FILES)
    if (manifest.get("torch_weights") or {}).get("status") == "ok":
        names.append("weights.pt")
    for fmt in formats:
        entry = manifest["artifacts"].get(fmt) or {}
        if entry.get("status") == "ok":
            names += entry.get("files") or [entry.get("file")]
    return names


def _check(build_dir, formats: set[str]) -> tuple[dict | None, str | None]:
    """(manifest, None) for a usable build holding ``formats``; (None, problem) for a bad one; (manifest or
    None, None) for one that is absent or lacks a format (to be completed, not distrusted)."""
    path = build_dir / "build.json"
    if not path.exists():
        return None, None
    manifest = cache.read_json(path)
    if manifest is None:
        return None, "build.json: unreadable"
    if manifest.get("layout", 1) == 1:
        manifest, problem = _upgrade(build_dir, manifest)
        if manifest is None:
            return None, problem
    if manifest.get("layout") != cache.LAYOUT:
        return None, f"build.json: cache layout {manifest.get('layout')!r}, not {cache.LAYOUT}"
    if not cache.sealed(manifest):
        return None, "build.json: checksum mismatch"
    if not isinstance(manifest.get("artifacts"), dict) or "model" not in manifest:
        return None, "build.json: incomplete"
    try:
        problem = cache.verify(build_dir, manifest, needed_files(manifest, formats & set(manifest["artifacts"])))
    except (TypeError, KeyError, AttributeError):  # a manifest that parses but is the wrong shape
        problem = "build.json: malformed"
    return (None, problem) if problem else (manifest, None)


def _upgrade(build_dir, old: dict) -> tuple[dict | None, str | None]:
    """A layout-1 manifest (absolute paths, no hashes) rewritten as layout 2 and saved, or (None, why not).

    Only an entry whose every file lies in its own folder is upgraded (a moved cache's paths point
    elsewhere: it is rebuilt). Its files are hashed now, as they are: layout 1 recorded no hashes, so a
    file damaged before the upgrade cannot be told apart; every later change can."""
    from .export import artifact_bytes, artifact_files

    build_dir = Path(build_dir)
    artifacts, names = {}, set(_BASE_FILES)
    try:
        for fmt, entry in (old.get("artifacts") or {}).items():
            entry = dict(entry)
            if entry.get("status") == "ok":
                path = Path(entry.pop("path"))
                if path.parent != build_dir or not path.is_file():
                    return None, f"build.json (layout 1): {fmt} artifact {path} is not in this entry's folder"
                entry.update(file=path.name, files=[f.name for f in artifact_files(path)], bytes=artifact_bytes(path))
                names.update(entry["files"])
            artifacts[fmt] = entry
        torch_module = old.get("torch_module")
        if isinstance(torch_module, dict) and torch_module.get("status") == "ok":
            path = Path(torch_module.get("path", ""))
            if path.parent != build_dir or not path.is_file():
                return None, "build.json (layout 1): model.pt is not in this entry's folder"
            torch_module = {"status": "ok", "file": path.name, "bytes": path.stat().st_size}
            names.add(path.name)
        missing = [n for n in sorted(names) if not (build_dir / n).is_file()]
        if missing:
            return None, f"build.json (layout 1): {missing[0]} missing"
        manifest = {k: v for k, v in old.items() if k not in ("artifacts", "torch_module")}
        manifest.update(layout=cache.LAYOUT, variant=build_dir.name.rsplit("-", 2)[-2], warnings=old.get("warnings", []),
                        artifacts=artifacts, files={n: cache.file_record(build_dir / n) for n in sorted(names)})
        if torch_module is not None:
            manifest["torch_module"] = torch_module
        cache.write_json(build_dir / "build.json", cache.seal(manifest))
    except (OSError, TypeError, KeyError, AttributeError) as exc:
        return None, f"build.json (layout 1): cannot upgrade ({exc})"
    cache.trust(build_dir, manifest)
    print(f"note: cached build {build_dir.name} upgraded to cache layout {cache.LAYOUT} (relative paths; files "
          "hashed as they are now)", file=sys.stderr, flush=True)
    return manifest, None


def _failed(outcome: str, result: dict, build_s: float) -> dict:
    if outcome == "user-error":  # the model fails in eager: the model's own message, as is
        return {"status": "error", "fault": "user", "reason": result["reason"], "build_s": build_s}
    prefix = "" if outcome == "env-error" else "export: "
    return {"status": outcome, "reason": prefix + result["reason"], "build_s": build_s}


def ensure_build(spec: CellSpec, formats: set[str], config: MeasureConfig, threads: int | None = None,
                 servers: BuildServers | None = None) -> dict:
    """The verified cached build for a cell's model/variant/shape, with the given formats (runs a worker if
    needed: with ``threads``, default every CPU; forked by ``servers``' build server, else a fresh process).
    Returns ``{"status": "ok", "manifest", "dir", "cached"}`` or ``{"status", "reason"}`` (and
    ``fault: "user"`` for a model that fails in eager); an unwritable cache is ``env-error``."""
    spec = dataclasses.replace(spec, variant=build_variant(spec.variant))  # an int8 cell's build is its deploy build
    shape = input_shape(spec)
    key = build_key(spec.model, spec.variant, shape, spec.seed)
    root = cache_root()
    build_dir = root / key
    waiting = lambda: print(f"note: another benchbench is building {spec.model} ({spec.variant}); waiting for it",  # noqa: E731
                            file=sys.stderr, flush=True)
    try:
        with cache.key_lock(root, key, on_wait=waiting):
            manifest, problem = _check(build_dir, formats)
            if manifest is not None and not missing_formats(manifest, formats):
                return build_record(manifest, build_dir, cached=True)
            if problem:
                print(f"note: cached build of {spec.model} ({spec.variant}) was corrupt ({problem}); rebuilding",
                      file=sys.stderr, flush=True)
                shutil.rmtree(build_dir, ignore_errors=True)  # rebuilt from nothing: no part of it is trusted
            return _run_build(spec, shape, build_dir, formats, config, threads or os.cpu_count() or 1, servers)
    except OSError as exc:  # the lock file or folder: a cache that cannot be written
        from benchbench.core.faults import env_fault

        why = env_fault(exc) or f"{exc.strerror or exc}"
        return {"status": "env-error", "reason": f"cache {root}: {why}"}


def _run_build(spec, shape, build_dir, formats, config, threads: int, servers: BuildServers | None) -> dict:
    job = BuildJob(spec, list(shape), sorted(formats), str(build_dir))
    t0 = time.perf_counter()
    server = servers.start(threads) if servers is not None else None  # None: a fresh worker
    outcome, result = run_job(job, config.cell_timeout_s, threads, server)
    build_s = time.perf_counter() - t0
    if outcome != "ok":
        return _failed(outcome, result, build_s)
    cache.trust(build_dir, result)  # hashed as it was written, by the worker this process just ran
    return build_record(result, build_dir, cached=False, build_s=build_s)


def _int8_format(runner_cls, fmt: str) -> str | None:
    """The int8 artifact a backend measures, where its float artifact is the one it is quantized from."""
    int8 = INT8_ARTIFACTS.get(runner_cls.name)
    return int8 if int8 is not None and INT8_FORMATS[int8] == fmt else None


def artifact_for(runner_cls, spec: CellSpec, build: dict) -> tuple[object, dict, str | None]:
    """(what the runner's prepare() takes, artifact record, reason it is unusable or None). Paths in the
    manifest are relative to the build's folder; the runner gets them absolute."""
    manifest = build["manifest"]
    build_dir = build["dir"]
    fmt = runner_cls.artifact_for(dict(spec.options))
    if spec.variant == INT8_VARIANT:
        int8 = _int8_format(runner_cls, fmt)
        if int8 is None:
            why = f"no int8 form of a {runner_cls.name} {fmt} artifact is built"
            return None, {"format": fmt}, INT8_UNSUPPORTED.get(runner_cls.name, why)
        fmt = int8
    if fmt == "torch":
        ref = {"model": spec.model, "variant": spec.variant, "seed": spec.seed,
               "input_size": manifest["model"]["input_shape"][2:],
               # counted once per build, not in every torch worker (a forward under a dispatch mode)
               "executed_ops": manifest.get("torch_ops")}
        weights = manifest.get("torch_weights") or {}
        if weights.get("status") == "ok":
            path = os.path.join(build_dir, weights["file"])
            ref["weights"] = path
            return ref, {"format": "torch", "path": path, "bytes": weights.get("bytes"),
                         "note": "the build's eager model's weights (a state dict, loaded weights-only)"}, None
        return ref, {"format": "torch", "note": "rebuilt in the worker from the registry and seed"}, None
    if fmt not in FORMATS:
        return None, {"format": fmt}, None
    entry = manifest["artifacts"][fmt]
    record = {"format": fmt, "cached": build.get("cached", False),
              **{k: v for k, v in entry.items() if k not in ("status", "traceback", "file", "files")}}
    if entry["status"] != "ok":
        return None, record, entry.get("reason", "export failed")
    record["path"] = os.path.join(build_dir, entry["file"])
    return record["path"], record, None
