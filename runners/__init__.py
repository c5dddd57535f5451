"""Backends, installed as ``benchbench.runners``. Each lives in its own module, imported only on use.

``get_runner(name)`` resolves names and aliases in any case (``ov`` → ``openvino``, ``LiteRT`` → ``tflite``) and
imports the module lazily, so ``import benchbench`` works with no backend installed.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from benchbench.registry import Registry, UnknownNameError

__all__ = ["RunnerEntry", "get_runner", "list_runners", "resolve_backends", "runner_entry"]


@dataclass(frozen=True)
class RunnerEntry:
    name: str
    module: str  # benchbench.runners.<module>
    cls: str
    aliases: tuple[str, ...] = ()
    hidden: bool = False  # test-only runners are left out of `benchbench list`


_RUNNERS: Registry[RunnerEntry] = Registry("backend")
_ALIASES: dict[str, str] = {}

for _entry in (
    RunnerEntry("torch", "torch_eager", "TorchRunner", ("pytorch", "torch-cpu")),
    RunnerEntry("torch-cuda", "torch_cuda", "TorchCudaRunner", ("cuda",)),
    RunnerEntry("ort", "ort", "OrtRunner", ("onnxruntime",)),
    RunnerEntry("ort-cuda", "ort", "OrtCudaRunner"),
    RunnerEntry("openvino", "openvino_rt", "OpenVinoRunner", ("ov",)),
    RunnerEntry("tflite", "litert", "LiteRtRunner", ("litert",)),
    RunnerEntry("null", "null", "NullRunner", hidden=True),
):
    _RUNNERS.register(_entry.name, _entry)
    for _alias in _entry.aliases:
        _ALIASES[_alias] = _entry.name


def runner_entry(name: str) -> RunnerEntry:
    """The registry entry of a backend name or alias, in any case (``ORT``, ``OV``)."""
    return _RUNNERS.get(_ALIASES.get(name.casefold(), name))


def get_runner(name: str):
    """The runner class for a backend name or alias (imports its module)."""
    entry = runner_entry(name)
    try:
        module = importlib.import_module(f"{__name__}.{entry.module}")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__name__}.{entry.module}":
            raise UnknownNameError("backend", name, ["(not implemented in this version)"]) from None
        raise
    return getattr(module, entry.cls)


def list_runners(include_hidden: bool = False) -> list[str]:
    return [n for n in _RUNNERS.names() if include_hidden or not _RUNNERS.get(n).hidden]


def resolve_backends(spec: str) -> list[str]:
    """Expand ``--backend ort,tflite`` (aliases allowed) into canonical names; unknown names raise."""
    names: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if part:
            name = runner_entry(part).name
            if name not in names:
                names.append(name)
    return names
