"""Builds of a user's model file, parent side: find the verified cached build (inputs, counts, reference
outputs) or run a build worker (``benchbench.build.files.build``), and hand each cell's runner the file.

A backend that does not run the file's format gets an ``unsupported`` cell that names the format and the
backends that do run it: a user's file is never converted, since a conversion changes the graph measured.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from benchbench.core.spec import CellSpec, MeasureConfig
from benchbench.processes.manager import run_job
from benchbench.processes.protocol import FileBuildJob

from . import cache
from .export import cache_root
from .files import FILE_QUANTIZERS, backends_for, build_ident, file_quantizer

__all__ = ["artifact_group", "ensure_artifact_build", "artifact_for"]


def artifact_group(spec: CellSpec) -> tuple:
    """Cells of one file at one input (shapes, data, seed) share one build, whatever their backend; an int8
    cell's build is its quantizer's (``run --quantize int8``)."""
    s = spec.source
    quantizer = file_quantizer(spec)
    return ("file", s.sha256, s.input_shapes, s.input_data_sha256, s.reference, spec.seed,
            *((quantizer, s.calibration_data_sha256) if quantizer else ()))


def _check(build_dir: Path) -> tuple[dict | None, str | None]:
    path = build_dir / "build.json"
    if not path.exists():
        return None, None
    manifest = cache.read_json(path)
    if manifest is None or not cache.sealed(manifest) or "model" not in manifest:
        return None, "build.json: unreadable or checksum mismatch"
    problem = cache.verify(build_dir, manifest, sorted(manifest.get("files") or {}))
    return (None, problem) if problem else (manifest, None)


def ensure_artifact_build(spec: CellSpec, config: MeasureConfig) -> dict:
    """``{"status": "ok", "manifest", "dir", "cached", "input_path", "reference_path"}``, or
    ``{"status", "reason"}`` when the build worker failed."""
    source = spec.source
    root = cache_root()
    key = build_ident(source, spec.seed, file_quantizer(spec))
    build_dir = root / key
    try:
        with cache.key_lock(root, key):
            manifest, problem = _check(build_dir)
            cached = manifest is not None
            build_s = 0.0
            if manifest is None:
                if problem:
                    print(f"note: cached build of {spec.model} was corrupt ({problem}); rebuilding", file=sys.stderr,
                          flush=True)
                shutil.rmtree(build_dir, ignore_errors=True)
                t0 = time.perf_counter()
                outcome, result = run_job(FileBuildJob(spec, str(build_dir)), config.cell_timeout_s,
                                          threads=os.cpu_count() or 1)
                build_s = time.perf_counter() - t0
                if outcome != "ok":
                    return {"status": outcome, "reason": f"reading {Path(source.path).name}: {result['reason']}",
                            "build_s": build_s}
                manifest = result
                cache.trust(build_dir, manifest)
    except OSError as exc:
        from benchbench.core.faults import env_fault

        return {"status": "env-error", "reason": f"cache {root}: {env_fault(exc) or exc.strerror or exc}"}
    return cache.build_record(manifest, build_dir, cached, **({} if cached else {"build_s": build_s}))


def artifact_for(runner_cls, spec: CellSpec, build: dict) -> tuple[object, dict, str | None]:
    """(the file's path for prepare(), artifact record, reason it cannot run there or None). On a cluster's
    measuring host the file is the copy that travelled with the build (``source_path``)."""
    source = spec.source
    record = {"format": source.format, "path": source.path, "bytes": source.bytes, "sha256": source.sha256,
              "user_file": True}
    reference = build["manifest"].get("reference") or {}
    record["parity_reference"] = (f"{reference['backend']} (the first backend asked for)" if reference.get("status") == "ok"
                                  else f"none: {reference.get('reason', 'no reference')}")
    if spec.variant == "int8":  # run --quantize int8: the backend's own int8 form of the float file
        if runner_cls.name not in FILE_QUANTIZERS:
            return None, record, (f"--quantize int8 makes int8 forms for {', '.join(FILE_QUANTIZERS)}, not "
                                  f"{runner_cls.name}")
        int8 = build["manifest"].get("int8") or {"status": "unsupported", "reason": "the build made no int8 form"}
        record["quantization"] = {k: v for k, v in int8.items() if k not in ("status", "file")}
        if int8["status"] != "ok":
            return None, record, int8["reason"]
        path = os.path.join(build["dir"], int8["file"])
        files = build["manifest"]["files"]
        # the int8 file's own identity and size (an IR's .bin beside its .xml), not the float file's
        stem = Path(int8["file"]).stem
        record.update({"format": int8["format"], "path": path, "user_file": False, "quantized_from": source.path,
                       "sha256": files[int8["file"]]["sha256"],
                       "bytes": sum(f["bytes"] for n, f in files.items() if Path(n).stem == stem)})
        return path, record, None
    if source.format not in runner_cls.formats:
        takers = backends_for(source.format)
        return None, record, (f"{runner_cls.name} does not run {source.format} files "
                              f"({Path(source.path).suffix}); " + (f"{', '.join(takers)} run{'s' if len(takers) == 1 else ''} them"
                                                               if takers else "no backend here runs them")
                              + "; benchbench does not convert a user's file (that would change the graph)")
    return build.get("source_path", source.path), record, None
