"""The model zoo's registry: ``register_model``, ``list_models``, ``create_model``, ``reparameterize``.

Every zoo entry is a factory function that builds the *train* form. The deploy form is always produced
from it by :func:`reparameterize`, which calls each block's idempotent ``reparameterize()``; train and
deploy are a ``variant`` argument, never a name suffix.

A user's own model plugs in without editing the repo:

* ``path/to/file.py:factory`` anywhere a model name is accepted; the file is executed as Python code.
  The factory gets ``variant`` (``"train"``/``"deploy"``) if it declares it or takes ``**kwargs``
  (else it returns a train model whose blocks have ``reparameterize()``), and ``input_size`` (H, W)
  only if it declares a parameter of that name.
* an installed package exposing the ``benchbench.models`` entry-point group; loading the entry point
  must run ``register_model`` decorators.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.util
import inspect
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from benchbench.core.files import PathError, read_regular_bytes, require_utf8
from benchbench.core.registry import PluginError, Registry, UnknownNameError, natural_key

if TYPE_CHECKING:
    from torch import nn

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
    "register_resolver",
    "reparameterize",
    "resolve_models",
]

VARIANTS = ("train", "deploy")
# What a registered model is for: a published architecture of the zoo, one row of a ShuffleNetV2 guideline
# table, a designed net of the fragmentation lab, or a user's own ``file.py:factory``. Analyses select by
# kind, never by family name.
KINDS = ("zoo", "guideline", "lab", "kernel", "user")
# Kinds a glob reaches only when it spells their name prefix out: ``--model '*'`` means the zoo (and the
# guideline tables), never a hundred designed lab nets; ``'lab_*'``, an exact name or ``kind="lab"`` asks for
# them. A member of such a kind must be named with the prefix.
OPT_IN_PREFIX = {"lab": "lab_", "kernel": "kern_"}


@dataclass(frozen=True)
class Paper:
    title: str
    year: int
    url: str = ""

    def __str__(self) -> str:
        return f"{self.title} ({self.year})"


@dataclass(frozen=True)
class Published:
    """A published size figure to agree with (``shared/REFERENCE.md``). Counts are absolute."""

    params: float | None = None
    macs: float | None = None  # multiply-accumulates; FLOPs = 2 x MACs
    variant: str = "deploy"  # which form the figure describes
    source: str = ""


@dataclass(frozen=True)
class ModelInfo:
    """Registry metadata of one zoo member."""

    name: str
    factory: Callable[..., nn.Module]
    family: str
    paper: Paper
    kind: str = "zoo"  # one of KINDS
    input_size: tuple[int, int, int] = (3, 224, 224)  # C, H, W: the paper's default
    seed_design: str = ""  # what the member stands for: reparameterization, fragmentation, truncation...
    default: bool = False  # the member that ``--model <family>`` picks
    fixed_input: bool = False  # weights are sized by the resolution: the factory takes ``input_size``
    min_input: int = 32  # smallest H = W the architecture allows
    identical_forms: bool = False  # train and deploy are the same network (guideline nets)
    published: tuple[Published, ...] = ()
    description: str = ""
    source_hash: str = ""  # user models: hash of their file, so export caches notice edits


_MODELS: Registry[ModelInfo] = Registry("model")
_entry_points_loaded = False
# Name prefix -> a function registering the model a name of that prefix encodes (True when it did): for nets that
# are points of a space, not entries of a table (the predictor's kernel nets).
_RESOLVERS: dict[str, Callable[[str], bool]] = {}


def register_resolver(prefix: str, resolve: Callable[[str], bool]) -> None:
    """Let ``resolve(name)`` register, on first use, any model whose name begins with ``prefix``."""
    _RESOLVERS[prefix] = resolve


def _resolve(name: str) -> bool:
    """Register ``name`` through its prefix's resolver, if one knows it."""
    return any(name.startswith(prefix) and resolve(name) for prefix, resolve in _RESOLVERS.items())


def register_model(
    fn: Callable | None = None,
    *,
    family: str,
    paper: Paper,
    name: str | None = None,
    **meta,
):
    """Decorator registering a train-form factory; the key is the function's name."""

    def wrap(factory: Callable) -> Callable:
        key = name or factory.__name__
        doc = (inspect.getdoc(factory) or "").split("\n")[0]
        meta.setdefault("description", doc)
        if "input_size" in meta:
            meta["input_size"] = tuple(meta["input_size"])
        meta["published"] = tuple(meta.get("published", ()))
        if meta.get("kind", "zoo") not in KINDS:
            raise ValueError(f"model {key}: kind {meta['kind']!r} is not one of {', '.join(KINDS)}")
        prefix = OPT_IN_PREFIX.get(meta.get("kind", "zoo"))
        if prefix and not key.startswith(prefix):
            raise ValueError(f"model {key}: a {meta['kind']} model's name starts with {prefix!r}")
        _MODELS.register(key, ModelInfo(name=key, factory=factory, family=family, paper=paper, **meta))
        return factory

    return wrap(fn) if fn is not None else wrap


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group="benchbench.models"):
        ep.load()


def is_user_model(name: str) -> bool:
    """True for ``path/to/file.py:factory`` specs."""
    return ".py:" in name


# A model's Python source; past this, not a source file someone wrote.
MAX_SOURCE_BYTES = 64 << 20


def _load_user_model(spec: str) -> ModelInfo:
    path_str, _, attr = spec.rpartition(":")
    path = Path(path_str).expanduser()
    require_utf8(spec, "model file")  # the spec is the model's name in every record
    try:  # a FIFO or a device is refused before it is opened, so that reading it cannot block or never end
        source = read_regular_bytes(path, "model file", MAX_SOURCE_BYTES)
    except PathError as exc:
        if exc.missing:
            raise UnknownNameError("model file", path_str, []) from None
        raise
    digest = hashlib.sha256(source).hexdigest()[:16]
    mod_name = f"benchbench_user_{path.stem}_{digest}"
    module = sys.modules.get(mod_name)
    if module is None:
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[mod_name] = module  # dataclasses and pickling look the module up by name
        try:
            module_spec.loader.exec_module(module)  # runs the user's file as Python code, as README says
        except (Exception, SystemExit) as exc:  # a syntax or import error is the file's, told in one line
            del sys.modules[mod_name]
            raise PluginError(f"cannot load {path.name}: {_one_line_error(exc)}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        names = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise UnknownNameError(f"factory in {path_str}", attr, Registry("f", dict.fromkeys(names)).suggest(attr))
    info = ModelInfo(
        name=spec,
        factory=factory,
        family="user",
        kind="user",
        paper=Paper(title=f"user model {path.name}", year=0),
        description=(inspect.getdoc(factory) or "").split("\n")[0],
        source_hash=digest,
    )
    return _MODELS.register(spec, info)


def _one_line_error(exc: BaseException) -> str:
    """``SyntaxError: invalid syntax (line 3)``: the error and where in the user's file, on one line."""
    if isinstance(exc, SyntaxError):
        return f"{type(exc).__name__}: {exc.msg} (line {exc.lineno})"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def model_info(name: str) -> ModelInfo:
    """Metadata of a registered model (or a ``file.py:factory`` spec, loaded on first use)."""
    if name in _MODELS:
        return _MODELS.get(name)
    if is_user_model(name):
        return _load_user_model(name)
    if _resolve(name):
        return _MODELS.get(name)
    _load_entry_points()
    return _MODELS.get(name)


def list_models(include: str | Iterable[str] = "*", exclude: Iterable[str] = (), kind: str | None = None) -> list[str]:
    """Registered model names matching fnmatch patterns (and of ``kind``, if given), naturally sorted.

    A model of an opt-in kind (``OPT_IN_PREFIX``: the lab nets) matches only a pattern that begins with its
    prefix (``lab``), or any pattern when ``kind`` names its kind."""
    _load_entry_points()
    includes = [include] if isinstance(include, str) else list(include)
    out = []
    for n in _MODELS.names(includes, exclude):
        info = _MODELS.get(n)
        if is_user_model(n) or (kind is not None and info.kind != kind):
            continue
        prefix = OPT_IN_PREFIX.get(info.kind)
        if prefix and kind != info.kind and not any(
                _spells_prefix(p, prefix) and fnmatch.fnmatchcase(n.casefold(), p.casefold()) for p in includes):
            continue
        out.append(n)
    return out


def _spells_prefix(pattern: str, prefix: str) -> bool:
    """Whether a pattern's literal start (before any wildcard) begins with ``prefix`` (its trailing ``_`` optional)."""
    literal = re.split(r"[*?\[]", pattern, maxsplit=1)[0].casefold()
    return literal.startswith(prefix.rstrip("_").casefold())


def list_families() -> dict[str, list[str]]:
    """Family → member names."""
    families: dict[str, list[str]] = {}
    for n in list_models():
        families.setdefault(_MODELS.get(n).family, []).append(n)
    return families


def _family(name: str) -> str | None:
    """The family called ``name``, ignoring case."""
    return next((f for f in list_families() if f.casefold() == name.casefold()), None)


def _family_default(family: str) -> str | None:
    members = list_families().get(family)
    if not members:
        return None
    defaults = [m for m in members if _MODELS.get(m).default]
    return defaults[0] if defaults else members[0]


def resolve_models(spec: str) -> tuple[list[str], list[str]]:
    """Expand a ``--model`` argument into model names.

    Accepts comma-separated names, fnmatch globs and family names (their default member), all in any
    case, and ``file.py:factory`` specs (case-sensitive: they are paths). Returns ``(names, notes)``, where notes say how a family name was
    resolved. Raises :class:`UnknownNameError` for a part matching nothing.
    """
    _load_entry_points()
    names: list[str] = []
    notes: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if is_user_model(part):
            found = [model_info(part).name]
        elif any(c in part for c in "*?["):
            found = list_models(part)
            if not found:
                raise UnknownNameError("model pattern", part, [])
        elif (name := _MODELS.canonical(part) or (part if _resolve(part) else None)) is not None \
                and not is_user_model(name):
            found = [name]
        elif (family := _family(part)) is not None:
            member = _family_default(family)
            found = [member]
            members = list_families()[family]
            prefix = os.path.commonprefix(members).rstrip("_") if len(members) > 1 else member
            hint = f"'{prefix}*' runs all {len(members)}" if len(members) > 1 else "its only member"
            notes.append(f"'{part}' is a family; using its default member {member} ({hint})")
        else:
            candidates = _MODELS.suggest(part) + [f for f in list_families()
                                                  if f.casefold().startswith(part[:4].casefold())]
            raise UnknownNameError("model", part, sorted(set(candidates), key=natural_key)[:4])
        names.extend(n for n in found if n not in names)
    return names, notes


def _accepts(fn: Callable, param: str, through_kwargs: bool = True) -> bool:
    """Whether ``fn`` takes the keyword ``param``: declared by name, or (``through_kwargs``) via ``**kwargs``."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    if param in params:
        return params[param].kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return through_kwargs and any(p.kind is p.VAR_KEYWORD for p in params.values())


def create_model(
    name: str,
    variant: str = "train",
    *,
    input_size: tuple[int, int] | None = None,
    seed: int = 0,
    randomize: bool = True,
) -> nn.Module:
    """Build a model in eval mode.

    ``variant="deploy"`` builds the train form with the same seed and reparameterizes it, so both
    forms compute the same function. ``randomize`` gives BN statistics and constant-initialized
    parameters random values (see :func:`benchbench.models.init.randomize_`), as no pretrained
    weights exist here. ``input_size`` (H, W) reaches factories of fixed-resolution models.
    """
    import torch
    from benchbench.models.init import randomize_

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant '{variant}'; choose from {', '.join(VARIANTS)}")
    info = model_info(name)
    kwargs = {}
    # The plugin contract (README, "Your own model"): ``input_size`` only to a factory that declares a
    # parameter of that name (``**kw`` often feeds a constructor that does not take it), ``variant``
    # to one that declares it or takes ``**kwargs``.
    if input_size is not None and (info.fixed_input or is_user_model(name)) and _accepts(
            info.factory, "input_size", through_kwargs=False):
        kwargs["input_size"] = tuple(input_size)
    # A factory that takes ``variant`` builds each form itself (and owns their equivalence);
    # any other factory builds the train form, which reparameterize() converts.
    takes_variant = _accepts(info.factory, "variant")
    torch.manual_seed(seed)
    model = info.factory(variant=variant, **kwargs) if takes_variant else info.factory(**kwargs)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"the factory returned {type(model).__name__}, not a torch.nn.Module")
    if randomize:
        randomize_(model, seed)
    model.eval()
    if variant == "deploy" and not takes_variant:
        model = reparameterize(model)
    return model


def reparameterize(model: nn.Module) -> nn.Module:
    """Convert a train-form model to its deploy form, in place; returns it in eval mode.

    Calls ``reparameterize()`` on every module that has one, children before parents, so a block
    can rely on its sub-blocks being converted already. Each block's method is idempotent and deletes
    its training branches, so calling this twice is harmless. Fused weights are made contiguous
    (a fused 1x1 from a transposed matmul is not, and runs slower).
    """
    import torch

    model.eval()
    with torch.no_grad():
        for module in reversed(list(model.modules())):
            fn = getattr(module, "reparameterize", None)
            if callable(fn):
                fn()
        for p in model.parameters():
            if not p.is_contiguous():
                p.data = p.data.contiguous()
    return model.eval()
