"""Backends, installed as ``benchbench.runners``. Each lives in its own module: adding a backend is adding one
file here with a ``Runner`` subclass that sets ``name`` (and ``aliases``, ``formats``, ``versions``, ...).

The modules are found by listing this package (``pkgutil``), the first time a backend is asked for, so
``import benchbench`` imports none of them. A runner module must stay cheap to import: it imports its
runtime (onnxruntime, openvino, ...) only when a runner is built, so listing the backends works with no
backend installed. ``get_runner(name)`` resolves names and aliases in any case (``ov`` → ``openvino``,
``LiteRT`` → ``tflite``).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass

from benchbench.core.registry import Registry

__all__ = ["RunnerEntry", "get_runner", "list_runners", "resolve_backends", "runner_entry", "tracked_packages"]


@dataclass(frozen=True)
class RunnerEntry:
    name: str
    module: str  # benchbench.runners.<module>
    cls: str
    aliases: tuple[str, ...] = ()
    hidden: bool = False  # test-only runners are left out of `benchbench list`


_registry: tuple[Registry[RunnerEntry], dict[str, str], dict[str, type]] | None = None


def own_aliases(cls) -> tuple[str, ...]:
    """A runner class's own aliases: a subclass (ort-cuda of ort) does not inherit its parent's."""
    return tuple(cls.__dict__.get("aliases", ()))


def _discover() -> tuple[Registry[RunnerEntry], dict[str, str], dict[str, type]]:
    """Every ``Runner`` subclass with a ``name`` defined in a module of this package, by name; aliases."""
    global _registry
    if _registry is None:
        from benchbench.runners.base import Runner

        runners: Registry[RunnerEntry] = Registry("backend")
        aliases: dict[str, str] = {}
        classes: dict[str, type] = {}
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
            if info.name == "base":
                continue
            module = importlib.import_module(f"{__name__}.{info.name}")
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if (issubclass(cls, Runner) and cls.__module__ == module.__name__
                        and isinstance(cls.__dict__.get("name"), str)):
                    runners.register(cls.name, RunnerEntry(cls.name, info.name, cls.__name__, own_aliases(cls),
                                                           bool(cls.hidden)))
                    classes[cls.name] = cls
                    for alias in own_aliases(cls):
                        aliases[alias.casefold()] = cls.name
        _registry = (runners, aliases, classes)
    return _registry


def runner_entry(name: str) -> RunnerEntry:
    """The registry entry of a backend name or alias, in any case (``ORT``, ``OV``)."""
    runners, aliases, _ = _discover()
    return runners.get(aliases.get(name.casefold(), name))


def get_runner(name: str):
    """The runner class for a backend name or alias."""
    return _discover()[2][runner_entry(name).name]


def list_runners(include_hidden: bool = False) -> list[str]:
    runners = _discover()[0]
    return [n for n in runners.names() if include_hidden or not runners.get(n).hidden]


def resolve_backends(spec: str) -> list[str]:
    """Expand ``--backend ort,tflite`` (aliases allowed) into canonical names; unknown names raise."""
    names: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if part:
            name = runner_entry(part).name
            if name not in names:
                names.append(name)
    return names


def tracked_packages() -> tuple[str, ...]:
    """The distributions whose versions a run records: the core's, then every backend's declared ones."""
    from benchbench.core.env import CORE_PACKAGES

    names = list(CORE_PACKAGES)
    for backend in list_runners(include_hidden=True):
        names += [n for n in get_runner(backend).versions if n not in names]
    return tuple(names)
