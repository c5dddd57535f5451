"""The benchbench model zoo, installed as ``benchbench.models``.

One module per family; importing this package imports every public module in it, and their
``@register_model`` factories register themselves. Adding a family is adding a file.
"""

import importlib as _importlib
import pkgutil as _pkgutil

from benchbench.models._registry import (
    KINDS,
    OPT_IN_PREFIX,
    VARIANTS,
    ModelInfo,
    Paper,
    Published,
    create_model,
    is_user_model,
    list_families,
    list_models,
    model_info,
    register_model,
    reparameterize,
    resolve_models,
)

__all__ = [
    "KINDS",
    "OPT_IN_PREFIX",
    "VARIANTS",
    "ModelInfo",
    "Paper",
    "Published",
    "create_model",
    "is_user_model",
    "list_families",
    "list_models",
    "model_info",
    "register_model",
    "reparameterize",
    "resolve_models",
]

_NOT_FAMILIES = {"init"}
for _mod in _pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_") and _mod.name not in _NOT_FAMILIES:
        _importlib.import_module(f"{__name__}.{_mod.name}")
