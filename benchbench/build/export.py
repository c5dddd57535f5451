"""Build step: model → counts, seeded input, reference outputs and backend artifacts, all cached.

A *build* is keyed by everything that determines its bytes: the model name, variant, input shape,
seed, the zoo's source, and the exporter versions. Its directory under the cache holds ``input.npy``,
``reference.npz`` (PyTorch eager float32 outputs, the parity reference), one file per exported format
(``model.onnx``, ``model.tflite``) and ``build.json`` describing them. A deploy build also holds the int8
forms quantized from its float files (``build_variant``). A second run with the same key builds nothing.
Builds run in a worker subprocess (``benchbench.measure.worker``, a build job), so a converter that crashes
takes down only that build.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
import traceback
import warnings
from pathlib import Path

from benchbench.core.env import package_versions
from benchbench.core.faults import EnvError, UserModelError, env_fault
from benchbench.processes.protocol import BuildJob

from .cache import LAYOUT, atomic_path, cache_root, file_record, read_json, seal, write_json

__all__ = ["FORMATS", "INT8_FORMATS", "INT8_VARIANT", "cache_root", "build_variant", "build_key", "artifact_identity",
           "missing_formats", "build", "short_reason", "artifact_files", "artifact_bytes"]

# artifact format → file name; "torch" and "none" need no file.
FORMATS = {"onnx": "model.onnx", "tflite": "model.tflite", "tflite_nhwc": "model_nhwc.tflite",
           "onnx_int8": "model_int8.onnx", "openvino_int8": "model_int8.xml",
           "tflite_int8": "model_int8.tflite"}
# Each int8 format (benchbench.build.quantize) and the float format it quantizes: the variant ``int8`` measures it.
INT8_FORMATS = {"onnx_int8": "onnx", "openvino_int8": "onnx", "tflite_int8": "tflite"}
INT8_VARIANT = "int8"
ONNX_OPSET = 18
# What the build jobs' fork server imports before it forks them (those installed): torch and every exporter and
# quantizer a build may call, about 4 s a build would otherwise spend importing (``builds.Builds``). Imports
# only: the server runs no op (an OpenMP pool started before a fork is not the child's).
PRELOAD = ("torch", "torch.onnx", "onnx", "onnxscript", "litert_torch", "onnxruntime.quantization", "nncf",
           "ai_edge_quantizer", "benchbench.models", "benchbench.metrics", "benchbench.build.export",
           "benchbench.build.quantize")
_EXPORTER_PACKAGES = ("torch", "onnx", "onnxscript", "litert-torch", "benchbench")


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
    source = own.read_text(encoding="utf-8")
    names |= {p.name for p in root.glob("*.py") if re.search(rf"from \.{p.stem} import|from \. import {p.stem}\b", source)}
    names.discard("_registry.py")
    h = hashlib.sha256()
    for name in sorted(names):
        h.update(name.encode())
        h.update((root / name).read_bytes())
    return h.hexdigest()[:16]


def build_variant(variant: str) -> str:
    """The build a variant's artifacts live in: an int8 form is quantized from the deploy form's float export,
    so it lives in the deploy build, beside the float files it is made from (no second export of the same
    model); every other variant is its own build."""
    return "deploy" if variant == INT8_VARIANT else variant


def build_key(model: str, variant: str, input_shape: list[int], seed: int) -> str:
    """The cache folder of a model's build (``build_variant``: an int8 cell's is its deploy build's). The key
    holds what determines the float files' bytes; an int8 artifact records its quantizer's identity in its own
    entry instead (``artifact_identity``), so a quantizer change remakes the int8 files only."""
    from benchbench.metrics import METRICS_VERSION
    from benchbench.models import model_info

    variant = build_variant(variant)
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


def artifact_identity(fmt: str) -> str | None:
    """What decides an int8 artifact's bytes beyond its build's key: its quantizer's settings and the quantizer
    packages' versions, as a digest (None for a float format, which the key decides)."""
    if fmt not in INT8_FORMATS:
        return None
    from .quantize import INT8_SETTINGS, NNCF_SETTINGS, QUANTIZER_PACKAGES, TFLITE_SETTINGS

    settings = {"onnx_int8": INT8_SETTINGS, "openvino_int8": NNCF_SETTINGS, "tflite_int8": TFLITE_SETTINGS}[fmt]
    ident = {"settings": settings, "packages": package_versions(QUANTIZER_PACKAGES)}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]


def missing_formats(manifest: dict, formats) -> set[str]:
    """The ``formats`` a build's manifest lacks: never made, or an int8 artifact made by another quantizer
    (``artifact_identity``), to be made again."""
    artifacts = manifest.get("artifacts") if isinstance(manifest, dict) else None
    if not isinstance(artifacts, dict):
        return set(formats)
    return {f for f in formats if not isinstance(artifacts.get(f), dict)
            or artifacts[f].get("identity") != artifact_identity(f)}


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
            if env_fault(exc):
                raise  # a full disk fails the fallback too, and is no reason of the model's
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


# What an exporter says when it froze data-dependent control flow into the graph: the TorchScript tracer's
# TracerWarning ("Converting a tensor to a Python boolean might cause the trace to be incorrect"), and
# torch.export's guard/specialisation notices. Parity on the one seeded input cannot see it.
_SPECIALISED = re.compile(r"trace (might|may) be incorrect|treated as a constant|speciali[sz]|data.dependent|guard(ed)? on", re.I)


@contextlib.contextmanager
def _caught_warnings():
    """Collect (into the yielded list, on exit) the warnings saying an export specialised the model."""
    found: list[str] = []
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            yield found
        finally:
            for w in seen:
                text = str(w.message)
                if w.category.__name__ == "TracerWarning" or _SPECIALISED.search(text):
                    line = f"{w.category.__name__}: {text.splitlines()[0][:200]}"
                    if line not in found:
                        found.append(line)


_EXPORTERS = {"onnx": _export_onnx, "tflite": _export_tflite, "tflite_nhwc": _export_tflite_nhwc}


def artifact_files(path: Path) -> list[Path]:
    """An artifact and its sidecars on disk (``model.onnx.data`` external weights, IR ``.bin``), artifact first."""
    path = Path(path)
    sidecars = set(path.parent.glob(path.name + ".*"))
    if path.suffix == ".xml":
        sidecars.add(path.with_suffix(".bin"))
    return [path, *sorted(f for f in sidecars if f.is_file() and f != path)]


def artifact_bytes(path: Path) -> int:
    """Bytes on disk of an artifact with its sidecars (``artifact_files``)."""
    return sum(f.stat().st_size for f in artifact_files(path) if f.is_file())


def _graph_metrics(onnx_path: str) -> dict:
    """Fragmentation of the exported ONNX (benchbench.metrics); a failure is recorded, never raised."""
    from benchbench.metrics import graph_metrics

    try:
        return graph_metrics(onnx_path)
    except Exception as exc:  # shape inference rejects some graphs; the build is still usable
        return {"reason": short_reason(exc)}


def _where(model: str) -> str:
    """``my_model.py:net`` for a user model (its file's name, not its path); the zoo name otherwise."""
    path, sep, attr = model.rpartition(":")
    return f"{Path(path).name}:{attr}" if sep and path.endswith(".py") else model


def _eager(job: BuildJob):
    """The model and its reference outputs in PyTorch eager, or :class:`UserModelError`: a model that
    cannot be built or run here is the model's fault, not a converter's (``benchbench.core.faults``)."""
    import numpy as np
    import torch

    from benchbench.models import create_model

    spec, shape = job.spec, job.input_shape
    # an int8 build quantizes the deploy form: its eager model and reference outputs are the float deploy form's
    variant = "deploy" if spec.variant == INT8_VARIANT else spec.variant
    try:
        model = create_model(spec.model, variant, input_size=tuple(shape[2:]), seed=spec.seed)
        x_np = np.random.default_rng(spec.seed).standard_normal(shape, dtype=np.float32)
        x = torch.from_numpy(x_np)
        with torch.no_grad():
            ref = model(x)
    except Exception as exc:
        if env_fault(exc):
            raise
        raise UserModelError(f"{short_reason(exc)} (in {_where(spec.model)})") from exc
    return model, x_np, x, ref if isinstance(ref, (tuple, list)) else (ref,)


_LOW_SPACE = 16 * 2**20  # below this much free space, a failed write is taken for a full disk


def _write(manifest: dict, out_dir: Path, name: str, write) -> list[str]:
    """Write ``name`` (and any sidecars the writer adds) atomically into the build, recording each file's
    size and hash in the manifest; returns the names written. A write the disk or the cache's permissions
    refused raises :class:`EnvError` naming the file."""
    try:
        with atomic_path(out_dir / name) as tmp:
            try:
                write(tmp)
            except Exception as exc:
                # Writers in C (numpy's tofile, torch's zip writer, converters) report a full disk as a short
                # write with no errno; the free space left, measured while the partial file still takes it,
                # tells that apart from the model's own failure.
                free = shutil.disk_usage(out_dir).free
                if env_fault(exc) is None and free < _LOW_SPACE:
                    raise EnvError(f"cannot write {name} into the cache {out_dir.parent}: no space left on "
                                   f"device ({free} bytes free)") from exc
                raise
            written = sorted(os.listdir(tmp.parent))
    except EnvError:
        raise
    except Exception as exc:
        if why := env_fault(exc):
            raise EnvError(f"cannot write {name} into the cache {out_dir.parent}: {why}") from exc
        raise
    for n in written:
        manifest["files"][n] = file_record(out_dir / n)
    return written


def build(job: BuildJob) -> dict:
    """Create (or complete) a cached build. Runs inside a worker, under the build's lock (taken by
    ``benchbench.build.builds``); returns build.json's content. Every file and the manifest are written
    atomically, the manifest after each step, so an interrupted build keeps what it finished."""
    out_dir = Path(job.dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / "build.json"
    manifest = read_json(manifest_path)
    if not manifest or manifest.get("layout") != LAYOUT or not isinstance(manifest.get("files"), dict):
        manifest = {"layout": LAYOUT, "variant": build_variant(job.spec.variant), "files": {}, "artifacts": {},
                    "warnings": []}

    def save():
        write_json(manifest_path, seal(manifest))

    model, x_np, x, ref = _eager(job)
    if "model" not in manifest:
        _counts(manifest, out_dir, job, model, x_np, x, ref)
        save()
    if "torch_weights" not in manifest:
        _weights(manifest, out_dir, model)
        save()
    missing = missing_formats(manifest, job.formats)
    for fmt in sorted(missing, key=lambda f: f in INT8_FORMATS):  # float first: int8 quantizes it
        manifest["artifacts"][fmt] = _export(manifest, out_dir, fmt, model, x, seed=job.spec.seed)
        save()  # after each format: nothing lost
    onnx_entry = manifest["artifacts"].get("onnx", {})
    if "graph" not in manifest and onnx_entry.get("status") == "ok":
        manifest["graph"] = _graph_metrics(str(out_dir / onnx_entry["file"]))
        save()
    return manifest


def _counts(manifest: dict, out_dir: Path, job: BuildJob, model, x_np, x, ref) -> None:
    """The seeded input, the eager reference outputs, and the model's record: registry metadata and counts."""
    import numpy as np

    from benchbench.metrics import count_dispatched_ops, count_model
    from benchbench.models import model_info

    info = model_info(job.spec.model)
    _write(manifest, out_dir, "input.npy", lambda p: np.save(p, x_np))
    _write(manifest, out_dir, "reference.npz", lambda p: np.savez(p, *[r.float().numpy() for r in ref]))
    manifest["model"] = {
        "name": info.name,
        "family": info.family,
        "kind": info.kind,
        "paper": str(info.paper),
        "seed_design": info.seed_design,
        "identical_forms": info.identical_forms,
        "input_shape": list(job.input_shape),
        **count_model(model, x),  # params, FLOPs/MACs, element-ops (docs/metrics.md)
    }
    manifest["torch_ops"] = count_dispatched_ops(model, x)  # what torch eager executes, counted once


def _weights(manifest: dict, out_dir: Path, model) -> None:
    """The eager model's tensors (its state dict), never a pickled module: a torch worker builds the network's
    structure without initializing it (on the meta device) and loads these with ``weights_only=True``, in
    milliseconds instead of the second a ResNet-18's initialization takes. Loading runs no code from the
    cache, whoever wrote the file (``runners/torch_eager.py``)."""
    import torch

    try:
        _write(manifest, out_dir, "weights.pt", lambda p: torch.save(model.state_dict(), p))
        manifest["torch_weights"] = {"status": "ok", "file": "weights.pt",
                                     "bytes": manifest["files"]["weights.pt"]["bytes"]}
    except Exception as exc:
        if env_fault(exc):
            raise
        manifest["torch_weights"] = {"status": "unsupported", "reason": short_reason(exc)}


def _int8_exporter(manifest: dict, out_dir: Path, fmt: str, seed: int):
    """The writer of an int8 artifact: the build's float artifact of the same format, quantized."""
    from .quantize import calibration_inputs, quantize_onnx, quantize_openvino, quantize_tflite

    source = INT8_FORMATS[fmt]
    quantize = {"onnx_int8": quantize_onnx, "openvino_int8": quantize_openvino, "tflite_int8": quantize_tflite}[fmt]
    entry = manifest["artifacts"].get(source) or {}
    if entry.get("status") != "ok":
        raise RuntimeError(f"no float {source} artifact to quantize ({entry.get('reason', 'not built')})")

    def write(model, x, path):
        return quantize(out_dir / entry["file"], path, calibration_inputs(tuple(x.shape), seed))
    return write


def _export(manifest: dict, out_dir: Path, fmt: str, model, x, seed: int = 0) -> dict:
    """One format's artifact written into the build; a converter's (or quantizer's) refusal is recorded as
    unsupported."""
    name = FORMATS[fmt]
    t0 = time.perf_counter()
    details = {}
    try:
        with _caught_warnings() as caught:
            exporter = _int8_exporter(manifest, out_dir, fmt, seed) if fmt in INT8_FORMATS else _EXPORTERS[fmt]
            files = _write(manifest, out_dir, name, lambda p: details.update(exporter(model, x, p)))
        entry = {"status": "ok", "file": name, "files": files,
                 "bytes": sum(manifest["files"][n]["bytes"] for n in files), **details}
        if caught:
            entry["warnings"] = caught
    except Exception as exc:
        if env_fault(exc):
            raise  # not the model's fault, and nothing is cached: the next run tries again
        entry = {"status": "unsupported", "reason": short_reason(exc), "traceback": traceback.format_exc(limit=3)}
    entry["export_s"] = round(time.perf_counter() - t0, 3)
    identity = artifact_identity(fmt)
    if identity is not None:
        entry["identity"] = identity
    return entry
