"""Where ``benchbench predict`` keeps its predictors, and what each is valid for: one per backend and threads on
this machine, keyed by the machine's identity (host, CPU, the runtime's versions), and one per cluster device,
keyed by the device's name (its identity, as its cells recorded it, is inside the file)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from .errors import UsageError

__all__ = ["PREDICTOR_VERSION", "predictor_identity", "device_identity", "predictor_path", "predictor_file_name",
           "target_label", "load_predictor"]

PREDICTOR_VERSION = 2


def predictor_identity(backend: str, threads: int) -> dict:
    """What a predictor is valid for: this machine (host, CPU), the backend's runner and package versions, the
    threads, and the predictor's own version."""
    from benchbench.measure.calibration import runtime_identity

    return {**runtime_identity(backend, threads), "version": PREDICTOR_VERSION}


def device_identity(runs, backend: str, threads: int, device: str) -> dict:
    """What a cluster device's predictor is valid for, as its cells recorded it: the worker's host and CPU, the
    backend's runner and the package versions there, the threads, and the predictor's own version."""
    from benchbench.runners import get_runner

    host = next((c.host for r in runs for c in r.cells if c.ok and c.host and c.spec.backend == backend
                 and c.spec.device == device), None) or {}
    machine = host.get("machine") or {}
    return {"device": device, "host": host.get("name"), "cpu": (machine.get("cpu") or {}).get("model"),
            "backend": backend, "threads": threads, "packages": host.get("packages") or {},
            "runner": get_runner(backend).__qualname__, "version": PREDICTOR_VERSION}


def _device_slug(device: str) -> str:
    """A file-name part for a device name: its safe characters, and a digest so that two names never meet."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", device).strip("-.")[:40] or "device"
    return f"{safe}-{hashlib.sha256(device.encode()).hexdigest()[:8]}"


def predictor_path(backend: str, threads: int, device: str | None = None) -> Path:
    """Where the cache keeps the predictor of ``backend`` with ``threads`` threads: on this machine, keyed by
    its identity (another machine or runtime version finds none); on a cluster device, keyed by the device's
    name, since the device's host cannot be asked without the cluster (its identity is inside the file)."""
    from benchbench.build.cache import cache_root

    if device is not None:
        return cache_root() / "predictors" / f"{backend}-t{threads}-device-{_device_slug(device)}.json"
    ident = predictor_identity(backend, threads)
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    return cache_root() / "predictors" / f"{backend}-t{threads}-{digest}.json"


def predictor_file_name(backend: str, device: str | None) -> str:
    """The predictor's file name in a --fit folder."""
    return f"predictor_{backend}.json" if device is None else f"predictor_{backend}@{_device_slug(device)}.json"


def target_label(backend: str, device: str | None) -> str:
    """How reports name a predictor's target: the backend, and the device when it is a cluster's."""
    return backend if device is None else f"{backend} @ {device}"


def load_predictor(backend: str, threads: int, path: str | None = None, device: str | None = None):
    """The stored predictor (``path``, else the cache's for this machine or for the cluster device ``device``),
    as ``analysis.predictor.Predictor``. A missing one is a one-line usage error that says how to fit it."""
    from benchbench.analysis.predictor import Predictor
    from benchbench.build.cache import read_json, sealed

    if path:  # the user's file, read with the result files' checks (never a FIFO, never unbounded)
        from .claim import read_json_file

        where, doc = read_json_file(path, predictor_file_name(backend, device), "--predictor", "predictor file")
        if not isinstance(doc, dict):
            raise UsageError(f"--predictor {path}: no predictor for {target_label(backend, device)} there")
    else:  # the cache's own: a file that cannot be read counts as absent
        where = predictor_path(backend, threads, device)
        doc = read_json(where)
    if doc is None and device is not None:
        raise UsageError(f"no predictor for {backend} with {threads} threads on device {device}: run benchbench "
                         f"predict --fit --backend {backend} --scheduler ADDRESS --device {device}")
    if doc is None:
        raise UsageError(f"no predictor for {backend} with {threads} threads on this machine and these versions: "
                         f"run benchbench predict --fit --backend {backend} (about 10 minutes per backend)")
    if not sealed(doc):
        raise UsageError(f"{where}: the predictor's checksum does not match (a damaged file); fit it again")
    if doc.get("device") != device:
        raise UsageError(f"{where}: the predictor of {target_label(backend, doc.get('device'))}, not of "
                         f"{target_label(backend, device)}")
    if path and device is None:
        _note_other_machine(where, doc)
    try:
        return Predictor(doc)
    except (KeyError, ValueError, TypeError) as exc:
        raise UsageError(f"{where}: not a usable predictor ({exc})") from None


def _note_other_machine(where, doc: dict) -> None:
    """One line on stderr when a user's predictor file was fitted on another machine: its milliseconds are that
    machine's (these VMs' latencies differed 1.5x from one day's CPU type to the next's), and only a predictor
    fitted here, which the cache keys by this machine, is checked against it."""
    import sys

    from benchbench.core.env import host_identity
    from benchbench.core.text import one_line

    fitted = doc.get("identity") if isinstance(doc.get("identity"), dict) else {}
    here = host_identity()
    if (fitted.get("host"), fitted.get("cpu")) != (here["host"], here["cpu"]):
        # the file's names are the user's data: escaped, as every name read from a file is before it is printed
        print(one_line(f"note: {where} was fitted on {fitted.get('cpu') or 'an unknown CPU'} (host "
                       f"{fitted.get('host')}); this is {here['cpu']} (host {here['host']}): its milliseconds are "
                       "that machine's"), file=sys.stderr)
