"""A user's own model file as a cell (``--model model.onnx``, ``.tflite``, ``.xml``): its source, its inputs'
shapes and data, and the build job that counts it and computes the parity reference.

* :func:`resolve_source` turns a path and the shape flags into an :class:`~benchbench.core.spec.ArtifactSource`
  (content hash, concrete shape of every declared input), or raises :class:`ArtifactError` (one line);
* :func:`input_arrays` makes the inputs: the user's ``--input-data`` arrays, else seeded random data in a
  valid range for each dtype;
* :func:`build` (inside a build worker) writes ``input.npz``, the graph counts and ``reference.npz``: the
  outputs of the reference backend (the first in ``--backend`` order), since there is no PyTorch model.

The file is used as it is: nothing converts it (a conversion changes the graph being measured).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from pathlib import Path

from benchbench.core.files import PathError, open_regular, regular_file, require_utf8
from benchbench.core.spec import ArtifactSource

__all__ = ["ArtifactError", "is_artifact", "parse_input_shape", "resolve_source", "input_arrays", "build",
           "backends_for"]


class ArtifactError(Exception):
    """A user's model file or its shape flags cannot be used as given. ``str()`` is one line."""


def is_artifact(text: str) -> bool:
    """Whether a ``--model`` entry names a model file of a known format (by suffix)."""
    from benchbench.formats import format_for

    return ":" not in Path(text).name and format_for(text) is not None


def backends_for(format_name: str) -> list[str]:
    """The backends that run files of this format (``Runner.formats``)."""
    from benchbench.runners import get_runner, list_runners

    return [b for b in list_runners() if format_name in get_runner(b).formats]


def parse_input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """``NAME=1x3x640x640`` → (name, dims); a scalar input is ``NAME=`` (rank 0)."""
    name, sep, dims = text.rpartition("=")
    if not sep or not name.strip():
        raise ArtifactError(f"--input-shape expects NAME=DIMS such as x=1x3x640x640, got '{text}'")
    dims = dims.strip()
    if dims and not re.fullmatch(r"\d+(x\d+)*", dims):
        raise ArtifactError(f"--input-shape {text}: dims must be positive integers joined by x, such as 1x3x640x640")
    shape = tuple(int(d) for d in dims.split("x")) if dims else ()
    if any(d < 1 or d > 1 << 20 for d in shape):
        raise ArtifactError(f"--input-shape {text}: every dim must be between 1 and {1 << 20}")
    return name.strip(), shape


def _sha256(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open_regular(p, "model file") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def _fill(decl, given: tuple[int, ...] | None, batch: int | None, size: tuple[int, int] | None,
          source: str | None = None) -> tuple[int, ...]:
    """The concrete shape of one input: as given (by ``source``: ``--input-shape NAME=DIMS`` unless said, or
    the ``--input-data`` array), else its static dims with the dynamic ones from ``--batch`` (dim 0) and
    ``--input-size`` (the spatial dims of an image input)."""
    dims = list(decl.dims)
    if given is not None:
        source = source or f"--input-shape {decl.name}={'x'.join(map(str, given)) or '(scalar)'}"
        if len(given) != len(dims):
            raise ArtifactError(f"{source} has rank {len(given)}; input {decl.text()} has rank {len(dims)}")
        for i, (want, got) in enumerate(zip(dims, given)):
            if isinstance(want, int) and want != got:
                raise ArtifactError(f"{source}: dim {i} is fixed at {want} in the file, not {got}")
        return tuple(given)
    if len(dims) == 4 and size is not None:
        # NCHW if the channels sit at 1 (a static 1, 3 or 4 there), else NHWC (TFLite's layout)
        spatial = (1, 2) if dims[1] not in (1, 3, 4) and dims[3] in (1, 3, 4) else (2, 3)
        for axis, side in zip(spatial, size):
            if not isinstance(dims[axis], int):
                dims[axis] = side
    if dims and not isinstance(dims[0], int) and batch is not None:
        dims[0] = batch
    missing = [d if isinstance(d, str) else f"dim {i}" for i, d in enumerate(dims) if not isinstance(d, int)]
    if missing:
        raise ArtifactError(f"input {decl.text()} has dynamic dims without values ({', '.join(missing)}): give "
                            f"--input-shape {decl.name}=" + "x".join(str(d) if isinstance(d, int) else (d or "N")
                                                                    for d in dims)
                            + (" (or --input-size HxW)" if len(dims) == 4 else ""))
    return tuple(dims)


def resolve_source(path: str, shapes: dict[str, tuple[int, ...]], batch: int | None = None,
                   size: tuple[int, int] | None = None, input_data: str | None = None,
                   reference: str | None = None) -> ArtifactSource:
    """The source of a user's model file at concrete input shapes; ArtifactError for any problem."""
    from benchbench.formats import FormatError, format_for

    file = Path(os.path.expanduser(path))
    fmt = format_for(file)
    try:  # a FIFO or a device is refused before a reader (onnx, LiteRT, OpenVINO) opens it and blocks
        regular_file(file, "model file")
        require_utf8(os.path.realpath(file), "model file")  # its path is recorded with every cell
        if input_data:
            require_utf8(os.path.realpath(os.path.expanduser(input_data)), "--input-data")
    except PathError as exc:
        if exc.exit_code != 2:
            raise
        raise ArtifactError(f"model file {path} does not exist" if exc.missing else str(exc)) from None
    try:
        files = fmt.files(file)
        fmt.check(file)
        decls = fmt.inputs(file)
    except FormatError as exc:
        raise ArtifactError(str(exc)) from None
    names = [d.name for d in decls]
    data, data_sha = {}, None
    if input_data:
        data, data_sha = _load_data(input_data, decls)
    for name in shapes:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
            raise ArtifactError(f"--input-shape: {file.name} has no input '{name}'"
                                + (f"; did you mean {', '.join(close)}?" if close else "")
                                + f" (its inputs: {', '.join(d.text() for d in decls)})")
    resolved = []
    for d in decls:
        if d.name in shapes:
            shape = _fill(d, shapes[d.name], batch, size)
        elif d.name in data:
            array_shape = tuple(data[d.name].shape)
            shape = _fill(d, array_shape, batch, size, f"--input-data {input_data}: array {d.name} (shape "
                                                       f"{'x'.join(map(str, array_shape)) or 'scalar'})")
        else:
            shape = _fill(d, None, batch, size)
        if d.name in data and tuple(data[d.name].shape) != shape:
            raise ArtifactError(f"--input-data {input_data}: array {d.name} has shape {tuple(data[d.name].shape)}, "
                                f"the input is {shape} (--input-shape {d.name}=...)")
        resolved.append((d.name, shape))
    symbols: dict[str, tuple[str, int]] = {}  # a named dim shared by inputs takes one value in all of them
    for d, (_, shape) in zip(decls, resolved):
        for sym, size in zip(d.dims, shape):
            if isinstance(sym, str):
                first = symbols.setdefault(sym, (d.name, size))
                if first[1] != size:
                    raise ArtifactError(f"dim '{sym}' is {first[1]} in input {first[0]} but {size} in input {d.name}; "
                                        "the file says they are one size")
    return ArtifactSource(path=str(file.resolve()), format=fmt.name, sha256=_sha256(files),
                          bytes=sum(f.stat().st_size for f in files), input_shapes=tuple(resolved),
                          reference=reference, input_data=str(Path(os.path.expanduser(input_data)).resolve()) if input_data else None,
                          input_data_sha256=data_sha)


def _load_data(path: str, decls: list) -> tuple[dict, str]:
    """The ``--input-data`` array of every declared input, each checked against the input's dtype, and the
    file's SHA-256 (``benchbench.build.input_data``: nothing is read before its size is checked)."""
    from .input_data import InputDataError, cast_problem, load_input_data

    try:
        data, sha = load_input_data(path, [d.name for d in decls])
    except InputDataError as exc:
        raise ArtifactError(str(exc)) from None
    for d in decls:
        if problem := cast_problem(data[d.name], d.dtype):
            raise ArtifactError(f"--input-data {path}: array {d.name} {problem}")
    return data, sha


def input_arrays(decls: list, source: ArtifactSource, seed: int) -> dict:
    """Name → array for every input: from ``--input-data``, else seeded random data in a valid range:
    floats standard normal, integers in [0, 10) (a token id or index valid for any table of 10 or more rows;
    unsigned 8-bit: [0, 256), as image bytes), booleans half true."""
    import numpy as np

    if source.input_data:
        data, sha = _load_data(source.input_data, decls)
        if source.input_data_sha256 and sha != source.input_data_sha256:
            raise ArtifactError(f"--input-data {source.input_data} changed since the run started")
        return {d.name: np.ascontiguousarray(data[d.name].astype(d.dtype, copy=False)) for d in decls}
    rng = np.random.default_rng(seed)
    shapes = dict(source.input_shapes)
    out = {}
    for d in decls:
        shape, dtype = shapes[d.name], np.dtype(d.dtype)
        if dtype == np.bool_:
            out[d.name] = rng.random(shape) < 0.5
        elif np.issubdtype(dtype, np.integer):
            high = 256 if dtype == np.uint8 else 10
            out[d.name] = rng.integers(0, high, size=shape).astype(dtype)
        else:
            out[d.name] = rng.standard_normal(shape).astype(dtype)
    return out


# The quantizer each backend's int8 form of a user's float ONNX file comes from (run --quantize int8).
FILE_QUANTIZERS = {"ort": "ort", "ort-cuda": "ort", "openvino": "nncf"}


def file_quantizer(spec) -> str | None:
    """The quantizer of a file cell's int8 form (``FILE_QUANTIZERS``), or None for a float cell."""
    return FILE_QUANTIZERS.get(spec.backend) if spec.variant == "int8" and spec.source is not None else None


def calibration_samples(source: ArtifactSource, seed: int) -> list:
    """The int8 calibration inputs of a one-input file: ``--calibration-data``'s samples (``read_calibration``),
    else ``CALIBRATION_COUNT`` seeded ones drawn apart from the benchmark input. ArtifactError for a calibration
    file that does not fit, or that changed since the run started."""
    from .quantize import calibration_inputs

    (name, shape), = source.input_shapes
    if not source.calibration_data:
        return calibration_inputs(shape, seed)
    samples, sha = read_calibration(source.calibration_data, name, shape)
    if source.calibration_data_sha256 and sha != source.calibration_data_sha256:
        raise ArtifactError(f"--calibration-data {source.calibration_data} changed since the run started")
    return samples


def read_calibration(path: str, name: str, shape: tuple[int, ...]) -> tuple[list, str]:
    """``--calibration-data``'s samples for the input ``name`` of ``shape`` (its array shaped ``(N, *shape)``, or
    ``shape`` itself for one sample: finite floats, read with ``--input-data``'s checks) and the file's SHA-256;
    ArtifactError for an array that does not fit."""
    import numpy as np

    from .input_data import InputDataError, load_input_data

    try:
        data, sha = load_input_data(path, [name], option="--calibration-data")
    except InputDataError as exc:
        raise ArtifactError(str(exc)) from None
    arr = data[name]
    if tuple(arr.shape) == tuple(shape):
        arr = arr[None]
    if arr.ndim != len(shape) + 1 or tuple(arr.shape[1:]) != tuple(shape):
        raise ArtifactError(f"--calibration-data {path}: array {name} has shape {tuple(arr.shape)}; the input is "
                            f"{tuple(shape)}, so give (N, {', '.join(map(str, shape))}) for N samples")
    if arr.dtype.kind != "f" or not np.all(np.isfinite(arr)):
        raise ArtifactError(f"--calibration-data {path}: array {name} must hold finite floats ({arr.dtype} here)")
    return [np.ascontiguousarray(a, dtype=np.float32) for a in arr], sha


def _quantize(job, source: ArtifactSource, out_dir: Path) -> dict:
    """The int8 form of the float file for the cell's backend (``file_quantizer``), written into ``out_dir``:
    {"status": "ok", "file", "format", ...the quantizer's record}, or {"status": "unsupported", "reason"}."""
    from .export import short_reason
    from .quantize import quantize_onnx, quantize_openvino

    quantizer = file_quantizer(job.spec)
    try:
        calibration = calibration_samples(source, job.spec.seed)
        file, fmt, quantize = (("int8.xml", "openvino_ir", quantize_openvino) if quantizer == "nncf"
                               else ("int8.onnx", "onnx", quantize_onnx))
        record = quantize(source.path, out_dir / file, calibration)
        # the quantizer's own "format" (QDQ, FakeQuantize) kept as "quant_format"; "format" is the file's
        return {**record, "quant_format": record.get("format"), "status": "ok", "file": file, "format": fmt,
                "calibration": source.calibration_data or "seeded"}
    except ArtifactError as exc:
        return {"status": "unsupported", "reason": str(exc)}
    except Exception as exc:  # the quantizer's refusal: the int8 cell is unsupported, with its reason
        return {"status": "unsupported", "reason": f"{quantizer} quantization failed: {short_reason(exc)}"}


def build(job) -> dict:
    """Count the file and compute its inputs and reference outputs into ``job.dir`` (a ``FileBuildJob``, in a
    build worker);
    returns build.json's content. A count or a reference that fails is recorded, never raised."""
    import numpy as np

    from benchbench.formats import get_format

    from .cache import LAYOUT, file_record, seal, write_json
    from .export import short_reason

    source = job.spec.source
    out_dir = Path(job.dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fmt = get_format(source.format)
    path = Path(source.path)
    decls = fmt.inputs(path)
    inputs = input_arrays(decls, source, job.spec.seed)
    np.savez(out_dir / "input.npz", **inputs)
    shapes = dict(source.input_shapes)
    try:
        counts, graph = fmt.metrics(path, shapes)
    except Exception as exc:  # a graph the counter cannot read: the cell is still measured
        counts, graph = {"params": None, "flops": None, "macs": None, "reason": short_reason(exc)}, None
    manifest = {
        "layout": LAYOUT,
        "variant": "file",  # what `benchbench cache` shows; the file itself stays where the user keeps it
        "files": {"input.npz": file_record(out_dir / "input.npz")},
        "model": {"name": job.spec.model, "family": f"file:{path.name}", "kind": "file", "zoo": False, "format": source.format,
                  "input_shape": list(shapes[decls[0].name]) if decls else [],
                  "inputs": [{"name": d.name, "dtype": d.dtype, "shape": list(shapes[d.name]),
                              "declared": [x if isinstance(x, int) else (x or "?") for x in d.dims]} for d in decls],
                  "outputs": [o.text() for o in fmt.outputs(path)],
                  "flops_convention": "conv/matmul only (no bias adds), FLOPs = 2 x MACs, per batch; from the graph",
                  **counts},
        "graph": graph,
        "reference": _reference(source, inputs, out_dir),
    }
    if manifest["reference"]["status"] == "ok":
        manifest["files"]["reference.npz"] = file_record(out_dir / "reference.npz")
    if file_quantizer(job.spec):  # an int8 cell's build: the float file's, plus its quantized form
        int8 = manifest["int8"] = _quantize(job, source, out_dir)
        if int8["status"] == "ok":
            for f in get_format(int8["format"]).files(out_dir / int8["file"]):
                manifest["files"][f.name] = file_record(f)
    write_json(out_dir / "build.json", seal(manifest))
    return manifest


def _reference(source: ArtifactSource, inputs: dict, out_dir: Path) -> dict:
    """Run the reference backend once on the inputs and keep its outputs (``reference.npz``)."""
    import numpy as np

    from benchbench.runners import get_runner

    from .export import short_reason

    backend = source.reference
    if backend is None:
        return {"status": "none", "reason": "no backend that runs this format was asked for"}
    runner = get_runner(backend)(1, {})
    try:
        runner.load_runtime()
        runner.prepare(source.path, inputs)
        outputs = runner.outputs()
        np.savez(out_dir / "reference.npz", *[np.asarray(o) for o in outputs])
        return {"status": "ok", "backend": backend, "outputs": len(outputs)}
    except Exception as exc:  # the reference backend rejects the file: no parity, the cells still run
        return {"status": "failed", "backend": backend, "reason": short_reason(exc)}
    finally:
        try:
            runner.teardown()
        except Exception:
            pass


def build_ident(source: ArtifactSource, seed: int, quantizer: str | None = None) -> str:
    """The cache key of an artifact build: what decides its inputs, counts and reference outputs (and, for an
    int8 cell's build, its quantizer, its settings and versions, and the calibration data)."""
    from benchbench.core.env import package_versions
    from benchbench.metrics import METRICS_VERSION
    from benchbench.runners import tracked_packages

    where = ("path", "input_data", "calibration_data")  # where the files are is no part of what they are
    ident = {"source": {k: v for k, v in source.to_dict().items() if k not in where},
             "seed": seed, "metrics": METRICS_VERSION, "versions": package_versions(tracked_packages())}
    if quantizer is not None:
        from .quantize import INT8_SETTINGS, NNCF_SETTINGS, QUANTIZER_PACKAGES

        ident["quantizer"] = {"name": quantizer, "settings": NNCF_SETTINGS if quantizer == "nncf" else INT8_SETTINGS,
                              "versions": package_versions(QUANTIZER_PACKAGES)}
    else:  # the float build of a --quantize run is the plain run's: the calibration data does not change it
        ident["source"].pop("calibration_data_sha256", None)
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]
    safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in Path(source.path).stem)[:40]
    return f"file-{safe}-{digest}" + (f"-int8{quantizer}" if quantizer else "")


def file_cells(files: list[str], vs: str | None, backends: list[str], available: dict[str, bool], *,
               shapes: list[str], batch: int, size: tuple[int, int] | None, input_data: str | None, threads: int,
               seed: int, options: tuple, quantize: str | None = None,
               calibration_data: str | None = None) -> tuple[list, list[str]]:
    """The cells of the user's model files on ``backends``, and their display names. One cell per file and
    backend (variant ``artifact``); with ``vs``, the pair ``before``/``after`` per backend, measured in
    lockstep; with ``quantize`` ("int8"), the float file (``deploy``) and its int8 form (``int8``, by the
    backend's own quantizer) per backend, in lockstep. ArtifactError for a file, a shape flag or a pair that
    cannot be used."""
    from benchbench.core.spec import CellSpec
    from benchbench.formats import get_format

    if vs is not None and len(files) != 1:
        raise ArtifactError(f"--vs pairs one model file with another; --model gives {len(files)} model files")
    if quantize is not None and (vs is not None or len(files) != 1):
        raise ArtifactError("--quantize int8 takes one float .onnx file with --model, and no --vs")
    if calibration_data is not None and quantize is None:
        raise ArtifactError("--calibration-data calibrates --quantize int8; give both, or neither")
    given: dict[str, tuple[int, ...]] = {}
    for text in shapes:
        name, dims = parse_input_shape(text)
        if name in given:  # the last one would win silently
            raise ArtifactError(f"--input-shape {name} is given twice ({'x'.join(map(str, given[name])) or 'scalar'} "
                                f"and {'x'.join(map(str, dims)) or 'scalar'}); give each input's shape once")
        given[name] = dims
    cells, names = [], []
    paths = files + ([vs] if vs is not None else [])
    sources = []
    for path in paths:
        if not is_artifact(path):
            raise ArtifactError(f"{path} is no model file of a known format (.onnx, .tflite, .xml)")
        fmt = get_format(_format_name(path))
        takers = [b for b in backends if fmt.name in _formats_of(b)]
        if not takers:
            raise ArtifactError(f"{', '.join(backends)} cannot run {fmt.description} files ({Path(path).suffix}); "
                                f"{', '.join(backends_for(fmt.name)) or 'no backend'} can: --backend "
                                f"{','.join(backends_for(fmt.name))}")
        reference = next((b for b in takers if available.get(b)), None)
        sources.append(resolve_source(path, given, batch, size, input_data, reference))
    if vs is not None:
        before, after = sources
        both = [b for b in backends if {before.format, after.format} <= set(_formats_of(b))]
        if not both:  # each file would run alone: nothing compared, however green the table looks
            raise ArtifactError(f"--vs: no backend of {', '.join(backends)} runs both {Path(files[0]).name} "
                                f"({before.format}) and {Path(vs).name} ({after.format}); nothing would be compared")
        if before.input_shapes != after.input_shapes:
            raise ArtifactError(f"--vs: the inputs differ: {Path(files[0]).name} takes {_shapes_text(before)}, "
                                f"{Path(vs).name} takes {_shapes_text(after)}")
        from dataclasses import replace

        pair = f"{before.sha256}..{after.sha256}"  # both cells' identity in compare: the two files together
        before, after = replace(before, pair=pair), replace(after, pair=pair)
        label = f"{Path(files[0]).name} vs {Path(vs).name}"
        names.append(label)
        for backend in backends:
            for variant, source in (("before", before), ("after", after)):
                cells.append(CellSpec(label, variant, backend, _batch(source), None, threads, seed, options, source))
        return cells, names
    if quantize is not None:
        return _quantized_cells(files[0], sources[0], backends, calibration_data, threads, seed, options)
    for path, source in zip(files, sources):
        names.append(Path(path).name)
        for backend in backends:
            cells.append(CellSpec(Path(path).name, "artifact", backend, _batch(source), None, threads, seed, options,
                                  source))
    return cells, names


def _quantized_cells(path: str, source: ArtifactSource, backends: list[str], calibration_data: str | None,
                     threads: int, seed: int, options: tuple) -> tuple[list, list[str]]:
    """``--quantize int8``: per backend that quantizes ONNX, the float file and its int8 form, one group."""
    from dataclasses import replace

    from benchbench.core.spec import CellSpec

    if source.format != "onnx":
        raise ArtifactError(f"--quantize int8 quantizes a float .onnx file (ort: QDQ, openvino: NNCF); "
                            f"{Path(path).name} is {source.format}")
    if len(source.input_shapes) != 1:
        raise ArtifactError(f"--quantize int8 takes a model with one input; {Path(path).name} has "
                            f"{len(source.input_shapes)} ({_shapes_text(source)})")
    if not any(b in FILE_QUANTIZERS for b in backends):
        raise ArtifactError(f"--quantize int8: none of {', '.join(backends)} quantizes an ONNX file; "
                            f"--backend {','.join(b for b in FILE_QUANTIZERS if b != 'ort-cuda')} do")
    if calibration_data is not None:  # checked now, not in a build worker later; its hash is part of the cells
        _, sha = read_calibration(calibration_data, *source.input_shapes[0])
        source = replace(source, calibration_data=str(Path(os.path.expanduser(calibration_data)).resolve()),
                         calibration_data_sha256=sha)
    name = Path(path).name
    cells = [CellSpec(name, variant, backend, _batch(source), None, threads, seed, options, source)
             for backend in backends for variant in ("deploy", "int8")]  # another backend's: unsupported, why
    return cells, [name]


def _format_name(path: str) -> str:
    from benchbench.formats import format_for

    return format_for(path).name


def _formats_of(backend: str) -> tuple[str, ...]:
    from benchbench.runners import get_runner

    return get_runner(backend).formats


def _batch(source: ArtifactSource) -> int:
    first = source.input_shapes[0][1] if source.input_shapes else ()
    return first[0] if first else 1


def _shapes_text(source: ArtifactSource) -> str:
    return ", ".join(f"{n}={'x'.join(map(str, d))}" for n, d in source.input_shapes)
