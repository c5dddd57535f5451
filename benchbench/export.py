"""Build step: model → counts, seeded input, reference outputs and backend artifacts, all cached.

A *build* is keyed by everything that determines its bytes: the model name, variant, input shape,
seed, the zoo's source, and the exporter versions. Its directory under the cache holds ``input.npy``,
``reference.npz`` (PyTorch eager float32 outputs, the parity reference), one file per exported format
(``model.onnx``, ``model.tflite``) and ``build.json`` describing them. A second run with the same key
builds nothing. Builds run in a worker subprocess (``benchbench.worker build``), so a converter
that crashes takes down only that build.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import traceback
from pathlib import Path

from .env import package_versions

__all__ = ["FORMATS", "cache_root", "build_key", "build", "short_reason"]

# artifact format → file name; "torch" and "none" need no file.
FORMATS = {"onnx": "model.onnx", "tflite": "model.tflite"}
ONNX_OPSET = 18
_EXPORTER_PACKAGES = ("torch", "onnx", "onnxscript", "litert-torch", "benchbench")


def cache_root() -> Path:
    """``$BENCHBENCH_CACHE``, else ``$XDG_CACHE_HOME/benchbench``, else ``~/.cache/benchbench``."""
    if env := os.environ.get("BENCHBENCH_CACHE"):
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "benchbench"


def _zoo_digest() -> str:
    """Hash of the zoo's source, so editing a model invalidates its cached builds."""
    import benchbench.models as zoo

    h = hashlib.sha256()
    for path in sorted(Path(zoo.__file__).parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def build_key(model: str, variant: str, input_shape: list[int], seed: int) -> str:
    from benchbench.models import model_info

    ident = {
        "model": model,
        "variant": variant,
        "input_shape": list(input_shape),
        "seed": seed,
        "zoo": _zoo_digest(),
        "user_source": model_info(model).source_hash,
        "exporters": package_versions(_EXPORTER_PACKAGES),
        "opset": ONNX_OPSET,
    }
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]
    safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in model)[:40]
    return f"{safe}-{variant}-{digest}"


def short_reason(exc: BaseException, limit: int = 300) -> str:
    """A converter's message cut to something readable: its last meaningful line, truncated."""
    text = f"{type(exc).__name__}: {exc}"
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
    import litert_torch

    edge = litert_torch.convert(model, (x,))
    edge.export(str(path))
    return {
        "exporter": "litert-torch",
        # The converter lowers NCHW PyTorch to NHWC TFLite kernels and keeps the NCHW signature by
        # inserting TRANSPOSE ops at the boundaries; their cost is part of what is measured.
        "layout": "NCHW I/O, NHWC kernels (boundary transposes inserted by the converter)",
    }


_EXPORTERS = {"onnx": _export_onnx, "tflite": _export_tflite}


def _model_counts(model, x) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    flops = int(counter.get_total_flops())
    return {
        "params": int(sum(p.numel() for p in model.parameters())),
        "flops": flops,
        "macs": flops // 2,
        "flops_convention": "FlopCounterMode: conv/linear/matmul only, FLOPs = 2 x MACs, per batch",
    }


def build(job: dict) -> dict:
    """Create (or complete) a cached build. Runs inside a worker; returns build.json's content."""
    import numpy as np
    import torch

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
            **_model_counts(model, x),
        }
        manifest_path.write_text(json.dumps(manifest, indent=1))

    for fmt in job.get("formats", []):
        if fmt in manifest["artifacts"]:
            continue
        path = out_dir / FORMATS[fmt]
        t0 = time.perf_counter()
        try:
            details = _EXPORTERS[fmt](model, x, path)
            entry = {"status": "ok", "path": str(path), "bytes": path.stat().st_size, **details}
        except Exception as exc:
            entry = {"status": "unsupported", "reason": short_reason(exc), "traceback": traceback.format_exc(limit=3)}
            path.unlink(missing_ok=True)
        entry["export_s"] = round(time.perf_counter() - t0, 3)
        manifest["artifacts"][fmt] = entry
        manifest_path.write_text(json.dumps(manifest, indent=1))  # after each format: nothing lost
    return manifest
