"""Build step: model → counts, seeded input, reference outputs and backend artifacts, all cached.

A *build* is keyed by everything that determines its bytes: the model name, variant, input shape,
seed, the zoo's source, and the exporter versions. Its directory under the cache holds ``input.npy``,
``reference.npz`` (PyTorch eager float32 outputs, the parity reference), one file per exported format
(``model.onnx``, ``model.tflite``) and ``build.json`` describing them. A second run with the same key
builds nothing. Builds run in a worker subprocess (``benchbench._worker``, a build job), so a converter
that crashes takes down only that build.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import traceback
from pathlib import Path

from .env import package_versions

__all__ = ["FORMATS", "cache_root", "build_key", "build", "short_reason", "artifact_bytes"]

# artifact format → file name; "torch" and "none" need no file.
FORMATS = {"onnx": "model.onnx", "tflite": "model.tflite", "tflite_nhwc": "model_nhwc.tflite"}
ONNX_OPSET = 18
_EXPORTER_PACKAGES = ("torch", "onnx", "onnxscript", "litert-torch", "benchbench")


def cache_root() -> Path:
    """``$BENCHBENCH_CACHE``, else ``$XDG_CACHE_HOME/benchbench``, else ``~/.cache/benchbench``."""
    if env := os.environ.get("BENCHBENCH_CACHE"):
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "benchbench"


def _zoo_digest(model: str) -> str:
    """Hash of the source a zoo model is built from: its family's module, every other family module it
    imports from, and the shared helpers (``_layers``, the backbones, ``init``). Editing one family
    invalidates its own builds (and its importers'), not the whole zoo's; the registry's lookup code
    (``_registry.py``) builds nothing and is left out."""
    import sys

    import benchbench.models as zoo
    from benchbench.models import model_info

    root = Path(zoo.__file__).parent
    module = sys.modules.get(model_info(model).factory.__module__)
    own = Path(module.__file__) if module is not None and getattr(module, "__file__", None) else None
    if own is None or own.parent != root:
        return ""  # a user model: its own file's hash is in the key (source_hash)
    names = {own.name, "init.py"} | {p.name for p in root.glob("_*.py") if p.name not in ("_registry.py", "__init__.py")}
    source = own.read_text()
    names |= {p.name for p in root.glob("*.py") if re.search(rf"from \.{p.stem} import|from \. import {p.stem}\b", source)}
    names.discard("_registry.py")
    h = hashlib.sha256()
    for name in sorted(names):
        h.update(name.encode())
        h.update((root / name).read_bytes())
    return h.hexdigest()[:16]


def build_key(model: str, variant: str, input_shape: list[int], seed: int) -> str:
    from benchbench.metrics import METRICS_VERSION
    from benchbench.models import model_info

    ident = {
        "model": model,
        "variant": variant,
        "input_shape": list(input_shape),
        "seed": seed,
        "zoo": _zoo_digest(model),
        "user_source": model_info(model).source_hash,
        "exporters": package_versions(_EXPORTER_PACKAGES),
        "opset": ONNX_OPSET,
        "metrics": METRICS_VERSION,  # a build's counts change when a metric's definition does
    }
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]
    safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in model)[:40]
    return f"{safe}-{variant}-{digest}"


def short_reason(exc: BaseException, limit: int = 300) -> str:
    """A converter's message cut to something readable: its last meaningful line, truncated."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", f"{type(exc).__name__}: {exc}")  # exporters colour their messages
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(("File ", "^"))]
    picked = next((ln for ln in lines if "Error" in ln or "error" in ln), lines[0] if lines else text)
    return picked if len(picked) <= limit else picked[: limit - 3] + "..."


def _export_onnx(model, x, path: Path) -> dict:
    import torch

    errors = []
    # The dynamo exporter is torch's supported path; the TorchScript one still handles some graphs
    # it rejects, so it is the fallback, and the artifact records which one was used.
    for dynamo in (True, False):
        try:
            kwargs = {"dynamo": dynamo, "opset_version": ONNX_OPSET}
            if dynamo:
                kwargs["optimize"] = True
            else:
                kwargs["do_constant_folding"] = True
            torch.onnx.export(model, (x,), str(path), input_names=["input"], **kwargs)
            return {"exporter": "torch.onnx (dynamo)" if dynamo else "torch.onnx (torchscript)", "opset": ONNX_OPSET,
                    "fallback_reason": errors[0] if errors else None}
        except Exception as exc:  # exporters raise many types; each becomes a recorded reason
            errors.append(short_reason(exc))
    raise RuntimeError("ONNX export failed: " + " | then: ".join(errors))


def _export_tflite(model, x, path: Path) -> dict:
    """model.tflite with the model's NCHW signature.

    The converter lowers NCHW PyTorch to NHWC TFLite kernels and keeps the NCHW signature by inserting
    TRANSPOSE ops at the boundaries; their cost is part of what is measured (the runner counts them).
    """
    import litert_torch

    litert_torch.convert(model, (x,)).export(str(path))
    return {"exporter": "litert-torch", "layout": "NCHW I/O, NHWC kernels (boundary transposes inserted by the converter)"}


def _export_tflite_nhwc(model, x, path: Path) -> dict:
    """The channels-last-I/O twin (tflite option ``layout=nhwc``): NHWC input, rank>=3 outputs
    channels-last, so the converter's boundary transposes cancel and a user sees what they cost."""
    import litert_torch
    import torch

    with torch.no_grad():
        out = model(x)
    out = out if isinstance(out, (tuple, list)) else (out,)
    wrapped = litert_torch.to_channel_last_io(model, args=[0], outputs=[i for i, o in enumerate(out) if o.ndim >= 3])
    x_nhwc = x.permute(0, *range(2, x.ndim), 1).contiguous()
    litert_torch.convert(wrapped, (x_nhwc,)).export(str(path))
    return {"exporter": "litert-torch (to_channel_last_io)",
            "layout": "NHWC input, rank>=3 outputs channels-last"}


_EXPORTERS = {"onnx": _export_onnx, "tflite": _export_tflite, "tflite_nhwc": _export_tflite_nhwc}


def artifact_bytes(path: Path) -> int:
    """Bytes on disk of an artifact with its sidecars (``model.onnx.data`` external weights, IR ``.bin``)."""
    path = Path(path)
    files = {path, *path.parent.glob(path.name + ".*")}
    if path.suffix == ".xml":
        files.add(path.with_suffix(".bin"))
    return sum(f.stat().st_size for f in files if f.is_file())


def _graph_metrics(onnx_path: str) -> dict:
    """Fragmentation of the exported ONNX (benchbench.metrics); a failure is recorded, never raised."""
    from benchbench.metrics import graph_metrics

    try:
        return graph_metrics(onnx_path)
    except Exception as exc:  # shape inference rejects some graphs; the build is still usable
        return {"reason": short_reason(exc)}


def build(job: dict) -> dict:
    """Create (or complete) a cached build. Runs inside a worker; returns build.json's content."""
    import numpy as np
    import torch

    from benchbench.metrics import count_dispatched_ops, count_model
    from benchbench.models import create_model, model_info

    out_dir = Path(job["dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / "build.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"artifacts": {}}

    info = model_info(job["model"])
    shape = job["input_shape"]
    model = create_model(job["model"], job["variant"], input_size=tuple(shape[2:]), seed=job["seed"])
    x_np = np.random.default_rng(job["seed"]).standard_normal(shape, dtype=np.float32)
    x = torch.from_numpy(x_np)

    if "model" not in manifest:
        np.save(out_dir / "input.npy", x_np)
        with torch.no_grad():
            ref = model(x)
        ref = ref if isinstance(ref, (tuple, list)) else (ref,)
        np.savez(out_dir / "reference.npz", *[r.float().numpy() for r in ref])
        manifest["model"] = {
            "name": info.name,
            "family": info.family,
            "paper": str(info.paper),
            "seed_design": info.seed_design,
            "identical_forms": info.identical_forms,
            "input_shape": list(shape),
            **count_model(model, x),  # params, FLOPs/MACs, element-ops (docs/metrics.md)
        }
        manifest["torch_ops"] = count_dispatched_ops(model, x)  # what torch eager executes, counted once
        manifest_path.write_text(json.dumps(manifest, indent=1))
    if "torch_module" not in manifest:
        # The eager model itself, pickled: a torch worker loads it in milliseconds instead of building
        # and initializing it again (about a second for a ResNet-18). Not every module pickles (a lambda
        # attribute); those workers rebuild from the registry and seed, as before.
        path = out_dir / "model.pt"
        try:
            torch.save(model, path)
            manifest["torch_module"] = {"status": "ok", "path": str(path), "bytes": path.stat().st_size}
        except Exception as exc:
            path.unlink(missing_ok=True)
            manifest["torch_module"] = {"status": "unsupported", "reason": short_reason(exc)}
        manifest_path.write_text(json.dumps(manifest, indent=1))

    for fmt in job.get("formats", []):
        if fmt in manifest["artifacts"]:
            continue
        path = out_dir / FORMATS[fmt]
        t0 = time.perf_counter()
        try:
            details = _EXPORTERS[fmt](model, x, path)
            entry = {"status": "ok", "path": str(path), "bytes": artifact_bytes(path), **details}
        except Exception as exc:
            entry = {"status": "unsupported", "reason": short_reason(exc), "traceback": traceback.format_exc(limit=3)}
            path.unlink(missing_ok=True)
        entry["export_s"] = round(time.perf_counter() - t0, 3)
        manifest["artifacts"][fmt] = entry
        manifest_path.write_text(json.dumps(manifest, indent=1))  # after each format: nothing lost
    onnx_entry = manifest["artifacts"].get("onnx", {})
    if "graph" not in manifest and onnx_entry.get("status") == "ok":
        manifest["graph"] = _graph_metrics(onnx_entry["path"])
        manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest
