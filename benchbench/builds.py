"""Builds, parent side: find a cell's cached build or run a build worker, and pick the artifact its
runner takes. The build itself (export, counts, reference outputs) runs in a worker: ``export.build``.
"""

from __future__ import annotations

import json
import os
import time

from ._manager import run_job
from .export import FORMATS, build_key, cache_root
from .spec import CellSpec, MeasureConfig

__all__ = ["input_shape", "build_group", "ensure_build", "artifact_for"]


def input_shape(spec: CellSpec) -> list[int]:
    from benchbench.models import model_info

    info = model_info(spec.model)
    h, w = spec.input_size or info.input_size[1:]
    return [spec.batch, info.input_size[0], h, w]


def build_group(spec: CellSpec) -> tuple:
    """Cells sharing a model, variant and input share one build (each backend's artifact in it)."""
    return (spec.model, spec.variant, spec.input_size, spec.batch, spec.seed)


def ensure_build(spec: CellSpec, formats: set[str], config: MeasureConfig) -> dict:
    """The cached build for a cell's model/variant/shape, with the given formats (runs a worker if needed).

    Returns ``{"status": "ok", "manifest", "dir", "cached"}`` or ``{"status", "reason"}``.
    """
    shape = input_shape(spec)
    key = build_key(spec.model, spec.variant, shape, spec.seed)
    build_dir = cache_root() / key
    manifest_path = build_dir / "build.json"
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, json.JSONDecodeError):  # a truncated manifest is rebuilt, never trusted
            manifest = {}
        if "model" in manifest and formats <= set(manifest.get("artifacts", {})):
            return {"status": "ok", "manifest": manifest, "cached": True, "dir": str(build_dir)}
    job = {"model": spec.model, "variant": spec.variant, "input_shape": shape, "seed": spec.seed,
           "formats": sorted(formats), "dir": str(build_dir)}
    t0 = time.perf_counter()
    outcome, result = run_job("build", job, config.cell_timeout_s, threads=os.cpu_count() or 1)
    build_s = time.perf_counter() - t0
    if outcome != "ok":
        return {"status": outcome, "reason": "export: " + result["reason"], "build_s": build_s}
    return {"status": "ok", "manifest": result, "cached": False, "dir": str(build_dir), "build_s": build_s}


def artifact_for(runner_cls, spec: CellSpec, build: dict) -> tuple[object, dict, str | None]:
    """(what the runner's prepare() takes, artifact record, reason it is unusable or None)."""
    manifest = build["manifest"]
    fmt = runner_cls.artifact_for(dict(spec.options))
    if fmt == "torch":
        ref = {"model": spec.model, "variant": spec.variant, "seed": spec.seed,
               "input_size": manifest["model"]["input_shape"][2:],
               # counted once per build, not in every torch worker (a forward under a dispatch mode)
               "executed_ops": manifest.get("torch_ops")}
        pickled = manifest.get("torch_module") or {}
        if pickled.get("status") == "ok" and os.path.exists(pickled["path"]):
            ref["path"] = pickled["path"]
            return ref, {"format": "torch", "path": pickled["path"], "bytes": pickled.get("bytes"),
                         "note": "the build's eager model, pickled (torch.save)"}, None
        return ref, {"format": "torch", "note": "rebuilt in the worker from the registry and seed"}, None
    if fmt not in FORMATS:
        return None, {"format": fmt}, None
    entry = manifest["artifacts"][fmt]
    record = {"format": fmt, "cached": build.get("cached", False),
              **{k: v for k, v in entry.items() if k not in ("status", "traceback")}}
    if entry["status"] != "ok":
        return None, record, entry.get("reason", "export failed")
    return entry["path"], record, None
